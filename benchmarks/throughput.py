"""Requests per second of a protected route against an open one, over HTTP.

Serves ``benchmarks/bench_app.py`` (flask_tokenauth; ``/open`` and
``/protected`` answer the same tiny JSON) with gunicorn, 2 **sync** workers by
default (``--worker-class gthread`` is available), bound to 127.0.0.1 on a
free port; waits until it answers; makes one access token with the server's
secret (``create_access_token`` in this process, lifetime longer than the
run) and checks that the server accepts it and refuses a request without it;
then loads it with ``wrk -t2 -c16 -d10s``: ``/open`` and ``/protected``
with ``-H "Authorization: JWT <token>"`` back to back, ``--rounds`` (3)
rounds, open first in odd rounds and protected first in even ones, after a
2-second warm-up run per route that is not counted.
Gunicorn (and the redis-server, for ``--store redis``) is stopped at
the end, whatever happens.

With sync workers every response closes its connection (sync workers do not
keep connections alive), so each request also pays a TCP connect; gthread
workers keep connections alive and make the comparison stricter.

With ``--store redis`` the workers use a throwaway redis-server
(``tests/redis_server.py``) with the revocation cache on (its default size,
``JWT_TOKEN_STORE_CACHE_SIZE``); ``--no-cache`` sets it to 0 (through
``BENCH_STORE_CACHE_SIZE``, read by bench_app.py), so that every protected
request makes one round trip, for comparison. Each worker is a process of its
own with its own cache, and wrk sends one token all along, so each worker
answers from its cache once it has looked the token up and its invalidation
listener is up; with the cache on, the warm-up therefore goes on (1-second
wrk runs on ``/protected``, at most 10) until at most 1% of a run's requests
made a lookup in Redis. Lookups are counted from Redis' own statistics
(``INFO commandstats``, MGET: one per lookup that goes to Redis) and shown
per run; between runs on ``/open`` a worker's listener is not heard from
(the cache answers only while it was heard within a second), so the first
request of each worker in a ``/protected`` run asks Redis.

Printed: the setup, one row per wrk run (requests, requests/s, mean latency,
non-2xx/3xx responses, socket errors, and with Redis the lookups Redis
answered), then open and protected requests/s (median over rounds), each
round's protected/open ratio and their median, which is the figure compared
with the target (protected/open >= 0.80 with the memory store, >= 0.85
with Redis and the cache; none with ``--no-cache``, a comparison), and a
PASS/FAIL line for "no non-2xx/3xx responses and no socket errors". Exit
status 1 when that check fails.

Run from the repository root (about 1.5 minutes at the defaults)::

    python benchmarks/throughput.py [--duration 10] [--connections 16] [--threads 2] [--rounds 3]
        [--store memory|redis] [--no-cache] [--worker-class sync|gthread] [--workers 2]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from importlib.metadata import PackageNotFoundError, version
from typing import IO, Any, Dict, List, Optional, Tuple

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
if BENCH_DIR not in sys.path:
    sys.path.insert(0, BENCH_DIR)
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import bench_app  # noqa: E402

TARGET_RATIO = 0.80  # the memory store
TARGET_RATIO_REDIS = 0.85  # Redis, with the revocation cache
START_TIMEOUT = 30.0  # seconds for gunicorn to answer
STOP_TIMEOUT = 15.0
WARMUP_SECONDS = 2  # per route, before the timed rounds
CACHE_WARMUP_SECONDS = 1  # per run of the cache warm-up (Redis, cache on)
CACHE_WARMUP_RUNS = 10
CACHE_WARM_SHARE = 0.01  # warm: at most this share of a run's requests asked Redis


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def http_get(url: str, headers: Optional[Dict[str, str]] = None, timeout: float = 2.0) -> Tuple[int, bytes]:
    """Status and body of one GET (4xx/5xx included)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Gunicorn:
    """``gunicorn 'bench_app:create_app()'`` on 127.0.0.1:<port>, log in a temp file."""

    def __init__(self, port: int, env: Dict[str, str], workers: int, worker_class: str, threads: int) -> None:
        self.port = port
        self.log: IO[bytes] = tempfile.TemporaryFile()
        command = [
            sys.executable, "-m", "gunicorn",
            "--workers", str(workers),
            "--worker-class", worker_class,
            "--bind", "127.0.0.1:%d" % port,
            "--chdir", BENCH_DIR,
            "--log-level", "warning",
            "--graceful-timeout", "5",
        ]
        if worker_class == "gthread":
            command += ["--threads", str(threads)]
        command.append("bench_app:create_app()")
        self.command = command
        # Its own session: if the master must be killed, its workers go with it.
        self.process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def base(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError("gunicorn exited (%s):\n%s" % (self.process.returncode, self.log_tail()))
            try:
                status, _ = http_get(self.base + "/open", timeout=1.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("gunicorn did not answer within %.0f s:\n%s" % (START_TIMEOUT, self.log_tail()))

    def log_tail(self, size: int = 3000) -> str:
        self.log.seek(0)
        return self.log.read()[-size:].decode("utf-8", "replace")

    def stop(self) -> None:
        """SIGTERM to the master (graceful), then SIGKILL to its process group."""
        process = self.process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        try:  # workers left behind by a master that died or hung
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if process.poll() is None:
            process.wait(timeout=STOP_TIMEOUT)
        self.log.close()


WRK_PATTERNS = {
    "rps": re.compile(r"^Requests/sec:\s+([\d.]+)", re.M),
    "requests": re.compile(r"^\s*(\d+) requests in ", re.M),
    "non2xx": re.compile(r"Non-2xx or 3xx responses:\s+(\d+)"),
    "socket": re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"),
    "latency": re.compile(r"^\s*Latency\s+([\d.]+)(us|ms|s)\b", re.M),
}
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> Dict[str, Any]:
    """Requests/sec, requests, non-2xx/3xx count, socket errors, mean latency (ms)."""
    rps = WRK_PATTERNS["rps"].search(output)
    requests = WRK_PATTERNS["requests"].search(output)
    if rps is None or requests is None:
        raise RuntimeError("cannot read wrk's output:\n" + output)
    non2xx = WRK_PATTERNS["non2xx"].search(output)
    socket_errors = WRK_PATTERNS["socket"].search(output)
    latency = WRK_PATTERNS["latency"].search(output)
    return {
        "rps": float(rps.group(1)),
        "requests": int(requests.group(1)),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
        "socket_detail": socket_errors.group(0) if socket_errors else "",
        "latency_ms": float(latency.group(1)) * _UNIT[latency.group(2)] if latency else float("nan"),
    }


def run_wrk(wrk: str, url: str, args: argparse.Namespace, header: Optional[str]) -> Dict[str, Any]:
    command = [
        wrk, "-t%d" % args.threads, "-c%d" % args.connections, "-d%ds" % args.duration,
        "--timeout", "5s",
    ]
    if header:
        command += ["-H", header]
    command.append(url)
    done = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=args.duration + 60
    )
    if done.returncode != 0:
        raise RuntimeError("wrk failed (%d): %s %s" % (done.returncode, done.stdout, done.stderr))
    return parse_wrk(done.stdout)


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, timeout=10).stdout
    return out.split("Copyright")[0].strip() or "wrk"


