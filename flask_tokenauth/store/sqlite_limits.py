"""The login throttle's counters in the SQLite store, as a ``limits`` storage.

``limits`` (the library Flask-Limiter uses) has no SQLite storage of its own;
this one registers the scheme ``tokenauth+sqlite`` and is handed the store
object itself (``storage_from_string("tokenauth+sqlite://", store=...)``).
Fixed windows start at a counter's first hit, as in ``limits``' own storages.
Written for every ``limits`` from 4.0 (where ``incr`` also takes
``elastic_expiry``) to 5.x.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Optional, Tuple, Type

from limits.storage import Storage

from ..store import StoreError

SCHEME = "tokenauth+sqlite"


class SQLiteCounters(Storage):
    """``limits`` counters kept by a :class:`~flask_tokenauth.store.sqlite.SQLiteStore`."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(
        self, uri: Optional[str] = None, wrap_exceptions: bool = False, store: Any = None, **options: Any
    ) -> None:
        if store is None:
            raise ValueError("%s:// counters need the SQLite store object (store=...)" % SCHEME)
        self.store = store
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> Tuple[Type[Exception], ...]:
        return (StoreError, sqlite3.Error)

    def incr(self, key: str, expiry: Any, amount: int = 1, *, elastic_expiry: bool = False, **_: Any) -> int:
        return int(self.store.incr(key, float(expiry), amount=amount))

    def get(self, key: str) -> int:
        return int(self.store.counter(key)[0])

    def get_expiry(self, key: str) -> float:
        return float(self.store.counter(key)[1])

    def check(self) -> bool:
        try:
            self.store.counter("tokenauth-check")
        except StoreError:
            return False
        return True

    def reset(self) -> Optional[int]:
        return None

    def clear(self, key: str) -> None:
        self.store.clear_counter(key)

    def __repr__(self) -> str:
        return "<SQLiteCounters %s>" % getattr(self.store, "description", "?")


__all__ = ["SCHEME", "SQLiteCounters"]
