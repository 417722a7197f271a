"""Durations and token locations that cannot work fail at init_app (or at the
call that passes them), never as a 500 or a token that silently expires at once."""

from __future__ import annotations

import datetime

import pytest

from flask_tokenauth import ConfigurationError
from tests.conftest import auth_header, login, make_app


@pytest.mark.parametrize(
    "key, value, says",
    [
        ("JWT_EXPIRATION_DELTA", False, "JWT_EXPIRATION_DELTA: a duration must be"),
        ("JWT_REFRESH_EXPIRATION_DELTA", "30 days", "JWT_REFRESH_EXPIRATION_DELTA: a duration must be"),
        ("JWT_LEEWAY", "10", "JWT_LEEWAY: a duration must be"),
        ("JWT_NOT_BEFORE_DELTA", datetime.timedelta(seconds=-5), "JWT_NOT_BEFORE_DELTA must not be negative"),
        ("JWT_TOKEN_STORE_TIMEOUT", None, "JWT_TOKEN_STORE_TIMEOUT: a duration must be"),
        ("JWT_TOKEN_LOCATION", ["headers", "json"], "JWT_TOKEN_LOCATION ['headers', 'json']: use one"),
        ("JWT_TOKEN_LOCATION", [], "JWT_TOKEN_LOCATION []: use one or more of"),
    ],
)
def test_a_setting_that_cannot_work_fails_at_init_app(key, value, says):
    with pytest.raises(ConfigurationError) as refused:
        make_app({key: value})
    assert str(refused.value).startswith(says)


@pytest.mark.parametrize(
    "config",
    [
        {"JWT_EXPIRATION_DELTA": 60, "JWT_LEEWAY": 0.5, "JWT_SESSION_MAX_AGE": None},
        {"JWT_EXPIRATION_DELTA": datetime.timedelta(minutes=1), "JWT_REFRESH_REUSE_GRACE": None},
        {"JWT_TOKEN_LOCATION": "headers"},
    ],
)
def test_good_settings_still_work(config):
    client = make_app(config).test_client()
    assert client.get("/protected", headers=auth_header(login(client))).status_code == 200


def test_create_access_token_refuses_lifetimes_and_freshness_it_cannot_honour():
    app = make_app()
    jwt = app.extensions["jwt"]
    with app.app_context():
        with pytest.raises(TypeError, match="a duration must be"):
            jwt.create_access_token(1, expires_delta=False)
        with pytest.raises(TypeError, match="fresh must be True or False"):
            jwt.create_access_token(1, fresh=datetime.timedelta(minutes=5))
        token = jwt.create_access_token(1, expires_delta=datetime.timedelta(minutes=5), fresh=True)
    assert app.test_client().get("/protected", headers=auth_header(token)).status_code == 200
