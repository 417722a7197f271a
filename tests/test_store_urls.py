"""The token store and the login throttle over a Redis unix socket (``unix://``)."""

from __future__ import annotations

import os
import shutil
from typing import Iterator, List

import pytest

from flask_tokenauth.store import TokenRef, open_store
from flask_tokenauth.store.redis import RedisStore
from tests.conftest import auth_header, login, make_app
from tests.redis_server import RedisServer
from tests.sessions_support import close_app_store


class UnixRedisServer(RedisServer):
    """A redis-server that also listens on a unix socket in a private folder."""

    def __init__(self) -> None:
        super().__init__()
        self.socket = os.path.join(self.folder, "redis.sock")

    def command(self) -> List[str]:
        return [*super().command(), "--unixsocket", self.socket, "--unixsocketperm", "700"]


@pytest.fixture(scope="module")
def unix_redis() -> Iterator[UnixRedisServer]:
    server = UnixRedisServer().start()
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(server.folder, ignore_errors=True)


def test_open_store_with_a_unix_url_revokes_and_looks_up(unix_redis):
    store = open_store("unix://%s?db=3" % unix_redis.socket)
    assert isinstance(store, RedisStore)
    token = TokenRef("a-jti", "a-family", "i:1")
    try:
        store.prepare()
        assert store.lookup(token)[:3] == (False, False, None)
        store.revoke_token(token, 30)
        store.revoke_family(token, 30)
        store.revoke_identity(token, 1234.5, 30)
        assert store.lookup(token)[:3] == (True, True, 1234.5)
        assert store.link.kwargs["db"] == 3
    finally:
        store.close()


def test_logout_and_throttle_over_a_unix_socket(unix_redis):
    app = make_app(
        {
            "JWT_TOKEN_STORE": "unix://%s" % unix_redis.socket,
            "JWT_LOGOUT_URL_RULE": "/auth/logout",
            "JWT_LOGIN_RATE_LIMIT": "2 per minute",
        }
    )
    client = app.test_client()
    token = login(client)
    assert client.post("/auth/logout", headers=auth_header(token)).status_code == 200
    refused = client.get("/protected", headers=auth_header(token))
    assert refused.status_code == 401
    assert refused.get_json()["description"] == "Token has been revoked"

    for _ in range(2):
        assert client.post("/auth", json={"username": "ann", "password": "bad"}).status_code == 401
    throttled = client.post("/auth", json={"username": "ann", "password": "bad"})
    assert throttled.status_code == 429
    # The counters are in that Redis, not in this process: a second app shares them.
    other = make_app(
        {"JWT_TOKEN_STORE": "unix://%s" % unix_redis.socket, "JWT_LOGIN_RATE_LIMIT": "2 per minute"}
    )
    assert other.test_client().post("/auth", json={"username": "ann", "password": "x"}).status_code == 429


SECRET_PASSWORD = "hunter2-5ecret"


@pytest.mark.parametrize(
    "template",
    [
        "redis://:{pw}@127.0.0.1:{port}/0",
        "redis://user:{pw}@127.0.0.1:{port}/0",
        "redis://user:pa@{pw}@127.0.0.1:{port}/0",  # an @ inside the password
        "redis://127.0.0.1:{port}/0?password={pw}",
        "redis://127.0.0.1:{port}/0?db=0&password={pw}",
        "rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none&password={pw}",
    ],
)
def test_a_password_in_the_store_url_is_never_logged(template, caplog):
    import logging

    from tests.redis_server import free_port

    caplog.set_level(logging.DEBUG)
    url = template.format(pw=SECRET_PASSWORD, port=free_port())
    app = make_app({"JWT_TOKEN_STORE": url, "JWT_TOKEN_STORE_TIMEOUT": 0.3})
    client = app.test_client()
    answer = client.get("/protected", headers=auth_header(login(client)))  # the store is down: 503
    assert answer.status_code == 503
    assert SECRET_PASSWORD not in answer.get_data(as_text=True)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "unreachable" in logged
    assert SECRET_PASSWORD not in logged and "hunter2" not in logged
    close_app_store(app)


@pytest.mark.parametrize(
    "url",
    [
        "unix:///run/redis.sock?db=2&password={pw}",
        "unix://:{pw}@/run/redis.sock",
        "redis+cluster://u:{pw}@10.0.0.1:7000,10.0.0.2:7001?ssl_cert_reqs=none",
        "rediss+cluster://10.0.0.1:7000?password={pw}",
    ],
)
def test_the_store_names_itself_without_the_password(url):
    # (unix: without connecting, since redis-py 5.0 leaks a failed unix socket.)
    store = open_store(url.format(pw=SECRET_PASSWORD))
    assert "hunter2" not in store.link.description
    assert "***" in store.link.description


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://u:{pw}@127.0.0.1:7000/3",  # a cluster has only db 0
        "redis+cluster://127.0.0.1:7000,nohost?password={pw}",
        "bogus://u:{pw}@host/0",
        "sqlite:///x.sqlite3?password={pw}",
    ],
)
def test_a_password_in_a_refused_store_url_is_not_in_the_error(url):
    from flask_tokenauth import ConfigurationError

    with pytest.raises(ConfigurationError) as caught:
        make_app({"JWT_TOKEN_STORE": url.format(pw=SECRET_PASSWORD)})
    assert "JWT_TOKEN_STORE" in str(caught.value)
    assert "hunter2" not in str(caught.value)
