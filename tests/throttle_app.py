"""The tutorial app with login throttling on, served in its own process (tests only).

    python -m tests.throttle_app --port 5001 --redis redis://127.0.0.1:6379/0 --rate-limit "3 per minute"

Run from the repository root. The counters of failed logins live in the
Redis named by ``--redis`` (``JWT_TOKEN_STORE``), so two processes started
with the same URL share the limit. Prints ``serving <port>`` once listening.
"""

from __future__ import annotations

import argparse
import sys

from werkzeug.serving import make_server

from tests.conftest import make_app


def build_app(redis_url: str, rate_limit: str, store_timeout: float = 1.0):
    return make_app(
        {
            "JWT_TOKEN_STORE": redis_url,
            "JWT_TOKEN_STORE_TIMEOUT": store_timeout,
            "JWT_LOGIN_RATE_LIMIT": rate_limit,
        }
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True, help="JWT_TOKEN_STORE URL")
    parser.add_argument("--rate-limit", required=True, help="JWT_LOGIN_RATE_LIMIT")
    parser.add_argument("--store-timeout", type=float, default=1.0)
    args = parser.parse_args(argv)
    app = build_app(args.redis, args.rate_limit, args.store_timeout)
    server = make_server("127.0.0.1", args.port, app, threaded=True)
    print("serving %d" % args.port, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # pragma: no cover
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
