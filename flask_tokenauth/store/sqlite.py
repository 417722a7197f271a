"""The shared store on one host: an SQLite file, with no server to run.

For the common deployment of one host with several worker processes
(``gunicorn -w 4``): every process opens the same file (the standard
library's ``sqlite3``, in WAL mode, so reads never wait for a writer).

**Fresh on the next request.** Each process keeps the answers it read in
memory, and before every lookup asks SQLite whether any connection, in any
process, has committed since (``PRAGMA data_version``: a read of the WAL
index in shared memory, no disk access) and whether the path still names the
file it opened. A revocation committed by one worker is therefore refused by
every other on its very next request.

**Atomic.** Each write is one transaction; a rotation compares and sets in
one ``BEGIN IMMEDIATE`` transaction, so of any number of concurrent refreshes
in any process exactly one wins. Revocations are committed with
``synchronous=FULL`` (they survive a power cut); counters, rotation records
and DPoP proof ids with ``NORMAL`` (they survive a crash of the process).

**Bounded.** Every row has a deadline. An expired row is ignored at once and
deleted in batches as writes come in; an index on the deadline makes a sweep
cost what expired, not what is stored.

**Lost state.** The file records the second it was created (its epoch).
Tokens issued before it are refused: a new file, or one put in place of the
file a process had open, cannot vouch for tokens revoked in a file it never
was (a process notices the replacement on its next lookup, reopens, and
moves the epoch to that moment). The file an app with ``JWT_TOKEN_STORE``
unset moves to when several processes serve it starts with no epoch: until
then the app kept state per process, which the file only makes whole.

**Fork-safe.** No connection crosses a fork: a child abandons what its parent
opened, without closing it (closing would release the parent's locks), and
opens its own.

**One host.** SQLite's locking needs a local filesystem: a file on NFS, SMB
or another network filesystem is refused. Several hosts share a Redis.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
import time
import weakref
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, TypeVar

from ..errors import ConfigurationError
from . import StateLost, Status, StoreError, TokenRef, TokenStore, _safe, required

logger = logging.getLogger("flask_tokenauth")

T = TypeVar("T")

#: What ``sqlite:///name`` is called when the app names no file of its own
#: (the store an app on several processes falls back to; see ``serving``).
DEFAULT_FILE = "tokenauth.sqlite3"
#: The oldest SQLite with what the store needs (UPSERT).
MIN_SQLITE_VERSION = (3, 24, 0)
#: Filesystems whose locks do not hold across hosts (as ``/proc/self/mountinfo`` names them).
NETWORK_FILESYSTEMS = frozenset(
    (
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "lustre",
        "gpfs", "ncpfs", "coda", "fuse.sshfs", "fuse.glusterfs", "fuse.cephfs", "fuse.s3fs",
        "fuse.rclone", "fuse.gcsfuse", "fuse.juicefs", "beegfs", "ocfs2", "gfs2", "orangefs",
    )
)
_SWEEP_EVERY = 256  # writes of this process between two sweeps
_SWEEP_BATCH = 1000  # expired rows deleted per table and sweep, at most
_TABLES = ("revoked", "rotations", "seen", "counters")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    # name: "j:<jti>", "f:<family>" or "i:<identity>"; cutoff only for identities.
    "CREATE TABLE IF NOT EXISTS revoked (name TEXT PRIMARY KEY, until REAL NOT NULL, cutoff REAL)"
    " WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS rotations (family TEXT PRIMARY KEY, current TEXT NOT NULL,"
    " record TEXT NOT NULL, until REAL NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS seen (name TEXT PRIMARY KEY, until REAL NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL,"
    " until REAL NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS signers (pid INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL)",
) + tuple("CREATE INDEX IF NOT EXISTS %s_until ON %s (until)" % (t, t) for t in _TABLES)

#: Connections a forked child inherited: kept, never closed (see the module docstring).
_ABANDONED: List[sqlite3.Connection] = []


def path_of(url: str, instance_path: Optional[str]) -> str:
    """The file ``sqlite:///relative`` (under the app's instance folder) or
    ``sqlite:////absolute`` names, as Flask-SQLAlchemy reads them."""
    head, sep, rest = url.partition("://")
    if head.lower() != "sqlite" or not sep or not rest.startswith("/") or "?" in rest or "#" in rest:
        raise ConfigurationError(
            "JWT_TOKEN_STORE %r: use sqlite:///name (a file in the app's instance folder) or "
            "sqlite:////absolute/path" % _safe(url)
        )
    path = rest[1:]
    if not path or path.endswith("/"):
        raise ConfigurationError("JWT_TOKEN_STORE %r names no file" % url)
    if os.path.isabs(path):
        return path
    if instance_path is None:
        raise ConfigurationError(
            "JWT_TOKEN_STORE %r is relative to the app's instance folder, which this store "
            "was not given" % url
        )
    return os.path.join(instance_path, path)


