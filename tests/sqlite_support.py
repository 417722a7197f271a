"""Helpers for the SQLite store's tests (a helper, not a test module): what a
sibling OS process does with its own store on the same file, for the tests
that need real processes (spawned, so no connection crosses a fork)."""

from __future__ import annotations

import sqlite3
from typing import Any, Optional

from flask_tokenauth.store import TokenRef
from flask_tokenauth.store.sqlite import SQLiteStore


def empty_sqlite(path: str) -> None:
    """Delete every row but the file's epoch: what a test wrote goes, and the
    apps already running on the file see no lost state."""
    with sqlite3.connect(path, timeout=5) as conn:
        for table in ("revoked", "rotations", "seen", "counters", "signers"):
            conn.execute("DELETE FROM %s" % table)


def race_rotation(path: str, index: int, start: Any, results: Any) -> None:
    """In a process of its own: wait for ``start``, then spend refresh token
    ``r0`` of family ``race``; puts ``(index, outcome)`` on ``results``."""
    store = SQLiteStore(path, timeout=5.0)
    store.prepare()
    start.wait(20)
    outcome: Optional[str] = store.rotate(
        TokenRef(None, "race", "i:1"), "r0", "successor-%d" % index, "record-%d" % index, 60
    )
    results.put((index, outcome))
    store.close()


def sibling(path: str, commands: Any, answers: Any) -> None:
    """A process of its own with a store on ``path``: for each command
    ``("lookup", jti)`` it answers the lookup's verdict; ``None`` ends it."""
    store = SQLiteStore(path, timeout=5.0, cache_size=1000)
    store.prepare()
    while True:
        command = commands.get(timeout=20)
        if command is None:
            break
        verb, jti = command
        status = store.lookup(TokenRef(jti, "fam-" + jti, "i:1"))
        answers.put((status.token_revoked, status.family_revoked, status.cutoff))
    store.close()
