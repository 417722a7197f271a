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

Run from the repository root::

    python benchmarks/overhead.py [--rounds 15] [--calls 2000] [--no-cache]

Flask-JWT-Extended comes with the ``bench`` extra: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import hmac
import os
import platform
import secrets
import statistics
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Callable, Dict, List, Optional, Tuple

import jwt as pyjwt
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


class User:
    __slots__ = ("id", "username", "password")

    def __init__(self, id: int, username: str, password: str) -> None:
        self.id = id
        self.username = username
        self.password = password


USERS = {1: User(1, "alice", "wonderland")}
BY_NAME = {u.username: u for u in USERS.values()}


def authenticate(username: str, password: str) -> Optional[User]:
    user = BY_NAME.get(username)
    if user is not None and hmac.compare_digest(user.password, password):
        return user
    return None


def identity(payload: Dict[str, Any]) -> Optional[User]:
    return USERS.get(payload["identity"])


# --- the apps -------------------------------------------------------------------


def tokenauth_app(cache_size: Optional[int] = None) -> Tuple[Flask, str]:
    """App A: flask_tokenauth, and a token for user 1."""
    app = Flask("bench_tokenauth")
    app.config["SECRET_KEY"] = SECRET
    app.config["JWT_EXPIRATION_DELTA"] = datetime.timedelta(hours=1)  # outlives any run
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


def extended_app() -> Tuple[Flask, str]:
    """App B: Flask-JWT-Extended, and a token for identity "1"."""
    app = Flask("bench_extended")
    app.config["SECRET_KEY"] = SECRET  # JWT_SECRET_KEY falls back to it
    app.config["JWT_ALGORITHM"] = "HS256"
    app.config["JWT_ACCESS_TOKEN_EXPIRES"] = datetime.timedelta(hours=1)
    flask_jwt_extended.JWTManager(app)

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
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.calls < 1:
        parser.error("--rounds and --calls must be at least 1")

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

    def added(protected: str, open_: str) -> List[float]:
        return [p - o for p, o in zip(samples[protected], samples[open_])]

    rows: List[Tuple[str, List[float]]] = [
        ("flask_tokenauth open", samples["a_open"]),
        ("flask_tokenauth protected", samples["a_prot"]),
    ]
    if args.no_cache:
        rows.append(("flask_tokenauth protected (no cache)", samples["a_prot_nc"]))
    rows.append(("flask_tokenauth added cost", added("a_prot", "a_open")))
    if args.no_cache:
        rows.append(("flask_tokenauth added cost (no cache)", added("a_prot_nc", "a_open")))
    rows += [
        ("Flask-JWT-Extended open", samples["b_open"]),
        ("Flask-JWT-Extended protected", samples["b_prot"]),
        ("Flask-JWT-Extended added cost", added("b_prot", "b_open")),
        ("raw PyJWT decode", samples["raw"]),
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
    print(_target_line("X", x, TARGET_VS_EXTENDED))
    print(_target_line("Y", y, TARGET_VS_DECODE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
