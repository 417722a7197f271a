"""Soak: many login -> refresh -> logout cycles against a real Redis store.

Starts its own ``redis-server`` on a free 127.0.0.1 port
(``tests/redis_server.py``; stopped at the end) and drives
``benchmarks/bench_app.py`` with ``JWT_TOKEN_STORE`` on it **in process,
through Flask's test client** (no HTTP server: the store, not a web server,
is what is soaked). Token lifetimes are short so that store entries expire
during the run: ``JWT_EXPIRATION_DELTA=5``, ``JWT_REFRESH_EXPIRATION_DELTA=10``
(so the session, and every family entry, ends 10 s after login),
``JWT_LEEWAY=0``.

Each cycle: ``POST /auth`` (login), ``POST /auth/refresh`` with the refresh
token, ``POST /auth/logout`` with the refreshed access token. Every
``--report-every`` (1000) cycles it records the Redis key count (``DBSIZE``),
the live ``tokenauth:`` keys by kind (``SCAN``, which skips expired keys),
``used_memory`` and the server's ``expired_keys`` counter, and spot-checks
that the logged-out access token and the family's current refresh token are
now refused (401 "revoked"). After the last cycle it waits until every entry
must have expired (refresh lifetime + leeway + ``--settle`` 2 s, bounded)
and counts again.

Keys are ``tokenauth:{<group>}:<kind>:<id>`` (one hash tag per group of
tokens); each of the store's 1024 groups also holds a generation marker,
``tokenauth:{<group>}:gen``, written when the app starts and kept without a
TTL by design (it tells the store whether Redis lost its data). The markers
are counted in DBSIZE and "live" but are not entries that should expire.

Printed: a table of the report points (and the final counts), a table of
responses by step and status, and PASS/FAIL lines for "no 5xx response",
"revoked tokens refused" and "store empty after expiry" (no live
``tokenauth:`` key but the generation markers). Exit status 1 when any fails.

Run from the repository root (about 1 minute at the defaults on 2 CPUs)::

    python benchmarks/soak.py [--cycles 10000] [--report-every 1000] [--max-seconds 600]
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import secrets
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
for _path in (BENCH_DIR, REPO_ROOT):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import bench_app  # noqa: E402

PREFIX = "tokenauth:"  # flask_tokenauth's default JWT_TOKEN_STORE_PREFIX
KINDS = ("jti", "fam", "rot", "idn", "gen", "other")


def key_kind(key: bytes) -> str:
    """``jti``, ``fam``, ``rot``, ``idn``, ``gen`` (a group's generation marker)
    or ``other``, from ``<prefix>{<group>}:<kind>[:<id>]``."""
    rest = key.decode("utf-8", "replace")[len(PREFIX):]
    if rest.startswith("{") and "}:" in rest:
        rest = rest.split("}:", 1)[1]
    kind = rest.split(":", 1)[0]
    return kind if kind in KINDS else "other"


def auth(token: str) -> Dict[str, str]:
    return {"Authorization": "JWT " + token}


class Soak:
    def __init__(self, app: Any, redis_client: Any) -> None:
        self.client = app.test_client()
        self.redis = redis_client
        self.statuses: Dict[Tuple[str, int], int] = collections.Counter()
        self.server_errors = 0
        self.spot_checks = 0
        self.spot_failures: List[str] = []
        self.last: Dict[str, Optional[str]] = {}

    def _count(self, step: str, status: int) -> None:
        self.statuses[(step, status)] += 1
        if status >= 500:
            self.server_errors += 1

    def cycle(self) -> bool:
        """One login -> refresh -> logout; False when a step did not answer 200."""
        client = self.client
        login = client.post("/auth", json={"username": bench_app.USERNAME, "password": bench_app.PASSWORD})
        self._count("login", login.status_code)
        if login.status_code != 200:
            return False
        tokens = login.get_json()
        refreshed = client.post("/auth/refresh", headers=auth(tokens["refresh_token"]))
        self._count("refresh", refreshed.status_code)
        if refreshed.status_code != 200:
            return False
        pair = refreshed.get_json()
        logout = client.post("/auth/logout", headers=auth(pair["access_token"]))
        self._count("logout", logout.status_code)
        self.last = {"access": pair["access_token"], "refresh": pair["refresh_token"]}
        return logout.status_code == 200

    def spot_check(self) -> None:
        """The last cycle's logged-out access token and its family's current
        refresh token must both be refused as revoked."""
        if not self.last:
            return
        for step, method, path, token in (
            ("check: logged-out access", "get", "/protected", self.last["access"]),
            ("check: family's refresh", "post", "/auth/refresh", self.last["refresh"]),
        ):
            answer = getattr(self.client, method)(path, headers=auth(token or ""))
            self._count(step, answer.status_code)
            self.spot_checks += 1
            body = answer.get_json(silent=True) or {}
            if answer.status_code != 401 or "revoked" not in str(body.get("description", "")):
                self.spot_failures.append("%s: %d %r" % (step, answer.status_code, body))

    def snapshot(self) -> Dict[str, Any]:
        kinds: Dict[str, int] = collections.Counter()
        for key in self.redis.scan_iter(match=PREFIX + "*", count=1000):
            kinds[key_kind(key)] += 1
        return {
            "dbsize": self.redis.dbsize(),
            "live": sum(kinds.values()),
            "entries": sum(kinds.values()) - kinds.get("gen", 0),  # all but the markers
            "kinds": kinds,
            "used_memory": self.redis.info("memory")["used_memory"],
            "expired_keys": self.redis.info("stats")["expired_keys"],
            "server_errors": self.server_errors,
        }


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=10000, help="login/refresh/logout cycles (10000)")
    parser.add_argument("--report-every", type=int, default=1000, help="cycles between reports (1000)")
    parser.add_argument("--access-lifetime", type=int, default=5, help="JWT_EXPIRATION_DELTA, s (default 5)")
    parser.add_argument(
        "--refresh-lifetime", type=int, default=10, help="JWT_REFRESH_EXPIRATION_DELTA, s (default 10)"
    )
    parser.add_argument("--settle", type=float, default=2.0, help="extra wait after expiry, s (default 2)")
    parser.add_argument(
        "--max-seconds", type=float, default=600.0, help="stop the cycles after this long (default 600)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.cycles <= 1_000_000 or not 1 <= args.report_every <= args.cycles:
        parser.error("--cycles must be 1..1000000 and --report-every 1..cycles")
    if not 1 <= args.access_lifetime <= args.refresh_lifetime <= 120:
        parser.error("need 1 <= --access-lifetime <= --refresh-lifetime <= 120")
    if not 0 <= args.settle <= 60 or not 1 <= args.max_seconds <= 3600:
        parser.error("--settle must be 0..60 and --max-seconds 1..3600")

    import redis

    from tests.redis_server import RedisServer

    server = RedisServer().start()
    try:
        app = bench_app.create_app(
            {
                "SECRET_KEY": secrets.token_hex(32),
                "JWT_TOKEN_STORE": server.url,
                "JWT_EXPIRATION_DELTA": args.access_lifetime,
                "JWT_REFRESH_EXPIRATION_DELTA": args.refresh_lifetime,
                "JWT_LEEWAY": 0,
            }
        )
        leeway = 0
        client = redis.Redis(host="127.0.0.1", port=server.port, db=0)
        redis_version = client.info("server")["redis_version"]
        soak = Soak(app, client)
        rows: List[Tuple[str, float, float, Dict[str, Any]]] = [("start", 0.0, 0.0, soak.snapshot())]
        failed_cycles = 0
        done = 0
        stopped_early = False
        started = time.monotonic()
        window_start, window_done = started, 0
        for done in range(1, args.cycles + 1):
            if not soak.cycle():
                failed_cycles += 1
            if done % args.report_every == 0 or done == args.cycles:
                soak.spot_check()
                now = time.monotonic()
                rate = (done - window_done) / (now - window_start) if now > window_start else 0.0
                rows.append(("cycle %d" % done, now - started, rate, soak.snapshot()))
                window_start, window_done = time.monotonic(), done
            if time.monotonic() - started > args.max_seconds:
                stopped_early = True
                break
        cycles_wall = time.monotonic() - started
        if stopped_early and not rows[-1][0].endswith(" %d" % done):
            rows.append(("cycle %d" % done, cycles_wall, 0.0, soak.snapshot()))

        # Every entry's TTL ends by the session end (refresh lifetime) + leeway after
        # its login; wait that long after the last cycle, plus --settle, then count.
        last_cycle = time.monotonic()
        wait = args.refresh_lifetime + leeway + args.settle
        time.sleep(max(0.0, last_cycle + wait - time.monotonic()))
        final = soak.snapshot()
        rows.append(("after %.0f s wait" % wait, time.monotonic() - started, 0.0, final))
        # DBSIZE also counts keys that expired but that Redis has not reclaimed yet;
        # give its active expiry a bounded moment and report when DBSIZE is down to
        # the generation markers (they have no TTL: they stay).
        markers = final["kinds"].get("gen", 0)
        reclaim_deadline = time.monotonic() + 5.0
        while client.dbsize() > markers and time.monotonic() < reclaim_deadline:
            time.sleep(0.25)
        reclaimed = soak.snapshot()
        rows.append(("+ reclaim (<= 5 s)", time.monotonic() - started, 0.0, reclaimed))
    finally:
        server.stop()

    print(
        "Python %s, redis-server %s on 127.0.0.1:%d, redis-py %s, flask_tokenauth (test client, in process)"
        % (platform.python_version(), redis_version, server.port, redis.__version__)
    )
    print("Machine: %s, %s CPUs" % (platform.platform(), os.cpu_count()))
    print(
        "%d of %d cycles (login -> refresh -> logout) in %.1f s%s; JWT_EXPIRATION_DELTA=%d,"
        " JWT_REFRESH_EXPIRATION_DELTA=%d, JWT_LEEWAY=0"
        % (
            done,
            args.cycles,
            cycles_wall,
            " (stopped at --max-seconds)" if stopped_early else "",
            args.access_lifetime,
            args.refresh_lifetime,
        )
    )
    print()
    header = "%-18s  %7s  %8s  %7s  %7s  %6s  %6s  %6s  %11s  %9s  %4s" % (
        "point", "elapsed", "cycles/s", "DBSIZE", "live", "jti", "fam", "rot", "used_memory", "expired", "5xx"
    )
    print(header)
    print("-" * len(header))
    for label, elapsed, rate, snap in rows:
        kinds = snap["kinds"]
        print(
            "%-18s  %6.1fs  %8s  %7d  %7d  %6d  %6d  %6d  %11d  %9d  %4d"
            % (
                label,
                elapsed,
                "%.0f" % rate if rate else "",
                snap["dbsize"],
                snap["live"],
                kinds.get("jti", 0),
                kinds.get("fam", 0),
                kinds.get("rot", 0),
                snap["used_memory"],
                snap["expired_keys"],
                snap["server_errors"],
            )
        )
    print("(live = tokenauth:* keys that SCAN returns, expired ones excluded; jti/fam/rot = revoked tokens,")
    print(" revoked families, rotation records; used_memory in bytes; expired = Redis' expired_keys counter;")
    print(" DBSIZE and live include the store's generation markers, tokenauth:{n}:gen, which have no TTL)")
    print()
    print("%-26s  %6s  %8s" % ("step", "status", "count"))
    print("-" * 44)
    for (step, status), count in sorted(soak.statuses.items()):
        print("%-26s  %6d  %8d" % (step, status, count))
    print()

    no_5xx = soak.server_errors == 0
    refused = not soak.spot_failures and soak.spot_checks > 0
    empty = final["entries"] == 0
    print("no 5xx responses: %s (%d 5xx, %d failed cycles)" % ("PASS" if no_5xx else "FAIL",
                                                              soak.server_errors, failed_cycles))
    print(
        "revoked tokens refused (spot checks): %s (%d checks%s)"
        % ("PASS" if refused else "FAIL", soak.spot_checks,
           "; " + "; ".join(soak.spot_failures[:3]) if soak.spot_failures else "")
    )
    print(
        "store empty after expiry: %s (%d live tokenauth: keys besides the %d generation markers"
        " %.0f s after the last cycle; DBSIZE %d then, %d after reclaim; used_memory %d -> %d bytes)"
        % (
            "PASS" if empty else "FAIL",
            final["entries"],
            final["kinds"].get("gen", 0),
            wait,
            final["dbsize"],
            reclaimed["dbsize"],
            rows[0][3]["used_memory"],
            reclaimed["used_memory"],
        )
    )
    return 0 if (no_5xx and refused and empty and failed_cycles == 0) else 1


if __name__ == "__main__":
    sys.exit(main())
