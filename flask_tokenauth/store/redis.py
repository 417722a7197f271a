"""The shared store on Redis (the only module that imports ``redis``).

Every check is one pipelined round trip; every entry has a TTL; a refresh
rotation is one Lua script (compare the family's current token id, then set
its successor), so exactly one of any number of concurrent refreshes, in any
process on any host, wins.
"""

from __future__ import annotations

import os
import threading
from typing import Any, List, Optional, Tuple

from . import StoreError, TokenStore

try:
    import redis as _redis
except ImportError:  # pragma: no cover - depends on the environment
    _redis = None  # type: ignore[assignment]


def _require_redis() -> Any:
    if _redis is None:
        raise ImportError(
            "JWT_TOKEN_STORE names Redis but the redis package is missing: "
            "pip install flask-tokenauth[redis]"
        )
    return _redis


class RedisStore(TokenStore):
    """Revocation entries as Redis keys under ``prefix``."""

    def __init__(self, client: Any, *, prefix: str = "tokenauth:") -> None:
        redis = _require_redis()
        self.client = client
        self.prefix = prefix
        self._cluster = hasattr(client, "get_nodes")  # redis.cluster.RedisCluster
        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        self._connection_error = redis.exceptions.ConnectionError
        # The per-request check talks to Redis on a connection of its own per
        # thread: redis-py's pool and command layers cost as much as the round
        # trip itself. The pid guards against a connection inherited by fork.
        self._local = threading.local()

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "tokenauth:", timeout: float = 1.0) -> RedisStore:
        redis = _require_redis()
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, health_check_interval=30
        )
        return cls(client, prefix=prefix)

    def _key(self, kind: str, name: str) -> str:
        return "%s%s:%s" % (self.prefix, kind, name)

    def lookup(
        self, jti: Optional[str], family: Optional[str], identity: Optional[str]
    ) -> Tuple[bool, bool, Optional[float]]:
        names = [
            self._key(kind, name)
            for kind, name in (("jti", jti), ("fam", family), ("idn", identity))
            if name is not None
        ]
        if not names:
            return False, False, None
        try:
            if self._cluster:  # keys in other hash slots: a pipeline splits them per node
                pipe = self.client.pipeline(transaction=False)
                for name in names:
                    pipe.get(name)
                values = pipe.execute()
            else:  # one command, one round trip
                values = self._mget(names)
        except self._errors as exc:
            raise StoreError(str(exc)) from exc
        found = iter(values)
        token_dead = jti is not None and next(found) is not None
        family_dead = family is not None and next(found) is not None
        cutoff = next(found) if identity is not None else None
        return token_dead, family_dead, None if cutoff is None else float(cutoff)

    def _mget(self, names: List[str]) -> List[Any]:
        """MGET on this thread's own connection; a connection that went stale
        (Redis restarted) is reopened and the command sent once more."""
        local = self._local
        pid = os.getpid()
        connection = getattr(local, "connection", None)
        if connection is None or local.pid != pid:
            connection = local.connection = self.client.connection_pool.make_connection()
            local.pid = pid
        for attempt in (1, 2):
            try:
                connection.send_command("MGET", *names)
                return connection.read_response()
            except self._connection_error:
                connection.disconnect()
                if attempt == 2:
                    raise
            except BaseException:
                connection.disconnect()  # never leave a half-read reply on the socket
                raise
        raise AssertionError("unreachable")

    def revoke_token(self, jti: str, ttl: float) -> None:
        self._call("set", self._key("jti", jti), b"1", px=_ms(ttl))

    def revoke_family(self, family: str, ttl: float) -> None:
        # GT keeps the longer of two TTLs when a family is revoked twice. The
        # rotation record stays: a refresh racing this revocation may already
        # be past its revocation check, and only the record stops it.
        key = self._key("fam", family)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.set(key, b"1", nx=True, px=_ms(ttl))
            pipe.pexpire(key, _ms(ttl), gt=True)
            pipe.execute()
        except self._errors as exc:
            raise StoreError(str(exc)) from exc

    def revoke_identity(self, identity: str, cutoff: float, ttl: float) -> None:
        key = self._key("idn", identity)
        # Keep the later cut-off and the longer TTL, atomically.
        script = (
            "local old = tonumber(redis.call('GET', KEYS[1]) or '0') "
            "local new = tonumber(ARGV[1]) "
            "if new > old then redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL') end "
            "local ttl = redis.call('PTTL', KEYS[1]) "
            "if ttl < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end "
            "return 1"
        )
        self._call("eval", script, 1, key, repr(float(cutoff)), _ms(ttl))

    def rotate(
        self, family: str, presented: str, successor: str, record: str, ttl: float
    ) -> Optional[str]:
        found = self._call(
            "eval", _ROTATE, 1, self._key("rot", family), presented, successor, record, _ms(ttl)
        )
        return None if found is None else found.decode("utf-8")

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.disconnect()
        self.client.close()

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except self._errors as exc:
            raise StoreError(str(exc)) from exc


_ROTATE = """
local current = redis.call('HGET', KEYS[1], 'jti')
if current and current ~= ARGV[1] then
    return redis.call('HGET', KEYS[1], 'record')
end
redis.call('HSET', KEYS[1], 'jti', ARGV[2], 'record', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return false
"""


def _ms(ttl: float) -> int:
    return max(1, int(ttl * 1000))
