"""How the app is served, one process or several, and the store that follows.

A process's memory is the right store for one process. A server that runs
several (``gunicorn -w 4``, uWSGI's processes, werkzeug's ``processes=N``)
would give each its own: a logout would hold in one worker of four, a copied
refresh token would go unnoticed, a login limit would be four times weaker.
Two signals say an app is served by several processes: PEP 3333's
``wsgi.multiprocess`` in a request's environ, and a fork after ``init_app``
(``gunicorn --preload``).

With ``JWT_TOKEN_STORE`` unset, the app's store is :class:`ProcessStore`:

- memory while the app runs in one process, as always;
- the SQLite file ``tokenauth.sqlite3`` in the app's instance folder once the
  app is served by several processes and uses what needs state shared by all
  of them: the refresh or logout route, a login limit, DPoP, or a
  revocation made in code (said once in each process's log). Every process
  then uses that file, found by its path;
- that file whenever it exists, in every process of the app, the
  ``flask tokenauth`` commands included.

With ``JWT_TOKEN_STORE = "memory://"`` set, the app's choice stands, and
nothing that would split is done: in several processes every write (logout,
refresh, revocation, a DPoP proof, a throttled login) is a 503, with a log
line naming the fix. Checks still run, and agree (nothing can be revoked).
An app that writes nothing (a Flask-JWT app as it was) sees no difference.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from flask import has_request_context, request

from .store import Status, StoreError, TokenRef, TokenStore
from .store.memory import MemoryStore

logger = logging.getLogger("flask_tokenauth")

#: Settings that make an app need state shared by all its processes.
SHARED_STATE_SETTINGS = ("JWT_REFRESH_URL_RULE", "JWT_LOGOUT_URL_RULE", "JWT_LOGIN_RATE_LIMIT", "JWT_DPOP")


def needs_shared_state(get: Callable[[str], Any]) -> bool:
    """The app's settings use something a per-process store would split."""
    return any(get(key) for key in SHARED_STATE_SETTINGS)


class Processes:
    """What one app knows of the processes serving it."""

    def __init__(self) -> None:
        #: This process was forked after init_app (``gunicorn --preload``);
        #: set by the app state's at-fork hook.
        self.forked = False

    def several(self) -> Optional[bool]:
        """Whether several processes serve the app: ``None`` while it cannot be
        told (no request seen and no fork since init_app)."""
        if self.forked:
            return True
        if has_request_context():
            return bool(request.environ.get("wsgi.multiprocess"))
        return None


class ProcessStore(TokenStore):
    """Memory in one process; in several, the shared file, or 503 for writes.

    ``path`` is the app's SQLite file, made by ``open_file``; ``None`` when
    the app chose ``memory://`` itself (then nothing moves to a file).
    """

    def __init__(
        self, path: Optional[str], open_file: Callable[[], TokenStore], memory: Optional[MemoryStore] = None
    ) -> None:
        self.memory = memory if memory is not None else MemoryStore()
        self.path = path
        self._open_file = open_file
        self._file: Optional[TokenStore] = None
        self._several = False
        self._lock = threading.Lock()
        self._said = False
        if path is not None and os.path.exists(path):
            self._to_file("it exists")

    @property
    def shared(self) -> Optional[TokenStore]:
        """The SQLite store this one moved to, if it did."""
        return self._file

    def serve(self, *, several: bool, needs_shared: bool) -> None:
        """Learn how the app is served (once a request or a fork says)."""
        self._several = several
        if several and needs_shared and self._file is None and self.path is not None:
            try:
                self._to_file("this app is served by several processes")
            except StoreError:
                pass  # said in the log; every write is then a 503

    def _to_file(self, why: str) -> TokenStore:
        with self._lock:
            if self._file is not None:
                return self._file
            try:
                store = self._open_file()
            except Exception as exc:
                logger.error(
                    "JWT_TOKEN_STORE is unset and this app needs a store shared by its processes, "
                    "but %s cannot be used (%s): logouts, refreshes and other writes answer 503 until "
                    "the instance folder is writable, or JWT_TOKEN_STORE names a store (redis://...)",
                    self.path,
                    exc,
                )
                raise StoreError("the shared token store cannot be opened: %s" % exc) from exc
            logger.warning(
                "JWT_TOKEN_STORE is unset: using sqlite:///%s (%s), so that logouts, refresh reuse "
                "detection and login limits hold in every process of this host. Set JWT_TOKEN_STORE "
                "to choose (redis:// for several hosts)",
                self.path,
                why,
            )
            self._file = store
            return store

    def _for_writing(self) -> TokenStore:
        """Where a write goes: memory in one process, else the shared file."""
        found = self._file
        if found is not None:
            return found
        if not self._several:
            return self.memory
        if self.path is None:
            if not self._said:
                self._said = True
                logger.error(
                    "JWT_TOKEN_STORE is memory://, which each process keeps for itself, and this app "
                    "is served by several processes: logouts, refreshes, revocations, DPoP proofs and "
                    "throttled logins answer 503 rather than hold in one process only. Use "
                    "sqlite:///tokenauth.sqlite3 (one host) or redis:// (several hosts), or leave "
                    "JWT_TOKEN_STORE unset"
                )
            raise StoreError("JWT_TOKEN_STORE is memory:// and several processes serve this app")
        return self._to_file("a revocation was made in code")

    # --- the interface ---------------------------------------------------------------

    def lookup(self, ref: TokenRef) -> Status:
        found = self._file
        if found is not None:
            return found.lookup(ref)
        if self._several and self.path is not None and os.path.exists(self.path):
            return self._to_file("another process of this app made it").lookup(ref)
        return self.memory.lookup(ref)

    def revoke_token(self, ref: TokenRef, ttl: float) -> None:
        self._for_writing().revoke_token(ref, ttl)

    def revoke_family(self, ref: TokenRef, ttl: float) -> None:
        self._for_writing().revoke_family(ref, ttl)

    def revoke_identity(self, ref: TokenRef, cutoff: float, ttl: float) -> None:
        self._for_writing().revoke_identity(ref, cutoff, ttl)

    def rotate(
        self, ref: TokenRef, presented: str, successor: str, record: str, ttl: float
    ) -> Optional[str]:
        return self._for_writing().rotate(ref, presented, successor, record, ttl)

    def first_use(self, name: str, ttl: float) -> bool:
        return self._for_writing().first_use(name, ttl)

    def limits_storage(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        return self._for_writing().limits_storage()

    def other_signers(self, fingerprint: str) -> List[int]:
        found = self._file
        return found.other_signers(fingerprint) if found is not None else []

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
