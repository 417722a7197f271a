"""The revocation cache (JWT_TOKEN_STORE_CACHE_SIZE): lookups answered from
memory, kept honest by Redis' invalidations (CLIENT TRACKING).

Two app instances (each with its own store, cache and invalidation
connection) share a real redis-server, directly or through a proxy (in a
child process) that delays every packet by 0.5 ms each way. Each strictness
rule is tested: an invalidation arriving between two requests, the
invalidation connection dropped, Redis restarted or flushed, the cache at its
bound.
"""

from __future__ import annotations

import os
import select
import socket
import time
from typing import Any, Iterator, Tuple

import pytest
import redis

from flask_tokenauth.store.redis_connection import CLIENT_NAME
from tests.conftest import auth_header, login
from tests.delay_proxy import ProxyProcess
from tests.redis_server import RedisServer
from tests.sessions_support import (  # noqa: F401 - fixtures are used by name
    REUSED,
    REVOKED,
    close_app_store,
    login_pair,
    own_redis_fixture,
    refresh_with,
    run_together,
    session_app,
    wait_next_second,
)

SETTLE = 0.3  # a heartbeat round: the invalidation listeners have been heard from


def instance(url: str, **config: Any):
    app = session_app({"JWT_TOKEN_STORE": url, "JWT_TOKEN_STORE_TIMEOUT": 1.0, **config})

    @app.route("/admin/revoke-identity/<int:uid>", methods=["POST"])
    def revoke_identity(uid: int):
        app.extensions["jwt"].revoke_identity(uid)
        return {"revoked": uid}

    return app


def tracker_of(app) -> Any:
    with app.app_context():
        return app.extensions["flask_tokenauth"].store().tracker


def mget_calls(server: RedisServer) -> int:
    admin = redis.Redis.from_url(server.url)
    try:
        return int(admin.info("commandstats").get("cmdstat_mget", {}).get("calls", 0))
    finally:
        admin.close()


def warm(app, client, token: str) -> None:
    """Check ``token`` until it is answered from the cache."""
    tracker = tracker_of(app)
    deadline = time.monotonic() + 5
    while True:
        assert client.get("/protected", headers=auth_header(token)).status_code == 200
        if tracker.healthy and len(tracker):
            time.sleep(SETTLE)
            return
        assert time.monotonic() < deadline, "the cache never became ready"
        time.sleep(0.05)


@pytest.fixture(params=[0.0, 0.0005], ids=["loopback", "0.5 ms each way"], name="pair")
def pair_fixture(request, own_redis: RedisServer) -> Iterator[Tuple[Any, Any, RedisServer]]:
    """Instances A and B on one redis-server, directly or through the delaying proxy."""
    proxy = ProxyProcess(own_redis.port, [request.param]) if request.param else None
    url = proxy.url(request.param) if proxy else own_redis.url
    apps = (instance(url), instance(url))
    try:
        yield apps[0], apps[1], own_redis
    finally:
        for app in apps:
            close_app_store(app)
        if proxy:
            proxy.close()


def test_a_token_seen_before_costs_no_round_trip(pair):
    a, _, server = pair
    client = a.test_client()
    token = login(client)
    warm(a, client, token)
    before = mget_calls(server)
    for _ in range(20):
        assert client.get("/protected", headers=auth_header(token)).status_code == 200
    assert mget_calls(server) == before


def reached(app, before: int, timeout: float = 5.0) -> None:
    """Wait until Redis's invalidation has reached instance ``app``: data is
    waiting on its invalidation connection, or it already applied one (its
    sequence moved from ``before``). Over a network, B's answer can reach the
    client before the invalidation reaches A; the guarantee is that A refuses
    from the moment it has arrived (every invalidation received is applied
    before a cached answer), and that is what these tests check."""
    tracker = tracker_of(app)
    sockets = [listener.connection._sock for listener in tracker._listeners]
    deadline = time.monotonic() + timeout
    while tracker.sequence == before:
        # Heartbeat PONGs arrive on the same connection: look for the invalidation itself.
        waiting = [sock.recv(65536, socket.MSG_PEEK) for sock in select.select(sockets, [], [], 0.005)[0]]
        if any(b"__redis__:invalidate" in data for data in waiting):
            return
        assert time.monotonic() < deadline, "the invalidation never reached the instance"


def test_a_logout_on_b_is_refused_by_a_once_the_invalidation_reaches_it(pair):
    a, b, _ = pair
    client_a, client_b = a.test_client(), b.test_client()
    access, refresh = login_pair(client_a)
    warm(a, client_a, access)
    before = tracker_of(a).sequence
    assert client_b.post("/auth/logout", headers=auth_header(access)).status_code == 200
    reached(a, before)
    answer = client_a.get("/protected", headers=auth_header(access))
    assert answer.status_code == 401 and answer.get_json() == REVOKED
    assert refresh_with(client_a, refresh).get_json() == REVOKED


def test_log_out_everywhere_on_b_is_seen_by_a_once_the_invalidation_reaches_it(pair):
    a, b, _ = pair
    client_a = a.test_client()
    token = login(client_a)
    warm(a, client_a, token)
    before = tracker_of(a).sequence
    assert b.test_client().post("/admin/revoke-identity/1").status_code == 200
    reached(a, before)
    assert client_a.get("/protected", headers=auth_header(token)).get_json() == REVOKED


def test_reuse_detected_on_b_revokes_the_family_cached_on_a(pair):
    a, b, _ = pair
    client_a, client_b = a.test_client(), b.test_client()
    _, refresh0 = login_pair(client_a)
    rotated = refresh_with(client_a, refresh0).get_json()
    warm(a, client_a, rotated["access_token"])
    before = tracker_of(a).sequence
    assert refresh_with(client_b, refresh0).get_json() == REUSED  # the spent token, replayed
    reached(a, before)
    answer = client_a.get("/protected", headers=auth_header(rotated["access_token"]))
    assert answer.get_json() == REVOKED


