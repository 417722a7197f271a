"""One contract for every TokenStore backend: MemoryStore, SQLiteStore (a real
file) and RedisStore (real redis-server), then what only the Redis store does: key layout, lost-state
markers, settings checked at start, its URL forms and client objects."""

from __future__ import annotations

import json
import logging
import time
from typing import Iterator

import pytest
import redis
from redis.crc import key_slot

from flask_tokenauth import ConfigurationError
from flask_tokenauth.store import StateLost, Status, StoreError, TokenRef, TokenStore, open_store
from flask_tokenauth.store.memory import MemoryStore
from flask_tokenauth.store.redis import GROUPS, RedisStore
from flask_tokenauth.store.sqlite import SQLiteStore
from tests.conftest import auth_header, login, make_app
from tests.redis_server import free_port
from tests.sessions_support import (  # noqa: F401 - fixtures are used by name
    assert_every_key_has_ttl,
    close_app_store,
    is_marker,
    redis_client_fixture,
    redis_server_fixture,
    run_together,
)

PREFIX = "contract:"
NOTHING = (False, False, None)


def ref(jti=None, family=None, identity=None) -> TokenRef:
    return TokenRef(jti, family, identity)


def verdict(status: Status):
    """What a lookup says of revocation, without the store's epoch."""
    return status[:3]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request, tmp_path) -> Iterator[TokenStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "sqlite":
        made = SQLiteStore(str(tmp_path / "contract.sqlite3"), timeout=1.0, cache_size=1000)
        made.prepare()
        try:
            yield made
        finally:
            made.close()
        return
    client = request.getfixturevalue("redis_client")  # holds the markers only
    server = request.getfixturevalue("redis_server")
    made = RedisStore.open(server.url, prefix=PREFIX, timeout=1.0)
    made.prepare()
    try:
        yield made
    finally:
        made.close()
        assert_every_key_has_ttl(client)  # whatever a test wrote, nothing lives forever


def redis_keys(client: redis.Redis):
    return sorted(key.decode() for key in client.keys("*") if not is_marker(key))


# --- lookup and the three kinds of revocation -----------------------------------


def test_lookup_of_nothing_revoked(store):
    assert verdict(store.lookup(ref("j1", "f1", "1"))) == NOTHING
    assert verdict(store.lookup(ref())) == NOTHING


def test_revoke_token_is_keyed_on_jti_only(store):
    store.revoke_token(ref("j1", None, "1"), 60)
    assert verdict(store.lookup(ref("j1", None, "1"))) == (True, False, None)
    assert verdict(store.lookup(ref("j1", "f1", "1"))) == (True, False, None)
    assert verdict(store.lookup(ref("j2", "f1", "1"))) == NOTHING
    assert verdict(store.lookup(ref(None, "j1", "1"))) == NOTHING  # other kinds do not collide


def test_revoke_family(store):
    store.revoke_family(ref("j0", "f1", "1"), 60)
    assert verdict(store.lookup(ref(None, "f1", "1"))) == (False, True, None)
    assert verdict(store.lookup(ref("j9", "f1", "1"))) == (False, True, None)
    assert verdict(store.lookup(ref("f1", "f2", "1"))) == NOTHING


def test_tokens_without_identity_are_found_by_family_or_id(store):
    store.revoke_family(ref("j0", "f1", None), 60)
    store.revoke_token(ref("j5", None, None), 60)
    assert verdict(store.lookup(ref("j9", "f1", None))) == (False, True, None)
    assert verdict(store.lookup(ref("j5", None, None))) == (True, False, None)


def test_revoke_family_twice_keeps_it_revoked(store):
    store.revoke_family(ref(None, "f1", "1"), 60)
    store.revoke_family(ref(None, "f1", "1"), 0.2)  # a shorter second TTL must not shorten the first
    time.sleep(0.35)
    assert verdict(store.lookup(ref(None, "f1", "1"))) == (False, True, None)


def test_revoke_identity_records_the_cutoff(store):
    store.revoke_identity(ref(identity="1"), 1700000000.25, 60)
    assert verdict(store.lookup(ref(None, None, "1"))) == (False, False, 1700000000.25)
    assert verdict(store.lookup(ref("j", "f", "2"))) == NOTHING
    assert verdict(store.lookup(ref("j", "f", '"1"'))) == NOTHING  # 1 and "1" stay distinct
    assert verdict(store.lookup(ref("j", "f", None))) == NOTHING


def test_later_identity_cutoff_wins(store):
    store.revoke_identity(ref(identity="1"), 1000.5, 60)
    store.revoke_identity(ref(identity="1"), 2000.75, 60)
    assert store.lookup(ref(identity="1")).cutoff == 2000.75
    store.revoke_identity(ref(identity="1"), 1500.0, 60)  # an earlier cut-off never replaces a later one
    assert store.lookup(ref(identity="1")).cutoff == 2000.75


def test_identity_cutoff_keeps_the_longer_ttl(store):
    store.revoke_identity(ref(identity="1"), 2000.0, 60)
    store.revoke_identity(ref(identity="1"), 3000.0, 0.2)  # later cut-off, shorter TTL
    store.revoke_identity(ref(identity="1"), 1000.0, 0.2)
    time.sleep(0.35)
    assert store.lookup(ref(identity="1")).cutoff == 3000.0


def test_identity_names_with_odd_characters(store):
    name = json.dumps({"tenant": "a b:c{x}", "id": 7}, sort_keys=True, separators=(",", ":"))
    store.revoke_identity(ref(identity=name), 42.0, 60)
    assert verdict(store.lookup(ref(None, None, name))) == (False, False, 42.0)
    assert verdict(store.lookup(ref(None, None, name + " "))) == NOTHING


def test_one_lookup_reports_all_three(store):
    store.revoke_token(ref("j1", "f1", "u"), 60)
    store.revoke_family(ref("j1", "f1", "u"), 60)
    store.revoke_identity(ref(identity="u"), 12.5, 60)
    assert verdict(store.lookup(ref("j1", "f1", "u"))) == (True, True, 12.5)


# --- rotate (the atomic "spend": one winner per presented refresh token) ----------


def fam(name: str, identity: str = "1") -> TokenRef:
    return ref(None, name, identity)


def test_rotate_first_call_wins_then_returns_the_record(store):
    assert store.rotate(fam("f1"), "r0", "r1", '{"at": 1}', 60) is None
    assert store.rotate(fam("f1"), "r0", "rX", '{"at": 2}', 60) == '{"at": 1}'
    assert store.rotate(fam("f1"), "r0", "rY", '{"at": 3}', 60) == '{"at": 1}'  # changed nothing
    assert store.rotate(fam("f2"), "r0", "s1", "other", 60) is None  # other families are independent
    assert verdict(store.lookup(ref("r0", "f1", "1"))) == NOTHING  # spent is not revoked


def test_rotate_repeated_with_the_same_successor_wins_again(store):
    """A try repeated after its answer was lost (a timeout) is not a reuse."""
    assert store.rotate(fam("f1"), "r0", "r1", "rec1", 60) is None
    assert store.rotate(fam("f1"), "r0", "r1", "rec1", 60) is None
    assert store.rotate(fam("f1"), "r0", "r2", "rec2", 60) == "rec1"


def test_rotate_follows_the_chain_of_successors(store):
    assert store.rotate(fam("f1"), "r0", "r1", "rec1", 60) is None
    assert store.rotate(fam("f1"), "r1", "r2", "rec2", 60) is None
    assert store.rotate(fam("f1"), "r2", "r3", "rec3", 60) is None
    for spent in ("r0", "r1", "r2"):
        assert store.rotate(fam("f1"), spent, "zz", "late", 60) == "rec3"
    assert store.rotate(fam("f1"), "r3", "r4", "rec4", 60) is None  # reuse attempts changed nothing


def test_rotate_keeps_non_ascii_records(store):
    record = json.dumps({"who": "Zoë ✓"}, ensure_ascii=False)
    assert store.rotate(fam("f1"), "r0", "r1", record, 60) is None
    assert store.rotate(fam("f1"), "r0", "r2", "x", 60) == record


def test_rotate_concurrently_exactly_one_wins(store):
    results = run_together(20, lambda i: store.rotate(fam("race"), "r0", "succ-%d" % i, "rec-%d" % i, 60))
    winners = [i for i, result in enumerate(results) if result is None]
    assert len(winners) == 1, results
    assert set(results) - {None} == {"rec-%d" % winners[0]}
    assert store.rotate(fam("race"), "succ-%d" % winners[0], "next", "rec-next", 60) is None


# --- first_use (DPoP proof ids: a jti seen twice is a replay) --------------------


def test_first_use_is_true_once_while_remembered(store):
    assert store.first_use("p1", 0.3) is True
    assert store.first_use("p1", 0.3) is False
    assert store.first_use("p2", 0.3) is True
    time.sleep(0.45)
    assert store.first_use("p1", 60) is True  # forgotten once its time passed
    assert store.first_use("p1", 60) is False


def test_first_use_concurrently_is_true_for_exactly_one(store):
    results = run_together(20, lambda i: store.first_use("same-proof", 60))
    assert results.count(True) == 1, results


# --- time to live ---------------------------------------------------------------


def test_every_kind_of_entry_expires_after_its_ttl(store):
    token = ref("j1", "f1", "1")
    store.revoke_token(token, 0.2)
    store.revoke_family(token, 0.2)
    store.revoke_identity(token, 99.0, 0.2)
    assert store.rotate(fam("fr"), "r0", "r1", "rec", 0.2) is None
    store.revoke_token(ref("j-long", None, "1"), 60)
    assert verdict(store.lookup(token)) == (True, True, 99.0)
    assert store.rotate(fam("fr"), "r0", "r2", "again", 0.2) == "rec"
    time.sleep(0.45)
    assert verdict(store.lookup(token)) == NOTHING
    assert store.rotate(fam("fr"), "r0", "r3", "after", 60) is None  # the rotation record expired too
    assert verdict(store.lookup(ref("j-long", None, "1"))) == (True, False, None)  # a longer TTL is kept


def test_memory_store_len_and_sweep():
    store = MemoryStore()
    assert len(store) == 0
    token = ref("j1", "f1", "1")
    store.revoke_token(token, 0.2)
    store.revoke_family(token, 0.2)
    store.revoke_identity(token, 5.0, 0.2)
    store.rotate(fam("fr"), "r0", "r1", "rec", 0.2)
    store.revoke_token(ref("j-long"), 60)
    assert len(store) == 5
    time.sleep(0.3)
    store.sweep()
    assert len(store) == 1
    assert verdict(store.lookup(ref("j-long"))) == (True, False, None)
    assert store.lookup(ref("j-long")).epoch is None  # memory cannot outlive its process


# --- the Redis store: keys, one hash slot per token, markers -----------------------


def test_redis_keys_of_one_token_share_one_hash_slot(redis_server, redis_client):
    store = RedisStore.open(redis_server.url, prefix="tokenauth:", timeout=1.0)
    try:
        store.prepare()
        token = ref("j1", "f1", "i:1")
        store.lookup(token)
        assert redis_keys(redis_client) == []  # a lookup writes nothing
        store.revoke_token(token, 60)
        store.revoke_family(token, 60)
        store.revoke_identity(token, 5.0, 60)
        store.rotate(token, "r0", "r1", "rec", 60)
        keys = redis_keys(redis_client)
        stem = store.group_of(token)
        side = store.side_of(token)  # keys lookups never read: outside the cached prefix
        assert keys == sorted([stem + rest for rest in ("fam:f1", "idn:i:1", "jti:j1")] + [side + "rot:f1"])
        assert len({key_slot(key.encode()) for key in keys + [stem + "gen"]}) == 1
        for key in assert_every_key_has_ttl(redis_client):
            assert 0 < redis_client.pttl(key) <= 60_000
        # re-revoking and losing a spend must not leave a key without TTL either
        store.revoke_family(token, 30)
        store.revoke_identity(token, 9.0, 30)
        store.revoke_identity(token, 1.0, 90)
        store.rotate(token, "r0", "r9", "again", 60)  # a refused reuse
        store.rotate(token, "r1", "r2", "rec2", 60)
        assert_every_key_has_ttl(redis_client)
        assert redis_client.pttl(stem + "idn:i:1") > 60_000
        assert float(redis_client.get(stem + "idn:i:1")) == 9.0
    finally:
        store.close()


def test_redis_groups_spread_over_the_hash_slots(redis_server):
    store = RedisStore.open(redis_server.url)
    stems = {store.group_of(ref(identity="i:%d" % n)) for n in range(5000)}
    assert len(stems) > GROUPS * 0.95  # every group is used
    slots = {key_slot(stem.encode() + b"gen") for stem in stems}
    assert len(slots) > GROUPS * 0.9  # and nearly every group has a slot of its own
    thirds = [sum(1 for slot in slots if lo <= slot < lo + 5462) for lo in (0, 5462, 10924)]
    assert min(thirds) > GROUPS * 0.25  # three masters each hold about a third


def test_prepare_writes_one_marker_per_group_once(redis_server, redis_client):
    redis_client.flushdb()
    store = RedisStore.open(redis_server.url, prefix="m:")
    try:
        before = time.time()
        store.prepare()
        markers = sorted(key for key in redis_client.keys("m:*") if is_marker(key))
        assert len(markers) == GROUPS
        epochs = {float(value) for value in redis_client.mget(markers)}
        assert len(epochs) == 1 and before <= min(epochs) <= time.time()
        assert time.time() >= int(before) + 1  # tokens issued after prepare fall in a later second
        started = time.monotonic()
        store.prepare()  # markers exist: nothing written, no wait
        assert time.monotonic() - started < 0.5
        assert {float(v) for v in redis_client.mget(markers)} == epochs
    finally:
        store.close()


def test_lost_markers_start_a_new_epoch_agreed_by_every_instance(redis_server, redis_client, caplog):
    stores = [RedisStore.open(redis_server.url, prefix="lost:") for _ in range(2)]
    try:
        stores[0].prepare()
        token = ref("j1", "f1", "i:7")
        stores[0].revoke_token(token, 60)
        old_epoch = stores[1].lookup(token).epoch
        assert stores[1].lookup(token).token_revoked

        redis_client.flushall()  # Redis lost everything: the revocation too
        caplog.set_level(logging.WARNING, "flask_tokenauth")
        before = time.time()
        tokens = [ref("j%d" % i, None, "i:%d" % (i % 5)) for i in range(5)]
        results = run_together(20, lambda i: stores[i % 2].lookup(tokens[i % 5]).epoch)
        for n, other in enumerate(tokens):  # per token, both instances saw one cut-off
            assert len({results[i] for i in range(n, 20, 5)}) == 1, results
            assert stores[0].lookup(other).epoch == stores[1].lookup(other).epoch == results[n]
        assert all(old_epoch < before <= epoch <= time.time() for epoch in results)
        status = stores[0].lookup(token)
        assert not status.token_revoked and status.epoch > before  # the entry is gone; the epoch refuses it
        assert len([key for key in redis_client.keys("lost:*") if is_marker(key)]) == GROUPS
        warnings = [r.getMessage() for r in caplog.records if "lost its data" in r.getMessage()]
        assert 1 <= len(warnings) <= 5, warnings  # said by whoever wrote new markers
        assert "appendonly yes" in warnings[0] and "noeviction" in warnings[0]
    finally:
        for store in stores:
            store.close()


def test_rotate_in_a_group_that_lost_its_marker_raises_state_lost(redis_server, redis_client):
    store = RedisStore.open(redis_server.url, prefix="rot:")
    try:
        store.prepare()
        token = fam("f1", "i:3")
        assert store.rotate(token, "r0", "r1", "rec", 60) is None
        redis_client.delete(store.group_of(token) + "gen")  # evicted, say
        with pytest.raises(StateLost):
            store.rotate(token, "r1", "r2", "rec2", 60)
        assert store.lookup(token).epoch > time.time() - 5  # the group has a new epoch
    finally:
        store.close()


def test_a_marker_that_is_not_a_time_is_a_store_error(redis_server, redis_client):
    store = RedisStore.open(redis_server.url, prefix="bad:")
    try:
        store.prepare()
        token = ref("j", None, "i:1")
        redis_client.set(store.group_of(token) + "gen", b"garbage")
        with pytest.raises(StoreError):
            store.lookup(token)
    finally:
        store.close()


def test_redis_unreachable_raises_store_error():
    store = open_store("redis://127.0.0.1:%d/0" % free_port(), timeout=0.3)
    token = ref("j", "f", "1")
    try:
        store.prepare()  # unreachable at start: a warning, not an error
        started = time.monotonic()
        for call in (
            lambda: store.lookup(token),
            lambda: store.revoke_token(token, 10),
            lambda: store.revoke_family(token, 10),
            lambda: store.revoke_identity(token, 5.0, 10),
            lambda: store.rotate(token, "r0", "r1", "rec", 10),
        ):
            with pytest.raises(StoreError):
                call()
        assert time.monotonic() - started < 5 * 0.3 + 1.0  # retries stay within each deadline
    finally:
        store.close()


# --- open_store -----------------------------------------------------------------


class RecordingStore(TokenStore):
    def __init__(self) -> None:
        self.calls = []

    def lookup(self, ref):
        self.calls.append(("lookup", ref))
        return Status()


def test_open_store_memory_url():
    assert isinstance(open_store("memory://"), MemoryStore)
    first, second = open_store("memory://"), open_store("memory://")
    first.revoke_token(ref("j"), 60)
    assert verdict(second.lookup(ref("j"))) == NOTHING  # one store per open


def test_open_store_redis_url(redis_server, redis_client):
    store = open_store(redis_server.url, prefix="p1:", timeout=0.5)
    try:
        assert isinstance(store, RedisStore)
        assert store.link.kwargs["socket_timeout"] == 0.5
        assert store.link.kwargs["socket_connect_timeout"] == 0.5
        store.prepare()
        store.revoke_token(ref("j1"), 60)
        assert verdict(store.lookup(ref("j1"))) == (True, False, None)
        assert redis_keys(redis_client) == [store.group_of(ref("j1")) + "jti:j1"]
    finally:
        store.close()


def test_open_store_redis_client_object_uses_its_settings_with_the_store_timeout(
    redis_server, redis_client
):
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, db=0, socket_timeout=30)
    try:
        store = open_store(client, prefix="c:", timeout=0.4)
        assert isinstance(store, RedisStore)
        assert store.link.kwargs["socket_timeout"] == 0.4  # not the client's 30 s
        assert store.link.kwargs["port"] == redis_server.port
        store.prepare()
        assert store.rotate(fam("f1"), "r0", "r1", "rec", 60) is None
        assert store.rotate(fam("f1"), "r0", "r2", "x", 60) == "rec"
        assert redis_keys(redis_client) == [store.side_of(fam("f1")) + "rot:f1"]
        assert client.connection_pool.connection_kwargs["socket_timeout"] == 30  # untouched
    finally:
        client.close()


