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
127.0.0.1 port (``tests/redis_server.py``; stopped at the end) and times two
more pairs of routes against it:

* flask_tokenauth+Redis: the same app with ``JWT_TOKEN_STORE =
  "redis://127.0.0.1:<port>/0"`` (keys under ``tokenauth:``), so every
  protected request asks Redis whether the token, its family or its identity
  was revoked (the verified-token cache never skips that);
* Flask-JWT-Extended+Redis: its documented blocklist pattern, in db 1 of the
  same server: ``@jwt.token_in_blocklist_loader`` returning
  ``redis_client.get(jwt_payload["jti"]) is not None``.

Before timing, each Redis app is shown to refuse a token revoked in Redis, so
a store that is not consulted cannot pass for a fast one. Two reference rows
give the Redis floor: one redis-py ``GET`` (what the blocklist loader sends)
and one ``RedisStore.lookup`` (flask_tokenauth's per-request check: one MGET
of the token's entries and its group's generation marker, on the store's
bounded connections), each a loopback round trip.

Printed: the versions and machine, a table of every case (median, min, max
microseconds per call over the rounds), an added-cost summary (memory vs
Redis), and the ratios with their targets: X = flask_tokenauth added /
Flask-JWT-Extended added (<= 0.5), Y = flask_tokenauth added / raw PyJWT
decode (<= 1.0), Z = flask_tokenauth+Redis added / Flask-JWT-Extended+Redis
added (<= 0.5).

Run from the repository root (about 1.5 minutes at the defaults)::

    python benchmarks/overhead.py [--rounds 15] [--calls 2000] [--no-cache] [--no-redis]

Flask-JWT-Extended comes with the ``bench`` extra: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import secrets
import statistics
import sys
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
REPO_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TOKENAUTH_REDIS_DB = 0  # flask_tokenauth's keys, under its prefix "tokenauth:"
EXTENDED_REDIS_DB = 1  # Flask-JWT-Extended's blocklist: a separate database


# --- the apps -------------------------------------------------------------------


def tokenauth_app(cache_size: Optional[int] = None, store: str = "memory://") -> Tuple[Flask, str]:
    """App A: flask_tokenauth, and a token for user 1. ``store`` is its
    ``JWT_TOKEN_STORE`` (the default, ``memory://``, unless a Redis URL)."""
    app = Flask("bench_tokenauth")
    app.config["SECRET_KEY"] = SECRET
    app.config["JWT_EXPIRATION_DELTA"] = datetime.timedelta(hours=1)  # outlives any run
    app.config["JWT_TOKEN_STORE"] = store
    if cache_size is not None:
        app.config["JWT_VERIFIED_TOKEN_CACHE_SIZE"] = cache_size
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


def check_extended_revocation(name: str, app: Flask, blocklist: Any) -> None:
    """A second token whose jti is in the Redis blocklist must be refused (401)."""
    with app.app_context():
        other = flask_jwt_extended.create_access_token(identity="1")
        jti = flask_jwt_extended.decode_token(other)["jti"]
    blocklist.set(jti, "", ex=3600)  # the docs' way of revoking
    status, body = request_once(app, environ_for("/protected", "Bearer " + other))
    if not status.startswith("401") or b"revoked" not in body:
        sys.exit("%s does not consult its blocklist: a revoked token answered %s %r" % (name, status, body))


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


def _target_line(label: str, value: Optional[float], limit: float) -> str:
    if value is None:
        return "target %s <= %.1f: MISS (denominator not positive)" % (label, limit)
    verdict = "PASS" if value <= limit else "MISS"
    return "target %s <= %.1f: %s (%s = %.3f)" % (label, limit, verdict, label, value)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (default 15)")
    parser.add_argument("--calls", type=int, default=2000, help="calls per case per round (default 2000)")
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
    if args.rounds < 1 or args.calls < 1:
        parser.error("--rounds and --calls must be at least 1")
    if args.rounds > 1000 or args.calls > 1_000_000:
        parser.error("--rounds is at most 1000 and --calls at most 1000000")

    server = None if args.no_redis else start_redis()
    try:
        return measure(args, server)
    finally:
        if server is not None:
            server.stop()


