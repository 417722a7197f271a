"""A single Redis under real faults, and settings checked when the app starts.

- Lost state: Redis restarted without persistence, or flushed. What it knew of
  revocations is gone, so every token issued before the loss is refused (the
  logged-out ones with them), by both app processes, and a fresh login works
  within seconds.
- Refusals of the server (out of memory, a read-only replica) are 503 JSON.
- ``init_app`` refuses what cannot work (an unknown scheme, a Redis too old, a
  bad limit) and warns about what is risky (eviction, no persistence); an
  unreachable store is not fatal.
"""

from __future__ import annotations

import logging
import time
from typing import Iterator, Tuple

import pytest
import redis

from flask_tokenauth import ConfigurationError
from tests.conftest import auth_header, login, make_app
from tests.redis_server import RedisServer, free_port, require_old_redis_server
from tests.sessions_support import (  # noqa: F401 - fixtures are used by name
    REVOKED,
    AppProcess,
    close_app_store,
    own_redis_fixture,
    redis_client_fixture,
    redis_server_fixture,
    serving,
    session_app,
    wait_next_second,
    while_frozen,
)

ERROR_KEYS = {"status_code", "error", "description"}


def assert_refused(answer) -> None:
    assert answer.status == 401 and answer.json == REVOKED, answer


@pytest.fixture(name="pair")
def pair_fixture(own_redis: RedisServer) -> Iterator[Tuple[RedisServer, AppProcess, AppProcess]]:
    """A redis-server of the test's own, and two app processes on it."""
    with serving(own_redis.url, count=2, store_timeout=0.5) as (a, b):
        yield own_redis, a, b


def login_again_within_seconds(app: AppProcess, other: AppProcess, since: float) -> None:
    """A fresh login after the loss works on ``app`` and is accepted by ``other``."""
    wait_next_second()  # iat has whole seconds: the cut-off's own second is refused too
    access, refresh = app.login()
    assert other.get("/protected", access).status == 200
    assert other.refresh(refresh).status == 200
    assert time.monotonic() - since < 5.0


def test_a_restart_without_persistence_refuses_logged_out_and_older_tokens(pair):
    server, a, b = pair
    out_access, out_refresh = a.login()
    assert b.get("/protected", out_access).status == 200
    assert a.post("/auth/logout", out_access).status == 200
    kept_access, kept_refresh = b.login("ann", "secret")

    server.restart()  # no RDB, no AOF: every entry is gone
    restarted = time.monotonic()
    for app in (b, a):
        assert_refused(app.get("/protected", out_access))
        assert_refused(app.get("/protected", kept_access))  # issued before the loss: refused once
    assert_refused(a.refresh(out_refresh))
    assert_refused(b.refresh(kept_refresh))
    login_again_within_seconds(b, a, restarted)


def test_flushall_refuses_logged_out_and_older_tokens(pair):
    server, a, b = pair
    out_access, out_refresh = a.login()
    assert a.post("/auth/logout", out_access).status == 200
    client = redis.Redis.from_url(server.url)
    try:
        client.flushall()
    finally:
        client.close()
    flushed = time.monotonic()
    assert_refused(b.get("/protected", out_access))
    assert_refused(b.refresh(out_refresh))
    assert_refused(a.refresh(out_refresh))
    login_again_within_seconds(a, b, flushed)


def test_an_evicted_marker_refuses_that_groups_older_tokens(redis_server, redis_client):
    """Eviction (allkeys-*) can take a marker: its group starts a new epoch."""
    app = session_app({"JWT_TOKEN_STORE": redis_server.url})
    try:
        client = app.test_client()
        token = login(client)
        assert client.get("/protected", headers=auth_header(token)).status_code == 200
        for key in redis_client.keys("tokenauth:{*}:gen"):
            redis_client.delete(key)
        assert client.get("/protected", headers=auth_header(token)).get_json() == REVOKED
    finally:
        close_app_store(app)


# --- what Redis refuses is a 503 --------------------------------------------------------


