"""Sessions across processes: two app processes sharing one SQLite file, one
real redis-server, then the real Redis Cluster, spoken to over real HTTP (urllib); concurrency;
Redis faults.
"""

from __future__ import annotations

import logging
import time
from typing import Iterator, List, Tuple

import pytest

from tests.cluster_support import cluster_fixture  # noqa: F401 - a fixture
from tests.dpop_support import Client
from tests.redis_server import RedisServer
from tests.sessions_support import (  # noqa: F401 - fixtures are used by name
    REUSED,
    REVOKED,
    AppProcess,
    close_app_store,
    get_protected,
    http,
    login_pair,
    own_redis_fixture,
    redis_client_fixture,
    redis_server_fixture,
    refresh_with,
    run_together,
    serving,
    session_app,
    two_os_processes_refresh,
    wait_next_second,
)
from tests.sqlite_support import empty_sqlite

STORE_TIMEOUT = 0.5
LIMIT = "3 per minute"


@pytest.fixture(scope="module", params=["sqlite", "redis", "cluster"], name="backend")
def backend_fixture(request) -> str:
    """One SQLite file, one redis-server, or the Redis Cluster (3 masters, 3 replicas)."""
    return request.param


@pytest.fixture(scope="module", name="backend_url")
def backend_url_fixture(backend: str, request, tmp_path_factory) -> str:
    if backend == "sqlite":
        return "sqlite:///" + str(tmp_path_factory.mktemp("sqlite") / "store.sqlite3")
    return request.getfixturevalue("redis_server" if backend == "redis" else "redis_cluster").url


@pytest.fixture(scope="module", name="apps")
def apps_fixture(backend_url: str) -> Iterator[Tuple[AppProcess, AppProcess]]:
    """Two app processes (A and B, on different ports) on the backend, logins
    throttled at 3 failures a minute."""
    options = {"store_timeout": STORE_TIMEOUT, "rate_limit": LIMIT, "dpop": "allowed"}
    with serving(backend_url, count=2, **options) as (a, b):
        yield a, b


@pytest.fixture(name="ab")
def ab_fixture(apps, backend: str, backend_url: str, request) -> Iterator[Tuple[AppProcess, AppProcess]]:
    """A and B, with the backend holding nothing but the store's markers (its
    epoch). The tails of their logs are printed after the test (pytest shows
    them on failure)."""
    if backend == "sqlite":
        empty_sqlite(backend_url[len("sqlite:///"):])
    else:
        request.getfixturevalue("redis_client" if backend == "redis" else "cluster")
    yield apps
    for name, app in zip("AB", apps):
        print("--- log of app %s ---\n%s" % (name, app.log()[-1500:]))


def assert_refused(answer, body) -> None:
    assert answer.status == 401, answer
    assert answer.json == body


def assert_one_winner(statuses_and_bodies: List) -> int:
    statuses = [answer.status for answer in statuses_and_bodies]
    assert statuses.count(200) == 1, statuses
    assert statuses.count(401) == len(statuses) - 1, statuses
    for answer in statuses_and_bodies:
        if answer.status == 401:
            assert answer.json in (REUSED, REVOKED), answer
    return statuses.index(200)


# --- state shared between processes -------------------------------------------------


def test_logout_on_a_is_refused_by_b_on_the_very_next_request(ab):
    a, b = ab
    access, refresh = a.login()
    assert b.get("/protected", access).status == 200  # B has verified (and cached) it
    answer = a.post("/auth/logout", access)
    assert answer.status == 200 and answer.json == {"message": "Logged out"}
    assert_refused(b.get("/protected", access), REVOKED)
    assert_refused(b.refresh(refresh), REVOKED)
    other_access, _ = b.login()
    assert a.get("/protected", other_access).status == 200


def test_refresh_rotated_on_a_and_replayed_on_b_is_reuse(ab):
    a, b = ab
    access0, refresh0 = a.login()
    rotated = a.refresh(refresh0)
    assert rotated.status == 200, rotated
    access1, refresh1 = rotated.json["access_token"], rotated.json["refresh_token"]
    assert b.get("/protected", access1).status == 200

    assert_refused(b.refresh(refresh0), REUSED)

    for app in (a, b):
        assert_refused(app.refresh(refresh1), REVOKED)
        assert_refused(app.get("/protected", access1), REVOKED)
        assert_refused(app.get("/protected", access0), REVOKED)