def measure(args: argparse.Namespace, server: Any) -> int:
    """Build the apps, time them, print the tables. ``server``: a started
    RedisServer, or ``None`` for --no-redis."""
    app_a, token_a = tokenauth_app()
    app_b, token_b = extended_app()
    check("flask_tokenauth", app_a, "JWT", token_a)
    check("Flask-JWT-Extended", app_b, "Bearer", token_b)
    pyjwt.decode(token_a, SECRET, algorithms=["HS256"])  # raises if the raw path is broken

    cases: Dict[str, Callable[[int], int]] = {
        "a_open": wsgi_batch(app_a, environ_for("/open")),
        "a_prot": wsgi_batch(app_a, environ_for("/protected", "JWT " + token_a)),
        "b_open": wsgi_batch(app_b, environ_for("/open")),
        "b_prot": wsgi_batch(app_b, environ_for("/protected", "Bearer " + token_b)),
        "raw": decode_batch(token_a),
    }
    if args.no_cache:
        app_nc, token_nc = tokenauth_app(cache_size=0)
        check("flask_tokenauth (no cache)", app_nc, "JWT", token_nc)
        cases["a_prot_nc"] = wsgi_batch(app_nc, environ_for("/protected", "JWT " + token_nc))

    redis_version = ""
    if server is not None:
        import redis

        from flask_tokenauth.revocation import token_ref
        from flask_tokenauth.state import EXTENSION_KEY
        from flask_tokenauth.store.redis import RedisStore

        store_url = "redis://127.0.0.1:%d/%d" % (server.port, TOKENAUTH_REDIS_DB)
        app_r, token_r = tokenauth_app(store=store_url)
        check("flask_tokenauth+Redis", app_r, "JWT", token_r)
        check_tokenauth_revocation("flask_tokenauth+Redis", app_r)
        # The client the docs show: redis.StrictRedis(host, port, db, decode_responses=True).
        blocklist = redis.StrictRedis(
            host="127.0.0.1", port=server.port, db=EXTENDED_REDIS_DB, decode_responses=True
        )
        app_br, token_br = extended_app(blocklist)
        check("Flask-JWT-Extended+Redis", app_br, "Bearer", token_br)
        check_extended_revocation("Flask-JWT-Extended+Redis", app_br, blocklist)
        redis_version = blocklist.info("server").get("redis_version", "?")
        # The floors: one GET (the blocklist loader's call), and flask_tokenauth's
        # store lookup on a client configured as JWT_TOKEN_STORE configures it.
        # The same settings the app's store was opened with; prepare() finds the
        # generation markers the app wrote at init_app and leaves them alone.
        floor_store = RedisStore.open(
            store_url,
            prefix=app_r.config["JWT_TOKEN_STORE_PREFIX"],
            timeout=app_r.config["JWT_TOKEN_STORE_TIMEOUT"],
            max_connections=app_r.config["JWT_TOKEN_STORE_MAX_CONNECTIONS"],
        )
        floor_store.prepare()
        with app_r.app_context():
            claims = app_r.extensions["jwt"].decode_token(token_r)
            # The TokenRef the per-request check builds from these claims.
            lookup_ref = token_ref(app_r.extensions[EXTENSION_KEY], claims)
        missing = "not-revoked-" + secrets.token_hex(8)
        cases.update(
            {
                "r_open": wsgi_batch(app_r, environ_for("/open")),
                "r_prot": wsgi_batch(app_r, environ_for("/protected", "JWT " + token_r)),
                "br_open": wsgi_batch(app_br, environ_for("/open")),
                "br_prot": wsgi_batch(app_br, environ_for("/protected", "Bearer " + token_br)),
                "redis_get": call_batch(lambda: blocklist.get(missing)),
                "redis_lookup": call_batch(lambda: floor_store.lookup(lookup_ref)),
            }
        )

    warmup = max(200, args.calls // 4)
    for run in cases.values():
        run(warmup)

    names = list(cases)
    samples: Dict[str, List[float]] = {name: [] for name in names}
    gc_was_enabled = gc.isenabled()
    started = time.perf_counter()
    try:
        for round_no in range(args.rounds):
            shift = round_no % len(names)
            for name in names[shift:] + names[:shift]:  # every case takes every slot in turn
                gc.collect()
                gc.disable()
                elapsed = cases[name](args.calls)
                if gc_was_enabled:
                    gc.enable()
                samples[name].append(elapsed / args.calls / 1000.0)  # µs per call
    finally:
        if gc_was_enabled:
            gc.enable()
    wall = time.perf_counter() - started

    # The token must still be accepted after the run: the timings are of the success path.
    check("flask_tokenauth", app_a, "JWT", token_a)
    check("Flask-JWT-Extended", app_b, "Bearer", token_b)
    if server is not None:
        check("flask_tokenauth+Redis", app_r, "JWT", token_r)
        check("Flask-JWT-Extended+Redis", app_br, "Bearer", token_br)

    def added(protected: str, open_: str) -> List[float]:
        return [p - o for p, o in zip(samples[protected], samples[open_])]

    rows: List[Tuple[str, List[float]]] = [
        ("flask_tokenauth open", samples["a_open"]),
        ("flask_tokenauth protected (memory store)", samples["a_prot"]),
    ]
    if args.no_cache:
        rows.append(("flask_tokenauth protected (no cache)", samples["a_prot_nc"]))
    rows.append(("flask_tokenauth added cost (memory store)", added("a_prot", "a_open")))
    if args.no_cache:
        rows.append(("flask_tokenauth added cost (no cache)", added("a_prot_nc", "a_open")))
    rows += [
        ("Flask-JWT-Extended open", samples["b_open"]),
        ("Flask-JWT-Extended protected", samples["b_prot"]),
        ("Flask-JWT-Extended added cost", added("b_prot", "b_open")),
        ("raw PyJWT decode", samples["raw"]),
    ]
    if server is not None:
        rows += [
            ("flask_tokenauth+Redis open", samples["r_open"]),
            ("flask_tokenauth+Redis protected", samples["r_prot"]),
            ("flask_tokenauth+Redis added cost", added("r_prot", "r_open")),
            ("Flask-JWT-Extended+Redis open", samples["br_open"]),
            ("Flask-JWT-Extended+Redis protected", samples["br_prot"]),
            ("Flask-JWT-Extended+Redis added cost", added("br_prot", "br_open")),
            ("raw redis-py GET (blocklist loader's call)", samples["redis_get"]),
            ("raw RedisStore.lookup (flask_tokenauth's)", samples["redis_lookup"]),
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
            " redis-py %s"
            % (redis_version, server.port, TOKENAUTH_REDIS_DB, EXTENDED_REDIS_DB, _version("redis"))
        )
    else:
        print("Redis: skipped (--no-redis)")
    print(
        "%d rounds x %d calls per case, rotating order, %.1f s timed; microseconds per call"
        % (args.rounds, args.calls, wall)
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

    a_added = statistics.median(added("a_prot", "a_open"))
    b_added = statistics.median(added("b_prot", "b_open"))
    raw = statistics.median(samples["raw"])
    z: Optional[float] = None
    if server is not None:
        r_added = statistics.median(added("r_prot", "r_open"))
        br_added = statistics.median(added("br_prot", "br_open"))
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
            "(median of per-round protected - open, microseconds; flask_tokenauth without Redis"
            " = memory store, Flask-JWT-Extended without Redis = no blocklist)"
        )
        print()
    x = _ratio(a_added, b_added)
    y = _ratio(a_added, raw)
    print("flask_tokenauth added / Flask-JWT-Extended added = %s" % ("n/a" if x is None else "%.3f" % x))
    print("flask_tokenauth added / raw PyJWT decode = %s" % ("n/a" if y is None else "%.3f" % y))
    if args.no_cache:
        nc_added = statistics.median(added("a_prot_nc", "a_open"))
        for label, value in (
            ("Flask-JWT-Extended added", _ratio(nc_added, b_added)),
            ("raw PyJWT decode", _ratio(nc_added, raw)),
        ):
            shown = "n/a" if value is None else "%.3f" % value
            print("flask_tokenauth added (no cache) / %s = %s (no target)" % (label, shown))
    if server is not None:
        print(
            "flask_tokenauth+Redis added / Flask-JWT-Extended+Redis added = %s"
            % ("n/a" if z is None else "%.3f" % z)
        )
    print(_target_line("X", x, TARGET_VS_EXTENDED))
    print(_target_line("Y", y, TARGET_VS_DECODE))
    if server is not None:
        print(_target_line("Z", z, TARGET_REDIS_VS_EXTENDED_REDIS))
    else:
        print("target Z <= %.1f: skipped (--no-redis)" % TARGET_REDIS_VS_EXTENDED_REDIS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