def test_out_of_memory_is_a_503_for_logout_and_reads_still_work(own_redis: RedisServer):
    app = session_app({"JWT_TOKEN_STORE": own_redis.url, "JWT_TOKEN_STORE_TIMEOUT": 0.5})
    admin = redis.Redis.from_url(own_redis.url)
    try:
        client = app.test_client()
        token = login(client)
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)  # every write is refused with OOM
        answer = client.post("/auth/logout", headers=auth_header(token))
        assert answer.status_code == 503, answer.get_json()
        assert set(answer.get_json()) == ERROR_KEYS
        assert client.get("/protected", headers=auth_header(token)).status_code == 200
        admin.config_set("maxmemory", 0)
        assert client.post("/auth/logout", headers=auth_header(token)).status_code == 200
    finally:
        admin.close()
        close_app_store(app)


def test_a_read_only_replica_is_a_503_within_the_timeout(own_redis: RedisServer):
    app = session_app({"JWT_TOKEN_STORE": own_redis.url, "JWT_TOKEN_STORE_TIMEOUT": 0.5})
    other = RedisServer().start()
    admin = redis.Redis.from_url(own_redis.url)
    try:
        client = app.test_client()
        token = login(client)
        admin.execute_command("REPLICAOF", "127.0.0.1", other.port)  # a failover demoted it
        started = time.monotonic()
        answer = client.post("/auth/logout", headers=auth_header(token))
        assert answer.status_code == 503, answer.get_json()
        assert time.monotonic() - started < 0.5 + 0.5
    finally:
        admin.execute_command("REPLICAOF", "NO", "ONE")
        admin.close()
        other.kill()
        close_app_store(app)


def test_a_frozen_redis_behind_a_client_object_is_a_503_within_the_store_timeout(own_redis: RedisServer):
    patient = redis.Redis(host="127.0.0.1", port=own_redis.port, socket_timeout=30)
    app = session_app({"JWT_TOKEN_STORE": patient, "JWT_TOKEN_STORE_TIMEOUT": 0.5})
    try:
        client = app.test_client()
        token = login(client)
        answer, elapsed = while_frozen(
            own_redis.freeze, own_redis.thaw, lambda: client.get("/protected", headers=auth_header(token))
        )
        assert answer.status_code == 503, answer.get_json()
        assert elapsed < 0.5 + 0.5, elapsed  # the store's timeout, not the client's 30 s
        assert client.get("/protected", headers=auth_header(token)).status_code == 200
    finally:
        patient.close()
        close_app_store(app)


# --- settings checked at init_app ----------------------------------------------------------


@pytest.mark.parametrize(
    "setting",
    [
        {"JWT_TOKEN_STORE": "redis+bogus://127.0.0.1:6379"},
        {"JWT_TOKEN_STORE": "redis+sentinel://127.0.0.1:26379/mymaster"},
        {"JWT_TOKEN_STORE": "mongodb://127.0.0.1"},
        {"JWT_TOKEN_STORE": 42},
        {"JWT_TOKEN_STORE": "redis://127.0.0.1:6379/0", "JWT_TOKEN_STORE_PREFIX": "{app}:"},
        {"JWT_LOGIN_RATE_LIMIT": "five a minute"},
        {"JWT_LOGIN_RATE_LIMIT": "5 per minute", "JWT_LOGIN_RATE_LIMIT_STORAGE": "nosuch://x"},
    ],
    ids=[
        "unknown scheme", "sentinel", "mongodb", "not a url",
        "braces in prefix", "bad limit", "bad limit storage",
    ],
)
def test_settings_that_cannot_work_fail_at_init_app(setting):
    with pytest.raises(ConfigurationError):
        make_app(setting)


def test_a_redis_older_than_7_fails_at_init_app():
    old = RedisServer(binary=require_old_redis_server()).start()
    try:
        with pytest.raises(ConfigurationError) as caught:
            make_app({"JWT_TOKEN_STORE": old.url})
        assert "6.2" in str(caught.value) and "7.0" in str(caught.value)
    finally:
        old.kill()


def store_warnings(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == "flask_tokenauth")


def test_an_evicting_maxmemory_policy_is_a_warning(caplog):
    server = RedisServer(options=["--maxmemory-policy", "allkeys-lru", "--appendonly", "yes"]).start()
    try:
        caplog.set_level(logging.WARNING, "flask_tokenauth")
        app = make_app({"JWT_TOKEN_STORE": server.url})
        close_app_store(app)
        said = store_warnings(caplog)
        assert "maxmemory-policy allkeys-lru, which can evict revocation entries" in said
        assert "set maxmemory-policy noeviction" in said
        assert "without appendonly" not in said  # persistence is on
    finally:
        server.kill()


