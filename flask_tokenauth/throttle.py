"""Login throttling: failed logins counted per username and per client address.

Built on the ``limits`` library (the one Flask-Limiter uses), with a fixed
window. Counters live in memory by default, and in the token store's Redis
when ``JWT_TOKEN_STORE`` names one, so the limit holds across processes and
hosts. Each attempt is counted before the password is checked (atomically, so
parallel guesses cannot overrun the limit) and given back when it succeeds:
only failures stay counted, and a user who logs in correctly is never slowed.
Past the limit, ``/auth`` answers 429 without calling the authentication
handler at all. The client address is ``request.remote_addr``,
which ``werkzeug.middleware.proxy_fix.ProxyFix`` corrects behind a proxy.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import threading
import time
import unicodedata
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

from flask import request

from . import signals
from .config import config
from .errors import ConfigurationError, JWTError, StoreUnavailable
from .store import StoreError

logger = logging.getLogger("flask_tokenauth")


def storage_for(override: Optional[str], store: Any, timeout: float) -> Tuple[str, Dict[str, Any]]:
    """The ``limits`` storage for the counters: ``override`` (a ``limits`` URI;
    a Redis one gets the store's timeout), else the token store's own Redis,
    else memory."""
    if override:
        from limits.storage import SCHEMES

        scheme = override.split("://", 1)[0].lower() if "://" in override else ""
        if scheme not in SCHEMES or scheme.startswith("async+"):
            raise ConfigurationError(
                "JWT_LOGIN_RATE_LIMIT_STORAGE %r: not a storage URI that limits knows" % override
            )
        if scheme.startswith(("redis", "valkey")):  # bounded waits, as for the token store
            return override, {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        return override, {}
    return store.limits_storage() or ("memory://", {})


class LoginThrottle:
    """One limit (``"5 per minute"``) over one storage, fixed window.

    The limit is parsed when the app starts (a bad one fails there); the
    storage is made on first use, since a Redis that is down at start may come
    up later. ``storage`` is a ``limits`` URI and its options: the override
    ``JWT_LOGIN_RATE_LIMIT_STORAGE``, else what the token store offers (its
    Redis or Redis Cluster, with its timeout and connection bound), else memory.
    """

    def __init__(
        self,
        limit: str,
        storage: Tuple[str, Dict[str, Any]],
        bounded: Optional[Callable[[Callable[[], Any]], Any]] = None,
    ) -> None:
        from limits import parse

        try:
            self.item = parse(limit)
        except ValueError as exc:
            raise ConfigurationError("JWT_LOGIN_RATE_LIMIT %r: %s" % (limit, exc)) from exc
        self._uri, self._options = storage
        #: Runs each storage call under the token store's bounds (connection
        #: limit, deadline, retries) when the counters share its Redis.
        self._bounded = bounded or (lambda action: action())
        self._limiter: Any = None
        self._lock = threading.Lock()
        self.storage: Any = None

    @property
    def limiter(self) -> Any:
        """The ``limits`` limiter, its storage made on first use."""
        limiter = self._limiter
        if limiter is not None:
            return limiter
        from limits import storage, strategies

        with self._lock:
            if self._limiter is None:
                if self._uri.startswith("memory://"):
                    self.storage = storage.storage_from_string(self._uri)
                else:  # a cluster client connects as it is made
                    self.storage = self._bounded(
                        lambda: storage.storage_from_string(self._uri, wrap_exceptions=True, **self._options)
                    )
                self._limiter = strategies.FixedWindowRateLimiter(self.storage)
            return self._limiter

    def _hit(self, key: Tuple[str, str]) -> bool:
        return self._bounded(lambda: self.limiter.hit(self.item, *key))

    def _stats(self, key: Tuple[str, str]) -> Any:
        return self._bounded(lambda: self.limiter.get_window_stats(self.item, *key))

    def _keys(self, username: str) -> Tuple[Tuple[str, str], Tuple[str, str]]:
        # The address first: while it is over its limit, no counter is made for
        # the usernames it tries. Usernames are hashed: the store never holds
        # what someone typed. The namespace is part of the key itself (every
        # limits version keeps it).
        name = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return ("tokenauth-login/addr", address_key(request.remote_addr)), ("tokenauth-login/user", name)

    def reserve(self, username: str, typed: Optional[str] = None) -> List[Tuple[str, str]]:
        """Count this attempt against both limits, atomically, before the
        password is checked (so parallel guesses cannot all slip through);
        raise 429 when either limit is already used up. ``username`` is in
        the form the throttle counts (:func:`normalize_username`); ``typed``,
        what the client sent, goes into the ``login_throttled`` signal."""
        reserved: List[Tuple[str, str]] = []
        for key in self._keys(username):
            reserved.append(key)
            if not self._hit(key):
                reset = self._stats(key).reset_time
                self.refund(reserved)
                wait = max(1, math.ceil(reset - time.time()))
                logger.warning("login throttled (%s over %s)", key[0].rsplit("/", 1)[-1], self.item)
                signals.send(
                    signals.login_throttled,
                    username=username if typed is None else typed,
                    address=request.remote_addr,
                    retry_after=wait,
                )
                raise JWTError(
                    "Too Many Requests",
                    "Too many failed logins; try again in %d seconds" % wait,
                    429,
                    {"Retry-After": str(wait)},
                )
        return reserved

    def refund(self, reserved: List[Tuple[str, str]]) -> None:
        """Give back reserved attempts: a success (or a handler error) is not a failure.

        A window that ended meanwhile has nothing to give back (a decrement
        there would start the next window below zero)."""
        for key in reserved:
            if self._stats(key).remaining < self.item.amount:
                name, expiry = self.item.key_for(*key), self.item.get_expiry()
                self._bounded(partial(self.storage.incr, name, expiry, amount=-1))


def normalize_username(username: str) -> str:
    """The form of a username the login limit counts failures under: Unicode
    NFKC with case folded (``"Ｊoe"``, ``"JOE"`` and ``"joe"`` are one), and
    no surrounding white space. An app whose own lookup treats other variants
    as the same user sets its own rule with ``@jwt.login_username_loader``."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())
    return folded.strip()


#: An IPv6 client is counted by its /64 network: one subscriber's share
#: (RFC 6177), which it can fill with as many addresses as it likes.
IPV6_PREFIX = 64


def address_key(address: Optional[str]) -> str:
    """How a client address is counted: an IPv4 address as it is, an IPv6 one
    by its /64 network (an IPv4-mapped one as its IPv4 address)."""
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])  # no zone index
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, IPV6_PREFIX), strict=False))
    return str(parsed)


