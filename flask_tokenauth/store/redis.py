"""The shared store on Redis or a Redis Cluster.

**Key layout.** A token's entries live in one of 1024 groups, chosen from its
identity (else its family, else its id), and each group is one Redis hash
tag: ``<prefix>{<group>}:jti:<jti>``, ``...:fam:<family>``, ``...:idn:<identity>``,
``...:rot:<family>`` and the group's generation marker ``...:gen``. All of a
token's keys share one hash slot, so every check is one command on one node,
on a single server and on a cluster alike.

**Lost state.** Redis can lose what it held (a restart without persistence,
a failover to a replica that had not caught up, FLUSHALL, eviction), and a
missing entry must never read as "not revoked". Each group holds a marker,
written once with the time its memory began (the *epoch*) and read by every
lookup in the same MGET. A missing marker means the group lost its memory:
the first instance to notice writes a new epoch with ``SET NX`` (so every
instance agrees on one cut-off), and every token issued before it is refused.

**Rotation** is one Lua script (compare the family's current token id, then
set its successor), so exactly one of any number of concurrent refreshes, in
any process on any host, wins.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

from ..errors import ConfigurationError
from . import StateLost, Status, StoreError, TokenRef, TokenStore, required
from .redis_connection import RedisLink, connect, not_a_cluster
from .redis_tracking import Tracker

logger = logging.getLogger("flask_tokenauth")

T = TypeVar("T")

#: Groups of keys (hash tags). Enough to spread over any cluster's masters.
GROUPS = 1024
#: The oldest Redis with what the store needs (SET NX GET, PEXPIRE GT).
MIN_REDIS_VERSION = (7, 0)
#: Eviction policies that never remove a revocation entry.
SAFE_POLICIES = ("noeviction",)

_warned_persistence: set = set()
_warned_lock = threading.Lock()


class RedisStore(TokenStore):
    """Revocation entries as Redis keys under ``prefix``, grouped by hash tag."""

    def __init__(self, link: RedisLink, *, prefix: str = "tokenauth:", cache_size: int = 0) -> None:
        if "{" in prefix or "}" in prefix:
            raise ConfigurationError(
                "JWT_TOKEN_STORE_PREFIX %r: braces are not allowed (the store puts its own "
                "hash tags after the prefix)" % prefix
            )
        self.link = link
        self.prefix = prefix
        #: Lookups served from memory, kept honest by Redis' invalidations (0: off).
        self.tracker: Optional[Tracker] = None
        if cache_size > 0:
            self.tracker = Tracker(
                link.tracking_connections,
                prefix + "{",
                cache_size,
                retry=link.timeout,
                topology=link.primaries if link.cluster else None,
            )

    @classmethod
    def open(
        cls,
        spec: Any,
        *,
        prefix: str = "tokenauth:",
        timeout: float = 1.0,
        max_connections: int = 50,
        cache_size: int = 0,
    ) -> RedisStore:
        """The store on a URL or a redis-py client (nothing is connected yet)."""
        try:
            link = connect(spec, timeout=timeout, max_connections=max_connections)
        except ValueError as exc:
            raise ConfigurationError("JWT_TOKEN_STORE: %s" % exc) from exc
        return cls(link, prefix=prefix, cache_size=cache_size)

    from_url = open  # the name earlier versions had

    # --- keys ----------------------------------------------------------------------

    def group_of(self, ref: TokenRef) -> str:
        """The key stem of ``ref``'s group: ``<prefix>{<n>}:``."""
        group = zlib.crc32(ref.group.encode("utf-8", "surrogatepass")) % GROUPS
        return "%s{%d}:" % (self.prefix, group)

    def side_of(self, ref: TokenRef) -> str:
        """The stem of keys in ``ref``'s slot that lookups never read (rotation
        records, DPoP proof ids): outside the prefix the cache hears about."""
        return "%sx{%d}:" % (self.prefix, zlib.crc32(ref.group.encode("utf-8", "surrogatepass")) % GROUPS)

    def _markers(self) -> List[str]:
        return ["%s{%d}:gen" % (self.prefix, group) for group in range(GROUPS)]

    # --- the interface ---------------------------------------------------------------

    def lookup(self, ref: TokenRef) -> Status:
        tracker = self.tracker
        if tracker is not None:
            known = tracker.recall(ref)
            if known is not None:
                return known
            mark = tracker.mark()
        stem = self.group_of(ref)
        jti, family, identity = ref
        names = [stem + "gen"]
        if jti is not None:
            names.append(stem + "jti:" + jti)
        if family is not None:
            names.append(stem + "fam:" + family)
        if identity is not None:
            names.append(stem + "idn:" + identity)
        if tracker is not None:
            cached = tracker.get(names)
            if cached is not None:
                status = self._status(ref, cached)
                tracker.keep(mark, ref, status)
                return status
        found = self.link.execute("MGET", *names)
        status = self._status(ref, found)
        if tracker is not None and found[0] is not None:
            tracker.keep(mark, ref, status, names, found)
        return status

    def _status(self, ref: TokenRef, found: List[Any]) -> Status:
        jti, family, identity = ref
        values = iter(found)
        marker = next(values)
        epoch = _epoch(marker) if marker is not None else self._lost(self.group_of(ref))
        token_dead = jti is not None and next(values) is not None
        family_dead = family is not None and next(values) is not None
        cutoff = next(values) if identity is not None else None
        return Status(token_dead, family_dead, None if cutoff is None else float(cutoff), epoch)

    def revoke_token(self, ref: TokenRef, ttl: float) -> None:
        key = self.group_of(ref) + "jti:" + required(ref.jti, "jti")
        self.link.write(key, ("SET", key, b"1", "PX", _ms(ttl)))

    def revoke_family(self, ref: TokenRef, ttl: float) -> None:
        # The rotation record stays: a refresh racing this revocation may already
        # be past its revocation check, and only the record stops it.
        key = self.group_of(ref) + "fam:" + required(ref.family, "family")
        self.link.write(key, ("EVAL", _REVOKE_FAMILY, 1, key, _ms(ttl)))

    def revoke_identity(self, ref: TokenRef, cutoff: float, ttl: float) -> None:
        key = self.group_of(ref) + "idn:" + required(ref.identity, "identity")
        self.link.write(key, ("EVAL", _REVOKE_IDENTITY, 1, key, repr(float(cutoff)), _ms(ttl)))

    def rotate(
        self, ref: TokenRef, presented: str, successor: str, record: str, ttl: float
    ) -> Optional[str]:
        stem = self.group_of(ref)
        key = self.side_of(ref) + "rot:" + required(ref.family, "family")
        # Not durable: a refresh answered 503 after it rotated would make the
        # client's retry look like reuse. A lagging replica is only logged.
        found = self.link.write(
            key,
            ("EVAL", _ROTATE, 2, key, stem + "gen", presented, successor, record, _ms(ttl)),
            durable=False,
        )
        outcome = int(found[0])
        if outcome == 2:
            self._lost(stem)
            raise StateLost("the token store lost its memory")
        if outcome == 1:
            return found[1].decode("utf-8")
        return None

    def first_use(self, name: str, ttl: float) -> bool:
        # Not WAITed for: a replica that misses it in a failover lets one proof
        # be replayed within its few seconds of life, never a revoked token.
        key = self.side_of(TokenRef(jti=name)) + "seen:" + name
        return self.link.execute("SET", key, b"1", "NX", "PX", _ms(ttl)) is not None

    def prepare(self) -> None:
        try:
            infos = self.link.info()
        except StoreError as exc:
            if exc.__cause__ is not None and not_a_cluster(exc.__cause__):
                raise ConfigurationError(
                    "JWT_TOKEN_STORE %s is not a Redis Cluster (cluster mode is not enabled): "
                    "use redis:// for a single server" % self.link.description
                ) from exc
            logger.warning(
                "token store %s is unreachable at start (%s); requests that need it get 503 "
                "until it answers",
                self.link.description,
                exc,
            )
            return
        for info in infos:
            self._check_server(info)
        if self.tracker is not None:
            self.tracker.start()
        try:
            self._write_markers(time.time(), at_start=True)
        except StoreError as exc:
            logger.warning(
                "token store %s: could not write its markers at start (%s)", self.link.description, exc
            )

    def limits_storage(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        return self.link.limits_storage()

    def bounded(self, action: Callable[[], T]) -> T:
        """Run ``action`` (a call of the login throttle on this Redis) within the
        store's bounds: its connection limit, its deadline, its retries."""
        return self.link.call(action)

    def close(self) -> None:
        if self.tracker is not None:
            self.tracker.close()
        self.link.close()

    # --- lost state ------------------------------------------------------------------

    def _lost(self, stem: str) -> float:
        """The group at ``stem`` has no marker: start a new epoch for it (the first
        instance to get here sets it for all) and give every other group that
        lost its marker the same one. Returns the group's epoch."""
        now = time.time()
        found = self.link.execute("SET", stem + "gen", repr(now), "NX", "GET")
        if found is not None:  # another instance noticed first: its cut-off holds
            return _epoch(found)
        try:
            self._write_markers(now, at_start=False)
        except StoreError as exc:  # the other groups notice on their own
            logger.warning("token store %s: could not write every marker (%s)", self.link.description, exc)
        return now

    def _write_markers(self, epoch: float, *, at_start: bool) -> None:
        """Write ``epoch`` into every group without a marker (``SET NX GET``).

        At start, this process then waits for the second after the latest
        epoch, whoever wrote it: ``iat`` has whole seconds, and a token issued
        in an epoch's own second would be refused."""
        value = repr(epoch)
        answers = self.link.execute_many([("SET", marker, value, "NX", "GET") for marker in self._markers()])
        written = sum(1 for answer in answers if answer is None)
        if at_start:
            latest = max(epoch if answer is None else _epoch(answer) for answer in answers)
            time.sleep(max(0.0, int(latest) + 1 - time.time()))
        if written == 0:
            return
        moment = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
        if at_start and written == GROUPS:
            logger.warning(
                "token store %s holds no generation marker: a new store, or one that lost all its "
                "data. Tokens issued before %s are refused. If Redis lost its data, run it with "
                "appendonly yes and maxmemory-policy noeviction",
                self.link.description,
                moment,
            )
        else:
            logger.warning(
                "token store %s lost its data (%d of %d generation markers were gone: a restart "
                "without persistence, a failover, FLUSHALL or eviction). Tokens issued before %s "
                "are refused once: their users log in again. Run Redis with appendonly yes and "
                "maxmemory-policy noeviction to avoid this",
                self.link.description,
                written + (0 if at_start else 1),
                GROUPS,
                moment,
            )

    def _check_server(self, info: Dict[str, str]) -> None:
        where = self.link.description
        version = info.get("redis_version", "0")
        if _version(version) < MIN_REDIS_VERSION:
            raise ConfigurationError(
                "JWT_TOKEN_STORE %s runs Redis %s; flask_tokenauth needs Redis %d.%d or newer"
                % ((where, version) + MIN_REDIS_VERSION)
            )
        if info.get("cluster_enabled") == "1" and not self.link.cluster:
            raise ConfigurationError(
                "JWT_TOKEN_STORE %s is a Redis Cluster node: use redis+cluster://host:port "
                "(or rediss+cluster://) so that keys reach the node that owns them" % where
            )
        policy = info.get("maxmemory_policy", "noeviction")
        if policy not in SAFE_POLICIES:
            logger.warning(
                "token store %s has maxmemory-policy %s, which can evict revocation entries: "
                "set maxmemory-policy noeviction (an evicted entry is noticed only when its "
                "group's marker goes too)",
                where,
                policy,
            )
        if info.get("aof_enabled") == "0":
            with _warned_lock:
                if where in _warned_persistence:
                    return
                _warned_persistence.add(where)
            logger.warning(
                "token store %s runs without appendonly: revocations survive a restart only with "
                "appendonly yes (after a loss, every token issued before it is refused)",
                where,
            )


def _epoch(marker: Any) -> float:
    try:
        return float(marker)
    except (TypeError, ValueError) as exc:
        raise StoreError("the store's generation marker holds %r, not a time" % (marker,)) from exc


def _version(text: str) -> Tuple[int, ...]:
    parts = []
    for part in text.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _ms(ttl: float) -> int:
    return max(1, int(ttl * 1000))


# Revoke a family: keep the longer of two TTLs when it is revoked twice.
_REVOKE_FAMILY = """
redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1], 'GT')
return 1
"""

# Keep the later cut-off and the longer TTL, atomically.
_REVOKE_IDENTITY = """
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > old then redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL') end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""

# KEYS: the family's rotation record, its group's marker.
# ARGV: presented id, successor id, record, ttl in ms.
# {0}: rotated. {1, record}: the presented id was spent. {2}: the group lost its memory.
# The successor itself counts as current, so a try repeated after a lost answer wins again.
_ROTATE = """
if redis.call('EXISTS', KEYS[2]) == 0 then return {2} end
local current = redis.call('HGET', KEYS[1], 'jti')
if current and current ~= ARGV[1] and current ~= ARGV[2] then
    return {1, redis.call('HGET', KEYS[1], 'record')}
end
redis.call('HSET', KEYS[1], 'jti', ARGV[2], 'record', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {0}
"""
