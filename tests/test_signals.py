"""Signals: each one sent once, with the app as sender and the arguments it
documents, never a token, a secret or a password."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Tuple

import jwt as pyjwt

from flask_tokenauth import signals
from tests.conftest import SECRET, auth_header, login
from tests.dpop_support import Client
from tests.sessions_support import login_pair, refresh_with, session_app

Received = List[Tuple[Any, Dict[str, Any]]]


@contextmanager
def receiving(signal: Any) -> Iterator[Received]:
    got: Received = []

    def receiver(sender: Any, **details: Any) -> None:
        got.append((sender, details))

    signal.connect(receiver)
    try:
        yield got
    finally:
        signal.disconnect(receiver)


def claims(token: str) -> Dict[str, Any]:
    return pyjwt.decode(token, options={"verify_signature": False})


def assert_no_secrets(received: Received, *secrets: str) -> None:
    text = repr([details for _, details in received])
    for secret in secrets:
        assert secret not in text


def test_token_issued_for_each_token_of_a_login():
    app = session_app({"JWT_DPOP": "allowed"})
    key = Client()
    with receiving(signals.token_issued) as got:
        body = app.test_client().post(
            "/auth", json={"username": "joe", "password": "pass"},
            headers={"DPoP": key.proof("POST", "https://api.example/auth")}, base_url="https://api.example",
        ).get_json()
    access, refresh = claims(body["access_token"]), claims(body["refresh_token"])
    assert [sender for sender, _ in got] == [app, app]
    common = {"identity": 1, "family": access["fam"], "dpop_jkt": key.jkt}
    assert [details for _, details in got] == [
        {"token_type": "access", "jti": access["jti"], **common},
        {"token_type": "refresh", "jti": refresh["jti"], **common},
    ]
    assert_no_secrets(got, body["access_token"], body["refresh_token"], "pass")


def test_login_failed_and_login_throttled():
    app = session_app({"JWT_LOGIN_RATE_LIMIT": "1 per minute"})
    client = app.test_client()
    with receiving(signals.login_failed) as failed, receiving(signals.login_throttled) as throttled:
        assert client.post("/auth", json={"username": "ann", "password": "wrong-pw"}).status_code == 401
        assert client.post("/auth", json={"username": "ann", "password": "wrong-pw"}).status_code == 429
    assert failed == [(app, {"username": "ann", "address": "127.0.0.1"})]
    assert len(throttled) == 1 and throttled[0][0] is app
    details = throttled[0][1]
    assert details["username"] == "ann" and details["address"] == "127.0.0.1"
    assert 1 <= details["retry_after"] <= 60
    assert_no_secrets(failed + throttled, "wrong-pw")


def test_token_refreshed_then_reuse_detected_and_family_revoked():
    app = session_app()
    client = app.test_client()
    _, refresh0 = login_pair(client)
    family = claims(refresh0)["fam"]
    with receiving(signals.token_refreshed) as refreshed:
        assert refresh_with(client, refresh0).status_code == 200
    assert refreshed == [(app, {"identity": 1, "family": family})]
    with receiving(signals.refresh_reuse_detected) as reuse, receiving(signals.family_revoked) as revoked:
        assert refresh_with(client, refresh0).status_code == 401
    assert reuse == [(app, {"family": family, "identity": 1})]
    assert revoked == [(app, {"family": family, "identity": 1})]


def test_token_revoked_at_logout_and_identity_revoked():
    app = session_app()
    client = app.test_client()
    access, _ = login_pair(client)
    with receiving(signals.token_revoked) as got:
        assert client.post("/auth/logout", headers=auth_header(access)).status_code == 200
    assert got == [(app, {"jti": claims(access)["jti"], "family": claims(access)["fam"], "identity": 1})]
    with receiving(signals.identity_revoked) as got, app.app_context():
        app.extensions["jwt"].revoke_identity(2)
    assert got == [(app, {"identity": 2})]


def test_token_refused_says_why_never_the_token(caplog):
    app = session_app()
    client = app.test_client()
    token = login(client)
    forged = pyjwt.encode({**claims(token), "identity": 2}, "x" * 40, algorithm="HS256")
    caplog.set_level(logging.DEBUG, "flask_tokenauth")
    with receiving(signals.token_refused) as got:
        client.get("/protected", headers=auth_header(forged))
        client.get("/protected")
    assert got == [
        (app, {"status": 401, "error": "Invalid token", "reason": "Signature verification failed"}),
        (
            app,
            {
                "status": 401,
                "error": "Authorization Required",
                "reason": "Request does not contain an access token",
            },
        ),
    ]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Signature verification failed" in logged  # what was refused and why
    assert forged not in logged and token not in logged and SECRET not in logged


def test_all_signals_are_listed():
    assert sorted(signals.__all__) == sorted(
        name for name, value in vars(signals).items() if type(value).__name__ == "NamedSignal"
    )
