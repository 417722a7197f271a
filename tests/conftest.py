"""Shared fixtures: an app factory in the shape of the Flask-JWT tutorial."""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import pytest
from flask import Flask, jsonify
from werkzeug.security import check_password_hash, generate_password_hash

from flask_tokenauth import JWT, current_identity, jwt_required

SECRET = "test-secret-that-is-long-enough-for-hs256-and-more"


class User:
    def __init__(self, id: int, username: str, password: str) -> None:
        self.id = id
        self.username = username
        self.password_hash = generate_password_hash(password, method="pbkdf2:sha256:1000")


USERS = [User(1, "joe", "pass"), User(2, "ann", "secret")]
BY_NAME = {u.username: u for u in USERS}
BY_ID = {u.id: u for u in USERS}


def authenticate(username: str, password: str) -> Optional[User]:
    user = BY_NAME.get(username)
    if user is not None and check_password_hash(user.password_hash, password):
        return user
    return None


def identity(payload: Dict[str, Any]) -> Optional[User]:
    return BY_ID.get(payload["identity"])


def make_app(config: Optional[Dict[str, Any]] = None, jwt: Optional[JWT] = None) -> Flask:
    """A Flask-JWT tutorial app: /auth, /protected (whoami) and /open."""
    app = Flask(__name__)
    app.config["SECRET_KEY"] = SECRET
    app.config.update(config or {})
    if jwt is None:
        jwt = JWT(app, authenticate, identity)
    else:
        jwt.init_app(app)

    @app.route("/protected")
    @jwt_required()
    def protected():
        return jsonify(id=current_identity.id, username=current_identity.username)

    @app.route("/open")
    def open_route():
        return jsonify(ok=True)

    return app


@pytest.fixture
def app_factory() -> Callable[..., Flask]:
    return make_app


@pytest.fixture
def app() -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask):
    return app.test_client()


def login(client, username: str = "joe", password: str = "pass") -> str:
    response = client.post("/auth", json={"username": username, "password": password})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


def auth_header(token: str, prefix: str = "JWT") -> Dict[str, str]:
    return {"Authorization": "%s %s" % (prefix, token)}


@pytest.fixture(scope="session")
def redis_cluster():
    """One real Redis Cluster (3 masters, 3 replicas) for the whole run, started
    on first use: every cluster test shares it (see tests/cluster_support.py)."""
    from tests.redis_cluster import LocalCluster

    cluster = LocalCluster(masters=3, replicas=1)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.kill_all()
