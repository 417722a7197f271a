"""Memory the token store uses per session, on Redis and in process.

Starts its own ``redis-server`` on a free loopback port, then for N sessions:
log in, refresh once (an active, refreshed session), then log out. Prints the
store's growth per session after each stage. Run by hand:

    python benchmarks/store_memory.py [--sessions 2000] [--grace 0]
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import socket
import subprocess
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tests.conftest import auth_header, make_app  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(port: int) -> subprocess.Popen:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("redis-server did not start")


def run_sessions(app, count: int, measure) -> list:
    """Log in, refresh, log out ``count`` sessions; ``measure()`` after each stage."""
    client = app.test_client()
    rows = [("empty", measure())]
    pairs = []
    for _ in range(count):
        body = client.post("/auth", json={"username": "joe", "password": "pass"}).get_json()
        pairs.append(body["refresh_token"])
    rows.append(("logged in (never refreshed)", measure()))
    access = []
    for refresh in pairs:
        answer = client.post("/auth/refresh", headers=auth_header(refresh))
        assert answer.status_code == 200, answer.get_json()
        access.append(answer.get_json()["access_token"])
    rows.append(("refreshed once (active)", measure()))
    for token in access:
        answer = client.post("/auth/logout", headers=auth_header(token))
        assert answer.status_code == 200, answer.get_json()
    rows.append(("logged out", measure()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--grace", type=float, default=0.0, help="JWT_REFRESH_REUSE_GRACE")
    args = parser.parse_args()
    config = {
        "JWT_REFRESH_URL_RULE": "/auth/refresh",
        "JWT_LOGOUT_URL_RULE": "/auth/logout",
        "JWT_REFRESH_REUSE_GRACE": args.grace,
    }

    port = free_port()
    proc = start_redis(port)
    try:
        import redis

        client = redis.Redis(port=port)
        app = make_app({**config, "JWT_TOKEN_STORE": "redis://127.0.0.1:%d/0" % port})

        def redis_bytes() -> tuple:
            return client.info("memory")["used_memory"], client.dbsize()

        redis_rows = run_sessions(app, args.sessions, redis_bytes)
    finally:
        proc.terminate()
        proc.wait(5)

    # The verified-token cache is off here so that only the store is counted.
    app = make_app({**config, "JWT_VERIFIED_TOKEN_CACHE_SIZE": 0})
    store = app.extensions["flask_tokenauth"]
    with app.app_context():
        store = store.store()
    tracemalloc.start()

    def memory_bytes() -> tuple:
        gc.collect()
        return tracemalloc.get_traced_memory()[0], len(store)

    memory_rows = run_sessions(app, args.sessions, memory_bytes)
    tracemalloc.stop()

    print("sessions: %d, JWT_REFRESH_REUSE_GRACE=%s" % (args.sessions, args.grace))
    print("%-30s %14s %8s %14s %8s" % ("stage", "redis B/sess", "keys", "memory B/sess", "entries"))
    base_r, base_m = redis_rows[0][1][0], memory_rows[0][1][0]
    for (stage, (r_bytes, r_keys)), (_, (m_bytes, m_entries)) in zip(redis_rows, memory_rows):
        per_redis = (r_bytes - base_r) / args.sessions
        per_memory = (m_bytes - base_m) / args.sessions
        print("%-30s %14.0f %8d %14.0f %8d" % (stage, per_redis, r_keys, per_memory, m_entries))
    print("(memory:// measured with tracemalloc over the whole process, verified-token cache off;")
    print(" redis keys include the store's 1024 generation markers, written at init_app, in every row)")


if __name__ == "__main__":
    main()
