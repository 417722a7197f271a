"""A TCP proxy that adds a fixed delay each way: a network between the app and
Redis, on loopback (a helper for the tests and benchmarks/, not a test module).

``DelayProxy(upstream_port, delay=0.0005).start()`` listens on a free
127.0.0.1 port (:attr:`port`); every chunk read from one side reaches the
other ``delay`` seconds later, in order, without holding up the chunks behind
it (a reader thread stamps chunks, a writer thread sends each when due).

``ProxyProcess(upstream_port, [delays])`` runs such proxies in a child
process. Use it wherever the process that hosts them also runs the code
being tested or timed: in that process the proxy's threads wait for the GIL
behind it (up to the 5 ms switch interval), so a chunk due now could leave
milliseconds late and the "network" would reorder what Redis sent.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class DelayProxy:
    def __init__(self, upstream_port: int, delay: float, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.delay = delay
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: List[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False

    @property
    def url(self) -> str:
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self) -> DelayProxy:
        self._listener.listen(256)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def close(self) -> None:
        self._closed = True
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in [self._listener, *sockets]:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                if self._closed:
                    return
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            self._pipe(client, server)
            self._pipe(server, client)

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        due: queue.Queue[Tuple[float, Optional[bytes]]] = queue.Queue()

        def read() -> None:
            while True:
                try:
                    chunk = source.recv(65536)
                except OSError:
                    chunk = b""
                due.put((time.monotonic() + self.delay, chunk or None))
                if not chunk:
                    return

        def write() -> None:
            while True:
                when, chunk = due.get()
                wait = when - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if chunk is None:
                    for sock in (target, source):
                        try:
                            sock.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                    return
                try:
                    target.sendall(chunk)
                except OSError:
                    return

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()


class ProxyProcess:
    """One :class:`DelayProxy` per delay (seconds, each way) to ``upstream_port``,
    in a child process; :attr:`ports` maps each delay to its proxy's port. The
    child ends when :meth:`close` closes its stdin, or when this process dies."""

    def __init__(self, upstream_port: int, delays: Sequence[float]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.delay_proxy", str(upstream_port), *map(repr, delays)],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line:
            self.close()
            raise RuntimeError("the delaying proxy did not start")
        self.ports: Dict[float, int] = dict(zip(delays, json.loads(line)))

    def url(self, delay: float) -> str:
        return "redis://127.0.0.1:%d/0" % self.ports[delay]

    def close(self) -> None:
        process = self.process
        if process.stdin is not None:
            try:
                process.stdin.close()
            except OSError:
                pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


def _serve(argv: List[str]) -> None:
    """The child of :class:`ProxyProcess`: print the ports, serve until stdin closes."""
    # Each connection's writer is a thread that wakes when a chunk is due; with
    # the default 5 ms GIL switch interval one due chunk (an invalidation) could
    # wait behind another (the revoking client's reply) for milliseconds.
    sys.setswitchinterval(1e-4)
    proxies = [DelayProxy(int(argv[0]), float(delay)).start() for delay in argv[1:]]
    print(json.dumps([proxy.port for proxy in proxies]), flush=True)
    sys.stdin.read()
    for proxy in proxies:
        proxy.close()


if __name__ == "__main__":
    _serve(sys.argv[1:])
