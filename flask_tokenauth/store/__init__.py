"""Where revocation state lives: a small interface, chosen by URL.

``JWT_TOKEN_STORE`` is ``"memory://"`` (the default: one process),
``"redis://host:port/db"`` (also ``rediss://`` and ``unix://``: shared by
every process and host using it), an existing ``redis.Redis`` or
``redis.cluster.RedisCluster`` client, or any :class:`TokenStore` object.

A store keeps four kinds of entries, each with a time to live equal to the
remaining life of what it concerns, so it never grows without bound: revoked
token ids, revoked families, per-identity cut-off times, and one rotation
record per refreshed family (which refresh token is the current one).
It knows nothing of JWTs; the policy is in :mod:`flask_tokenauth.revocation`
and :mod:`flask_tokenauth.sessions`.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple


class StoreError(Exception):
    """The backend could not be reached or did not answer in time."""


class TokenStore:
    """The interface every backend implements. ``ttl`` is in seconds (> 0).

    Backends raise :class:`StoreError` when they cannot answer; the caller
    turns that into a 503 (or lets the request through when
    ``JWT_TOKEN_STORE_FAIL_OPEN`` is set).
    """

    def lookup(
        self, jti: Optional[str], family: Optional[str], identity: Optional[str]
    ) -> Tuple[bool, bool, Optional[float]]:
        """In one round trip: is ``jti`` revoked, is ``family`` revoked, and the
        identity's cut-off time (tokens issued before it are refused), if any."""
        raise NotImplementedError

    def revoke_token(self, jti: str, ttl: float) -> None:
        raise NotImplementedError

    def revoke_family(self, family: str, ttl: float) -> None:
        raise NotImplementedError

    def revoke_identity(self, identity: str, cutoff: float, ttl: float) -> None:
        """Record ``cutoff``; a later cut-off replaces an earlier one, never the reverse."""
        raise NotImplementedError

    def rotate(
        self, family: str, presented: str, successor: str, record: str, ttl: float
    ) -> Optional[str]:
        """Atomically make ``successor`` the family's current refresh token id.

        Succeeds (returns ``None``) when the family has no record yet or its
        current id is ``presented``, storing ``record`` beside the new id.
        Otherwise changes nothing and returns the stored record: of any number
        of concurrent callers presenting the same id, exactly one wins.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (optional)."""


def open_store(spec: Any, *, prefix: str = "tokenauth:", timeout: float = 1.0) -> TokenStore:
    """The store that ``JWT_TOKEN_STORE`` names (a URL, a client, or a store)."""
    if isinstance(spec, TokenStore):
        return spec
    if spec is None or (isinstance(spec, str) and spec.startswith("memory://")):
        from .memory import MemoryStore

        return MemoryStore()
    if isinstance(spec, str):
        scheme = spec.split("://", 1)[0].lower()
        if scheme in ("redis", "rediss", "unix"):
            from .redis import RedisStore

            return RedisStore.from_url(spec, prefix=prefix, timeout=timeout)
        raise ValueError(
            "JWT_TOKEN_STORE %r: unknown scheme %r (use memory://, redis://, rediss:// or unix://)"
            % (spec, scheme)
        )
    if hasattr(spec, "pipeline") and hasattr(spec, "set"):  # a redis-py client
        from .redis import RedisStore

        return RedisStore(spec, prefix=prefix)
    raise TypeError("JWT_TOKEN_STORE must be a URL, a redis client or a TokenStore, not %r" % type(spec))


__all__ = ["StoreError", "TokenStore", "open_store"]