def test_revoke_identity_on_a_cuts_off_tokens_presented_to_b(ab):
    a, b = ab
    joe_access, joe_refresh = a.login()
    ann_access, ann_refresh = a.login("ann", "secret")
    assert b.get("/protected", joe_access).status == 200
    answer = a.post("/admin/revoke-identity/1")
    assert answer.status == 200, answer
    assert_refused(b.get("/protected", joe_access), REVOKED)
    assert_refused(b.refresh(joe_refresh), REVOKED)
    assert b.get("/protected", ann_access).json == {"id": 2, "username": "ann"}
    assert b.refresh(ann_refresh).status == 200


def test_login_throttle_is_shared_by_both_processes(ab):
    a, b = ab
    for app in (a, b, a):
        assert app.attempt("joe", "wrong").status == 401
    for app in (b, a):
        answer = app.attempt("joe", "pass")  # the right password, but the user is over the limit
        assert answer.status == 429, answer
        assert set(answer.json) == {"status_code", "error", "description"}
        assert answer.headers["Retry-After"].isdigit()


def test_a_dpop_proof_replayed_on_the_other_process_is_refused(ab):
    """Both processes answer as one host (behind a load balancer, say): a proof
    accepted by A is a replay for B, because its jti is in the shared store."""
    a, b = ab
    key = Client()
    host = {"Host": "api.example"}
    login_proof = key.proof("POST", "http://api.example/auth")
    answer = http(
        "POST", a.url + "/auth", json_body={"username": "joe", "password": "pass"},
        headers={**host, "DPoP": login_proof},
    )
    assert answer.status == 200 and answer.json["token_type"] == "DPoP", answer
    token = answer.json["access_token"]
    proof = key.proof("GET", "http://api.example/protected", token)
    headers = {**host, "DPoP": proof}
    assert http("GET", a.url + "/protected", token, headers=headers, scheme="DPoP").status == 200
    replayed = http("GET", b.url + "/protected", token, headers=headers, scheme="DPoP")
    assert replayed.status == 401 and replayed.json["description"] == "The DPoP proof was used before"
    wrong = {**host, "DPoP": login_proof}  # the login's proof, for another method and URL
    assert http("GET", b.url + "/protected", token, headers=wrong, scheme="DPoP").status == 401
    fresh = {**host, "DPoP": key.proof("GET", "http://api.example/protected", token)}
    assert http("GET", b.url + "/protected", token, headers=fresh, scheme="DPoP").status == 200


# --- concurrent refreshes ---------------------------------------------------------------


def test_twenty_threads_refresh_the_same_token_on_one_process(ab):
    a, _ = ab
    _, refresh0 = a.login()
    answers = run_together(20, lambda i: a.refresh(refresh0))
    winner = answers[assert_one_winner(answers)]
    # the losers were reuse: the whole family, the winner's new tokens included, is revoked
    assert_refused(a.get("/protected", winner.json["access_token"]), REVOKED)
    assert_refused(a.refresh(winner.json["refresh_token"]), REVOKED)


def test_twenty_threads_refresh_the_same_token_across_both_processes(ab):
    a, b = ab
    _, refresh0 = a.login()
    answers = run_together(20, lambda i: (a, b)[i % 2].refresh(refresh0))
    winner = answers[assert_one_winner(answers)]
    assert_refused(b.get("/protected", winner.json["access_token"]), REVOKED)


def test_two_client_processes_refresh_the_same_token_at_once(ab):
    a, _ = ab
    _, refresh0 = a.login()
    codes = two_os_processes_refresh(a.url + "/auth/refresh", refresh0)
    assert sorted(codes) == [200, 401], codes


def test_twenty_threads_refresh_the_same_token_on_the_memory_store():
    app = session_app({"JWT_TOKEN_STORE": "memory://"})
    _, refresh0 = login_pair(app.test_client())

    def attempt(i: int):
        response = refresh_with(app.test_client(), refresh0, "header" if i % 2 else "json")
        return response.status_code, response.get_json()

    results = run_together(20, attempt)
    statuses = [status for status, _ in results]
    assert statuses.count(200) == 1, statuses
    assert statuses.count(401) == 19, statuses
    assert all(body in (REUSED, REVOKED) for status, body in results if status == 401), results