def test_persistence_off_is_a_warning_said_once(caplog):
    server = RedisServer().start()  # --appendonly no
    try:
        caplog.set_level(logging.WARNING, "flask_tokenauth")
        for _ in range(3):
            close_app_store(make_app({"JWT_TOKEN_STORE": server.url}))
        said = [r.getMessage() for r in caplog.records if "without appendonly" in r.getMessage()]
        assert len(said) == 1, said
        assert "revocations survive a restart only with appendonly yes" in said[0]
        assert "can evict" not in store_warnings(caplog)  # noeviction is the default
    finally:
        server.kill()


def test_an_unreachable_store_at_start_is_a_warning_then_503_then_service(caplog):
    port = free_port()
    caplog.set_level(logging.WARNING, "flask_tokenauth")
    app = make_app({"JWT_TOKEN_STORE": "redis://127.0.0.1:%d/0" % port, "JWT_TOKEN_STORE_TIMEOUT": 0.3})
    server = None
    try:
        assert "unreachable at start" in store_warnings(caplog)
        client = app.test_client()
        early = login(client)  # logins need no store
        answer = client.get("/protected", headers=auth_header(early))
        assert answer.status_code == 503 and set(answer.get_json()) == ERROR_KEYS
        server = RedisServer(port=port).start()
        # the store first answers now: a token from before cannot be vouched for
        assert client.get("/protected", headers=auth_header(early)).get_json() == REVOKED
        wait_next_second()
        token = login(client)
        assert client.get("/protected", headers=auth_header(token)).status_code == 200
    finally:
        close_app_store(app)
        if server is not None:
            server.kill()


def test_a_store_setting_changed_after_init_app_that_cannot_work_is_a_503():
    app = make_app()
    client = app.test_client()
    token = login(client)
    app.config["JWT_TOKEN_STORE"] = "redis+bogus://127.0.0.1:1"
    answer = client.get("/protected", headers=auth_header(token))
    assert answer.status_code == 503 and set(answer.get_json()) == ERROR_KEYS


# --- replicas: a revocation answered 200 is on a replica too -----------------------------


def test_a_logout_is_answered_only_once_a_replica_has_it(own_redis: RedisServer):
    replica = RedisServer().start()
    follower = redis.Redis.from_url(replica.url)
    app = session_app({"JWT_TOKEN_STORE": own_redis.url, "JWT_TOKEN_STORE_TIMEOUT": 0.4})
    try:
        follower.execute_command("REPLICAOF", "127.0.0.1", own_redis.port)
        deadline = time.monotonic() + 10
        while follower.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica never synced"
            time.sleep(0.05)
        # "up" on the replica comes before the master counts it (its first
        # acknowledgement): until then ROLE lists no replica and nothing waits.
        leader = redis.Redis.from_url(own_redis.url)
        try:
            leader.set("ack-probe", b"1")
            assert leader.execute_command("WAIT", 1, 5000) == 1, "the replica never acknowledged"
            leader.delete("ack-probe")
        finally:
            leader.close()
        client = app.test_client()
        first, second, third = login(client), login(client, "ann", "secret"), login(client)

        assert client.post("/auth/logout", headers=auth_header(first)).status_code == 200
        assert len(follower.keys("tokenauth:{*}:jti:*")) == 1  # there when the answer came

        answer, elapsed = while_frozen(  # the replica stops acknowledging
            replica.freeze, replica.thaw, lambda: client.post("/auth/logout", headers=auth_header(second))
        )
        assert answer.status_code == 503, answer.get_json()  # not known to be durable: no 200
        assert set(answer.get_json()) == ERROR_KEYS and elapsed < 0.4 + 0.5
        # the master has it all the same: the token is refused
        assert client.get("/protected", headers=auth_header(second)).get_json() == REVOKED
        assert client.post("/auth/logout", headers=auth_header(third)).status_code == 200
        assert len(follower.keys("tokenauth:{*}:jti:*")) == 3
    finally:
        follower.close()
        replica.kill()
        close_app_store(app)
