"""The example app, through the test client and as a real server process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import example_app

REPO_ROOT = Path(example_app.__file__).resolve().parent
SECRET = "example-app-test-secret-long-enough-for-hs256"


@pytest.fixture
def client():
    return example_app.create_app({"SECRET_KEY": SECRET, "TESTING": True}).test_client()


def login(client, username="alice", password="wonderland"):
    response = client.post("/auth", json={"username": username, "password": password})
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()["access_token"]


def test_public_route_needs_no_token(client):
    response = client.get("/public")
    assert response.status_code == 200
    assert response.get_json() == {"message": "Anyone can read this."}


def test_private_route_without_token_is_401_json(client):
    response = client.get("/private")
    assert response.status_code == 401
    assert response.get_json() == {
        "status_code": 401,
        "error": "Authorization Required",
        "description": "Request does not contain an access token",
    }
    assert response.headers["WWW-Authenticate"] == 'JWT realm="Login Required"'


def test_login_then_private_whoami_and_plain_route(client):
    headers = {"Authorization": "JWT " + login(client)}
    private = client.get("/private", headers=headers)
    assert private.status_code == 200
    assert private.get_json() == {"message": "Only logged-in users can read this."}
    assert client.get("/whoami", headers=headers).get_json() == {"id": 1, "username": "alice"}
    assert client.get("/hello", headers=headers).get_json() == {"message": "Hello, alice!"}


def test_bob_is_bob(client):
    headers = {"Authorization": "JWT " + login(client, "bob", "builder")}
    assert client.get("/whoami", headers=headers).get_json() == {"id": 2, "username": "bob"}


@pytest.mark.parametrize(
    "username, password", [("alice", "wrong"), ("nobody", "wonderland")], ids=["bad-password", "no-user"]
)
def test_bad_credentials_are_401_json(client, username, password):
    response = client.post("/auth", json={"username": username, "password": password})
    assert response.status_code == 401
    assert response.get_json() == {
        "status_code": 401,
        "error": "Bad Request",
        "description": "Invalid credentials",
    }


def test_token_from_another_secret_is_refused(client):
    other = example_app.create_app({"SECRET_KEY": "another-secret-another-secret-another"})
    token = login(other.test_client())
    response = client.get("/whoami", headers={"Authorization": "JWT " + token})
    assert response.status_code == 401
    assert response.get_json()["error"] == "Invalid token"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Loopback only: ignore any *_proxy environment variables.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _call(url, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with _opener.open(request, timeout=5) as response:
        return response.status, json.loads(response.read())


def test_runs_as_a_script_and_serves_over_http(tmp_path):
    port = _free_port()
    base = "http://127.0.0.1:%d" % port
    env = dict(os.environ, PORT=str(port), SECRET_KEY=SECRET, PYTHONUNBUFFERED="1")
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "example_app.py"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                if proc.poll() is not None:
                    pytest.fail("server exited with %s:\n%s" % (proc.returncode, log_path.read_text()))
                try:
                    assert _call(base + "/public")[0] == 200
                    break
                except (urllib.error.URLError, ConnectionError):
                    if time.monotonic() > deadline:
                        pytest.fail("server did not answer within 10 s:\n%s" % log_path.read_text())
                    time.sleep(0.1)

            status, body = _call(base + "/auth", {"username": "alice", "password": "wonderland"})
            assert status == 200
            headers = {"Authorization": "JWT " + body["access_token"]}
            assert _call(base + "/whoami", headers=headers) == (200, {"id": 1, "username": "alice"})

            with pytest.raises(urllib.error.HTTPError) as refused:
                _call(base + "/private")
            assert refused.value.code == 401
            assert json.loads(refused.value.read())["error"] == "Authorization Required"
            refused.value.close()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    output = log_path.read_text()
    assert "Serving on http://127.0.0.1:%d" % port in output
    assert "made a secret key" not in output  # it came from the environment


def test_predict_needs_the_predict_permission():
    import example_app

    app = example_app.create_app({"SECRET_KEY": "example-test-secret-long-enough-for-hs256-use"})
    client = app.test_client()

    def token(username: str, password: str) -> str:
        answer = client.post("/auth", json={"username": username, "password": password})
        return answer.get_json()["access_token"]

    alice, bob = token("alice", "wonderland"), token("bob", "builder")
    body = {"features": [1.0, 2.0, 3.0]}
    ok = client.post("/predict", json=body, headers={"Authorization": "JWT " + alice})
    assert ok.status_code == 200
    assert ok.get_json() == {"prediction": 2.0, "model": "mean-v1", "user": "alice"}
    refused = client.post("/predict", json=body, headers={"Authorization": "JWT " + bob})
    assert refused.status_code == 403
    assert refused.get_json() == {
        "status_code": 403,
        "error": "Forbidden",
        "description": "Missing permission: predict",
    }
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    assert client.post("/predict", json=body).status_code == 401
    bad = client.post("/predict", json={"features": "x"}, headers={"Authorization": "JWT " + alice})
    assert bad.status_code == 400
