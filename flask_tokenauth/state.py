"""Per-app runtime state, kept in ``app.extensions["flask_tokenauth"]``.

``app.extensions["jwt"]`` holds the :class:`~flask_tokenauth.JWT` object
itself, as Flask-JWT did (apps read it from there); this module holds what
one app needs at run time: its prepared keys and its cache of verified tokens.
"""

from __future__ import annotations

import copy
import logging
import threading
from typing import TYPE_CHECKING, Any, Dict, Iterable, Mapping, Optional, Tuple

from flask import current_app

from .codec import Keyring
from .config import DEFAULTS, Config, seconds
from .errors import ConfigurationError
from .issuers import outside_from_config
from .store import StoreError, TokenStore, open_store

if TYPE_CHECKING:  # pragma: no cover
    from .extension import JWT

EXTENSION_KEY = "flask_tokenauth"

logger = logging.getLogger("flask_tokenauth")


class AppState:
    """Prepared keys and verified-token cache of one app, rebuilt on config change."""

    def __init__(self, jwt: JWT, config: Mapping[str, Any], explicit: Iterable[str] = ()) -> None:
        self.jwt = jwt
        #: The JWT_* keys the app set itself before init_app (the rest are defaults).
        self.explicitly_set = frozenset(explicit)
        #: The app's own config mapping (read live: changes after init_app
        #: count), held here so the request path resolves no proxy to read it.
        self.config = config
        self._settings: Optional[tuple] = None
        self._keyring: Optional[Keyring] = None
        self._lock = threading.Lock()
        #: token string -> (claims, deadline): a token verified once is only
        #: checked for expiry until it leaves the cache.
        self.verified: Dict[str, Tuple[Dict[str, Any], float]] = {}
        self.cache_size = DEFAULTS["JWT_VERIFIED_TOKEN_CACHE_SIZE"]
        self.exp_leeway: float = 0.0
        #: The longest lifetime of a token this process has signed, so that
        #: "log out everywhere" outlasts tokens made with a long expires_delta.
        self.longest_issued = 0.0
        self._store: Optional[TokenStore] = None
        self._store_spec: Any = None
        self._throttle: Any = None
        self._throttle_spec: Any = None

    def explicit(self, key: str) -> bool:
        """The app chose this setting: set before init_app, or changed since."""
        return key in self.explicitly_set or self.config.get(key) != DEFAULTS.get(key)

    def keyring(self, conf: Optional[Mapping[str, Any]] = None) -> Keyring:
        """The keys for the app's current settings, prepared once per settings."""
        if conf is None:
            conf = self.config
        settings = Config.verification_settings(conf)
        keyring = self._keyring
        if keyring is not None and settings == self._settings:
            return keyring
        with self._lock:
            get = lambda key: conf.get(key, DEFAULTS.get(key))  # noqa: E731
            remote, outside = outside_from_config(get, self.explicit("JWT_ALGORITHM"))
            keyring = Keyring(
                get("JWT_ALGORITHM"),
                secret=settings[1] if settings[1] is not None else settings[2],
                private_key=get("JWT_PRIVATE_KEY"),
                public_key=get("JWT_PUBLIC_KEY"),
                keys=get("JWT_KEYS"),
                remote=remote,
                outside=outside,
            )
            self.verified = {}
            self.cache_size = int(
                conf.get("JWT_VERIFIED_TOKEN_CACHE_SIZE", DEFAULTS["JWT_VERIFIED_TOKEN_CACHE_SIZE"])
            )
            self.exp_leeway = seconds(conf.get("JWT_LEEWAY", DEFAULTS["JWT_LEEWAY"]))
            # A deep copy, so that a list edited in place (JWT_KEYS.pop()) is a change.
            self._keyring, self._settings = keyring, copy.deepcopy(settings)
        return keyring

    def store(self) -> TokenStore:
        """The app's token store, opened on first use and reopened when
        ``JWT_TOKEN_STORE`` changes. Opened at ``init_app`` too, where a
        setting that cannot work raises ConfigurationError; a store opened
        later (the setting changed) that cannot work is a StoreError (503)."""
        spec = self.config.get("JWT_TOKEN_STORE", DEFAULTS["JWT_TOKEN_STORE"])
        store = self._store
        if store is not None and spec is self._store_spec:
            return store
        try:
            return self.open_store()
        except ConfigurationError as exc:
            logger.error("JWT_TOKEN_STORE cannot work: %s", exc)
            raise StoreError(str(exc)) from exc

    def open_store(self) -> TokenStore:
        """Open (and check) the store ``JWT_TOKEN_STORE`` names, unless it is open."""
        conf = self.config
        get = conf.get
        with self._lock:
            spec = get("JWT_TOKEN_STORE", DEFAULTS["JWT_TOKEN_STORE"])
            if self._store is not None and spec is self._store_spec:
                return self._store
            store = open_store(
                spec,
                prefix=get("JWT_TOKEN_STORE_PREFIX", DEFAULTS["JWT_TOKEN_STORE_PREFIX"]),
                timeout=seconds(get("JWT_TOKEN_STORE_TIMEOUT", DEFAULTS["JWT_TOKEN_STORE_TIMEOUT"])),
                max_connections=int(
                    get("JWT_TOKEN_STORE_MAX_CONNECTIONS", DEFAULTS["JWT_TOKEN_STORE_MAX_CONNECTIONS"])
                ),
                cache_size=int(get("JWT_TOKEN_STORE_CACHE_SIZE", DEFAULTS["JWT_TOKEN_STORE_CACHE_SIZE"])),
            )
            store.prepare()
            self._store, self._store_spec = store, spec
            return store

    def login_throttle(self) -> Any:
        """The app's login throttle, or ``None`` when JWT_LOGIN_RATE_LIMIT is unset.

        Its counters go where ``JWT_LOGIN_RATE_LIMIT_STORAGE`` says, else beside
        the token store's entries (its Redis or Redis Cluster), else in memory."""
        conf = self.config
        limit = conf.get("JWT_LOGIN_RATE_LIMIT")
        if not limit:
            return None
        spec = (
            limit,
            conf.get("JWT_TOKEN_STORE", DEFAULTS["JWT_TOKEN_STORE"]),
            conf.get("JWT_LOGIN_RATE_LIMIT_STORAGE"),
        )
        if self._throttle is None or spec != self._throttle_spec:
            from .throttle import LoginThrottle, storage_for

            store = self.store()
            timeout = seconds(conf.get("JWT_TOKEN_STORE_TIMEOUT", DEFAULTS["JWT_TOKEN_STORE_TIMEOUT"]))
            storage = storage_for(spec[2], store, timeout)
            bounded = None if spec[2] else getattr(store, "bounded", None)
            with self._lock:  # checked again inside: concurrent first logins share one throttle
                if self._throttle is not None and spec == self._throttle_spec:
                    return self._throttle
                self._throttle = LoginThrottle(limit, storage, bounded)
                self._throttle_spec = spec
        return self._throttle

    def note_lifetime(self, seconds: float) -> None:
        if seconds > self.longest_issued:
            self.longest_issued = float(seconds)

    def remember(self, token: str, claims: Dict[str, Any], until: Optional[float] = None) -> None:
        """Cache a verified token until its ``exp`` (plus leeway) passes, or
        ``until`` (an outside issuer's key-set cache ends) if that is sooner."""
        if self.cache_size <= 0:
            return
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)):
            return  # no usable exp: verify it every time
        deadline = exp + self.exp_leeway
        if until is not None:
            deadline = min(deadline, until)
        cache = self.verified
        while len(cache) >= self.cache_size:
            try:
                del cache[next(iter(cache))]
            except (KeyError, RuntimeError, StopIteration):
                break
        cache[token] = (claims, deadline)


def app_state() -> AppState:
    """The current app's state; a clear error if ``init_app`` was never called."""
    try:
        return current_app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            "flask_tokenauth is not set up on this app: call JWT(app) or jwt.init_app(app)"
        ) from None
