"""A local cache of revocation lookups that Redis keeps honest.

Each Redis server that holds entries (each master of a cluster) gets one
connection of ours that asks for server-assisted invalidation
(``CLIENT TRACKING ON BCAST PREFIX <prefix>{``, redirected to itself, and
``SUBSCRIBE __redis__:invalidate``): from then on Redis tells it the name of
every key under the prefix that changes, expires or is evicted, and
``FLUSHALL`` empties everything. Values read with MGET are kept in memory and
served without a round trip (and the answer worked out for a token is kept
until the next invalidation of any key), under three rules:

- Every invalidation Redis has sent is read and applied before an answer is
  served from the cache (each cached lookup first drains the connection).
- A value read from Redis is kept only if no invalidation arrived while it
  was being read (a sequence number, under one lock).
- When the connection drops, or stops answering its heartbeat PING, the cache
  is emptied and lookups go to Redis until it is back (it is retried).
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence

logger = logging.getLogger("flask_tokenauth")

MISSING = object()
_HEARTBEAT = 0.25  # seconds between PINGs on each invalidation connection
_FRESH = 1.0  # the cache answers only if every listener was heard from this recently
_PATIENCE = 2.0  # an unanswered PING older than this: unhealthy
_CHANNEL = "__redis__:invalidate"
_TOPOLOGY_EVERY = 5.0  # seconds between checks of which servers hold entries


class _Listener:
    """One invalidation connection (RESP2, subscribed to its own invalidations)."""

    def __init__(self, connection: Any, prefix: str) -> None:
        self.connection = connection
        connection.connect()
        # Only a master hears every write to its keys: a node that became a
        # replica (a failover the caller's view missed) must not be listened to.
        connection.send_command("ROLE")
        role = connection.read_response()
        if not role or role[0] not in (b"master", "master"):
            connection.disconnect()
            where = getattr(connection, "host", None) or getattr(connection, "path", "Redis")
            raise ConnectionError("%s is not a master" % (where,))
        connection.send_command("CLIENT", "ID")
        own_id = connection.read_response()
        connection.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", own_id, "BCAST", "PREFIX", prefix)
        if connection.read_response() not in (b"OK", "OK"):
            raise ConnectionError("CLIENT TRACKING was refused")
        connection.send_command("SUBSCRIBE", _CHANNEL)
        connection.read_response()
        self.ping_sent: Optional[float] = None
        self.last_ping = self.last_heard = time.monotonic()

    def fileno(self) -> Optional[int]:
        """The socket's descriptor, for one poll over every listener (None if
        this redis-py does not expose it: then every drain asks redis-py)."""
        sock = getattr(self.connection, "_sock", None)
        try:
            return None if sock is None else sock.fileno()
        except (OSError, AttributeError):
            return None

    def close(self) -> None:
        self.connection.disconnect()


class Tracker:
    """The cache and its invalidation connections, for one store in one process.

    ``connections()`` returns new (unconnected) redis-py connections, one per
    server that holds entries; ``size`` bounds the number of cached keys.
    """

    def __init__(
        self,
        connections: Callable[[], Sequence[Any]],
        prefix: str,
        size: int,
        retry: float,
        topology: Optional[Callable[[], Any]] = None,
    ) -> None:
        self._connections = connections
        #: Which servers hold entries (a cluster's masters), checked now and then:
        #: a master added later must be listened to as well.
        self._topology = topology
        self._layout: Any = None
        self._layout_checked = 0.0
        self.prefix = prefix
        self.size = size
        self.retry = retry
        self._lock = threading.Lock()
        self._values: Dict[str, Any] = {}
        self._listeners: List[_Listener] = []
        self._healthy = False
        self._connecting = False
        self._closed = False
        self._next_try = 0.0
        self._pid = os.getpid()
        #: One poll over every listener's socket (None: drain through redis-py).
        self._poll: Any = None
        #: When the heartbeat next needs attention; the oldest PONG heard.
        self._due = 0.0
        self._heard = 0.0
        #: Bumped for every invalidation applied: a read that saw it change is not kept.
        self.sequence = 0
        #: Answers worked out from cached values (a token's Status), valid only
        #: while ``sequence`` is what it was when they were kept.
        self._memo: Dict[Any, Any] = {}
        self._memo_sequence = -1
        if hasattr(os, "register_at_fork"):
            me = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: _after_fork(me))

    # --- what the store calls -----------------------------------------------------

    def get(self, names: Sequence[str]) -> Optional[List[Any]]:
        """The cached values of every name, or ``None`` (ask Redis). Pending
        invalidations are applied first."""
        with self._lock:
            if not self._serving():
                return None
            values = self._values
            found = [values.get(name, MISSING) for name in names]
        return None if MISSING in found else found

    def recall(self, key: Any) -> Any:
        """The answer :meth:`keep` kept for ``key``, or ``None``: only if no
        invalidation at all was applied since (pending ones are applied first)."""
        with self._lock:
            if not self._serving():
                return None
            if self._memo_sequence != self.sequence:
                self._memo.clear()
                self._memo_sequence = self.sequence
                return None
            return self._memo.get(key)

    def mark(self) -> int:
        """Before reading: the sequence to hand back to :meth:`keep`."""
        return self.sequence

    def keep(
        self, mark: int, key: Any, answer: Any, names: Sequence[str] = (), values: Sequence[Any] = ()
    ) -> None:
        """Keep the answer for ``key`` and the values it was worked out from
        (``names``, when they were read from Redis), unless an invalidation
        came in since ``mark``."""
        with self._lock:
            if not self._healthy or not self._drain(time.monotonic()) or self.sequence != mark:
                return
            if names:
                cache = self._values
                while len(cache) + len(names) > self.size and cache:
                    del cache[next(iter(cache))]
                if len(names) <= self.size:
                    cache.update(zip(names, values))
            memo = self._memo
            if self._memo_sequence != mark:
                memo.clear()
                self._memo_sequence = mark
            if len(memo) >= self.size:
                del memo[next(iter(memo))]
            memo[key] = answer

    def forget(self) -> None:
        with self._lock:
            self._values.clear()
            self.sequence += 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop("closed")

    def __len__(self) -> int:
        return len(self._values)

    @property
    def healthy(self) -> bool:
        return self._healthy

    # --- under the lock ---------------------------------------------------------------

    def _serving(self) -> bool:
        """The cache may answer: pending invalidations applied, and every
        listener answered a PING within _FRESH (a server we cannot hear, through
        a partition or a frozen process, may have revocations we would miss)."""
        now = time.monotonic()
        return self._ready(now) and now - self._heard < _FRESH

    def _ready(self, now: float) -> bool:
        if self._pid != os.getpid():  # forked where no at-fork hook ran (a C-level fork)
            self._forked()
        if self._healthy and not self._closed:
            if self._topology is not None and now - self._layout_checked > _TOPOLOGY_EVERY:
                # Asking the cluster is a round trip: never in a request.
                self._layout_checked = now
                check = threading.Thread(target=self._check_layout, args=(self._listeners,), daemon=True)
                check.name = "flask_tokenauth-tracking"
                check.start()
            return self._drain(now)
        if not self._closed and now >= self._next_try and not self._connecting:
            # Connecting can take a timeout (a frozen server): never in a request.
            self._connecting = True
            self._next_try = now + self.retry
            threading.Thread(target=self._connect, name="flask_tokenauth-tracking", daemon=True).start()
        return False

    def _check_layout(self, listeners: List[_Listener]) -> None:
        """In a thread of its own: empty the cache when the servers holding
        entries are no longer the ones ``listeners`` listen to."""
        try:
            why = None if self._topology() == self._layout else "the servers holding entries changed"
        except Exception as exc:  # the cluster cannot say: do not trust the cache
            why = "the cluster's layout is unknown (%s)" % type(exc).__name__
        with self._lock:
            if why is not None and self._listeners is listeners and self._pid == os.getpid():
                self._drop(why)

    def _forked(self) -> None:
        """In a child process: the parent's sockets, cache and lock are not ours."""
        self._lock = threading.Lock()
        self._pid, self._listeners, self._healthy = os.getpid(), [], False
        self._poll, self._due = None, 0.0
        self._connecting, self._next_try = False, 0.0
        self._values.clear()
        self.sequence += 1

    def _connect(self) -> None:
        """In a thread of its own: open the listeners, then (under the lock) put
        them in place and start with an empty cache."""
        listeners: List[_Listener] = []
        try:
            layout = self._topology() if self._topology is not None else None
            for connection in self._connections():
                listeners.append(_Listener(connection, self.prefix))
        except Exception as exc:  # any failure: stay off, try again later
            for listener in listeners:
                listener.close()
            logger.warning("revocation cache off: cannot listen to Redis invalidations (%s)", exc)
            with self._lock:
                self._connecting = False
            return
        with self._lock:
            self._connecting = False
            if self._pid != os.getpid() or self._closed:
                for listener in listeners:
                    listener.close()
                return
            self._listeners, self._layout, self._layout_checked = listeners, layout, time.monotonic()
            self._poll = _poller(listeners)
            self._heard = min([listener.last_heard for listener in listeners], default=time.monotonic())
            self._due = 0.0  # the first drain reads whatever came with the replies
            self._values.clear()
            self.sequence += 1
            self._healthy = True

    def start(self) -> None:
        """Begin listening now (at start), rather than on the first lookup."""
        with self._lock:
            self._ready(time.monotonic())

    def _drop(self, why: str) -> None:
        if self._healthy and not self._closed:
            logger.warning("revocation cache emptied: %s; lookups go to Redis until it is back", why)
        for listener in self._listeners:
            try:
                listener.close()
            except Exception:  # pragma: no cover - closing a broken socket
                pass
        self._listeners = []
        self._poll = None
        self._values.clear()
        self.sequence += 1
        self._healthy = False
        self._next_try = time.monotonic() + self.retry

    def _drain(self, now: float) -> bool:
        """Apply every invalidation already received; keep the heartbeat.

        The common case costs one ``poll`` with no wait over every listener's
        socket: nothing readable and no heartbeat due means nothing to apply
        (after each full drain the parser holds no complete message).
        """
        poll = self._poll
        if poll is not None and now < self._due and not poll.poll(0):
            return True
        try:
            due = heard = now + _HEARTBEAT
            for listener in self._listeners:
                connection = listener.connection
                while connection.can_read(timeout=0):
                    self._apply(listener, connection.read_response())
                if listener.ping_sent is not None and now - listener.ping_sent > _PATIENCE:
                    self._drop("an invalidation connection stopped answering")
                    return False
                if listener.ping_sent is None and now - listener.last_ping > _HEARTBEAT:
                    connection.send_command("PING")
                    listener.ping_sent = listener.last_ping = now
                if listener.ping_sent is None:
                    due = min(due, listener.last_ping + _HEARTBEAT)
                else:
                    due = min(due, listener.ping_sent + _PATIENCE)
                heard = min(heard, listener.last_heard)
        except Exception as exc:  # a reset, EOF, garbage: the cache cannot be trusted
            self._drop("an invalidation connection failed (%s)" % type(exc).__name__)
            return False
        self._due, self._heard = due, heard
        return True

    def _apply(self, listener: _Listener, message: Any) -> None:
        if not isinstance(message, list) or not message:
            return
        kind = message[0]
        if kind in (b"pong", "pong"):
            listener.ping_sent = None
            listener.last_heard = time.monotonic()
            return
        if kind not in (b"message", "message") or len(message) < 3:
            return
        keys = message[2]
        self.sequence += 1
        if keys is None:  # FLUSHALL / FLUSHDB, or the server forgot what it tracked
            self._values.clear()
            return
        values = self._values
        for key in keys if isinstance(keys, list) else [keys]:
            values.pop(key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else key, None)


def _after_fork(ref: weakref.ref[Tracker]) -> None:
    tracker = ref()
    if tracker is not None:
        tracker._forked()


def _poller(listeners: Sequence[_Listener]) -> Any:
    """A ``select.poll`` over the listeners' sockets, or None where it cannot be had."""
    if not hasattr(select, "poll"):
        return None
    poll = select.poll()
    for listener in listeners:
        fileno = listener.fileno()
        if fileno is None:
            return None
        poll.register(fileno, select.POLLIN | select.POLLPRI)
    return poll
