"""What a protected route costs per request over an open one.

Three things are timed in one process, interleaved round by round:

* flask_tokenauth: ``JWT(app, authenticate, identity)``, ``/open`` and
  ``/protected`` (``@jwt_required()``), ``Authorization: JWT <token>``;
* Flask-JWT-Extended 4.x: ``JWTManager(app)``, the same routes,
  ``Authorization: Bearer <token>``;
* raw PyJWT: ``jwt.decode(token, secret, algorithms=["HS256"])`` of the
  flask_tokenauth token, the floor any verifying extension builds on.

Both apps share one 64-character ``SECRET_KEY`` (HS256) and return the same
small JSON. Requests go straight to ``app.wsgi_app(environ, start_response)``
(no server, no test client), with an environ built once per route and copied
per call, so what differs between ``/open`` and ``/protected`` is the
extension's work. Each round times ``--calls`` calls of every case, in an
order that rotates from round to round; the table shows the median over
``--rounds`` rounds of the per-call time (round time / calls). An "added cost"
is the median over rounds of (protected - open) measured in the same round.
The garbage collector is off while a batch is timed, as ``timeit`` does.

flask_tokenauth keeps tokens it has verified in a small cache (only their
expiry is checked again); ``--no-cache`` adds an app with
``JWT_VERIFIED_TOKEN_CACHE_SIZE = 0`` to show the cost without it.

The rows without a store name use flask_tokenauth's default store, set
explicitly: ``JWT_TOKEN_STORE = "memory://"`` (the revocation check is a dict
lookup), and Flask-JWT-Extended without a blocklist. Unless ``--no-redis`` is
given, the script also starts a throwaway ``redis-server`` on a free
127.0.0.1 port (``tests/redis_server.py``; stopped at the end) and, for each
one-way network delay in ``--delays`` (milliseconds, default ``0,0.25,0.5``),
times three more pairs of routes against it:

* flask_tokenauth+Redis, cache on: the same app with ``JWT_TOKEN_STORE =
  "redis://..."`` (keys under ``tokenauth:``) and the revocation cache at its
  default size (``JWT_TOKEN_STORE_CACHE_SIZE``, 50000): the token was looked
  up before, so a protected request is answered from the cache, which Redis
  keeps honest through its invalidations;
* flask_tokenauth+Redis, cache off: ``JWT_TOKEN_STORE_CACHE_SIZE = 0``, so
  every protected request asks Redis (one MGET) whether the token, its family
  or its identity was revoked (the verified-token cache never skips that);
* Flask-JWT-Extended+Redis: its documented blocklist pattern, in db 1 of the
  same server: ``@jwt.token_in_blocklist_loader`` returning
  ``redis_client.get(jwt_payload["jti"]) is not None``.

Delay 0 connects straight to the redis-server (as earlier versions of this
script did, so Z stays comparable). Any other delay goes through
``tests/delay_proxy.py`` (``DelayProxy(port, delay)``: every chunk reaches the
other side ``delay`` seconds later, each way), run in a child process so
that its threads do not take the GIL from the loop being timed; all three
apps of one delay, and the two floor rows below, share its proxy.

Before timing, each Redis app is shown to refuse a token revoked in Redis, so
a store that is not consulted cannot pass for a fast one; the cache-on app
must also refuse a token it had cached, once that token is revoked. Each
cache-on app is then warmed: requests until its invalidation listener is
healthy (``store().tracker.healthy``), then 0.5 s more. Its store's Redis
commands are counted (a wrapper around ``store.link.execute``, in this
script), and the summary says how many of its timed protected requests went
to Redis: the cache answers only while its listener was heard from within the
last second, so the first request or two of a batch that follows a long gap
(other cases running) pays a round trip; that stays in the timings.

Two reference rows per delay give the Redis floor: one redis-py ``GET`` (what
the blocklist loader sends) and one ``RedisStore.lookup`` without the cache
(flask_tokenauth's per-request check when it asks Redis: one MGET of the
token's entries and its group's generation marker, on the store's bounded
connections), each one round trip. Cases that make a round trip through a
delaying proxy run ``--rt-calls`` calls per round instead of ``--calls``
(the table is per call either way).

Printed: the versions and machine, a table of every case (median, min, max
microseconds per call over the rounds), an added-cost summary (memory vs
Redis at delay 0), a per-delay summary, and the ratios with their targets:
X = flask_tokenauth added / Flask-JWT-Extended added (<= 0.5), Y =
flask_tokenauth added / raw PyJWT decode (<= 1.0), Z = flask_tokenauth+Redis
(cache on) added / Flask-JWT-Extended+Redis added at delay 0 (<= 0.5), and
C = flask_tokenauth+Redis (cache on) added at 0.5 ms / memory-store added
(<= 1.5), and S = flask_tokenauth+SQLite added / memory-store added (<= 2.0).

The SQLite rows use ``JWT_TOKEN_STORE = "sqlite:///<a temporary file>"``,
the store of one host's workers: the token was looked up before, so the
lookup is answered from the process's memory once ``PRAGMA data_version``
and the file's identity say nothing changed. Before timing, the app must
refuse tokens revoked through another connection on the file (what another
worker does), one of them just accepted and cached.

Run from the repository root (about 2.5 minutes at the defaults, under one
with ``--quick``)::

    python benchmarks/overhead.py [--rounds 15] [--calls 2000] [--rt-calls N]
        [--delays 0,0.25,0.5] [--quick] [--no-cache] [--no-redis]

Flask-JWT-Extended comes with the ``bench`` extra: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Callable, Dict, List, Optional, Tuple

import jwt as pyjwt
from bench_app import authenticate, identity  # the same users as the throughput app
from flask import Flask
from werkzeug.test import EnvironBuilder

import flask_tokenauth
from flask_tokenauth import JWT
from flask_tokenauth import jwt_required as tokenauth_required

try:
    import flask_jwt_extended
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("Flask-JWT-Extended is needed for this benchmark: pip install -e '.[bench]'")

SECRET = secrets.token_hex(32)  # 64 characters, well over HS256's 32-byte minimum
BODY = {"hello": "world"}
TARGET_VS_EXTENDED = 0.5
TARGET_VS_DECODE = 1.0
TARGET_REDIS_VS_EXTENDED_REDIS = 0.5
TARGET_CACHE_VS_MEMORY = 1.5  # flask_tokenauth+Redis (cache on) added / memory-store added
TARGET_CACHE_DELAY_MS = 0.5  # ... at this one-way delay
TARGET_SQLITE_VS_MEMORY = 2.0  # flask_tokenauth+SQLite added / memory-store added
DEFAULT_DELAYS = "0,0.25,0.5"  # one-way delays to Redis, milliseconds
CACHE_SETTLE = 0.5  # seconds of requests after the cache's listener is healthy
CACHE_READY_TIMEOUT = 10.0
REPO_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TOKENAUTH_REDIS_DB = 0  # flask_tokenauth's keys, under its prefix "tokenauth:"
EXTENDED_REDIS_DB = 1  # Flask-JWT-Extended's blocklist: a separate database


# --- the apps -------------------------------------------------------------------


def tokenauth_app(
    cache_size: Optional[int] = None, store: str = "memory://", store_cache_size: Optional[int] = None
) -> Tuple[Flask, str]:
    """App A: flask_tokenauth, and a token for user 1. ``store`` is its
    ``JWT_TOKEN_STORE`` (the default, ``memory://``, unless a Redis URL);
    ``store_cache_size`` its ``JWT_TOKEN_STORE_CACHE_SIZE`` (default unless given)."""
    app = Flask("bench_tokenauth")
    app.config["SECRET_KEY"] = SECRET
    app.config["JWT_EXPIRATION_DELTA"] = datetime.timedelta(hours=1)  # outlives any run
    app.config["JWT_TOKEN_STORE"] = store
    if cache_size is not None:
        app.config["JWT_VERIFIED_TOKEN_CACHE_SIZE"] = cache_size
    if store_cache_size is not None:
        app.config["JWT_TOKEN_STORE_CACHE_SIZE"] = store_cache_size
    jwt = JWT(app, authenticate, identity)

    @app.get("/open")
    def open_view() -> Any:
        return BODY

    @app.get("/protected")
    @tokenauth_required()
    def protected_view() -> Any:
        return BODY

    with app.app_context():
        token = jwt.create_access_token(1)
    return app, str(token)


def extended_app(blocklist: Any = None) -> Tuple[Flask, str]:
    """App B: Flask-JWT-Extended, and a token for identity "1". With a
    ``blocklist`` (a redis client), its documented Redis blocklist loader."""
    app = Flask("bench_extended")
    app.config["SECRET_KEY"] = SECRET  # JWT_SECRET_KEY falls back to it
    app.config["JWT_ALGORITHM"] = "HS256"
    app.config["JWT_ACCESS_TOKEN_EXPIRES"] = datetime.timedelta(hours=1)
    manager = flask_jwt_extended.JWTManager(app)
    if blocklist is not None:
        # As in Flask-JWT-Extended's "Blocklist and Token Revoking" docs (Redis).
        @manager.token_in_blocklist_loader
        def check_if_token_is_revoked(jwt_header: Dict[str, Any], jwt_payload: Dict[str, Any]) -> bool:
            jti = jwt_payload["jti"]
            token_in_redis = blocklist.get(jti)
            return token_in_redis is not None

    @app.get("/open")
    def open_view() -> Any:
        return BODY

    @app.get("/protected")
    @flask_jwt_extended.jwt_required()
    def protected_view() -> Any:
        return BODY

    with app.app_context():
        token = flask_jwt_extended.create_access_token(identity="1")
    return app, token


# --- driving them -----------------------------------------------------------------


def _ignore_start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
    return _ignore_write


def _ignore_write(data: bytes) -> None:
    return None


def environ_for(path: str, authorization: Optional[str] = None) -> Dict[str, Any]:
    headers = {"Authorization": authorization} if authorization else {}
    return EnvironBuilder(path=path, method="GET", headers=headers).get_environ()


def request_once(app: Flask, environ: Dict[str, Any]) -> Tuple[str, bytes]:
    """One request through ``app.wsgi_app``: its status line and body."""
    seen: List[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        seen.append(status)
        return _ignore_write

    body = app.wsgi_app(environ.copy(), start_response)
    try:
        data = b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return seen[-1], data


def wsgi_batch(app: Flask, environ: Dict[str, Any]) -> Callable[[int], int]:
    """A function timing ``n`` requests of ``environ``; returns nanoseconds."""
    wsgi = app.wsgi_app
    start_response = _ignore_start_response

    def run(n: int) -> int:
        clock = time.perf_counter_ns
        started = clock()
        for _ in range(n):
            body = wsgi(environ.copy(), start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return clock() - started

    return run


def decode_batch(token: str) -> Callable[[int], int]:
    decode = pyjwt.decode
    algorithms = ["HS256"]

    def run(n: int) -> int:
        clock = time.perf_counter_ns
        started = clock()
        for _ in range(n):
            decode(token, SECRET, algorithms=algorithms)
        return clock() - started

    return run


def check(name: str, app: Flask, prefix: str, token: str) -> None:
    """Refuse to time a broken path: open 200, protected 200 with the token,
    401 without one, refused (4xx) with a tampered one."""
    open_status, open_body = request_once(app, environ_for("/open"))
    ok_status, ok_body = request_once(app, environ_for("/protected", "%s %s" % (prefix, token)))
    no_status, _ = request_once(app, environ_for("/protected"))
    bad_status, _ = request_once(app, environ_for("/protected", "%s %s" % (prefix, token[:-2] + "xx")))
    problems = []
    if not open_status.startswith("200"):
        problems.append("/open answered %s" % open_status)
    if not ok_status.startswith("200"):
        problems.append("/protected with the token answered %s" % ok_status)
    if not no_status.startswith("401"):
        problems.append("/protected without a token answered %s" % no_status)
    if not bad_status.startswith("4"):  # Flask-JWT-Extended says 422 for a bad signature
        problems.append("/protected with a tampered token answered %s" % bad_status)
    if open_body != ok_body:
        problems.append("/open and /protected bodies differ: %r vs %r" % (open_body, ok_body))
    if problems:
        sys.exit("%s is not fit to measure: %s" % (name, "; ".join(problems)))


def check_tokenauth_revocation(name: str, app: Flask) -> None:
    """A second token, revoked through the app's store, must be refused (401)."""
    jwt = app.extensions["jwt"]
    with app.app_context():
        other = str(jwt.create_access_token(1))
        jwt.revoke(other)
    status, body = request_once(app, environ_for("/protected", "JWT " + other))
    if not status.startswith("401") or b"revoked" not in body:
        sys.exit("%s does not consult its store: a revoked token answered %s %r" % (name, status, body))


def check_sqlite_revocation(name: str, app: Flask, path: str) -> None:
    """Tokens revoked through another connection on the app's file (what
    another worker process does) must be refused at once: one never seen,
    and one the app had just accepted (and cached)."""
    from flask_tokenauth.revocation import token_ref
    from flask_tokenauth.state import EXTENSION_KEY
    from flask_tokenauth.store.sqlite import SQLiteStore

    jwt = app.extensions["jwt"]
    sibling = SQLiteStore(path)
    sibling.prepare()
    try:
        for seen_before in (False, True):
            with app.app_context():
                other = str(jwt.create_access_token(1))
                ref = token_ref(app.extensions[EXTENSION_KEY], jwt.decode_token(other))
            environ = environ_for("/protected", "JWT " + other)
            if seen_before and not request_once(app, environ)[0].startswith("200"):
                sys.exit("%s refused a valid token" % name)
            sibling.revoke_token(ref, 3600)
            status, body = request_once(app, environ)
            if not status.startswith("401") or b"revoked" not in body:
                sys.exit("%s missed another process's revocation: %s %r" % (name, status, body))
    finally:
        sibling.close()


def check_extended_revocation(name: str, app: Flask, blocklist: Any) -> None:
    """A second token whose jti is in the Redis blocklist must be refused (401)."""
    with app.app_context():
        other = flask_jwt_extended.create_access_token(identity="1")
        jti = flask_jwt_extended.decode_token(other)["jti"]
    blocklist.set(jti, "", ex=3600)  # the docs' way of revoking
    status, body = request_once(app, environ_for("/protected", "Bearer " + other))
    if not status.startswith("401") or b"revoked" not in body:
        sys.exit("%s does not consult its blocklist: a revoked token answered %s %r" % (name, status, body))


def store_of(app: Flask) -> Any:
    """The app's token store (opened at init_app)."""
    with app.app_context():
        return app.extensions["flask_tokenauth"].store()


def tracker_of(app: Flask) -> Any:
    """The revocation cache of the app's Redis store (``None`` when it is off)."""
    return store_of(app).tracker


class RoundTrips:
    """Counts the Redis commands a store sends (its cache's misses, for a
    cache-on store): wraps ``store.link.execute`` of this one store object."""

    def __init__(self, store: Any) -> None:
        self.count = 0
        execute = store.link.execute

        def counted(*args: Any) -> Any:
            self.count += 1
            return execute(*args)

        store.link.execute = counted


def wait_cache_ready(name: str, app: Flask, environ: Dict[str, Any], trips: RoundTrips) -> None:
    """Requests with ``environ`` until the app's revocation cache is healthy
    (its invalidation listener connected and answering its heartbeat), then
    CACHE_SETTLE seconds more, so that the token is cached and the listener
    was heard from lately; then 100 more, of which at most 2 may go to Redis."""
    tracker = tracker_of(app)
    if tracker is None:
        sys.exit("%s has no revocation cache (JWT_TOKEN_STORE_CACHE_SIZE is 0?)" % name)
    run = wsgi_batch(app, environ)
    deadline = time.monotonic() + CACHE_READY_TIMEOUT
    while not tracker.healthy:
        if time.monotonic() > deadline:
            sys.exit("%s: the revocation cache was not healthy within %.0f s" % (name, CACHE_READY_TIMEOUT))
        run(20)
        time.sleep(0.01)
    settle = time.monotonic() + CACHE_SETTLE
    while time.monotonic() < settle:
        run(50)
    before = trips.count
    run(100)
    if not tracker.healthy or len(tracker) == 0 or trips.count - before > 2:
        sys.exit(
            "%s: the revocation cache is not in use after the warm-up (%d of 100 requests went to Redis)"
            % (name, trips.count - before)
        )


def check_cached_revocation(name: str, app: Flask, delay: float, trips: RoundTrips) -> None:
    """A second token, answered from the cache, then revoked through the app,
    must be refused (401): the cache hears of the revocation from Redis."""
    jwt = app.extensions["jwt"]
    with app.app_context():
        other = str(jwt.create_access_token(1))
    environ = environ_for("/protected", "JWT " + other)
    wait_cache_ready(name, app, environ, trips)
    with app.app_context():
        jwt.revoke(other)
    time.sleep(2 * delay + 0.05)  # the invalidation's way back (not what this check is about)
    status, body = request_once(app, environ)
    if not status.startswith("401") or b"revoked" not in body:
        sys.exit("%s: a cached token, then revoked, answered %s %r" % (name, status, body))


def start_redis() -> Any:
    """A throwaway redis-server on a free 127.0.0.1 port (tests/redis_server.py)."""
    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)
    try:
        from tests.redis_server import RedisServer, redis_server_binary
    except ImportError as exc:  # pragma: no cover - depends on the environment
        sys.exit("tests/redis_server.py cannot be imported (%s); use --no-redis" % exc)
    if redis_server_binary() is None:
        sys.exit("redis-server is not installed (apt-get install redis-server); use --no-redis")
    return RedisServer().start()