# --- Redis faults -------------------------------------------------------------------------


def timed_get(app: AppProcess, token: str):
    started = time.monotonic()
    answer = app.get("/protected", token)
    return answer, time.monotonic() - started


def assert_unavailable(answer, elapsed: float) -> None:
    assert answer.status == 503, answer
    assert answer.json["status_code"] == 503
    assert answer.json["error"] == "Service Unavailable"
    assert isinstance(answer.json["description"], str) and answer.json["description"]
    assert set(answer.json) == {"status_code", "error", "description"}
    assert answer.headers.get("Retry-After") == "1"
    assert elapsed < 5.0, elapsed


@pytest.fixture(name="faulty")
def faulty_fixture(own_redis: RedisServer) -> Iterator[Tuple[RedisServer, AppProcess]]:
    """A redis-server of the test's own and one app process on it."""
    with serving(own_redis.url, store_timeout=STORE_TIMEOUT) as (app,):
        yield own_redis, app


def test_redis_stopped_gives_503_then_restarted_refuses_older_tokens_and_serves_new_logins(faulty):
    server, app = faulty
    access, refresh = app.login()
    assert app.get("/protected", access).status == 200

    server.stop()
    answer, elapsed = timed_get(app, access)
    assert_unavailable(answer, elapsed)
    assert app.refresh(refresh).status == 503
    assert app.post("/auth/logout", access).status == 503
    assert app.get("/open").status == 200  # routes without tokens are unaffected

    server.restart()  # same port, empty database: what it knew of revocations is gone
    assert_refused(app.get("/protected", access), REVOKED)
    assert_refused(app.refresh(refresh), REVOKED)
    wait_next_second()  # iat has whole seconds: a login in the cut-off's second is refused too
    fresh_access, fresh_refresh = app.login()  # service resumed without an app restart
    assert app.get("/protected", fresh_access).status == 200
    assert app.refresh(fresh_refresh).status == 200


def test_redis_frozen_gives_503_within_the_timeout_then_recovers(faulty):
    server, app = faulty
    seen, _ = app.login()
    assert app.get("/protected", seen).status == 200
    unseen, _ = app.login()
    server.freeze()  # connections are accepted, nothing answers
    try:
        answer, elapsed = timed_get(app, unseen)  # a token no cache holds: Redis must answer
        assert_unavailable(answer, elapsed)
        time.sleep(1.1)  # no heartbeat answered: the cache no longer answers either
        answer, elapsed = timed_get(app, seen)
        assert_unavailable(answer, elapsed)
    finally:
        server.thaw()
    answer = app.get("/protected", seen)
    assert answer.status == 200, answer


def test_fail_open_lets_tokens_through_while_redis_is_down(own_redis, caplog):
    app = session_app(
        {
            "JWT_TOKEN_STORE": own_redis.url,
            "JWT_TOKEN_STORE_TIMEOUT": STORE_TIMEOUT,
            "JWT_TOKEN_STORE_FAIL_OPEN": True,
        }
    )
    try:
        client = app.test_client()
        access, refresh = login_pair(client)
        assert get_protected(client, access).status_code == 200
        own_redis.stop()
        with caplog.at_level(logging.WARNING, logger="flask_tokenauth"):
            started = time.monotonic()
            response = get_protected(client, access)
            assert time.monotonic() - started < 5.0
        assert response.status_code == 200, response.get_json()
        assert response.get_json() == {"id": 1, "username": "joe"}
        assert any("fail open" in record.getMessage() for record in caplog.records), caplog.records
        # rotation cannot be decided without the store: refused, even when failing open
        assert refresh_with(client, refresh).status_code == 503
        app.config["JWT_TOKEN_STORE_FAIL_OPEN"] = False  # read per request
        closed = get_protected(client, access)
        assert closed.status_code == 503
        assert closed.get_json()["error"] == "Service Unavailable"
    finally:
        close_app_store(app)
