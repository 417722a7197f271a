"""Per-app runtime state, kept in ``app.extensions["flask_tokenauth"]``.

``app.extensions["jwt"]`` holds the :class:`~flask_tokenauth.JWT` object
itself, as Flask-JWT did (apps read it from there); this module holds what
one app needs at run time: its prepared keys and its cache of verified tokens.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Dict, Iterable, Mapping, Optional, Tuple

from flask import current_app

from .codec import Keyring
from .config import DEFAULTS, Config, seconds
from .errors import ConfigurationError
from .issuers import outside_from_config
from .keys import fingerprint
from .serving import Processes, ProcessStore, needs_shared_state
from .store import StoreError, TokenStore, names_memory, open_store
from .store.memory import MemoryStore
from .store.sqlite import DEFAULT_FILE, SQLiteStore

if TYPE_CHECKING:  # pragma: no cover
    from .extension import JWT

EXTENSION_KEY = "flask_tokenauth"
#: The settings that give an app keys of its own.
_OWN_KEY_SETTINGS = ("JWT_SECRET_KEY", "JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY", "JWT_KEYS")
#: The store's spec before it is known how the app is served (never a setting).
_UNSETTLED = object()

logger = logging.getLogger("flask_tokenauth")


class AppState:
    """Prepared keys and verified-token cache of one app, rebuilt on config change."""

    def __init__(
        self,
        jwt: JWT,
        config: Mapping[str, Any],
        explicit: Iterable[str] = (),
        instance_path: Optional[str] = None,
    ) -> None:
        self.jwt = jwt
        #: The app's instance folder, where relative ``sqlite:///`` paths live.
        self.instance_path = instance_path
        #: How the app is served: one process or several.
        self.processes = Processes()
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
        self._store_spec: Any = _UNSETTLED
        self._opened_spec: Any = _UNSETTLED
        self._throttle: Any = None
        self._throttle_spec: Any = None
        self._signer_checked: Optional[Tuple[Keyring, int]] = None
        self._signer_recheck = 0.0
        self._signer_warned = False
        if hasattr(os, "register_at_fork"):
            me = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: _after_fork(me))

    def explicit(self, key: str) -> bool:
        """The app chose this setting: set before init_app, or changed since."""
        return key in self.explicitly_set or self.config.get(key) != DEFAULTS.get(key)

    def chose_own_keys(self) -> bool:
        """The app set keys of its own (JWT_SECRET_KEY other than the copy of
        SECRET_KEY that init_app makes, JWT_PRIVATE_KEY, JWT_PUBLIC_KEY or JWT_KEYS)."""
        conf = self.config
        if any(key in self.explicitly_set for key in _OWN_KEY_SETTINGS):
            return True
        if any(conf.get(key) is not None for key in _OWN_KEY_SETTINGS[1:]):
            return True
        secret = conf.get("JWT_SECRET_KEY")
        return secret is not None and secret != conf.get("SECRET_KEY")

    def prepared_keyring(self) -> Keyring:
        """The keys prepared last, without comparing the settings again: for
        work that follows a verification in the same request."""
        keyring = self._keyring
        return keyring if keyring is not None else self.keyring()

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
            own = (remote is None and not outside) or self.chose_own_keys()
            keyring = Keyring(
                get("JWT_ALGORITHM"),
                # An app that trusts outside issuers has keys of its own only when it
                # sets them: Flask's SECRET_KEY (for sessions) never signs its tokens.
                secret=(settings[1] if settings[1] is not None else settings[2]) if own else None,
                private_key=get("JWT_PRIVATE_KEY") if own else None,
                public_key=get("JWT_PUBLIC_KEY") if own else None,
                keys=get("JWT_KEYS") if own else None,
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
        later (the setting changed) that cannot work is a StoreError (503).
        Until a request or a fork tells how the app is served, each call
        looks again (see :mod:`flask_tokenauth.serving`)."""
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
        """Open (and check) the store ``JWT_TOKEN_STORE`` names, unless it is
        open, and tell it how the app is served once that is known."""
        get = self.config.get
        with self._lock:
            spec = get("JWT_TOKEN_STORE", DEFAULTS["JWT_TOKEN_STORE"])
            store = self._store
            if store is None or spec is not self._opened_spec:
                store = self._open(spec)
                self._store, self._opened_spec = store, spec
            several = self.processes.several()
            if several is not None and isinstance(store, ProcessStore):
                store.serve(several=several, needs_shared=needs_shared_state(get))
            # The fast path of store() once the app's serving is known.
            self._store_spec = spec if several is not None else _UNSETTLED
            return store

    def _open(self, spec: Any) -> TokenStore:
        get = self.config.get
        timeout = seconds(get("JWT_TOKEN_STORE_TIMEOUT", DEFAULTS["JWT_TOKEN_STORE_TIMEOUT"]))
        cache_size = int(get("JWT_TOKEN_STORE_CACHE_SIZE", DEFAULTS["JWT_TOKEN_STORE_CACHE_SIZE"]))
        if isinstance(spec, MemoryStore) or names_memory(spec):
            # Unset: memory in one process, the instance folder's file in several.
            path = self.default_file() if spec is None else None
            return ProcessStore(
                path,
                lambda: self._prepared(
                    SQLiteStore(str(path), timeout=timeout, cache_size=cache_size, fresh_start=True)
                ),
                spec if isinstance(spec, MemoryStore) else None,
            )
        return self._prepared(
            open_store(
                spec,
                prefix=get("JWT_TOKEN_STORE_PREFIX", DEFAULTS["JWT_TOKEN_STORE_PREFIX"]),
                timeout=timeout,
                max_connections=int(
                    get("JWT_TOKEN_STORE_MAX_CONNECTIONS", DEFAULTS["JWT_TOKEN_STORE_MAX_CONNECTIONS"])
                ),
                cache_size=cache_size,
                instance_path=self.instance_path,
            )
        )

    @staticmethod
    def _prepared(store: TokenStore) -> TokenStore:
        store.prepare()
        return store

    def default_file(self) -> str:
        """Where the app's SQLite store is when JWT_TOKEN_STORE is unset."""
        return os.path.join(self.instance_path or os.getcwd(), DEFAULT_FILE)

    def _after_fork(self) -> None:
        self.processes.forked = True
        self._store_spec = _UNSETTLED

    def login_throttle(self) -> Any:
        """The app's login throttle, or ``None`` when JWT_LOGIN_RATE_LIMIT is unset.

        Its counters go where ``JWT_LOGIN_RATE_LIMIT_STORAGE`` says, else beside
        the token store's entries (its SQLite file, Redis or Redis Cluster),
        else in memory. Counters in memory while several processes serve the
        app would each allow the limit: a StoreError (503) instead."""
        conf = self.config
        limit = conf.get("JWT_LOGIN_RATE_LIMIT")
        if not limit:
            return None
        from .throttle import LoginThrottle, storage_for

        override = conf.get("JWT_LOGIN_RATE_LIMIT_STORAGE")
        store = self.store()
        timeout = seconds(conf.get("JWT_TOKEN_STORE_TIMEOUT", DEFAULTS["JWT_TOKEN_STORE_TIMEOUT"]))
        storage = storage_for(override, store, timeout)
        if storage[0].startswith("memory://") and self.processes.several():
            raise StoreError(
                "the login throttle's counters would be in each process's memory, and several "
                "processes serve this app: set JWT_LOGIN_RATE_LIMIT_STORAGE to a shared storage, "
                "or JWT_TOKEN_STORE to sqlite:/// or redis://"
            )
        spec = (limit, override, storage[0], id(storage[1].get("store")))
        if self._throttle is None or spec != self._throttle_spec:
            bounded = None if override else getattr(store, "bounded", None)
            with self._lock:  # checked again inside: concurrent first logins share one throttle
                if self._throttle is not None and spec == self._throttle_spec:
                    return self._throttle
                self._throttle = LoginThrottle(limit, storage, bounded)
                self._throttle_spec = spec
        return self._throttle

    def check_signers(self, keyring: Keyring, *, again: bool = False) -> None:
        """Warn when processes sharing the store sign with other keys than this
        one (a SECRET_KEY made per process, say): tokens made by one are then
        refused by the others. Asked once per key and process when it first
        signs, and ``again`` (at most every 30 s) when a signature fails."""
        now = time.monotonic()
        if self._signer_checked == (keyring, os.getpid()) and not (again and now >= self._signer_recheck):
            return
        self._signer_checked, self._signer_recheck = (keyring, os.getpid()), now + 30.0
        mark = None if keyring.current is None else fingerprint(keyring.current)
        if mark is None:
            return
        try:
            others = self.store().other_signers(mark)
        except StoreError:
            return
        if others and not self._signer_warned:
            self._signer_warned = True
            logger.warning(
                "processes of this app sign tokens with different keys (this one, %d, and %s): "
                "a token made by one is refused by the others (\"Signature verification failed\"). "
                "Give every process the same SECRET_KEY (or JWT_SECRET_KEY, JWT_PRIVATE_KEY): from the "
                "environment, or with flask_tokenauth.instance_secret(app)",
                os.getpid(),
                ", ".join(str(pid) for pid in sorted(others)),
            )

    def signature_failed(self) -> None:
        """A token's signature did not verify: perhaps a sibling signs with another key."""
        keyring = self._keyring
        if keyring is not None:
            self.check_signers(keyring, again=True)

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


def _after_fork(ref: weakref.ref[AppState]) -> None:
    state = ref()
    if state is not None:
        state._after_fork()


def app_state() -> AppState:
    """The current app's state; a clear error if ``init_app`` was never called."""
    try:
        return current_app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            "flask_tokenauth is not set up on this app: call JWT(app) or jwt.init_app(app)"
        ) from None
