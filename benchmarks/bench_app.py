"""The flask_tokenauth app the HTTP benchmarks serve (``throughput.py``, ``soak.py``).

``create_app(overrides=None)`` builds it:

* ``SECRET_KEY`` from the environment variable ``SECRET_KEY`` (required: no
  built-in secret), unless ``overrides`` gives one;
* ``JWT_TOKEN_STORE`` from the environment variable ``BENCH_STORE`` when set
  (``memory://``, ``redis://127.0.0.1:<port>/0``...), else the default memory
  store;
* ``JWT_TOKEN_STORE_CACHE_SIZE`` from ``BENCH_STORE_CACHE_SIZE`` when set
  (``0``: the Redis store's revocation cache off), else its default;
* ``GET /open`` and ``GET /protected`` (``@jwt_required()``) answer the same
  tiny JSON, ``{"hello": "world"}``;
* ``POST /auth`` logs in user ``alice`` / ``wonderland`` (identity 1); refresh
  (``POST /auth/refresh``) and logout (``POST /auth/logout``) are on.

Served by gunicorn (what ``throughput.py`` does; the ``()`` makes gunicorn
call the factory in each worker)::

    SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))') \\
        gunicorn --workers 2 --bind 127.0.0.1:8000 --chdir benchmarks 'bench_app:create_app()'

Run directly, it checks itself in process and prints one line per request::

    python benchmarks/bench_app.py
"""

from __future__ import annotations

import hmac
import os
import secrets
import sys
from typing import Any, Dict, Mapping, Optional

from flask import Flask

from flask_tokenauth import JWT, jwt_required

BODY = {"hello": "world"}
USERNAME, PASSWORD = "alice", "wonderland"


class User:
    __slots__ = ("id", "username", "password")

    def __init__(self, id: int, username: str, password: str) -> None:
        self.id = id
        self.username = username
        self.password = password


USERS = {1: User(1, USERNAME, PASSWORD)}
BY_NAME = {u.username: u for u in USERS.values()}


def authenticate(username: str, password: str) -> Optional[User]:
    user = BY_NAME.get(username)
    if user is not None and hmac.compare_digest(user.password, password):
        return user
    return None


def identity(payload: Dict[str, Any]) -> Optional[User]:
    return USERS.get(payload["identity"])


def create_app(overrides: Optional[Mapping[str, Any]] = None) -> Flask:
    """The benchmark app; ``overrides`` are applied to ``app.config`` last."""
    overrides = dict(overrides or {})
    app = Flask("bench_app")
    secret = overrides.pop("SECRET_KEY", None) or os.environ.get("SECRET_KEY")
    if not secret:
        raise RuntimeError("bench_app needs SECRET_KEY in the environment (or in overrides)")
    app.config["SECRET_KEY"] = secret
    store = os.environ.get("BENCH_STORE")
    if store:
        app.config["JWT_TOKEN_STORE"] = store
    cache_size = os.environ.get("BENCH_STORE_CACHE_SIZE")
    if cache_size:
        app.config["JWT_TOKEN_STORE_CACHE_SIZE"] = int(cache_size)
    app.config["JWT_REFRESH_URL_RULE"] = "/auth/refresh"
    app.config["JWT_LOGOUT_URL_RULE"] = "/auth/logout"
    app.config.update(overrides)
    JWT(app, authenticate, identity)

    @app.get("/open")
    def open_view() -> Any:
        return BODY

    @app.get("/protected")
    @jwt_required()
    def protected_view() -> Any:
        return BODY

    return app


def main() -> int:
    """Log in, call both routes, refresh, log out: in process, one line each."""
    app = create_app({"SECRET_KEY": secrets.token_hex(32), "JWT_TOKEN_STORE": "memory://"})
    client = app.test_client()
    login = client.post("/auth", json={"username": USERNAME, "password": PASSWORD})
    tokens = login.get_json()

    def bearer(token: str) -> Dict[str, str]:
        return {"Authorization": "JWT " + token}

    steps = [
        ("POST /auth", login),
        ("GET /open", client.get("/open")),
        ("GET /protected (no token)", client.get("/protected")),
        ("GET /protected", client.get("/protected", headers=bearer(tokens["access_token"]))),
    ]
    refreshed = client.post("/auth/refresh", headers=bearer(tokens["refresh_token"]))
    steps.append(("POST /auth/refresh", refreshed))
    access = refreshed.get_json()["access_token"]
    steps.append(("POST /auth/logout", client.post("/auth/logout", headers=bearer(access))))
    steps.append(("GET /protected (logged out)", client.get("/protected", headers=bearer(access))))
    expected = [200, 200, 401, 200, 200, 200, 401]
    ok = True
    for (label, response), want in zip(steps, expected):
        good = response.status_code == want
        ok = ok and good
        print("%-28s %d %s" % (label, response.status_code, "ok" if good else "UNEXPECTED (want %d)" % want))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
