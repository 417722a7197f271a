"""The tutorial app with sessions on, served in its own process (tests only).

    python -m tests.session_app --port 5001 --redis redis://127.0.0.1:6379/0 [--rate-limit "3 per minute"]
        [--max-connections N] [--gevent]

Run from the repository root. Adds ``POST /admin/revoke-identity/<uid>``
(unprotected: test use only) and prints ``serving <port>`` once listening.
Served by werkzeug's threaded server (a new thread per connection), or with
``--gevent`` by gevent's WSGI server (a new greenlet per connection) after
``gevent.monkey.patch_all()``, as a gevent worker of gunicorn does.
"""

from __future__ import annotations

import sys

if "--gevent" in sys.argv:  # before anything else imports socket or threading
    from gevent import monkey

    monkey.patch_all()

import argparse  # noqa: E402

from flask import jsonify  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from tests.conftest import make_app  # noqa: E402


def build_app(
    redis_url: str,
    store_timeout: float = 1.0,
    grace: float = 0.0,
    rate_limit=None,
    max_connections=50,
    dpop=False,
):
    app = make_app(
        {
            "JWT_REFRESH_URL_RULE": "/auth/refresh",
            "JWT_LOGOUT_URL_RULE": "/auth/logout",
            "JWT_TOKEN_STORE": redis_url,
            "JWT_TOKEN_STORE_TIMEOUT": store_timeout,
            "JWT_TOKEN_STORE_MAX_CONNECTIONS": max_connections,
            "JWT_REFRESH_REUSE_GRACE": grace,
            "JWT_LOGIN_RATE_LIMIT": rate_limit,
            "JWT_DPOP": dpop,
        }
    )
    jwt = app.extensions["jwt"]

    @app.route("/admin/revoke-identity/<int:uid>", methods=["POST"])
    def revoke_identity(uid: int):
        jwt.revoke_identity(uid)
        return jsonify(revoked=uid)

    return app


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True, help="JWT_TOKEN_STORE URL")
    parser.add_argument("--store-timeout", type=float, default=1.0)
    parser.add_argument("--grace", type=float, default=0.0)
    parser.add_argument("--rate-limit", default=None, help="JWT_LOGIN_RATE_LIMIT (counted in that Redis)")
    parser.add_argument("--max-connections", type=int, default=50, help="JWT_TOKEN_STORE_MAX_CONNECTIONS")
    parser.add_argument("--gevent", action="store_true", help="serve with gevent (monkey-patched)")
    parser.add_argument("--dpop", default=None, help='JWT_DPOP ("allowed" or "required")')
    args = parser.parse_args(argv)
    app = build_app(
        args.redis, args.store_timeout, args.grace, args.rate_limit, args.max_connections, args.dpop or False
    )
    print("serving %d" % args.port, flush=True)
    if args.gevent:
        from gevent.pywsgi import WSGIServer

        WSGIServer(("127.0.0.1", args.port), app, log=None).serve_forever()
        return 0
    server = make_server("127.0.0.1", args.port, app, threaded=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # pragma: no cover
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
