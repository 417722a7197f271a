"""One contract for every TokenStore backend: MemoryStore and RedisStore (real redis-server)."""

from __future__ import annotations

import json
import time
from typing import Iterator

import pytest
import redis

from flask_tokenauth.store import StoreError, TokenStore, open_store
from flask_tokenauth.store.memory import MemoryStore
from flask_tokenauth.store.redis import RedisStore
from tests.redis_server import free_port
from tests.sessions_support import (  # noqa: F401 - fixtures are used by name
    assert_every_key_has_ttl,
    redis_client_fixture,
    redis_server_fixture,
    run_together,
)

PREFIX = "contract:"


@pytest.fixture(params=["memory", "redis"])
def store(request) -> Iterator[TokenStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    client = request.getfixturevalue("redis_client")  # empty database
    server = request.getfixturevalue("redis_server")
    made = RedisStore.from_url(server.url, prefix=PREFIX, timeout=1.0)
    try:
        yield made
    finally:
        made.close()
        assert_every_key_has_ttl(client)  # whatever a test wrote, nothing lives forever


def redis_keys(client: redis.Redis):
    return sorted(key.decode() for key in client.keys("*"))


# --- lookup and the three kinds of revocation -----------------------------------


def test_lookup_of_nothing_revoked(store):
    assert store.lookup("j1", "f1", "1") == (False, False, None)
    assert store.lookup(None, None, None) == (False, False, None)


def test_revoke_token_is_keyed_on_jti_only(store):
    store.revoke_token("j1", 60)
    assert store.lookup("j1", None, None) == (True, False, None)
    assert store.lookup("j1", "f1", "1") == (True, False, None)
    assert store.lookup("j2", "f1", "1") == (False, False, None)
    assert store.lookup(None, "j1", "j1") == (False, False, None)  # other kinds do not collide


def test_revoke_family(store):
    store.revoke_family("f1", 60)
    assert store.lookup(None, "f1", None) == (False, True, None)
    assert store.lookup("j9", "f1", "1") == (False, True, None)
    assert store.lookup("f1", "f2", "f1") == (False, False, None)


def test_revoke_family_twice_keeps_it_revoked(store):
    store.revoke_family("f1", 60)
    store.revoke_family("f1", 0.2)  # a shorter second TTL must not shorten the first
    time.sleep(0.35)
    assert store.lookup(None, "f1", None) == (False, True, None)


def test_revoke_identity_records_the_cutoff(store):
    store.revoke_identity("1", 1700000000.25, 60)
    assert store.lookup(None, None, "1") == (False, False, 1700000000.25)
    assert store.lookup("j", "f", "2") == (False, False, None)
    assert store.lookup("j", "f", '"1"') == (False, False, None)  # 1 and "1" stay distinct
    assert store.lookup("j", "f", None) == (False, False, None)


def test_later_identity_cutoff_wins(store):
    store.revoke_identity("1", 1000.5, 60)
    store.revoke_identity("1", 2000.75, 60)
    assert store.lookup(None, None, "1")[2] == 2000.75
    store.revoke_identity("1", 1500.0, 60)  # an earlier cut-off never replaces a later one
    assert store.lookup(None, None, "1")[2] == 2000.75


def test_identity_cutoff_keeps_the_longer_ttl(store):
    store.revoke_identity("1", 2000.0, 60)
    store.revoke_identity("1", 3000.0, 0.2)  # later cut-off, shorter TTL
    store.revoke_identity("1", 1000.0, 0.2)
    time.sleep(0.35)
    assert store.lookup(None, None, "1")[2] == 3000.0


def test_identity_names_with_odd_characters(store):
    name = json.dumps({"tenant": "a b:c", "id": 7}, sort_keys=True, separators=(",", ":"))
    store.revoke_identity(name, 42.0, 60)
    assert store.lookup(None, None, name) == (False, False, 42.0)
    assert store.lookup(None, None, name + " ") == (False, False, None)


def test_one_lookup_reports_all_three(store):
    store.revoke_token("j1", 60)
    store.revoke_family("f1", 60)
    store.revoke_identity("u", 12.5, 60)
    assert store.lookup("j1", "f1", "u") == (True, True, 12.5)


# --- rotate (the atomic "spend": one winner per presented refresh token) ----------
#
# The brief names this operation ``spend(jti, record, ttl)``; the package now has
# ``rotate(family, presented, successor, record, ttl)``, keyed per family: it
# succeeds (None) when the family has no record or its current token id is
# ``presented``, else it returns the stored record and changes nothing.


def test_rotate_first_call_wins_then_returns_the_record(store):
    assert store.rotate("f1", "r0", "r1", '{"at": 1}', 60) is None
    assert store.rotate("f1", "r0", "rX", '{"at": 2}', 60) == '{"at": 1}'
    assert store.rotate("f1", "r0", "rY", '{"at": 3}', 60) == '{"at": 1}'  # changed nothing
    assert store.rotate("f2", "r0", "s1", "other", 60) is None  # other families are independent
    assert store.lookup("r0", "f1", None) == (False, False, None)  # spent is not revoked


def test_rotate_follows_the_chain_of_successors(store):
    assert store.rotate("f1", "r0", "r1", "rec1", 60) is None
    assert store.rotate("f1", "r1", "r2", "rec2", 60) is None
    assert store.rotate("f1", "r2", "r3", "rec3", 60) is None
    for spent in ("r0", "r1", "r2"):
        assert store.rotate("f1", spent, "zz", "late", 60) == "rec3"
    assert store.rotate("f1", "r3", "r4", "rec4", 60) is None  # reuse attempts changed nothing


def test_rotate_keeps_non_ascii_records(store):
    record = json.dumps({"who": "Zoë ✓"}, ensure_ascii=False)
    assert store.rotate("f1", "r0", "r1", record, 60) is None
    assert store.rotate("f1", "r0", "r2", "x", 60) == record


def test_rotate_concurrently_exactly_one_wins(store):
    results = run_together(20, lambda i: store.rotate("race", "r0", "succ-%d" % i, "rec-%d" % i, 60))
    winners = [i for i, result in enumerate(results) if result is None]
    assert len(winners) == 1, results
    assert set(results) - {None} == {"rec-%d" % winners[0]}
    assert store.rotate("race", "succ-%d" % winners[0], "next", "rec-next", 60) is None


# --- time to live ---------------------------------------------------------------


def test_every_kind_of_entry_expires_after_its_ttl(store):
    store.revoke_token("j1", 0.2)
    store.revoke_family("f1", 0.2)
    store.revoke_identity("1", 99.0, 0.2)
    assert store.rotate("fr", "r0", "r1", "rec", 0.2) is None
    store.revoke_token("j-long", 60)
    assert store.lookup("j1", "f1", "1") == (True, True, 99.0)
    assert store.rotate("fr", "r0", "r2", "again", 0.2) == "rec"
    time.sleep(0.45)
    assert store.lookup("j1", "f1", "1") == (False, False, None)
    assert store.rotate("fr", "r0", "r3", "after", 60) is None  # the rotation record expired too
    assert store.lookup("j-long", None, None) == (True, False, None)  # a longer TTL is kept


def test_memory_store_len_and_sweep():
    store = MemoryStore()
    assert len(store) == 0
    store.revoke_token("j1", 0.2)
    store.revoke_family("f1", 0.2)
    store.revoke_identity("1", 5.0, 0.2)
    store.rotate("fr", "r0", "r1", "rec", 0.2)
    store.revoke_token("j-long", 60)
    assert len(store) == 5
    time.sleep(0.3)
    store.sweep()
    assert len(store) == 1
    assert store.lookup("j-long", None, None) == (True, False, None)


def test_redis_keys_are_named_by_kind_and_all_expire(redis_server, redis_client):
    store = RedisStore.from_url(redis_server.url, prefix="tokenauth:", timeout=1.0)
    try:
        store.lookup("j0", "f0", "0")
        assert redis_keys(redis_client) == []  # a lookup writes nothing
        store.revoke_token("j1", 60)
        store.revoke_family("f1", 60)
        store.revoke_identity("i:1", 5.0, 60)
        store.rotate("f2", "r0", "r1", "rec", 60)
        assert redis_keys(redis_client) == [
            "tokenauth:fam:f1", "tokenauth:idn:i:1", "tokenauth:jti:j1", "tokenauth:rot:f2",
        ]
        for key in assert_every_key_has_ttl(redis_client):
            assert 0 < redis_client.pttl(key) <= 60_000
        # re-revoking and losing a spend must not leave a key without TTL either
        store.revoke_family("f1", 30)
        store.revoke_identity("i:1", 9.0, 30)
        store.revoke_identity("i:1", 1.0, 90)
        store.rotate("f2", "r0", "r9", "again", 60)  # a refused reuse
        store.rotate("f2", "r1", "r2", "rec2", 60)
        assert_every_key_has_ttl(redis_client)
        assert redis_client.pttl("tokenauth:idn:i:1") > 60_000
        assert float(redis_client.get("tokenauth:idn:i:1")) == 9.0
    finally:
        store.close()


def test_redis_unreachable_raises_store_error():
    store = open_store("redis://127.0.0.1:%d/0" % free_port(), timeout=0.3)
    try:
        with pytest.raises(StoreError):
            store.lookup("j", "f", "1")
        with pytest.raises(StoreError):
            store.revoke_token("j", 10)
        with pytest.raises(StoreError):
            store.revoke_family("f", 10)
        with pytest.raises(StoreError):
            store.revoke_identity("1", 5.0, 10)
        with pytest.raises(StoreError):
            store.rotate("f", "r0", "r1", "rec", 10)
    finally:
        store.close()


# --- open_store -----------------------------------------------------------------


class RecordingStore(TokenStore):
    def __init__(self) -> None:
        self.calls = []

    def lookup(self, jti, family, identity):
        self.calls.append(("lookup", jti, family, identity))
        return False, False, None


def test_open_store_memory_url():
    assert isinstance(open_store("memory://"), MemoryStore)
    first, second = open_store("memory://"), open_store("memory://")
    first.revoke_token("j", 60)
    assert second.lookup("j", None, None) == (False, False, None)  # one store per open


def test_open_store_redis_url(redis_server, redis_client):
    store = open_store(redis_server.url, prefix="p1:", timeout=0.5)
    try:
        assert isinstance(store, RedisStore)
        kwargs = store.client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 0.5
        assert kwargs["socket_connect_timeout"] == 0.5
        store.revoke_token("j1", 60)
        assert store.lookup("j1", None, None) == (True, False, None)
        assert redis_keys(redis_client) == ["p1:jti:j1"]
    finally:
        store.close()


def test_open_store_redis_url_with_explicit_host_port_db(redis_server, redis_client):
    store = open_store("redis://127.0.0.1:%d/0" % redis_server.port)
    try:
        store.revoke_family("f1", 60)
        assert redis_keys(redis_client) == ["tokenauth:fam:f1"]
    finally:
        store.close()


def test_open_store_redis_client_object(redis_server, redis_client):
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, db=0)
    try:
        store = open_store(client, prefix="c:")
        assert isinstance(store, RedisStore)
        assert store.client is client
        assert store.rotate("f1", "r0", "r1", "rec", 60) is None
        assert store.rotate("f1", "r0", "r2", "x", 60) == "rec"
        assert redis_keys(redis_client) == ["c:rot:f1"]
    finally:
        client.close()


def test_open_store_custom_store_is_used_as_is():
    custom = RecordingStore()
    assert open_store(custom) is custom
    assert open_store(custom, prefix="x:", timeout=9) is custom


@pytest.mark.parametrize("spec", ["mongodb://127.0.0.1/0", "http://127.0.0.1:6379", "memcache://x", "redis"])
def test_open_store_bad_scheme_is_value_error(spec):
    with pytest.raises(ValueError):
        open_store(spec)
