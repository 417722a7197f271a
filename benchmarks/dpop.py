"""What a DPoP-checked request costs, beside a plain one (run by hand).

    python benchmarks/dpop.py [--rounds 15] [--calls 1000]

One Flask app (memory store, ``JWT_DPOP = "allowed"``) driven through
``app.wsgi_app`` in this process: an open route, a protected route with a
plain token, and the same route with a DPoP-bound token and a fresh proof per
request (the proofs are made by jwcrypto before the clock starts, one per
call, since each may be used once). Reference rows give the floor: one ECDSA
P-256 verify (cryptography), and PyJWT verifying one proof. Cases interleave
over the rounds; figures are medians in microseconds per request.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any, Callable, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jwt as pyjwt  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

from tests.conftest import make_app  # noqa: E402
from tests.dpop_support import Client  # noqa: E402

BASE = "https://api.example"


def environ(path: str, headers: Dict[str, str]) -> Dict[str, Any]:
    return EnvironBuilder(path=path, base_url=BASE, headers=headers).get_environ()


def requests_of(app: Any, environs: List[Dict[str, Any]]) -> Callable[[], int]:
    """Time every prepared request once; nanoseconds. Each must answer 200."""
    seen: List[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        seen.append(status)
        return lambda data: None

    def run() -> int:
        started = time.perf_counter_ns()
        for one in environs:
            body = app.wsgi_app(one, start_response)
            for _ in body:
                pass
        elapsed = time.perf_counter_ns() - started
        bad = [status for status in seen if not status.startswith("200")]
        assert not bad, bad[:3]
        seen.clear()
        return elapsed

    return run


def calls_of(fn: Callable[[], Any], count: int) -> Callable[[], int]:
    def run() -> int:
        started = time.perf_counter_ns()
        for _ in range(count):
            fn()
        return time.perf_counter_ns() - started

    return run


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args(argv)

    app = make_app({"JWT_DPOP": "allowed", "JWT_DPOP_PROOF_MAX_AGE": 3600})
    key = Client("ES256")
    with app.app_context():
        plain = app.extensions["jwt"].create_access_token(1, expires_delta=3600)
        bound = app.extensions["jwt"].create_access_token(1, expires_delta=3600, dpop_jkt=key.jkt)
    url = BASE + "/protected"
    total = args.rounds * args.calls
    print("making %d proofs with jwcrypto..." % total, file=sys.stderr)
    proofs = [key.proof("GET", url, bound) for _ in range(total)]

    signing = ec.generate_private_key(ec.SECP256R1())
    message = b"x" * 200
    signature = signing.sign(message, ec.ECDSA(hashes.SHA256()))
    public = signing.public_key()
    proof_key = pyjwt.PyJWK(key.public_jwk(), algorithm="ES256").key

    cases: Dict[str, Callable[[int], Callable[[], int]]] = {
        "open": lambda r: requests_of(app, [environ("/open", {}) for _ in range(args.calls)]),
        "protected, plain token": lambda r: requests_of(
            app, [environ("/protected", {"Authorization": "JWT " + plain}) for _ in range(args.calls)]
        ),
        "protected, DPoP proof": lambda r: requests_of(
            app,
            [
                environ("/protected", {"Authorization": "DPoP " + bound, "DPoP": proofs[r * args.calls + i]})
                for i in range(args.calls)
            ],
        ),
        "ECDSA P-256 verify (floor)": lambda r: calls_of(
            lambda: public.verify(signature, message, ec.ECDSA(hashes.SHA256())), args.calls
        ),
        "PyJWT verifying one proof": lambda r: calls_of(
            lambda: pyjwt.api_jws.decode(proofs[0], proof_key, algorithms=["ES256"]), args.calls
        ),
    }
    samples: Dict[str, List[float]] = {name: [] for name in cases}
    for round_number in range(args.rounds):
        order = list(cases)[round_number % len(cases):] + list(cases)[: round_number % len(cases)]
        for name in order:
            run = cases[name](round_number)
            samples[name].append(run() / args.calls / 1000.0)

    print("%d rounds x %d calls, medians in microseconds per call" % (args.rounds, args.calls))
    print("%-32s %10s %10s %10s" % ("case", "median", "min", "max"))
    for name, values in samples.items():
        print("%-32s %10.2f %10.2f %10.2f" % (name, statistics.median(values), min(values), max(values)))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    plain_added = medians["protected, plain token"] - medians["open"]
    dpop_added = medians["protected, DPoP proof"] - medians["open"]
    print("added over open: plain %.2f, DPoP %.2f; DPoP extra %.2f = %.1f ECDSA verifies"
          % (plain_added, dpop_added, dpop_added - plain_added,
             (dpop_added - plain_added) / medians["ECDSA P-256 verify (floor)"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