@pytest.mark.parametrize("delay", [0.0005], ids=["0.5 ms each way"])
def test_with_the_cache_off_a_logout_on_b_is_refused_by_a_on_its_very_next_request(own_redis, delay):
    proxy = ProxyProcess(own_redis.port, [delay])
    apps = tuple(instance(proxy.url(delay), JWT_TOKEN_STORE_CACHE_SIZE=0) for _ in range(2))
    try:
        a, b = apps
        client_a = a.test_client()
        for _ in range(5):
            access, _ = login_pair(client_a)
            assert client_a.get("/protected", headers=auth_header(access)).status_code == 200
            assert b.test_client().post("/auth/logout", headers=auth_header(access)).status_code == 200
            assert client_a.get("/protected", headers=auth_header(access)).get_json() == REVOKED  # no wait
    finally:
        for app in apps:
            close_app_store(app)
        proxy.close()


def test_the_refresh_race_has_one_winner_with_the_cache_on(pair):
    a, b, _ = pair
    _, refresh0 = login_pair(a.test_client())
    answers = run_together(20, lambda i: refresh_with((a, b)[i % 2].test_client(), refresh0).status_code)
    assert answers.count(200) == 1 and answers.count(401) == 19, answers


def test_a_dropped_invalidation_connection_empties_the_cache(own_redis):
    a, b = instance(own_redis.url), instance(own_redis.url)
    try:
        client = a.test_client()
        token = login(client)
        warm(a, client, token)
        admin = redis.Redis.from_url(own_redis.url)
        try:
            killed = 0
            for entry in admin.client_list():
                if entry.get("name") == CLIENT_NAME + "-tracking":
                    killed += admin.client_kill_filter(_id=entry["id"])
            assert killed == 2  # one listener per instance
        finally:
            admin.close()
        time.sleep(0.1)  # the kill reached the socket; nobody read it yet
        assert b.test_client().post("/auth/logout", headers=auth_header(token)).status_code == 200
        # A notices the broken listener before answering: the cache is emptied, Redis answers
        assert client.get("/protected", headers=auth_header(token)).get_json() == REVOKED
        assert len(tracker_of(a)) == 0 or not tracker_of(a).healthy
    finally:
        close_app_store(a)
        close_app_store(b)


@pytest.mark.parametrize("how", ["restart", "flushall"])
def test_redis_losing_its_data_empties_the_cache(own_redis, how):
    app = instance(own_redis.url)
    try:
        client = app.test_client()
        token = login(client)
        warm(app, client, token)
        if how == "restart":
            own_redis.restart()
        else:
            admin = redis.Redis.from_url(own_redis.url)
            admin.flushall()
            admin.close()
        time.sleep(0.05)
        # what the cache held is gone with Redis' memory: the token predates the loss
        assert client.get("/protected", headers=auth_header(token)).get_json() == REVOKED
        wait_next_second()
        fresh = login(client)
        assert client.get("/protected", headers=auth_header(fresh)).status_code == 200
    finally:
        close_app_store(app)


def test_the_cache_stays_within_its_bound(own_redis):
    app = instance(own_redis.url, JWT_TOKEN_STORE_CACHE_SIZE=8)
    try:
        client = app.test_client()
        tokens = [login(client) for _ in range(12)]
        warm(app, client, tokens[0])
        for _ in range(3):
            for token in tokens:
                assert client.get("/protected", headers=auth_header(token)).status_code == 200
                assert len(tracker_of(app)) <= 8
                assert len(tracker_of(app)._memo) <= 8  # the answers worked out from them too
        other = instance(own_redis.url)
        assert other.test_client().post("/auth/logout", headers=auth_header(tokens[5])).status_code == 200
        assert client.get("/protected", headers=auth_header(tokens[5])).get_json() == REVOKED
        close_app_store(other)
    finally:
        close_app_store(app)


def test_size_zero_turns_the_cache_off(own_redis):
    app = instance(own_redis.url, JWT_TOKEN_STORE_CACHE_SIZE=0)
    try:
        assert tracker_of(app) is None
        client = app.test_client()
        token = login(client)
        before = mget_calls(own_redis)
        for _ in range(5):
            assert client.get("/protected", headers=auth_header(token)).status_code == 200
        assert mget_calls(own_redis) == before + 5
    finally:
        close_app_store(app)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_worker_listens_for_itself(own_redis):
    """As under ``gunicorn --preload``: the parent's cache was warm when it
    forked. The child must neither answer from the parent's cache nor read the
    parent's invalidation socket (which would steal the parent's invalidations),
    and it gets a working cache of its own."""
    a, b = instance(own_redis.url), instance(own_redis.url)
    try:
        client = a.test_client()
        access = login(client)
        warm(a, client, access)
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what it saw, never return into pytest
            outcome = "crashed"
            try:
                out = b.test_client().post("/auth/logout", headers=auth_header(access)).status_code
                seen = client.get("/protected", headers=auth_header(access)).status_code
                fresh = login(client)
                warm(a, client, fresh)
                outcome = "%d %d %s" % (out, seen, tracker_of(a).healthy)
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                outcome = "error %r" % (exc,)
            finally:
                os.write(writer, outcome.encode())
                os._exit(0)
        os.close(writer)
        os.waitpid(pid, 0)
        with os.fdopen(reader) as pipe:
            assert pipe.read() == "200 401 True"
        # The parent heard the child's logout on its own connection, at once.
        assert client.get("/protected", headers=auth_header(access)).get_json() == REVOKED
    finally:
        close_app_store(a)
        close_app_store(b)