def make_token(secret: str, lifetime: float) -> str:
    """An access token for user 1, signed with the server's secret."""
    app = bench_app.create_app({"SECRET_KEY": secret, "JWT_TOKEN_STORE": "memory://"})
    with app.app_context():
        token = app.extensions["jwt"].create_access_token(
            1, expires_delta=datetime.timedelta(seconds=lifetime)
        )
    return str(token)


def prepare_store(store_url: str) -> None:
    """Write the Redis store's generation markers before gunicorn starts, so
    that they predate the token this process makes (a store that first meets
    its Redis refuses every token issued before that moment)."""
    from flask_tokenauth.store.redis import RedisStore

    store = RedisStore.open(store_url)
    try:
        store.prepare()
    finally:
        store.close()


def redis_lookups(url: str) -> int:
    """MGET calls the redis-server has answered so far: one per store lookup
    that was not answered from a worker's cache."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("commandstats").get("cmdstat_mget", {}).get("calls", 0))
    finally:
        client.close()


def check_server(base: str, token: str) -> None:
    """The routes answer as the benchmark assumes, or the run stops here."""
    open_status, open_body = http_get(base + "/open")
    ok_status, ok_body = http_get(base + "/protected", {"Authorization": "JWT " + token})
    no_status, _ = http_get(base + "/protected")
    bad_status, _ = http_get(base + "/protected", {"Authorization": "JWT " + token[:-2] + "xx"})
    problems = []
    if open_status != 200:
        problems.append("/open answered %d" % open_status)
    if ok_status != 200:
        problems.append("/protected with the token answered %d %r" % (ok_status, ok_body[:200]))
    if no_status != 401:
        problems.append("/protected without a token answered %d" % no_status)
    if bad_status != 401:
        problems.append("/protected with a tampered token answered %d" % bad_status)
    if open_body != ok_body:
        problems.append("bodies differ: %r vs %r" % (open_body, ok_body))
    if problems:
        raise RuntimeError("the server is not fit to measure: " + "; ".join(problems))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (1-300, default 10)")
    parser.add_argument("--connections", type=int, default=16, help="wrk -c (1-1024, default 16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t (1-64, default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of open+protected (1-10, default 3)")
    parser.add_argument("--store", choices=["memory", "redis"], default="memory")
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="with --store redis: JWT_TOKEN_STORE_CACHE_SIZE = 0 (every protected request asks Redis)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (1-32, default 2)")
    parser.add_argument("--worker-class", choices=["sync", "gthread"], default="sync")
    parser.add_argument("--gthreads", type=int, default=4, help="threads per gthread worker (default 4)")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 300:
        parser.error("--duration must be 1..300 seconds")
    if not 1 <= args.connections <= 1024 or not 1 <= args.threads <= 64:
        parser.error("--connections must be 1..1024 and --threads 1..64")
    if args.threads > args.connections:
        parser.error("--threads must not exceed --connections (wrk needs a connection per thread)")
    if not 1 <= args.rounds <= 10 or not 1 <= args.workers <= 32 or not 1 <= args.gthreads <= 64:
        parser.error("--rounds must be 1..10, --workers 1..32, --gthreads 1..64")
    if args.no_cache and args.store != "redis":
        parser.error("--no-cache is for --store redis (the memory store has no revocation cache)")
    cache_on = args.store == "redis" and not args.no_cache
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    if shutil.which("gunicorn") is None and _version("gunicorn") == "?":
        sys.exit("gunicorn is not installed (pip install gunicorn)")

    load_before = os.getloadavg()[0]
    redis_server = None
    server: Optional[Gunicorn] = None
    try:
        store_url = "memory://"
        if args.store == "redis":
            from tests.redis_server import RedisServer

            redis_server = RedisServer().start()
            store_url = redis_server.url
            prepare_store(store_url)
        secret = secrets.token_hex(32)
        env = dict(os.environ)
        env.pop("BENCH_STORE_CACHE_SIZE", None)
        env.update(
            SECRET_KEY=secret,
            BENCH_STORE=store_url,
            PYTHONPATH=os.pathsep.join(filter(None, [BENCH_DIR, REPO_ROOT, env.get("PYTHONPATH")])),
        )
        if args.no_cache:
            env["BENCH_STORE_CACHE_SIZE"] = "0"
        server = Gunicorn(free_port(), env, args.workers, args.worker_class, args.gthreads)
        server.wait_ready()
        lifetime = args.rounds * 2 * (args.duration + 60) + 600  # outlives the run
        token = make_token(secret, lifetime)
        check_server(server.base, token)

        # Warm-up, not counted: workers import lazily and the first seconds run slower.
        warmup = argparse.Namespace(**{**vars(args), "duration": min(WARMUP_SECONDS, args.duration)})
        for route, header in (("/open", None), ("/protected", "Authorization: JWT " + token)):
            run_wrk(wrk, server.base + route, warmup, header)
        warm_note = ""
        if cache_on:
            # Every worker has its own cache: go on until the workers answer from it.
            short = argparse.Namespace(**{**vars(args), "duration": CACHE_WARMUP_SECONDS})
            attempt = 0
            while attempt < CACHE_WARMUP_RUNS:
                attempt += 1
                before = redis_lookups(store_url)
                result = run_wrk(wrk, server.base + "/protected", short, "Authorization: JWT " + token)
                asked = redis_lookups(store_url) - before
                if asked <= CACHE_WARM_SHARE * result["requests"]:
                    break
            warm_note = "%d run(s) of %d s; in the last, %d of %d requests asked Redis (%s)" % (
                attempt,
                CACHE_WARMUP_SECONDS,
                asked,
                result["requests"],
                "warm" if asked <= CACHE_WARM_SHARE * result["requests"] else "NOT WARM",
            )

        runs: List[Tuple[int, str, Dict[str, Any]]] = []
        started = time.monotonic()
        pair = (("/open", None), ("/protected", "Authorization: JWT " + token))
        for round_no in range(1, args.rounds + 1):
            # Odd rounds open first, even rounds protected first: a load that
            # drifts during the run (a noisy machine) favours neither route.
            for route, header in pair if round_no % 2 else pair[::-1]:
                before = redis_lookups(store_url) if redis_server is not None else 0
                result = run_wrk(wrk, server.base + route, args, header)
                if redis_server is not None:
                    result["lookups"] = redis_lookups(store_url) - before
                if not server.alive():
                    raise RuntimeError("gunicorn died during the run:\n" + server.log_tail())
                runs.append((round_no, route, result))
        wall = time.monotonic() - started
        check_server(server.base, token)  # still serving, token still accepted
        log_tail = server.log_tail()
    finally:
        if server is not None:
            server.stop()
        if redis_server is not None:
            redis_server.stop()

    print(
        "Python %s, Flask %s, flask_tokenauth %s, gunicorn %s, %s"
        % (
            platform.python_version(),
            _version("Flask"),
            _version("flask-tokenauth-jwt"),
            _version("gunicorn"),
            wrk_version(wrk),
        )
    )
    print(
        "Machine: %s, %s CPUs (wrk, gunicorn and Redis share them), load average %.2f before the run"
        % (platform.platform(), os.cpu_count(), load_before)
    )
    workers = "%d %s workers" % (args.workers, args.worker_class)
    if args.worker_class == "gthread":
        workers += " x %d threads" % args.gthreads
    if args.store == "redis":
        cache = "JWT_TOKEN_STORE_CACHE_SIZE=%s" % ("0 (cache off)" if args.no_cache else "default (cache on)")
    else:
        cache = "no revocation cache (memory store)"
    print(
        "gunicorn: %s on 127.0.0.1; JWT_TOKEN_STORE=%s; %s; wrk -t%d -c%d -d%ds, %d rounds, %.0f s of load"
        % (workers, store_url, cache, args.threads, args.connections, args.duration, args.rounds, wall)
    )
    if cache_on:
        print("cache warm-up: " + warm_note)
    print()
    with_lookups = redis_server is not None
    header = "%5s  %-10s  %9s  %9s  %11s  %8s  %13s" % (
        "round", "route", "requests", "req/s", "latency ms", "non-2xx", "socket errors"
    )
    if with_lookups:
        header += "  %13s" % "Redis lookups"
    print(header)
    print("-" * len(header))
    for round_no, route, r in runs:
        line = "%5d  %-10s  %9d  %9.1f  %11.2f  %8d  %13d" % (
            round_no, route, r["requests"], r["rps"], r["latency_ms"], r["non2xx"], r["socket_errors"]
        )
        if with_lookups:
            line += "  %13d" % r["lookups"]
        print(line)
    print()
    open_rps = statistics.median(r["rps"] for _, route, r in runs if route == "/open")
    prot_rps = statistics.median(r["rps"] for _, route, r in runs if route == "/protected")
    by_round: Dict[int, Dict[str, float]] = {}
    for round_no, route, r in runs:
        by_round.setdefault(round_no, {})[route] = r["rps"]
    # Each round's two runs are back to back: their ratio is the comparison
    # least disturbed by a load that drifts; the median of them is the figure.
    round_ratios = [
        rates["/protected"] / rates["/open"] if rates["/open"] > 0 else 0.0
        for _, rates in sorted(by_round.items())
    ]
    ratio = statistics.median(round_ratios)
    non2xx = sum(r["non2xx"] for _, _, r in runs)
    socket_errors = sum(r["socket_errors"] for _, _, r in runs)
    summary = "%-16s  %12s" % ("", "median req/s")
    print(summary)
    print("-" * len(summary))
    print("%-16s  %12.1f" % ("open", open_rps))
    print("%-16s  %12.1f" % ("protected", prot_rps))
    print("%-16s  %12.3f" % ("ratio of medians", prot_rps / open_rps if open_rps > 0 else 0.0))
    print()
    print("protected/open per round: %s; median %.3f" % (", ".join("%.3f" % r for r in round_ratios), ratio))
    print()
    if args.no_cache:
        print("protected/open = %.3f with the revocation cache off (a comparison, no target)" % ratio)
    else:
        target = TARGET_RATIO_REDIS if cache_on else TARGET_RATIO
        print(
            "target protected/open >= %.2f%s: %s (ratio = %.3f)"
            % (target, " (Redis, cache on)" if cache_on else "", "PASS" if ratio >= target else "MISS", ratio)
        )
    clean = non2xx == 0 and socket_errors == 0
    print(
        "no non-2xx/3xx responses and no socket errors: %s (non-2xx/3xx %d, socket errors %d)"
        % ("PASS" if clean else "FAIL", non2xx, socket_errors)
    )
    if log_tail.strip():
        print("gunicorn log (warnings and errors, tail):")
        print(log_tail.rstrip())
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