def call_batch(fn: Callable[[], Any]) -> Callable[[int], int]:
    """A function timing ``n`` calls of ``fn()``; returns nanoseconds."""

    def run(n: int) -> int:
        clock = time.perf_counter_ns
        started = clock()
        for _ in range(n):
            fn()
        return clock() - started

    return run


# --- reporting ---------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def _ratio(numerator: float, denominator: float) -> Optional[float]:
    return numerator / denominator if denominator > 0 else None


def _target_line(label: str, value: Optional[float], limit: float, miss: str = "MISS") -> str:
    if value is None:
        return "target %s <= %.1f: %s (denominator not positive)" % (label, limit, miss)
    verdict = "PASS" if value <= limit else miss
    return "target %s <= %.1f: %s (%s = %.3f)" % (label, limit, verdict, label, value)


def parse_delays(text: str) -> List[float]:
    """``"0,0.25,0.5"`` -> [0.0, 0.25, 0.5] (milliseconds, sorted, no repeats)."""
    delays = sorted({float(part) for part in text.split(",") if part.strip()})
    if not delays or any(d < 0 or d > 50 for d in delays):
        raise ValueError(text)
    return delays


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 15, 7 with --quick)")
    parser.add_argument(
        "--calls", type=int, default=None, help="calls per case per round (default 2000, 1000 with --quick)"
    )
    parser.add_argument(
        "--rt-calls",
        type=int,
        default=None,
        help="calls per round of a case that makes a round trip through a delaying proxy"
        " (default --calls / 10, at least 20)",
    )
    parser.add_argument(
        "--delays",
        default=DEFAULT_DELAYS,
        help="one-way delays to Redis in milliseconds, comma-separated (default %s; 0: no proxy)"
        % DEFAULT_DELAYS,
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls (7 x 1000)")
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="also time flask_tokenauth with JWT_VERIFIED_TOKEN_CACHE_SIZE = 0",
    )
    parser.add_argument(
        "--no-redis",
        action="store_true",
        help="skip the Redis rows (no redis-server is started)",
    )
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 7 if args.quick else 15
    if args.calls is None:
        args.calls = 1000 if args.quick else 2000
    if args.rt_calls is None:
        args.rt_calls = max(20, args.calls // 10)
    if args.rounds < 1 or args.calls < 1 or args.rt_calls < 1:
        parser.error("--rounds, --calls and --rt-calls must be at least 1")
    if args.rounds > 1000 or args.calls > 1_000_000 or args.rt_calls > 1_000_000:
        parser.error("--rounds is at most 1000, --calls and --rt-calls at most 1000000")
    try:
        args.delay_list = parse_delays(args.delays)
    except ValueError:
        parser.error("--delays takes milliseconds from 0 to 50, comma-separated, e.g. 0,0.25,0.5")

    server = None if args.no_redis else start_redis()
    proxies = None
    try:
        if server is not None:
            delayed = [d for d in args.delay_list if d > 0]
            if delayed:
                # In a child process: the proxy's threads take the GIL for every
                # chunk, which would otherwise be charged to the timed loop.
                from tests.delay_proxy import ProxyProcess

                proxies = ProxyProcess(server.port, [d / 1000.0 for d in delayed])
        return measure(args, server, proxies)
    finally:
        if proxies is not None:
            proxies.close()
        if server is not None:
            server.stop()


def _tag(delay_ms: float) -> str:
    return "%g" % delay_ms


def measure(args: argparse.Namespace, server: Any, proxies: Optional[Any]) -> int:
    """Build the apps, time them, print the tables. ``server``: a started
    RedisServer, or ``None`` for --no-redis; ``proxies``: the delaying proxies
    to it (one per delay above 0), or ``None``."""
    app_a, token_a = tokenauth_app()
    app_b, token_b = extended_app()
    check("flask_tokenauth", app_a, "JWT", token_a)
    check("Flask-JWT-Extended", app_b, "Bearer", token_b)
    pyjwt.decode(token_a, SECRET, algorithms=["HS256"])  # raises if the raw path is broken

    # name -> (a function timing n calls, calls per round)
    cases: Dict[str, Tuple[Callable[[int], int], int]] = {
        "a_open": (wsgi_batch(app_a, environ_for("/open")), args.calls),
        "a_prot": (wsgi_batch(app_a, environ_for("/protected", "JWT " + token_a)), args.calls),
        "b_open": (wsgi_batch(app_b, environ_for("/open")), args.calls),
        "b_prot": (wsgi_batch(app_b, environ_for("/protected", "Bearer " + token_b)), args.calls),
        "raw": (decode_batch(token_a), args.calls),
    }
    # The SQLite store on a file of its own, as gunicorn's workers share it.
    sqlite_dir = tempfile.mkdtemp(prefix="tokenauth-bench-")
    sqlite_path = os.path.join(sqlite_dir, "bench.sqlite3")
    app_s, token_s = tokenauth_app(store="sqlite:///" + sqlite_path)
    check("flask_tokenauth+SQLite", app_s, "JWT", token_s)
    check_tokenauth_revocation("flask_tokenauth+SQLite", app_s)
    check_sqlite_revocation("flask_tokenauth+SQLite", app_s, sqlite_path)
    cases["s_open"] = (wsgi_batch(app_s, environ_for("/open")), args.calls)
    cases["s_prot"] = (wsgi_batch(app_s, environ_for("/protected", "JWT " + token_s)), args.calls)
    if args.no_cache:
        app_nc, token_nc = tokenauth_app(cache_size=0)
        check("flask_tokenauth (no cache)", app_nc, "JWT", token_nc)
        cases["a_prot_nc"] = (wsgi_batch(app_nc, environ_for("/protected", "JWT " + token_nc)), args.calls)

    delays: List[float] = [] if server is None else args.delay_list
    redis_version = ""
    # Per delay: the apps to check again after the run, the cache-on app's warm-up and its counter.
    rechecks: List[Tuple[str, Flask, str, str]] = []
    cached: Dict[str, Tuple[str, Flask, Dict[str, Any], RoundTrips]] = {}
    redis_stores: List[Any] = []
    if server is not None:
        import redis

        from flask_tokenauth.revocation import token_ref
        from flask_tokenauth.state import EXTENSION_KEY
        from flask_tokenauth.store.redis import RedisStore

        for delay in delays:
            tag = _tag(delay)
            port = server.port if delay == 0 else proxies.ports[delay / 1000.0]  # type: ignore[union-attr]
            where = "[%s ms]" % tag
            store_url = "redis://127.0.0.1:%d/%d" % (port, TOKENAUTH_REDIS_DB)

            app_rc, token_rc = tokenauth_app(store=store_url)  # JWT_TOKEN_STORE_CACHE_SIZE: its default
            name_rc = "flask_tokenauth+Redis, cache on %s" % where
            trips = RoundTrips(store_of(app_rc))
            check(name_rc, app_rc, "JWT", token_rc)
            check_tokenauth_revocation(name_rc, app_rc)
            check_cached_revocation(name_rc, app_rc, delay / 1000.0, trips)

            app_rn, token_rn = tokenauth_app(store=store_url, store_cache_size=0)
            name_rn = "flask_tokenauth+Redis, cache off %s" % where
            if tracker_of(app_rn) is not None:
                sys.exit("%s has a revocation cache despite JWT_TOKEN_STORE_CACHE_SIZE = 0" % name_rn)
            check(name_rn, app_rn, "JWT", token_rn)
            check_tokenauth_revocation(name_rn, app_rn)

            # The client the docs show: redis.StrictRedis(host, port, db, decode_responses=True).
            blocklist = redis.StrictRedis(
                host="127.0.0.1", port=port, db=EXTENDED_REDIS_DB, decode_responses=True
            )
            app_br, token_br = extended_app(blocklist)
            name_br = "Flask-JWT-Extended+Redis %s" % where
            check(name_br, app_br, "Bearer", token_br)
            check_extended_revocation(name_br, app_br, blocklist)
            if not redis_version:
                redis_version = blocklist.info("server").get("redis_version", "?")
            # The floors: one GET (the blocklist loader's call), and flask_tokenauth's
            # store lookup (no cache) on a client configured as JWT_TOKEN_STORE
            # configures it. prepare() finds the generation markers the apps wrote
            # at init_app and leaves them alone.
            floor_store = RedisStore.open(
                store_url,
                prefix=app_rn.config["JWT_TOKEN_STORE_PREFIX"],
                timeout=app_rn.config["JWT_TOKEN_STORE_TIMEOUT"],
                max_connections=app_rn.config["JWT_TOKEN_STORE_MAX_CONNECTIONS"],
            )
            floor_store.prepare()
            with app_rn.app_context():
                claims = app_rn.extensions["jwt"].decode_token(token_rn)
                # The TokenRef the per-request check builds from these claims.
                lookup_ref = token_ref(app_rn.extensions[EXTENSION_KEY], claims)
            missing = "not-revoked-" + secrets.token_hex(8)
            rt_calls = args.calls if delay == 0 else args.rt_calls  # cases that wait for Redis
            prot_rc = environ_for("/protected", "JWT " + token_rc)
            cases.update(
                {
                    "rc_open@" + tag: (wsgi_batch(app_rc, environ_for("/open")), args.calls),
                    "rc_prot@" + tag: (wsgi_batch(app_rc, prot_rc), args.calls),
                    "rn_open@" + tag: (wsgi_batch(app_rn, environ_for("/open")), args.calls),
                    "rn_prot@" + tag: (
                        wsgi_batch(app_rn, environ_for("/protected", "JWT " + token_rn)),
                        rt_calls,
                    ),
                    "br_open@" + tag: (wsgi_batch(app_br, environ_for("/open")), args.calls),
                    "br_prot@" + tag: (
                        wsgi_batch(app_br, environ_for("/protected", "Bearer " + token_br)),
                        rt_calls,
                    ),
                    "get@" + tag: (call_batch(functools.partial(blocklist.get, missing)), rt_calls),
                    "lookup@" + tag: (
                        call_batch(functools.partial(floor_store.lookup, lookup_ref)),
                        rt_calls,
                    ),
                }
            )
            rechecks += [(name_rc, app_rc, "JWT", token_rc), (name_rn, app_rn, "JWT", token_rn)]
            rechecks.append((name_br, app_br, "Bearer", token_br))
            cached[tag] = (name_rc, app_rc, prot_rc, trips)
            redis_stores += [store_of(app_rc), store_of(app_rn), floor_store]

    for run, calls in cases.values():
        run(min(calls, max(200, calls // 4)))  # warm-up, not timed
    for name, app, environ, trips in cached.values():
        wait_cache_ready(name, app, environ, trips)
    trips_before = {tag: entry[3].count for tag, entry in cached.items()}

    names = list(cases)
    samples: Dict[str, List[float]] = {name: [] for name in names}
    gc_was_enabled = gc.isenabled()
    started = time.perf_counter()
    try:
        for round_no in range(args.rounds):
            shift = round_no % len(names)
            for name in names[shift:] + names[:shift]:  # every case takes every slot in turn
                run, calls = cases[name]
                gc.collect()
                gc.disable()
                elapsed = run(calls)
                if gc_was_enabled:
                    gc.enable()
                samples[name].append(elapsed / calls / 1000.0)  # µs per call
    finally:
        if gc_was_enabled:
            gc.enable()
    wall = time.perf_counter() - started
    trips_timed = {tag: entry[3].count - trips_before[tag] for tag, entry in cached.items()}

    # The token must still be accepted after the run: the timings are of the success path.
    check("flask_tokenauth", app_a, "JWT", token_a)
    check("flask_tokenauth+SQLite", app_s, "JWT", token_s)
    check("Flask-JWT-Extended", app_b, "Bearer", token_b)
    store_of(app_s).close()
    shutil.rmtree(sqlite_dir, ignore_errors=True)
    for name, app, prefix, token in rechecks:
        check(name, app, prefix, token)
    for store in redis_stores:
        store.close()

    def added(protected: str, open_: str) -> List[float]:
        return [p - o for p, o in zip(samples[protected], samples[open_])]

    rows: List[Tuple[str, List[float]]] = [
        ("flask_tokenauth open", samples["a_open"]),
        ("flask_tokenauth protected (memory store)", samples["a_prot"]),
    ]
    if args.no_cache:
        rows.append(("flask_tokenauth protected (no cache)", samples["a_prot_nc"]))
    rows.append(("flask_tokenauth added cost (memory store)", added("a_prot", "a_open")))
    rows += [
        ("flask_tokenauth+SQLite open", samples["s_open"]),
        ("flask_tokenauth+SQLite protected", samples["s_prot"]),
        ("flask_tokenauth added cost (SQLite store)", added("s_prot", "s_open")),
    ]
    if args.no_cache:
        rows.append(("flask_tokenauth added cost (no cache)", added("a_prot_nc", "a_open")))
    rows += [
        ("Flask-JWT-Extended open", samples["b_open"]),
        ("Flask-JWT-Extended protected", samples["b_prot"]),
        ("Flask-JWT-Extended added cost", added("b_prot", "b_open")),
        ("raw PyJWT decode", samples["raw"]),
    ]
    for delay in delays:
        tag = _tag(delay)
        at = "[%s ms] " % tag
        rows += [
            (at + "flask_tokenauth+Redis open, cache on", samples["rc_open@" + tag]),
            (at + "flask_tokenauth+Redis protected, cache on", samples["rc_prot@" + tag]),
            (at + "flask_tokenauth+Redis added cost, cache on", added("rc_prot@" + tag, "rc_open@" + tag)),
            (at + "flask_tokenauth+Redis open, cache off", samples["rn_open@" + tag]),
            (at + "flask_tokenauth+Redis protected, cache off", samples["rn_prot@" + tag]),
            (at + "flask_tokenauth+Redis added cost, cache off", added("rn_prot@" + tag, "rn_open@" + tag)),
            (at + "Flask-JWT-Extended+Redis open", samples["br_open@" + tag]),
            (at + "Flask-JWT-Extended+Redis protected", samples["br_prot@" + tag]),
            (at + "Flask-JWT-Extended+Redis added cost", added("br_prot@" + tag, "br_open@" + tag)),
            (at + "raw redis-py GET (blocklist loader's call)", samples["get@" + tag]),
            (at + "raw RedisStore.lookup, no cache", samples["lookup@" + tag]),
        ]

    print(
        "Python %s (%s), Flask %s, Werkzeug %s, PyJWT %s, Flask-JWT-Extended %s, flask_tokenauth %s"
        % (
            platform.python_version(),
            platform.python_implementation(),
            _version("Flask"),
            _version("Werkzeug"),
            _version("PyJWT"),
            _version("Flask-JWT-Extended"),
            getattr(flask_tokenauth, "__version__", "?"),
        )
    )
    print(
        "Machine: %s, %s, %s CPUs" % (platform.platform(), platform.machine() or "?", os.cpu_count() or "?")
    )
    if server is not None:
        print(
            "Redis: redis-server %s on 127.0.0.1:%d (flask_tokenauth db %d, Flask-JWT-Extended db %d),"
            " redis-py %s; one-way delays %s ms (0: direct, else tests/delay_proxy.py in a child process)"
            % (
                redis_version,
                server.port,
                TOKENAUTH_REDIS_DB,
                EXTENDED_REDIS_DB,
                _version("redis"),
                ", ".join(_tag(d) for d in delays),
            )
        )
    else:
        print("Redis: skipped (--no-redis)")
    print(
        "%d rounds x %d calls per case (%d for round trips through the proxy), rotating order,"
        " %.1f s timed; microseconds per call" % (args.rounds, args.calls, args.rt_calls, wall)
    )
    print()
    width = max(len(label) for label, _ in rows)
    header = "%-*s  %9s  %9s  %9s" % (width, "case", "median", "min", "max")
    print(header)
    print("-" * len(header))
    for label, values in rows:
        print(
            "%-*s  %9.2f  %9.2f  %9.2f" % (width, label, statistics.median(values), min(values), max(values))
        )
    print()

    def median_added(protected: str, open_: str) -> float:
        return statistics.median(added(protected, open_))

    a_added = median_added("a_prot", "a_open")
    b_added = median_added("b_prot", "b_open")
    raw = statistics.median(samples["raw"])
    z: Optional[float] = None
    c: Optional[float] = None
    if server is not None and 0.0 in delays:
        r_added = median_added("rc_prot@0", "rc_open@0")
        br_added = median_added("br_prot@0", "br_open@0")
        z = _ratio(r_added, br_added)
        summary = [
            ("flask_tokenauth", a_added, r_added),
            ("Flask-JWT-Extended", b_added, br_added),
        ]
        width = max(len(label) for label, _, _ in summary)
        header = "%-*s  %14s  %9s  %13s" % (width, "added cost", "memory / none", "Redis", "Redis extra")
        print(header)
        print("-" * len(header))
        for label, plain, with_redis in summary:
            print("%-*s  %14.2f  %9.2f  %13.2f" % (width, label, plain, with_redis, with_redis - plain))
        print(
            "(median of per-round protected - open, microseconds, Redis direct (delay 0); flask_tokenauth"
            " without Redis = memory store, with Redis = cache on; Flask-JWT-Extended without Redis = no"
            " blocklist)"
        )
        print()
    if server is not None:
        header = "%8s  %10s  %14s  %14s  %14s  %9s  %9s  %9s" % (
            "delay ms",
            "GET trip",
            "tokenauth on",
            "tokenauth off",
            "Extended+Redis",
            "on/memory",
            "on/Ext",
            "off/Ext",
        )
        print(header)
        print("-" * len(header))
        for delay in delays:
            tag = _tag(delay)
            on = median_added("rc_prot@" + tag, "rc_open@" + tag)
            off = median_added("rn_prot@" + tag, "rn_open@" + tag)
            ext = median_added("br_prot@" + tag, "br_open@" + tag)
            ratios = [_ratio(on, a_added), _ratio(on, ext), _ratio(off, ext)]
            print(
                "%8s  %10.2f  %14.2f  %14.2f  %14.2f  %s"
                % (
                    tag,
                    statistics.median(samples["get@" + tag]),
                    on,
                    off,
                    ext,
                    "  ".join("%9s" % ("n/a" if r is None else "%.3f" % r) for r in ratios),
                )
            )
            if delay == TARGET_CACHE_DELAY_MS:
                c = ratios[0]
        print(
            "(added cost, median of per-round protected - open, microseconds; GET trip: one redis-py GET;"
            " on/off: flask_tokenauth+Redis with the revocation cache on/off; memory: flask_tokenauth"
            " with the memory store, %.2f)" % a_added
        )
        calls_timed = args.rounds * args.calls
        print(
            "cache-on protected requests timed that went to Redis: %s"
            % "; ".join("%s ms: %d of %d" % (tag, trips_timed[tag], calls_timed) for tag in trips_timed)
        )
        print()
    x = _ratio(a_added, b_added)
    y = _ratio(a_added, raw)
    s_added = median_added("s_prot", "s_open")
    sq = _ratio(s_added, a_added)
    print(
        "flask_tokenauth+SQLite added / memory-store added = %s (%.2f / %.2f)"
        % ("n/a" if sq is None else "%.3f" % sq, s_added, a_added)
    )
    print("flask_tokenauth added / Flask-JWT-Extended added = %s" % ("n/a" if x is None else "%.3f" % x))
    print("flask_tokenauth added / raw PyJWT decode = %s" % ("n/a" if y is None else "%.3f" % y))
    if args.no_cache:
        nc_added = median_added("a_prot_nc", "a_open")
        for label, value in (
            ("Flask-JWT-Extended added", _ratio(nc_added, b_added)),
            ("raw PyJWT decode", _ratio(nc_added, raw)),
        ):
            shown = "n/a" if value is None else "%.3f" % value
            print("flask_tokenauth added (no cache) / %s = %s (no target)" % (label, shown))
    if z is not None or (server is not None and 0.0 in delays):
        print(
            "flask_tokenauth+Redis (cache on) added / Flask-JWT-Extended+Redis added, delay 0 = %s"
            % ("n/a" if z is None else "%.3f" % z)
        )
    if c is not None or (server is not None and TARGET_CACHE_DELAY_MS in delays):
        print(
            "flask_tokenauth+Redis (cache on) added at %g ms / memory-store added = %s"
            % (TARGET_CACHE_DELAY_MS, "n/a" if c is None else "%.3f" % c)
        )
    print(_target_line("S", sq, TARGET_SQLITE_VS_MEMORY, miss="FAIL"))
    print(_target_line("X", x, TARGET_VS_EXTENDED))
    print(_target_line("Y", y, TARGET_VS_DECODE))
    if server is None:
        print("target Z <= %.1f: skipped (--no-redis)" % TARGET_REDIS_VS_EXTENDED_REDIS)
    elif 0.0 not in delays:
        print("target Z <= %.1f: skipped (no delay 0 in --delays)" % TARGET_REDIS_VS_EXTENDED_REDIS)
    else:
        print(_target_line("Z", z, TARGET_REDIS_VS_EXTENDED_REDIS))
    if server is None:
        print(
            "target C <= %.1f at %g ms: skipped (--no-redis)"
            % (TARGET_CACHE_VS_MEMORY, TARGET_CACHE_DELAY_MS)
        )
    elif TARGET_CACHE_DELAY_MS not in delays:
        print(
            "target C <= %.1f at %g ms: skipped (no %g in --delays)"
            % (TARGET_CACHE_VS_MEMORY, TARGET_CACHE_DELAY_MS, TARGET_CACHE_DELAY_MS)
        )
    else:
        print(_target_line("C", c, TARGET_CACHE_VS_MEMORY, miss="FAIL"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