def _storage_errors() -> Tuple[Type[BaseException], ...]:
    from limits.errors import StorageError

    return (StorageError, StoreError)


def throttled_login(username: str, attempt: Any) -> Any:
    """Run ``attempt()`` (the authentication handler) under the login limit;
    a falsy result counts as a failure."""
    from .state import app_state

    state = app_state()
    try:
        throttle: Optional[LoginThrottle] = state.login_throttle()
    except (StoreError, ConfigurationError) as exc:  # settings changed after init_app
        logger.error("login throttle cannot work: %s", exc)
        raise StoreUnavailable("The login throttle store is unreachable; try again shortly") from exc
    if throttle is None:
        return attempt()
    try:
        loader = state.jwt.login_username_callback
        counted = loader(username)
        if not isinstance(counted, str):
            raise TypeError("the login_username_loader must return a str, not %r" % type(counted))
    except TypeError as exc:
        logger.error("login throttle cannot work: %s", exc)
        raise StoreUnavailable("The login throttle cannot count this login; try again shortly") from exc
    try:
        reserved = throttle.reserve(counted, username)
    except _storage_errors() as exc:
        if not config.store_fail_open:
            logger.error("login throttle store unreachable: %s", exc)
            raise StoreUnavailable("The login throttle store is unreachable; try again shortly") from exc
        logger.warning("login throttle store unreachable, not throttling (fail open): %s", exc)
        return attempt()
    identity = None
    try:
        identity = attempt()
    finally:
        if identity:  # only failures stay counted (a handler error is not a failure)
            try:
                throttle.refund(reserved)
            except _storage_errors() as exc:
                logger.warning("could not give back a successful login's count: %s", exc)
    return identity
