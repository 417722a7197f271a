"""Helpers and fixtures for the sessions tests (refresh, logout, revocation, stores).

Not a test module: test files import what they use by name. Fixtures are
defined as ``<name>_fixture`` with ``@pytest.fixture(name="<name>")``: a test
file imports ``redis_server_fixture`` and its tests take ``redis_server``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import jwt as pyjwt
import pytest
import redis

from flask_tokenauth import JWT
from tests.conftest import SECRET, auth_header, authenticate, identity, make_app
from tests.redis_server import RedisServer, free_port

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The claim telling access from refresh tokens. The brief says ``type``; the
#: package (README, commit 795ed6e) renamed it ``token_type`` so that apps keep
#: their own ``type`` claims.
TYPE_CLAIM = "token_type"

SESSION_CONFIG: Dict[str, Any] = {
    "JWT_REFRESH_URL_RULE": "/auth/refresh",
    "JWT_LOGOUT_URL_RULE": "/auth/logout",
}

REVOKED = {"status_code": 401, "error": "Invalid token", "description": "Token has been revoked"}
REUSED = {
    "status_code": 401,
    "error": "Invalid token",
    "description": "Refresh token was already used; the session has been revoked",
}
ONLY_ACCESS = {
    "status_code": 401,
    "error": "Invalid token",
    "description": "Only access tokens are accepted here",
}
ONLY_REFRESH = {
    "status_code": 401,
    "error": "Invalid token",
    "description": "Only refresh tokens are accepted here",
}


# --- in-process apps ----------------------------------------------------------


def session_app(config: Optional[Dict[str, Any]] = None, jwt: Optional[JWT] = None):
    """The conftest tutorial app with refresh and logout on, plus ``/sensitive``
    (``jwt_required(fresh=True)``) and ``/claims`` (the verified claims)."""
    from flask import jsonify

    from flask_tokenauth import current_token, jwt_required

    app = make_app({**SESSION_CONFIG, **(config or {})}, jwt=jwt)

    @app.route("/sensitive")
    @jwt_required(fresh=True)
    def sensitive():
        return jsonify(ok=True)

    @app.route("/claims")
    @jwt_required()
    def claims():
        return jsonify(dict(current_token))

    return app


def new_jwt() -> JWT:
    """An unbound JWT object with the tutorial handlers, for apps that customise it."""
    return JWT(None, authenticate, identity)


def close_app_store(app) -> None:
    """Close the Redis connections an in-process app opened (no ResourceWarning)."""
    state = app.extensions.get("flask_tokenauth")
    if state is None or getattr(state, "_store", None) is None:
        return
    with app.app_context():
        state.store().close()


def login_pair(client, username: str = "joe", password: str = "pass") -> Tuple[str, str]:
    response = client.post("/auth", json={"username": username, "password": password})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"access_token", "refresh_token"}, body
    return body["access_token"], body["refresh_token"]


def refresh_with(client, refresh_token: str, via: str = "header"):
    if via == "header":
        return client.post("/auth/refresh", headers=auth_header(refresh_token))
    return client.post("/auth/refresh", json={"refresh_token": refresh_token})


def refreshed_pair(client, refresh_token: str) -> Tuple[str, str]:
    response = refresh_with(client, refresh_token)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    return body["access_token"], body["refresh_token"]


def get_protected(client, token: str):
    return client.get("/protected", headers=auth_header(token))


def unverified_claims(token: str) -> Dict[str, Any]:
    return pyjwt.decode(token, options={"verify_signature": False})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def reencode(token: str, secret: str = SECRET) -> str:
    """The same claims, signed anew with ``secret`` but serialised differently
    (other key order in header and payload, indented JSON): another string."""
    claims = unverified_claims(token)
    header = {"typ": "JWT", "alg": "HS256"}
    payload = dict(reversed(list(claims.items())))
    signing_input = "%s.%s" % (
        b64url(json.dumps(header, indent=2).encode()),
        b64url(json.dumps(payload, indent=1).encode()),
    )
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    copy = "%s.%s" % (signing_input, b64url(signature))
    assert copy != token
    return copy


def wait_next_second() -> None:
    """Sleep past the next whole second (``iat`` has 1-second resolution)."""
    now = time.time()
    time.sleep(int(now) + 1 - now + 0.02)


def run_together(count: int, action: Callable[[int], Any], timeout: float = 20.0) -> List[Any]:
    """Run ``action(i)`` in ``count`` threads released at the same moment."""
    barrier = threading.Barrier(count)
    results: List[Any] = [None] * count

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout)
            results[i] = action(i)
        except BaseException as exc:  # reported by the caller
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    return results


def is_marker(key: bytes) -> bool:
    """A generation marker: the one kind of key the store keeps for good."""
    return key.endswith(b"}:gen")


def assert_every_key_has_ttl(client: redis.Redis) -> List[bytes]:
    """Every key in the Redis database but the generation markers expires
    (PTTL > 0), and no marker does; returns the other keys."""
    keys = sorted(key for key in client.keys("*") if not is_marker(key))
    without = {key: client.pttl(key) for key in keys if client.pttl(key) <= 0}
    assert not without, "keys without a TTL (PTTL): %r" % without
    markers = [key for key in client.keys("*") if is_marker(key)]
    assert all(client.pttl(key) == -1 for key in markers)
    return keys


def empty_revocations(client: redis.Redis) -> None:
    """Delete every key but the store's generation markers: what a test wrote
    goes, and apps already running see no lost state."""
    doomed = [key for key in client.scan_iter(count=1000) if not is_marker(key)]
    for start in range(0, len(doomed), 500):
        client.delete(*doomed[start:start + 500])


# --- Redis fixtures -------------------------------------------------------------


@pytest.fixture(scope="module", name="redis_server")
def redis_server_fixture() -> Iterator[RedisServer]:
    """One redis-server for the module (skipped, or failed under CI=true, when missing)."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.kill()