def test_open_store_custom_store_is_used_as_is():
    custom = RecordingStore()
    assert open_store(custom) is custom
    assert open_store(custom, prefix="x:", timeout=9) is custom


@pytest.mark.parametrize(
    "spec",
    [
        "mongodb://127.0.0.1/0",
        "http://127.0.0.1:6379",
        "memcache://x",
        "redis",
        "redis+sentinel://127.0.0.1:26379",
        "redis+cluster://127.0.0.1:7000/3",  # a cluster has only db 0
        "redis+cluster://127.0.0.1",  # no port
        "redis+cluster://127.0.0.1:7000,nohost",
    ],
)
def test_open_store_bad_spec_is_a_configuration_error(spec):
    with pytest.raises(ConfigurationError) as caught:
        open_store(spec)
    assert "JWT_TOKEN_STORE" in str(caught.value)


@pytest.mark.parametrize("prefix", ["{app}:", "a}b:"])
def test_prefix_with_braces_is_a_configuration_error(prefix):
    with pytest.raises(ConfigurationError):
        open_store("redis://127.0.0.1:6379/0", prefix=prefix)


def test_cluster_url_forms_name_their_seeds_and_options():
    store = open_store("rediss+cluster://user:pw@10.0.0.1:7000,10.0.0.2:7001?ssl_cert_reqs=none", timeout=0.7)
    link = store.link
    assert link.cluster and link.seeds == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    assert link.options["password"] == "pw" and link.options["username"] == "user"
    assert link.options["socket_timeout"] == 0.7
    assert "SSL" in link.options["connection_class"].__name__
    assert "pw" not in link.description  # never a password in a message
    uri, options = store.limits_storage()
    assert uri == "redis+cluster://10.0.0.1:7000,10.0.0.2:7001"
    assert options["socket_timeout"] == 0.7 and options["password"] == "pw"


def test_a_sentinel_client_is_a_configuration_error_not_a_500_later():
    from redis.sentinel import Sentinel

    client = Sentinel([("127.0.0.1", free_port())]).master_for("mymaster")
    with pytest.raises(ConfigurationError) as caught:
        open_store(client)
    assert "Sentinel" in str(caught.value)


def test_a_process_that_finds_markers_of_this_second_waits_it_out(redis_server, redis_client):
    """A second gunicorn worker, say, that starts in the second another one wrote
    the markers: tokens it issues at once must not fall before their epoch."""
    redis_client.flushdb()
    now = time.time()
    time.sleep(int(now) + 1.05 - now)
    epoch = time.time()  # another process wrote them a moment ago
    redis_client.mset({"tokenauth:{%d}:gen" % group: repr(epoch) for group in range(GROUPS)})
    app = make_app({"JWT_TOKEN_STORE": redis_server.url})
    try:
        client = app.test_client()
        token = login(client)
        assert client.get("/protected", headers=auth_header(token)).status_code == 200
    finally:
        close_app_store(app)
