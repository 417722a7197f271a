"""Where revocation state lives: a small interface, chosen by URL.

``JWT_TOKEN_STORE`` is ``"memory://"`` (the default: one process),
``"sqlite:///name"`` (a file in the app's instance folder, or
``sqlite:////absolute/path``: shared by every process of one host),
``"redis://host:port/db"`` (also ``rediss://`` and ``unix://``: shared by
every process and host using it), ``"redis+cluster://host:port"`` (also
``rediss+cluster://``: a Redis Cluster, one seed node is enough), an existing
``redis.Redis`` or ``redis.cluster.RedisCluster`` client, or any
:class:`TokenStore` object.

A store keeps four kinds of entries, each with a time to live equal to the
remaining life of what it concerns, so it never grows without bound: revoked
token ids, revoked families, per-identity cut-off times, and one rotation
record per refreshed family (which refresh token is the current one).
It knows nothing of JWTs; the policy is in ``flask_tokenauth.revocation``
and ``flask_tokenauth.sessions``.

Every operation names its token with a :class:`TokenRef`. A store may use
:attr:`TokenRef.group` to keep all of one token's entries together (the
Redis store puts them in one hash slot, so one lookup is one command on one
node, even on a cluster).
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from ..errors import ConfigurationError


class StoreError(Exception):
    """The backend could not be reached or did not answer in time."""


class StateLost(Exception):
    """The backend noticed it had lost its memory (a restart without
    persistence, a flush, an eviction): the token predates what it remembers."""


class TokenRef(NamedTuple):
    """How the store names one token: its id, its family, its identity.

    Each is a string or ``None``; ``identity`` is already in the store's form
    (see ``flask_tokenauth.revocation.identity_key``).
    """

    #: The token's ``jti``.
    jti: Optional[str] = None
    #: The session (refresh-token family) the token belongs to.
    family: Optional[str] = None
    #: Whose token it is.
    identity: Optional[str] = None

    @property
    def group(self) -> str:
        """What all entries of this token have in common, to keep them together:
        the identity, else the family, else the token id. Every token of a
        family has the same identity and family, so they share one group."""
        if self.identity is not None:
            return "i" + self.identity
        if self.family is not None:
            return "f" + self.family
        return "j" + (self.jti or "")


class Status(NamedTuple):
    """What :meth:`TokenStore.lookup` knows of a token."""

    #: Its ``jti`` was revoked.
    token_revoked: bool = False
    #: Its family was revoked.
    family_revoked: bool = False
    #: Its identity's cut-off: tokens issued before it are refused.
    cutoff: Optional[float] = None
    #: When the store's memory begins (for Redis: when its generation marker
    #: was written). Tokens issued before it may have been revoked in a memory
    #: the store no longer has, so they are refused. ``None``: the store
    #: cannot lose its memory without losing this process too.
    epoch: Optional[float] = None


class TokenStore:
    """The interface every backend implements. ``ttl`` is in seconds (> 0).

    Backends raise :class:`StoreError` when they cannot answer; the caller
    turns that into a 503 (or lets the request through when
    ``JWT_TOKEN_STORE_FAIL_OPEN`` is set).
    """

    def lookup(self, ref: TokenRef) -> Status:
        """In one round trip: is the token revoked, is its family, its identity's
        cut-off, and the store's epoch."""
        raise NotImplementedError

    def revoke_token(self, ref: TokenRef, ttl: float) -> None:
        """Revoke ``ref.jti``."""
        raise NotImplementedError

    def revoke_family(self, ref: TokenRef, ttl: float) -> None:
        """Revoke ``ref.family``; revoking it again never shortens it."""
        raise NotImplementedError

    def revoke_identity(self, ref: TokenRef, cutoff: float, ttl: float) -> None:
        """Record ``cutoff`` for ``ref.identity``; a later cut-off replaces an
        earlier one, never the reverse, and the longer TTL is kept."""
        raise NotImplementedError

    def rotate(
        self, ref: TokenRef, presented: str, successor: str, record: str, ttl: float
    ) -> Optional[str]:
        """Atomically make ``successor`` the current refresh token id of ``ref.family``.

        Succeeds (returns ``None``) when the family has no record yet or its
        current id is ``presented`` (or already ``successor``: a retried call),
        storing ``record`` beside the new id. Otherwise changes nothing and
        returns the stored record: of any number of concurrent callers
        presenting the same id, exactly one wins. Raises :class:`StateLost`
        when the store finds it has lost its memory.
        """
        raise NotImplementedError

    def first_use(self, name: str, ttl: float) -> bool:
        """Record ``name`` for ``ttl`` seconds; ``True`` the first time, ``False``
        while it is remembered (DPoP proofs: a ``jti`` seen twice is a replay).
        Every instance sharing the store must see the same answer."""
        raise NotImplementedError("this token store cannot detect replayed DPoP proofs")

    def other_signers(self, fingerprint: str) -> List[int]:
        """Record that this process signs with the key ``fingerprint`` names;
        the ids of live processes sharing this store that sign with another
        key (optional: ``[]`` where the store cannot tell, as across hosts)."""
        return []

    def prepare(self) -> None:
        """Check the backend when the app starts (optional).

        Raises :class:`~flask_tokenauth.ConfigurationError` for settings that
        cannot work; warns about risky ones; never fails because the backend
        is unreachable (it may come up later).
        """

    def limits_storage(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        """A ``limits`` storage URI and options that keep login-throttle
        counters beside this store's entries, or ``None`` (memory)."""
        return None

    def close(self) -> None:
        """Release connections (optional)."""


def required(name: Optional[str], what: str) -> str:
    """``name``, which the operation cannot do without."""
    if name is None:
        raise ValueError("this store operation needs the token's %s" % what)
    return name


#: URL schemes of the Redis backend (``unix://`` is a socket path).
REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")


def names_memory(spec: Any) -> bool:
    """``JWT_TOKEN_STORE`` names the process's memory (unset, or ``memory://``)."""
    return spec is None or (isinstance(spec, str) and spec.startswith("memory://"))


def open_store(
    spec: Any,
    *,
    prefix: str = "tokenauth:",
    timeout: float = 1.0,
    max_connections: int = 50,
    cache_size: int = 0,
    instance_path: Optional[str] = None,
) -> TokenStore:
    """The store that ``JWT_TOKEN_STORE`` names (a URL, a client, or a store).

    ``instance_path`` is the app's instance folder, where a relative
    ``sqlite:///name`` lives.

    Raises :class:`~flask_tokenauth.ConfigurationError` for a spec that names
    no store; opening never needs the backend to be reachable.
    """
    if isinstance(spec, TokenStore):
        return spec
    if names_memory(spec):
        from .memory import MemoryStore

        return MemoryStore()
    if isinstance(spec, str):
        scheme = spec.split("://", 1)[0].lower() if "://" in spec else ""
        if scheme == "sqlite":
            from .sqlite import SQLiteStore

            return SQLiteStore.open(spec, instance_path=instance_path, timeout=timeout, cache_size=cache_size)
        if scheme in REDIS_SCHEMES:
            from .redis import RedisStore

            return RedisStore.open(
                spec, prefix=prefix, timeout=timeout, max_connections=max_connections, cache_size=cache_size
            )
        raise ConfigurationError(
            "JWT_TOKEN_STORE %r: unknown scheme %r (use memory://, sqlite:///, redis://, "
            "rediss://, unix://, redis+cluster:// or rediss+cluster://)" % (_safe(spec), scheme)
        )
    if hasattr(spec, "pipeline") and hasattr(spec, "set"):  # a redis-py client
        from .redis import RedisStore

        return RedisStore.open(
            spec, prefix=prefix, timeout=timeout, max_connections=max_connections, cache_size=cache_size
        )
    raise ConfigurationError(
        "JWT_TOKEN_STORE must be a URL, a redis client or a TokenStore, not %r" % type(spec)
    )


def _safe(url: str) -> str:
    """``url`` for messages and logs: any password in its user part and the
    value of every query parameter (``?password=...``) replaced by ``***``."""
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    rest, _, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:  # the last @ ends the user part: a password may hold one
        netloc = "***@" + netloc.rpartition("@")[2]
    if question:
        names = [part.partition("=")[0] for part in query.replace(";", "&").split("&") if part]
        query = "&".join(name + "=***" for name in names)
    return "%s://%s%s%s%s%s" % (head, netloc, slash, path, question, query) + ("#***" if fragment else "")


__all__ = [
    "REDIS_SCHEMES",
    "StateLost",
    "Status",
    "StoreError",
    "TokenRef",
    "TokenStore",
    "open_store",
]