def filesystem_of(path: str, mountinfo: str = "/proc/self/mountinfo") -> Optional[str]:
    """The type of the filesystem ``path`` lives on (``"ext4"``, ``"nfs4"``...),
    or ``None`` where the system does not say (not Linux)."""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as lines:
            mounts = lines.read().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, kind = -1, None
    for line in mounts:
        # "<id> <parent> <dev> <root> <mount point> <options> [optional...] - <type> <source> <super>"
        fields, _, tail = line.partition(" - ")
        parts = fields.split(" ")
        if len(parts) < 5 or not tail:
            continue
        point = parts[4].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > best:
            best, kind = len(point), tail.split(" ", 1)[0]
    return kind


def fingerprint_of(name: str) -> str:
    """A row name's stable stand-in in messages (never the name itself)."""
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]


class SQLiteStore(TokenStore):
    """Revocation entries, rotation records, DPoP proof ids and login counters
    in one SQLite file shared by every process of one host."""

    def __init__(
        self, path: str, *, timeout: float = 1.0, cache_size: int = 50000, fresh_start: bool = False
    ) -> None:
        self.path = path
        #: A file made here holds everything the app ever revoked (it ran on
        #: per-process memory until now): tokens issued before it are not refused.
        self.fresh_start = fresh_start
        self.timeout = float(timeout)
        self.cache_size = int(cache_size)
        self.description = "sqlite:///" + path  # the URL of the absolute path: no secret in it
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._reader: Optional[sqlite3.Connection] = None
        self._writer: Optional[sqlite3.Connection] = None
        self._file: Optional[Tuple[int, int]] = None  # (st_dev, st_ino) of the file opened
        self._epoch = 0.0
        self._opened = False  # a file was opened once: one missing later was deleted
        self._pid = os.getpid()
        #: ref -> (status, valid until): answers read since the data last changed.
        self._answers: collections.OrderedDict[TokenRef, Tuple[Status, float]] = collections.OrderedDict()
        self._version: Optional[int] = None
        self._writes = 0
        if hasattr(os, "register_at_fork"):
            me = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: _after_fork(me))

    @classmethod
    def open(
        cls, url: str, *, instance_path: Optional[str] = None, timeout: float = 1.0, cache_size: int = 50000
    ) -> SQLiteStore:
        """The store on ``sqlite:///...`` (nothing is opened yet)."""
        return cls(path_of(url, instance_path), timeout=timeout, cache_size=cache_size)

    # --- connections ---------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # Made readable by its owner only (SQLite gives the -wal and -shm files
        # the same mode): rotation records can hold the tokens a refresh answered.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA busy_timeout = %d" % int(self.timeout * 1000))
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError("%s cannot use WAL mode (journal_mode is %s)" % (self.description, mode))
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _current(self) -> sqlite3.Connection:
        """This process's reader connection (held under the read lock), once it
        is sure its connections are its own and still name the file at ``path``."""
        if self._pid != os.getpid():  # a fork that ran no at-fork hook
            self._forget_connections(abandon=True)
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            found = None
        here = None if found is None else (found.st_dev, found.st_ino)
        if here is None or self._file != here or self._reader is None:
            # The file this process had open was deleted or replaced: what it held is lost.
            self._reopen(lost=self._file is not None)
        assert self._reader is not None
        return self._reader

    def _reopen(self, *, lost: bool) -> None:
        with self._write_lock:
            self._forget_connections(abandon=False)
            if lost:
                logger.warning(
                    "token store %s: the file was deleted or replaced; tokens issued before now "
                    "are refused",
                    self.description,
                )
            writer = self._connect()
            reader = self._connect()
            epoch, made = self._create(writer, lost)
            found = os.stat(self.path)  # the file the connections opened
            self._writer, self._reader = writer, reader
            self._file = (found.st_dev, found.st_ino)
            self._epoch = epoch
            self._opened = True
            self._answers.clear()
            self._version = None
            if made and epoch > 0:
                logger.warning(
                    "token store %s is new: tokens issued before %s are refused",
                    self.description,
                    time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch)),
                )

    def _create(self, conn: sqlite3.Connection, lost: bool) -> Tuple[float, bool]:
        """The file's tables and epoch, made by the first process that gets here.

        The epoch is the second the file was made, so that older tokens are
        refused, unless ``fresh_start`` (then 0: nothing came before). A process
        that lost the file it had open moves the epoch to now, whoever made
        the new one."""
        with _immediate(conn):
            for statement in _SCHEMA:
                conn.execute(statement)
            # Whole seconds: a token issued in the file's first second (its iat) is not before it.
            now = float(int(time.time()))
            start = 0.0 if self.fresh_start and not lost else now
            made = conn.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('epoch', ?)", (repr(start),)
            ).rowcount
            if lost:
                conn.execute(
                    "UPDATE meta SET value = ? WHERE name = 'epoch' AND CAST(value AS REAL) < ?",
                    (repr(now), now),
                )
            epoch = float(conn.execute("SELECT value FROM meta WHERE name = 'epoch'").fetchone()[0])
        return epoch, made == 1

    def _forget_connections(self, *, abandon: bool) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                if abandon:
                    _ABANDONED.append(conn)
                else:
                    conn.close()
        self._reader = self._writer = None
        self._file = None
        self._answers.clear()
        self._version = None
        self._pid = os.getpid()

    def _after_fork(self) -> None:
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._forget_connections(abandon=True)

    def _run(self, action: Callable[[], T]) -> T:
        """``action()``, with SQLite's failures (a lock held past the timeout,
        a full disk, a damaged file) turned into StoreError."""
        try:
            return action()
        except (sqlite3.Error, OSError) as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: BaseException) -> StoreError:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return StoreError("%s: %s" % (self.description, reason))

    # --- the interface ---------------------------------------------------------------

    def lookup(self, ref: TokenRef) -> Status:
        try:
            return self._lookup(ref)
        except (sqlite3.Error, OSError) as exc:
            raise self._failed(exc) from exc

    def _lookup(self, ref: TokenRef) -> Status:
        with self._read_lock:
            reader = self._current()
            version = next(reader.execute("PRAGMA data_version"))[0]
            answers = self._answers
            now = time.time()
            if version != self._version:
                answers.clear()
                self._version = version
                # Another process may have moved the epoch (it lost the file it had open).
                self._epoch = float(next(reader.execute("SELECT value FROM meta WHERE name = 'epoch'"))[0])
            else:
                hit = answers.get(ref)
                if hit is not None and hit[1] > now:
                    return hit[0]
            jti, family, identity = ref
            names = []
            if jti is not None:
                names.append("j:" + jti)
            if family is not None:
                names.append("f:" + family)
            if identity is not None:
                names.append("i:" + identity)
            rows = (
                reader.execute(
                    "SELECT name, until, cutoff FROM revoked WHERE name IN (%s) AND until > ?"
                    % ",".join("?" * len(names)),
                    (*names, now),
                ).fetchall()
                if names
                else []
            )
            found = {name[0]: (until, cutoff) for name, until, cutoff in rows}
            cutoff = found["i"][1] if "i" in found and identity is not None else None
            status = Status(
                "j" in found and jti is not None, "f" in found and family is not None, cutoff, self._epoch
            )
            if self.cache_size > 0:
                while len(answers) >= self.cache_size:
                    answers.popitem(last=False)
                # Kept until the data changes, or the first of its rows expires.
                answers[ref] = (status, min((until for until, _ in found.values()), default=float("inf")))
            return status

    def _write(self, action: Callable[[sqlite3.Connection], T], *, durable: bool = False) -> T:
        def run() -> T:
            with self._read_lock:  # the reader's view of the file is checked first
                self._current()
            with self._write_lock:
                writer = self._writer
                if writer is None:
                    raise StoreError("%s: closed" % self.description)
                if durable:
                    writer.execute("PRAGMA synchronous = FULL")
                try:
                    result = action(writer)
                finally:
                    if durable:
                        writer.execute("PRAGMA synchronous = NORMAL")
                self._writes += 1
                if self._writes % _SWEEP_EVERY == 0:
                    self._sweep(writer, time.time())
                return result

        return self._run(run)

    def revoke_token(self, ref: TokenRef, ttl: float) -> None:
        self._revoke("j:" + required(ref.jti, "jti"), ttl, None)

    def revoke_family(self, ref: TokenRef, ttl: float) -> None:
        self._revoke("f:" + required(ref.family, "family"), ttl, None)

    def revoke_identity(self, ref: TokenRef, cutoff: float, ttl: float) -> None:
        self._revoke("i:" + required(ref.identity, "identity"), ttl, float(cutoff))

    def _revoke(self, name: str, ttl: float, cutoff: Optional[float]) -> None:
        # A revocation made again never shortens it, and a later cut-off wins.
        until = time.time() + ttl
        self._write(
            lambda conn: conn.execute(
                "INSERT INTO revoked (name, until, cutoff) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE"
                " SET until = max(until, excluded.until),"
                " cutoff = CASE WHEN cutoff IS NULL OR excluded.cutoff > cutoff"
                " THEN excluded.cutoff ELSE cutoff END",
                (name, until, cutoff),
            ),
            durable=True,
        )

    def rotate(
        self, ref: TokenRef, presented: str, successor: str, record: str, ttl: float
    ) -> Optional[str]:
        family = required(ref.family, "family")

        def spend(conn: sqlite3.Connection) -> Optional[str]:
            now = time.time()
            with _immediate(conn):
                found = conn.execute(
                    "SELECT current, record FROM rotations WHERE family = ? AND until > ?", (family, now)
                ).fetchone()
                if found is not None and found[0] not in (presented, successor):
                    return str(found[1])
                conn.execute(
                    "INSERT OR REPLACE INTO rotations (family, current, record, until) VALUES (?, ?, ?, ?)",
                    (family, successor, record, now + ttl),
                )
                return None

        epoch = self._epoch
        outcome = self._write(spend)
        if self._epoch != epoch:  # the file was replaced under this refresh
            raise StateLost("the token store's file was replaced")
        return outcome

    def first_use(self, name: str, ttl: float) -> bool:
        now = time.time()
        cursor = self._write(
            lambda conn: conn.execute(
                "INSERT INTO seen (name, until) VALUES (?, ?) ON CONFLICT (name) DO UPDATE"
                " SET until = excluded.until WHERE until <= ?",
                (name, now + ttl, now),
            )
        )
        return cursor.rowcount == 1

    # --- login counters (the ``limits`` storage of ``flask_tokenauth.throttle``) ----------

    def incr(self, name: str, expiry: float, amount: int = 1) -> int:
        """Add ``amount`` to counter ``name`` and return it. A counter that is
        missing or expired starts anew and lives ``expiry`` seconds; giving
        back (``amount`` < 1) never starts one, nor goes below zero."""

        def add(conn: sqlite3.Connection) -> int:
            now = time.time()
            with _immediate(conn):
                found = conn.execute(
                    "SELECT value, until FROM counters WHERE name = ? AND until > ?", (name, now)
                ).fetchone()
                if found is None and amount <= 0:
                    return 0  # nothing to give back: the window ended
                value, until = (max(0, found[0] + amount), found[1]) if found else (amount, now + expiry)
                conn.execute(
                    "INSERT OR REPLACE INTO counters (name, value, until) VALUES (?, ?, ?)",
                    (name, value, until),
                )
                return int(value)

        return self._write(add)

    def counter(self, name: str) -> Tuple[int, float]:
        """Counter ``name`` and when it ends (``(0, now)`` when there is none)."""

        def read() -> Tuple[int, float]:
            now = time.time()
            with self._read_lock:
                found = self._current().execute(
                    "SELECT value, until FROM counters WHERE name = ? AND until > ?", (name, now)
                ).fetchone()
            return (int(found[0]), float(found[1])) if found else (0, now)

        return self._run(read)

    def clear_counter(self, name: str) -> None:
        self._write(lambda conn: conn.execute("DELETE FROM counters WHERE name = ?", (name,)))

    def limits_storage(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        from .sqlite_limits import SCHEME

        return SCHEME + "://", {"store": self}

    # --- signing keys of the processes sharing the file ---------------------------------

    def other_signers(self, fingerprint: str) -> List[int]:
        """Record that this process signs with the key ``fingerprint`` names, and
        return the ids of live processes on this file that sign with another."""

        def note(conn: sqlite3.Connection) -> List[int]:
            conn.execute(
                "INSERT OR REPLACE INTO signers (pid, fingerprint) VALUES (?, ?)", (os.getpid(), fingerprint)
            )
            others = []
            for pid, theirs in conn.execute("SELECT pid, fingerprint FROM signers").fetchall():
                if pid == os.getpid() or theirs == fingerprint:
                    continue
                if _alive(pid):
                    others.append(int(pid))
                else:
                    conn.execute("DELETE FROM signers WHERE pid = ?", (pid,))
            return others

        return self._write(note)

    # --- start, bounds, close -------------------------------------------------------

    def prepare(self) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
            raise ConfigurationError(
                "JWT_TOKEN_STORE %s needs SQLite %d.%d or newer; this Python has %s"
                % ((self.description,) + MIN_SQLITE_VERSION[:2] + (sqlite3.sqlite_version,))
            )
        folder = os.path.dirname(self.path) or "."
        kind = filesystem_of(folder if os.path.isdir(folder) else os.path.dirname(folder) or ".")
        if kind is not None and (kind in NETWORK_FILESYSTEMS or kind.startswith("nfs")):
            raise ConfigurationError(
                "JWT_TOKEN_STORE %s is on a network filesystem (%s): SQLite's locks do not hold "
                "across hosts. Keep the file on a local disk of this host, or use redis:// to share "
                "one store between hosts" % (self.description, kind)
            )
        try:
            os.makedirs(folder, exist_ok=True)
            with self._read_lock:
                self._current()
        except (OSError, sqlite3.Error, StoreError) as exc:
            raise ConfigurationError(
                "JWT_TOKEN_STORE %s cannot be opened: %s" % (self.description, exc)
            ) from exc

    def sweep(self) -> None:
        """Delete expired rows now (a bounded batch per table)."""
        self._write(lambda conn: self._sweep(conn, time.time()))

    def _sweep(self, conn: sqlite3.Connection, now: float) -> None:
        for table in _TABLES:
            key = "family" if table == "rotations" else "name"
            conn.execute(
                "DELETE FROM %s WHERE %s IN (SELECT %s FROM %s WHERE until <= ? LIMIT %d)"
                % (table, key, key, table, _SWEEP_BATCH),
                (now,),
            )

    def __len__(self) -> int:
        """Rows of every kind (expired ones not yet swept included)."""

        def count() -> int:
            with self._read_lock:
                reader = self._current()
                counts = [next(reader.execute("SELECT count(*) FROM %s" % table))[0] for table in _TABLES]
            return sum(counts)

        return self._run(count)

    def close(self) -> None:
        with self._read_lock, self._write_lock:
            if self._pid == os.getpid():
                self._forget_connections(abandon=False)


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One ``BEGIN IMMEDIATE`` transaction (the write lock taken at once, so
    two processes never both read then both write): committed when the block
    ends, rolled back when it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _after_fork(ref: weakref.ref[SQLiteStore]) -> None:
    store = ref()
    if store is not None:
        store._after_fork()
