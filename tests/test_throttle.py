"""Login throttling (issue 5): failed logins counted per username and per client
address, 429 with Retry-After past the limit without calling the authentication
handler; memory by default, shared through the token store's Redis.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import redis
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_tokenauth import JWT, jwt_required
from tests.conftest import authenticate, identity, make_app
from tests.redis_server import RedisServer
from tests.sessions_support import (  # noqa: F401 - fixtures are used by name
    AppProcess,
    HTTPAnswer,
    assert_every_key_has_ttl,
    close_app_store,
    own_redis_fixture,
    redis_client_fixture,
    redis_server_fixture,
    run_together,
    serving,
)

LIMIT = "3 per minute"
ERROR_KEYS = {"status_code", "error", "description"}
BAD_CREDENTIALS = {"status_code": 401, "error": "Bad Request", "description": "Invalid credentials"}

A, B, C, D = "203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"


class Recorder:
    """An authentication handler that records every call, then defers to the tutorial's."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: List[Tuple[Any, ...]] = []
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self, username: str, password: str) -> Any:
        with self._lock:
            self.calls.append((username, password))
        if self.delay:
            time.sleep(self.delay)
        return authenticate(username, password)


def throttled_app(
    config: Optional[Dict[str, Any]] = None,
    recorder: Optional[Recorder] = None,
    limit: str = LIMIT,
) -> Flask:
    """The tutorial app with JWT_LOGIN_RATE_LIMIT set and a recording handler."""
    jwt = JWT(None, recorder if recorder is not None else Recorder(), identity)
    return make_app({"JWT_LOGIN_RATE_LIMIT": limit, **(config or {})}, jwt=jwt)