@pytest.fixture(name="redis_client")
def redis_client_fixture(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client on the module's server, whose database holds nothing but the
    store's generation markers at the start of the test."""
    client = redis.Redis.from_url(redis_server.url)
    empty_revocations(client)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(name="own_redis")
def own_redis_fixture() -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that stop, freeze or restart it."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.kill()


# --- apps in their own processes, over real HTTP -----------------------------

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy


class HTTPAnswer:
    def __init__(self, status: int, body: Any, headers: Dict[str, str]) -> None:
        self.status = status
        self.json = body
        self.headers = headers

    def __repr__(self) -> str:
        return "<HTTPAnswer %s %r>" % (self.status, self.json)


def http(
    method: str,
    url: str,
    token: Optional[str] = None,
    json_body: Any = None,
    timeout: float = 10.0,
    headers: Optional[Dict[str, str]] = None,
    scheme: str = "JWT",
) -> HTTPAnswer:
    """One request with urllib; 4xx/5xx answers are returned, not raised."""
    headers = dict(headers or {})
    data = None
    if token is not None:
        headers["Authorization"] = "%s %s" % (scheme, token)
    if json_body is not None:
        data = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        response = _OPENER.open(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        response = error
    with response:
        raw = response.read()
        status = response.status if hasattr(response, "status") else response.code
        answer_headers = dict(response.headers.items())
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", "replace")
    return HTTPAnswer(status, body, answer_headers)


class ServerProcess:
    """A server in a process of its own on 127.0.0.1, its output kept in a
    temporary file: :meth:`spawn` starts it, :meth:`wait_ready` waits until
    ``READY_PATH`` answers 200, :meth:`stop` ends it (safe to call twice)."""

    START_TIMEOUT = 15.0
    READY_PATH = "/open"

    def __init__(self) -> None:
        self.port = 0
        self.process: Optional[subprocess.Popen] = None
        self._log: Any = None

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    def spawn(self, command: List[str], cwd: str, env: Optional[Dict[str, str]] = None) -> None:
        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self) -> bool:
        deadline = time.monotonic() + self.START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            try:
                if http("GET", self.url + self.READY_PATH, timeout=1.0).status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def log(self, tail: Optional[int] = 4000) -> str:
        """What the server printed (its last ``tail`` characters; ``None``: all)."""
        if self._log is None:
            return ""
        self._log.seek(0)
        raw = self._log.read()
        return (raw if tail is None else raw[-tail:]).decode("utf-8", "replace")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


class AppProcess(ServerProcess):
    """``python -m tests.session_app`` in its own process on 127.0.0.1."""

    def __init__(
        self,
        redis_url: str,
        store_timeout: float = 1.0,
        grace: float = 0.0,
        rate_limit: Optional[str] = None,
        max_connections: int = 50,
        gevent: bool = False,
        dpop: Optional[str] = None,
    ) -> None:
        super().__init__()
        self.redis_url = redis_url
        self.store_timeout = store_timeout
        self.grace = grace
        self.rate_limit = rate_limit
        self.max_connections = max_connections
        self.gevent = gevent
        self.dpop = dpop

    def launch(self) -> None:
        """Start the process (without waiting for it to listen)."""
        self.port = free_port()
        self.spawn(
            [
                sys.executable, "-m", "tests.session_app",
                "--port", str(self.port),
                "--redis", self.redis_url,
                "--store-timeout", str(self.store_timeout),
                "--grace", str(self.grace),
                "--max-connections", str(self.max_connections),
                *(["--rate-limit", self.rate_limit] if self.rate_limit else []),
                *(["--gevent"] if self.gevent else []),
                *(["--dpop", self.dpop] if self.dpop else []),
            ],
            REPO_ROOT,
        )

    # requests to this process
    def get(self, path: str, token: Optional[str] = None) -> HTTPAnswer:
        return http("GET", self.url + path, token=token)

    def post(self, path: str, token: Optional[str] = None, json_body: Any = None) -> HTTPAnswer:
        return http("POST", self.url + path, token=token, json_body=json_body)

    def login(self, username: str = "joe", password: str = "pass") -> Tuple[str, str]:
        answer = self.post("/auth", json_body={"username": username, "password": password})
        assert answer.status == 200, answer
        return answer.json["access_token"], answer.json["refresh_token"]

    def attempt(self, username: str, password: str) -> HTTPAnswer:
        """One POST /auth, whatever it answers (the throttle tests count these)."""
        return self.post("/auth", json_body={"username": username, "password": password})

    def refresh(self, refresh_token: str) -> HTTPAnswer:
        return self.post("/auth/refresh", token=refresh_token)


def serve_app(redis_url: str, count: int = 1, **options: Any) -> List[AppProcess]:
    """Start ``count`` app processes (in parallel) and wait until each answers.

    The caller must ``stop()`` each of them (in a fixture's ``finally``).
    """
    apps = [AppProcess(redis_url, **options) for _ in range(count)]
    try:
        for app in apps:
            app.launch()
        for app in apps:
            for _ in range(3):  # a port taken between free_port() and bind: try another
                if app.wait_ready():
                    break
                log = app.log()
                app.stop()
                if "Address already in use" not in log:
                    raise RuntimeError("session_app did not start on %s:\n%s" % (app.url, log))
                app.launch()
            else:
                raise RuntimeError("session_app did not start: no free port")
    except BaseException:
        for app in apps:
            app.stop()
        raise
    return apps


def while_frozen(
    freeze: Callable[[], Any], thaw: Callable[[], Any], call: Callable[[], Any]
) -> Tuple[Any, float]:
    """``call()`` made while a server is frozen (thawed afterwards, whatever
    happens); its result and how long it took."""
    freeze()
    try:
        started = time.monotonic()
        result = call()
        return result, time.monotonic() - started
    finally:
        thaw()


@contextlib.contextmanager
def serving(redis_url: str, count: int = 1, **options: Any) -> Iterator[List[AppProcess]]:
    """``serve_app``, stopping every process on the way out."""
    started = serve_app(redis_url, count, **options)
    try:
        yield started
    finally:
        for app in started:
            app.stop()


def two_os_processes_refresh(url: str, refresh_token: str) -> List[int]:
    """Two client processes POST the same refresh token to ``url`` at the same moment;
    their status codes. Each says ``ready`` once imported, then waits for ``go``."""
    client_code = (
        "import sys, urllib.request, urllib.error\n"
        "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
        "req = urllib.request.Request(sys.argv[1], data=b'', method='POST',\n"
        "    headers={'Authorization': 'JWT ' + sys.argv[2]})\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "try:\n"
        "    with opener.open(req, timeout=10) as r: print(r.status)\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code); e.close()\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", client_code, url, refresh_token],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == b"ready"
        for proc in procs:  # release both
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        codes = []
        for proc in procs:
            out, err = proc.communicate(timeout=20)
            assert proc.returncode == 0, err
            codes.append(int(out.strip()))
        return codes
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