def attempt(client, username: str, password: str, addr: str = A, **kwargs: Any):
    return client.post(
        "/auth",
        json={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": addr},
        **kwargs,
    )


def throttled_body(wait: int) -> Dict[str, Any]:
    return {
        "status_code": 429,
        "error": "Too Many Requests",
        "description": "Too many failed logins; try again in %d seconds" % wait,
    }


def assert_throttled(response, window: int = 60) -> int:
    """A 429 with the exact JSON body and an integer Retry-After (1..window); the wait."""
    assert response.status_code == 429, (response.status_code, response.get_json())
    assert response.mimetype == "application/json"
    retry_after = response.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit(), retry_after
    wait = int(retry_after)
    assert 1 <= wait <= window, wait
    assert response.get_json() == throttled_body(wait)
    return wait


def assert_bad_credentials(response) -> None:
    assert response.status_code == 401, (response.status_code, response.get_json())
    assert response.get_json() == BAD_CREDENTIALS


def assert_logged_in(response) -> None:
    assert response.status_code == 200, (response.status_code, response.get_json())
    assert set(response.get_json()) == {"access_token"}


def close_throttle(app: Flask) -> None:
    """Close the Redis connections of an in-process app's throttle and token store."""
    state = app.extensions["flask_tokenauth"]
    throttle = getattr(state, "_throttle", None)
    client = getattr(getattr(throttle, "storage", None), "storage", None)
    if isinstance(client, redis.Redis):
        client.close()
        client.connection_pool.disconnect()
    close_app_store(app)


# --- per username, per address -------------------------------------------------------


def test_failed_logins_per_username_throttle_from_any_address():
    recorder = Recorder()
    client = throttled_app(recorder=recorder).test_client()
    for _ in range(3):
        assert_bad_credentials(attempt(client, "joe", "wrong", A))
    assert len(recorder.calls) == 3
    assert_throttled(attempt(client, "joe", "wrong", B))  # another address: the username counts
    assert_throttled(attempt(client, "joe", "pass", C))  # the right password too
    assert len(recorder.calls) == 3, "the authentication handler was called while throttled"
    # Another user from an address that never failed is not slowed.
    assert_logged_in(attempt(client, "ann", "secret", C))
    assert recorder.calls[-1] == ("ann", "secret")


def test_username_counter_is_case_insensitive():
    recorder = Recorder()
    client = throttled_app(recorder=recorder).test_client()
    for name, addr in (("joe", A), ("JOE", B), ("Joe", C)):
        assert_bad_credentials(attempt(client, name, "wrong", addr))
    assert_throttled(attempt(client, "jOe", "pass", D))
    assert len(recorder.calls) == 3


def test_variants_of_one_username_share_one_limit():
    # Forms the app's own lookup (or a user) would take for the same name.
    recorder = Recorder()
    client = throttled_app(recorder=recorder).test_client()
    # Fullwidth letters are NFKC-equal to ASCII ones.
    variants = ["joe", " joe", "joe ", "\tJOE\n", "\uff4a\uff4f\uff45", "Joe", "\uff2a\uff2f\uff25"]
    addresses = ["198.51.100.%d" % n for n in range(1, 40)]
    answers = [attempt(client, variants[n % len(variants)], "wrong", addresses[n]) for n in range(30)]
    assert len(recorder.calls) == 3, recorder.calls
    assert sum(1 for answer in answers if answer.status_code == 429) == 27


def test_the_app_chooses_how_usernames_are_counted():
    recorder = Recorder()
    app = throttled_app(recorder=recorder)

    @app.extensions["jwt"].login_username_loader
    def same_mailbox(username: str) -> str:  # "joe+anything@x" is joe's mailbox
        local, _, domain = username.lower().partition("@")
        return local.split("+", 1)[0] + "@" + domain

    client = app.test_client()
    names = ["joe@x.test", "joe+1@x.test", "JOE+work@X.test", "joe+2@x.test"]
    answers = [attempt(client, name, "wrong", "198.51.100.%d" % n) for n, name in enumerate(names)]
    assert [answer.status_code for answer in answers] == [401, 401, 401, 429]
    assert_bad_credentials(attempt(client, "ann@x.test", "wrong", "198.51.100.99"))


def test_an_ipv6_client_is_counted_by_its_64():
    recorder = Recorder()
    client = throttled_app(recorder=recorder).test_client()
    same_64 = ["2001:db8:1:2::%x" % n for n in range(1, 30)]
    answers = [attempt(client, "user%d" % n, "wrong", addr) for n, addr in enumerate(same_64)]
    assert len(recorder.calls) == 3
    assert_throttled(answers[3])
    assert_bad_credentials(attempt(client, "other", "wrong", "2001:db8:1:3::1"))  # the next /64
    assert_bad_credentials(attempt(client, "zed", "wrong", "::ffff:192.0.2.7"))  # IPv4-mapped
    for n in range(2):
        assert_bad_credentials(attempt(client, "zed%d" % n, "wrong", "192.0.2.7"))
    assert_throttled(attempt(client, "zed9", "wrong", "::ffff:192.0.2.7"))  # one counter for both forms


def test_a_throttled_address_makes_no_counter_for_the_usernames_it_tries(redis_server, redis_client):
    app = throttled_app({"JWT_TOKEN_STORE": redis_server.url})
    try:
        client = app.test_client()
        for n in range(3):
            assert_bad_credentials(attempt(client, "guess%d" % n, "wrong", A))
        before = redis_client.keys("*tokenauth-login/user*")
        assert len(before) == 3
        for n in range(200):  # a flood of new usernames from the throttled address
            assert_throttled(attempt(client, "flood%d" % n, "wrong", A))
        assert len(redis_client.keys("*tokenauth-login/user*")) == 3
        assert len(redis_client.keys("*tokenauth-login/addr*")) == 1
    finally:
        close_throttle(app)
        close_app_store(app)


def test_failed_logins_per_address():
    recorder = Recorder()
    client = throttled_app(recorder=recorder).test_client()
    for name in ("joe", "ann", "zed"):
        assert_bad_credentials(attempt(client, name, "wrong", A))
    assert_throttled(attempt(client, "bob", "wrong", A))
    assert_throttled(attempt(client, "ann", "secret", A))  # right credentials, throttled address
    assert len(recorder.calls) == 3, "the authentication handler was called while throttled"
    # The same usernames from another address are fine (each has one failure at most).
    assert_bad_credentials(attempt(client, "bob", "wrong", B))
    assert_logged_in(attempt(client, "joe", "pass", B))
    assert len(recorder.calls) == 5


def test_successful_logins_are_never_counted():
    recorder = Recorder()
    client = throttled_app(recorder=recorder).test_client()
    for _ in range(10):
        assert_logged_in(attempt(client, "joe", "pass", A))
    for _ in range(2):
        assert_bad_credentials(attempt(client, "joe", "wrong", A))
    assert_logged_in(attempt(client, "joe", "pass", A))
    assert_bad_credentials(attempt(client, "joe", "wrong", A))  # the third failure: still 401
    assert_throttled(attempt(client, "joe", "wrong", A))
    assert len(recorder.calls) == 14


MALFORMED: List[Dict[str, Any]] = [
    {"data": "username=joe&password=wrong", "content_type": "application/x-www-form-urlencoded"},
    {"data": "{not json", "content_type": "application/json"},
    {"json": ["joe", "wrong"]},
    {"json": "joe"},
    {"json": {"username": "joe", "password": "wrong", "extra": 1}},
    {"json": {"username": "joe", "password": 5}},
    {"json": {"username": "joe", "password": ""}},
    {"json": {"username": "joe"}},
    {"data": b"{" + b" " * (64 * 1024 + 1) + b"}", "content_type": "application/json"},
]


def test_malformed_bodies_are_not_counted():
    recorder = Recorder()
    client = throttled_app(recorder=recorder).test_client()
    for _ in range(2):
        for kwargs in MALFORMED:
            response = client.post("/auth", environ_base={"REMOTE_ADDR": A}, **kwargs)
            assert 400 <= response.status_code < 500 and response.status_code != 429, (
                kwargs,
                response.status_code,
                response.get_json(),
            )
            assert set(response.get_json()) == ERROR_KEYS
    assert recorder.calls == []
    for _ in range(3):
        assert_bad_credentials(attempt(client, "joe", "wrong", A))
    assert_throttled(attempt(client, "joe", "pass", A))


def test_proxyfix_x_forwarded_for_decides_the_counted_address():
    recorder = Recorder()
    app = throttled_app(recorder=recorder)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    client = app.test_client()
    proxy = "10.0.0.1"  # every request arrives from the proxy

    def via_proxy(username: str, password: str, forwarded_for: str):
        return attempt(client, username, password, proxy, headers={"X-Forwarded-For": forwarded_for})

    for name in ("u1", "u2", "u3"):
        assert_bad_credentials(via_proxy(name, "wrong", A))
    assert_throttled(via_proxy("u4", "wrong", A))
    # A client cannot escape by prepending addresses: x_for=1 trusts the last one only.
    assert_throttled(via_proxy("u4", "wrong", "198.51.100.9, " + A))
    # Another client behind the same proxy is not throttled.
    assert_bad_credentials(via_proxy("u4", "wrong", B))
    assert_logged_in(via_proxy("joe", "pass", B))
    assert len(recorder.calls) == 5


def test_without_proxyfix_the_proxy_address_is_counted():
    """The control case: X-Forwarded-For is ignored without ProxyFix."""
    client = throttled_app().test_client()
    for name, forwarded in (("u1", A), ("u2", B), ("u3", C)):
        assert_bad_credentials(
            attempt(client, name, "wrong", "10.0.0.1", headers={"X-Forwarded-For": forwarded})
        )
    assert_throttled(attempt(client, "joe", "pass", "10.0.0.1", headers={"X-Forwarded-For": D}))


def test_window_passes():
    recorder = Recorder()
    client = throttled_app(recorder=recorder, limit="2 per 2 second").test_client()
    for _ in range(2):
        assert_bad_credentials(attempt(client, "joe", "wrong"))
    assert_throttled(attempt(client, "joe", "pass"), window=2)
    time.sleep(2.1)
    assert_logged_in(attempt(client, "joe", "pass"))
    # Failures are counted anew: two more, then throttled again.
    for _ in range(2):
        assert_bad_credentials(attempt(client, "joe", "wrong"))
    assert_throttled(attempt(client, "joe", "wrong"), window=2)
    assert len(recorder.calls) == 5


@pytest.mark.parametrize("catch_all_404s", [False, True])
def test_429_is_json_in_production_with_flask_restful(catch_all_404s):
    from flask_restful import Api, Resource

    class Secret(Resource):
        method_decorators = [jwt_required()]

        def get(self):
            return {"ok": True}

    app = throttled_app()
    app.config.update(TESTING=False, DEBUG=False, PROPAGATE_EXCEPTIONS=None)
    app.debug = False
    Api(app, catch_all_404s=catch_all_404s).add_resource(Secret, "/secret")
    client = app.test_client()
    for _ in range(3):
        assert_bad_credentials(attempt(client, "joe", "wrong"))
    assert_throttled(attempt(client, "joe", "wrong"))
    assert_throttled(attempt(client, "joe", "pass", B))
    # The Resource works in this app: a token of a non-throttled user from elsewhere.
    response = attempt(client, "ann", "secret", B)
    assert_logged_in(response)
    token = response.get_json()["access_token"]
    assert client.get("/secret", headers={"Authorization": "JWT " + token}).get_json() == {"ok": True}


def test_memory_default_is_not_shared_between_apps():
    first_recorder, second_recorder = Recorder(), Recorder()
    first = throttled_app(recorder=first_recorder).test_client()
    second = throttled_app(recorder=second_recorder).test_client()
    for _ in range(3):
        assert_bad_credentials(attempt(first, "joe", "wrong"))
    assert_throttled(attempt(first, "joe", "wrong"))
    assert_bad_credentials(attempt(second, "joe", "wrong"))
    assert_logged_in(attempt(second, "joe", "pass"))
    assert len(second_recorder.calls) == 2


def test_parallel_failed_logins_cannot_exceed_the_limit():
    recorder = Recorder(delay=0.05)  # a password hash takes time
    app = throttled_app(recorder=recorder)

    def guess(i: int) -> int:
        return attempt(app.test_client(), "joe", "guess-%d" % i, "198.51.100.%d" % (i + 1)).status_code

    statuses = run_together(12, guess)
    assert all(status in (401, 429) for status in statuses), statuses
    assert len(recorder.calls) <= 3, "%d guesses were checked with limit %s" % (len(recorder.calls), LIMIT)


# --- Redis: shared counters, storage down --------------------------------------------------


def test_apps_on_one_redis_share_counters(redis_server, redis_client):
    """A URL in one app and a redis.Redis client in the other: one set of counters."""
    client_store = redis.Redis.from_url(redis_server.url)
    first = throttled_app({"JWT_TOKEN_STORE": redis_server.url})
    second = throttled_app({"JWT_TOKEN_STORE": client_store})
    try:
        for client in (first.test_client(), second.test_client(), first.test_client()):
            assert_bad_credentials(attempt(client, "joe", "wrong", A))
        assert_throttled(attempt(second.test_client(), "joe", "wrong", B))
        assert_throttled(attempt(first.test_client(), "joe", "wrong", C))
        keys = assert_every_key_has_ttl(redis_client)
        assert keys and all(b"tokenauth-login/" in key for key in keys), keys
        assert not any(b"joe" in key for key in keys), "usernames must be hashed: %r" % keys
    finally:
        close_throttle(first)
        close_throttle(second)
        client_store.close()


def test_rate_limit_storage_override_memory_is_not_shared(redis_server, redis_client):
    config = {"JWT_TOKEN_STORE": redis_server.url, "JWT_LOGIN_RATE_LIMIT_STORAGE": "memory://"}
    first, second = throttled_app(config), throttled_app(config)
    try:
        for _ in range(3):
            assert_bad_credentials(attempt(first.test_client(), "joe", "wrong"))
        assert_throttled(attempt(first.test_client(), "joe", "wrong"))
        assert_bad_credentials(attempt(second.test_client(), "joe", "wrong"))
        assert redis_client.keys("*tokenauth-login/*") == []
    finally:
        close_throttle(first)
        close_throttle(second)


def test_throttle_store_down_is_503_json(own_redis: RedisServer):
    recorder = Recorder()
    app = throttled_app({"JWT_TOKEN_STORE": own_redis.url}, recorder=recorder)
    try:
        client = app.test_client()
        assert_bad_credentials(attempt(client, "joe", "wrong"))  # counted in Redis while it is up
        own_redis.stop()
        for username, password in (("joe", "pass"), ("ann", "wrong")):
            response = attempt(client, username, password)
            assert response.status_code == 503, (response.status_code, response.get_json())
            assert response.mimetype == "application/json"
            body = response.get_json()
            assert set(body) == ERROR_KEYS
            assert body["status_code"] == 503 and body["error"] == "Service Unavailable"
            assert isinstance(body["description"], str) and body["description"]
        assert len(recorder.calls) == 1, "the handler ran although the throttle could not be asked"
    finally:
        close_throttle(app)


def test_throttle_store_down_fail_open_lets_logins_proceed(own_redis: RedisServer):
    recorder = Recorder()
    app = throttled_app(
        {"JWT_TOKEN_STORE": own_redis.url, "JWT_TOKEN_STORE_FAIL_OPEN": True}, recorder=recorder
    )
    try:
        client = app.test_client()
        assert_bad_credentials(attempt(client, "joe", "wrong"))
        own_redis.stop()
        for _ in range(4):  # past the limit: nothing counts, nothing is throttled
            assert_bad_credentials(attempt(client, "joe", "wrong"))
        assert_logged_in(attempt(client, "joe", "pass"))
        assert len(recorder.calls) == 6
    finally:
        close_throttle(app)


@pytest.mark.parametrize("setting", ["JWT_TOKEN_STORE", "JWT_LOGIN_RATE_LIMIT_STORAGE"])
def test_frozen_throttle_store_answers_503_within_the_store_timeout(own_redis: RedisServer, setting):
    app = throttled_app({setting: own_redis.url, "JWT_TOKEN_STORE_TIMEOUT": 0.5})
    answers: List[Tuple[float, Any]] = []
    try:
        assert_bad_credentials(attempt(app.test_client(), "joe", "wrong"))  # connected while up
        own_redis.freeze()  # the port accepts connections, nothing answers
        started = time.monotonic()

        def login() -> None:
            response = attempt(app.test_client(), "joe", "pass")
            answers.append((time.monotonic() - started, response))

        thread = threading.Thread(target=login, daemon=True)
        thread.start()
        thread.join(2.0)  # the configured 0.5 s, with a wide margin
        own_redis.thaw()  # unblock a login still waiting, whatever happens next
        thread.join(10)
        assert answers, "the login never answered"
        elapsed, response = answers[0]
        assert elapsed < 2.0, (
            "no answer within 2 s with a 0.5 s store timeout (it came after %.1f s, once Redis was thawed)"
            % elapsed
        )
        assert response.status_code == 503, (response.status_code, response.get_json())
        assert set(response.get_json()) == ERROR_KEYS
    finally:
        own_redis.thaw()
        close_throttle(app)


# --- two processes over one real Redis -------------------------------------------------------


@pytest.fixture(scope="module", name="processes")
def processes_fixture(redis_server: RedisServer) -> Iterator[Tuple[AppProcess, AppProcess]]:
    with serving(redis_server.url, 2, rate_limit=LIMIT) as (a, b):
        yield a, b


@pytest.fixture(name="ab")
def ab_fixture(processes, redis_client) -> Tuple[AppProcess, AppProcess]:
    """The two processes, with the shared Redis database emptied first."""
    return processes


def assert_http_bad_credentials(answer: HTTPAnswer) -> None:
    assert answer.status == 401 and answer.json == BAD_CREDENTIALS, answer


def assert_http_throttled(answer: HTTPAnswer) -> None:
    assert answer.status == 429, answer
    retry_after = answer.headers.get("Retry-After", "")
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60, answer.headers
    assert answer.json == throttled_body(int(retry_after))


def test_two_processes_share_the_username_limit(ab, redis_client):
    a, b = ab
    assert_http_bad_credentials(a.attempt("joe", "wrong"))
    assert_http_bad_credentials(a.attempt("joe", "wrong"))
    assert_http_bad_credentials(b.attempt("joe", "wrong"))
    assert_http_throttled(a.attempt("joe", "wrong"))
    assert_http_throttled(b.attempt("joe", "pass"))
    keys = assert_every_key_has_ttl(redis_client)
    assert keys and all(b"tokenauth-login/" in key for key in keys), keys


def test_two_processes_share_the_address_limit(ab):
    a, b = ab
    assert_http_bad_credentials(a.attempt("u1", "wrong"))
    assert_http_bad_credentials(b.attempt("u2", "wrong"))
    assert_http_bad_credentials(a.attempt("u3", "wrong"))
    assert_http_throttled(b.attempt("u4", "wrong"))
    assert_http_throttled(a.attempt("ann", "secret"))


def test_two_processes_below_the_limit_are_not_throttled(ab):
    """The control case: two failures in all, then the right password works on both."""
    a, b = ab
    assert_http_bad_credentials(a.attempt("joe", "wrong"))
    assert_http_bad_credentials(b.attempt("joe", "wrong"))
    for app in (a, b):
        answer = app.attempt("joe", "pass")
        assert answer.status == 200 and {"access_token", "refresh_token"} <= set(answer.json), answer


def test_a_username_loader_that_returns_no_str_is_a_503_not_a_500():
    app = throttled_app()
    app.testing = False

    @app.extensions["jwt"].login_username_loader
    def broken(username: str) -> Any:
        return None

    answer = attempt(app.test_client(), "joe", "wrong")
    assert answer.status_code == 503
    assert answer.get_json() == {
        "status_code": 503,
        "error": "Service Unavailable",
        "description": "The login throttle cannot count this login; try again shortly",
    }
