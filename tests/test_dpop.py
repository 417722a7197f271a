"""DPoP (RFC 9449): tokens bound to the client's key. Proofs come from
jwcrypto (tests/dpop_support.py); hostile ones are bent versions of them or
hand-made with the standard library.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any, Dict, Optional

import jwt as pyjwt
import pytest
from flask import Flask, jsonify
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_tokenauth import JWT, ConfigurationError, current_token, jwt_required
from tests.conftest import make_app
from tests.dpop_support import Client, ath
from tests.idp_support import IdP, forged_token

BASE = "https://api.example"
JWS_SHAPE = r"[A-Za-z0-9_-]{1,40}\.[A-Za-z0-9_-]{0,80}\.[A-Za-z0-9_-]{0,80}"
ERROR_KEYS = {"status_code", "error", "description"}


def dpop_app(mode: Any = "allowed", **config: Any):
    app = make_app(
        {
            "JWT_DPOP": mode,
            "JWT_REFRESH_URL_RULE": "/auth/refresh",
            "JWT_LOGOUT_URL_RULE": "/auth/logout",
            **config,
        }
    )

    @app.route("/claims", methods=["GET", "POST"])
    @jwt_required()
    def claims():
        return jsonify(dict(current_token))

    @app.route("/bound-only")
    @jwt_required(dpop=True)
    def bound_only():
        return jsonify(ok=True)

    return app


def login(client, key: Optional[Client], *, proof: Optional[str] = None, status: int = 200):
    headers = {}
    if key is not None or proof is not None:
        headers["DPoP"] = proof or key.proof("POST", BASE + "/auth")
    credentials = {"username": "joe", "password": "pass"}
    answer = client.post("/auth", json=credentials, headers=headers, base_url=BASE)
    assert answer.status_code == status, answer.get_json()
    return answer


def call(client, token: str, proof: Optional[str], *, scheme: str = "DPoP", path: str = "/claims"):
    headers = {"Authorization": "%s %s" % (scheme, token)}
    if proof is not None:
        headers["DPoP"] = proof
    return client.get(path, headers=headers, base_url=BASE)


def assert_proof_refused(answer, description: str, error: str = "invalid_dpop_proof") -> None:
    assert answer.status_code == 401, answer.get_json()
    body = answer.get_json()
    assert set(body) == ERROR_KEYS and body["description"] == description, body
    challenge = answer.headers["WWW-Authenticate"]
    assert challenge.startswith('DPoP algs="ES256 ES384 RS256 PS256 EdDSA Ed25519"'), challenge
    assert 'error="%s"' % error in challenge


@pytest.fixture(name="bound")
def bound_fixture():
    """An app in "allowed" mode, a client key, and the tokens of a login made with it."""
    app = dpop_app()
    client = app.test_client()
    key = Client("ES256")
    body = login(client, key).get_json()
    return app, client, key, body


# --- binding at login, use on protected routes --------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "ES384", "RS256", "PS256", "EdDSA", "Ed25519"])
def test_a_login_with_a_proof_binds_the_tokens_to_the_key(alg):
    app = dpop_app()
    client = app.test_client()
    key = Client(alg)
    body = login(client, key).get_json()
    assert body["token_type"] == "DPoP"
    for name in ("access_token", "refresh_token"):
        claims = pyjwt.decode(body[name], options={"verify_signature": False})
        assert claims["cnf"] == {"jkt": key.jkt}
    token = body["access_token"]
    answer = call(client, token, key.proof("GET", BASE + "/claims", token))
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["cnf"] == {"jkt": key.jkt}  # current_token shows the binding


def test_a_login_without_a_proof_stays_unbound_when_allowed():
    client = dpop_app().test_client()
    body = login(client, None).get_json()
    assert "token_type" not in body
    assert "cnf" not in pyjwt.decode(body["access_token"], options={"verify_signature": False})
    assert call(client, body["access_token"], None, scheme="JWT").status_code == 200
    refused = call(client, body["access_token"], None, scheme="JWT", path="/bound-only")
    assert_proof_refused(refused, "A DPoP-bound token is required", "invalid_token")


def test_required_mode_refuses_logins_without_a_proof_and_unbound_tokens():
    app = dpop_app("required")
    client = app.test_client()
    answer = login(client, None, status=400)
    assert answer.get_json() == {
        "status_code": 400,
        "error": "invalid_dpop_proof",
        "description": "A DPoP proof is required (the DPoP header)",
    }
    with app.app_context():
        unbound = app.extensions["jwt"].create_access_token(1)
    refused = call(client, unbound, None, scheme="JWT")
    assert_proof_refused(refused, "A DPoP-bound token is required", "invalid_token")


@pytest.mark.parametrize("scheme", ["Bearer", "JWT"])
def test_a_bound_token_under_another_scheme_is_refused(bound, scheme):
    _, client, key, body = bound
    token = body["access_token"]
    answer = call(client, token, key.proof("GET", BASE + "/claims", token), scheme=scheme)
    assert_proof_refused(
        answer, "A DPoP-bound token must be sent as Authorization: DPoP <token> with a proof", "invalid_token"
    )


def test_an_unbound_token_under_the_dpop_scheme_is_refused():
    client = dpop_app().test_client()
    token = login(client, None).get_json()["access_token"]
    key = Client()
    answer = call(client, token, key.proof("GET", BASE + "/claims", token))
    assert_proof_refused(answer, "The token is not bound to a DPoP key", "invalid_token")


# --- every check of the proof ----------------------------------------------------------------


def hostile(case: str, key: Client, token: str) -> Dict[str, Any]:
    """Request headers carrying a bent proof for GET /claims."""
    url = BASE + "/claims"
    other = Client()
    now = time.time()
    claims = {"htm": "GET", "htu": url, "iat": int(now), "jti": "j-" + case, "ath": ath(token)}
    proofs = {
        "no proof": None,
        "another key": other.proof("GET", url, token),
        "stale iat": key.proof("GET", url, token, iat=now - 300),
        "future iat": key.proof("GET", url, token, iat=now + 300),
        "htu with query": key.proof("GET", url + "?x=1", token),
        "htu of another host": key.proof("GET", "https://evil.example/claims", token),
        "htu not a url": key.proof("GET", "claims", token),
        "wrong htm": key.proof("POST", url, token),
        "no ath": key.proof("GET", url),
        "wrong ath": key.proof("GET", url, token + "x"),
        "no jti": key.proof("GET", url, token, claims={"jti": None}),
        "no iat": key.proof("GET", url, token, claims={"iat": None}),
        "typ JWT": key.proof("GET", url, token, header={"typ": "JWT"}),
        "private jwk": key.proof("GET", url, token, private_jwk=True),
        "no jwk": key.proof("GET", url, token, header={"jwk": None}),
        "jwk of another key": key.proof("GET", url, token, header={"jwk": other.public_jwk()}),
        "alg none": forged_token(claims, {"alg": "none", "typ": "dpop+jwt", "jwk": key.public_jwk()}),
        "alg HS256": forged_token(
            claims, {"alg": "HS256", "typ": "dpop+jwt", "jwk": key.public_jwk()}, secret=b"k" * 32
        ),
        "garbage": "not-a-proof",
        "payload not an object": key.proof("GET", url, token, raw_payload="[1, 2]"),
        # NaN passes both "too old" and "in the future": such a proof would never expire.
        "iat NaN": key.proof("GET", url, token, raw_payload=_with_iat(claims, "NaN")),
        "iat Infinity": key.proof("GET", url, token, raw_payload=_with_iat(claims, "-Infinity")),
        "ES384 with a P-256 key": curve_mismatch(claims),
        "htu with a fragment": key.proof("GET", url + "#x", token),
        "htu of another scheme": key.proof("GET", "ftp://api.example/claims", token),
        "jti empty": key.proof("GET", url, token, claims={"jti": ""}),
        "jti of 257 characters": key.proof("GET", url, token, claims={"jti": "j" * 257}),
        "larger than 8 KiB": key.proof("GET", url, token, claims={"pad": "p" * 7000}),
        "header nested 2900 deep": hand_signed(claims, lambda jwk: "[" * 2900 + "]" * 2900),
    }
    if case == "two headers":
        first = key.proof("GET", url, token)
        return {"DPoP": [first, key.proof("GET", url, token)]}
    proof = proofs[case]
    return {} if proof is None else {"DPoP": proof}


HOSTILE = {
    "no proof": "A DPoP proof is required (the DPoP header)",
    "two headers": "Exactly one DPoP header is allowed",
    "another key": "The DPoP proof's key is not the token's key",
    "stale iat": "The DPoP proof is too old",
    "future iat": "The DPoP proof's iat is in the future",
    "htu with query": "The DPoP proof's htu is not this request's URL",
    "htu of another host": "The DPoP proof's htu is not this request's URL",
    "htu not a url": "The DPoP proof's htu is not this request's URL",
    "wrong htm": "The DPoP proof's htm is not this request's method",
    "no ath": "The DPoP proof's ath does not match the token",
    "wrong ath": "The DPoP proof's ath does not match the token",
    "no jti": "The DPoP proof has no jti",
    "no iat": "The DPoP proof has no iat",
    "typ JWT": "The DPoP proof's typ must be dpop+jwt",
    "private jwk": "The DPoP proof's jwk holds a private key",
    "no jwk": "The DPoP proof's header has no jwk",
    "jwk of another key": "The DPoP proof's signature is invalid",
    "alg none": "The DPoP proof is not a compact JWS",
    "alg HS256": "The DPoP proof's alg must be one of ES256, ES384, RS256, PS256, EdDSA, Ed25519",
    "garbage": "The DPoP proof is not a compact JWS",
    "payload not an object": "The DPoP proof's payload is not a JSON object",
    "iat NaN": "The DPoP proof holds NaN or Infinity, which JSON does not allow",
    "iat Infinity": "The DPoP proof holds NaN or Infinity, which JSON does not allow",
    "ES384 with a P-256 key": "The DPoP proof's jwk is not a usable public key for ES384",
    "htu with a fragment": "The DPoP proof's htu is not this request's URL",
    "htu of another scheme": "The DPoP proof's htu is not this request's URL",
    "jti empty": "The DPoP proof has no jti",
    "jti of 257 characters": "The DPoP proof has no jti",
    "larger than 8 KiB": "The DPoP proof is not a compact JWS",
    "header nested 2900 deep": "The DPoP proof is not a compact JWS",
}


def _with_iat(claims: Dict[str, Any], literal: str) -> str:
    """The claims as JSON with ``iat`` written as ``literal`` (NaN is not JSON:
    Python's json module writes and reads it all the same)."""
    return json.dumps({**claims, "iat": 0}).replace('"iat": 0', '"iat": ' + literal)


def hand_signed(claims: Dict[str, Any], header: Any, digest: Any = None) -> str:
    """A proof made with the standard library and ``cryptography``, for headers
    no JOSE library would write: ``header(jwk)`` is the header's JSON text for
    the public JWK of a new P-256 key, which signs with ``digest`` (SHA-256)
    as RFC 7518 writes ECDSA signatures (r || s)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    from jwt.algorithms import ECAlgorithm

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    signing_input = "%s.%s" % (b64url(header(jwk).encode()), b64url(json.dumps(claims).encode()))
    r, s_ = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(digest or hashes.SHA256())))
    return signing_input + "." + b64url(r.to_bytes(32, "big") + s_.to_bytes(32, "big"))


def curve_mismatch(claims: Dict[str, Any]) -> str:
    """A proof that says ES384 but is signed with a P-256 key (and SHA-384)."""
    from cryptography.hazmat.primitives import hashes

    header = lambda jwk: json.dumps({"typ": "dpop+jwt", "alg": "ES384", "jwk": jwk})  # noqa: E731
    return hand_signed(claims, header, hashes.SHA384())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_every_bent_proof_is_refused_with_its_own_reason(bound, case):
    app, client, key, body = bound
    token = body["access_token"]
    headers = {"Authorization": "DPoP " + token, **hostile(case, key, token)}
    answer = client.get("/claims", headers=headers, base_url=BASE)
    assert_proof_refused(answer, HOSTILE[case])
    production = app.test_client()
    app.testing = False
    assert production.get("/claims", headers=headers, base_url=BASE).status_code == 401


def test_a_replayed_proof_is_refused(bound):
    _, client, key, body = bound
    token = body["access_token"]
    proof = key.proof("GET", BASE + "/claims", token)
    assert call(client, token, proof).status_code == 200
    assert_proof_refused(call(client, token, proof), "The DPoP proof was used before")
    fresh = key.proof("GET", BASE + "/claims", token)
    assert call(client, token, fresh).status_code == 200  # a new one works


def test_htu_is_compared_after_normalisation(bound):
    _, client, key, body = bound
    token = body["access_token"]
    for url in ("HTTPS://API.EXAMPLE/claims", "https://api.example:443/claims", "https://api.example/%63laims"):
        assert call(client, token, key.proof("GET", url, token)).status_code == 200, url


def test_htu_is_the_url_the_client_saw_behind_a_proxy():
    app = dpop_app()
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)
    client = app.test_client()
    key = Client()
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.example"}
    body = client.post(
        "/auth",
        json={"username": "joe", "password": "pass"},
        headers={**forwarded, "DPoP": key.proof("POST", "https://public.example/auth")},
        base_url="http://10.0.0.5:8000",
    ).get_json()
    token = body["access_token"]
    proof = key.proof("GET", "https://public.example/claims", token)
    headers = {**forwarded, "Authorization": "DPoP " + token, "DPoP": proof}
    assert client.get("/claims", headers=headers, base_url="http://10.0.0.5:8000").status_code == 200


@settings(max_examples=150, deadline=None)
@given(proof=st.one_of(st.text(max_size=300), st.from_regex(JWS_SHAPE, fullmatch=True)))
def test_no_proof_however_malformed_is_a_5xx(proof):
    app = dpop_app()
    app.testing = False
    with app.app_context():
        token = app.extensions["jwt"].create_access_token(1, dpop_jkt="x" * 43)
    try:
        answer = app.test_client().get(
            "/claims", headers={"Authorization": "DPoP " + token, "DPoP": proof}, base_url=BASE
        )
        login_answer = app.test_client().post(
            "/auth", json={"username": "joe", "password": "pass"}, headers={"DPoP": proof}, base_url=BASE
        )
    except ValueError:  # the header value itself cannot be sent (a newline, say)
        return
    assert answer.status_code == 401 and set(answer.get_json()) == ERROR_KEYS
    assert login_answer.status_code == 400 and set(login_answer.get_json()) == ERROR_KEYS


# --- refresh ---------------------------------------------------------------------------------


def test_a_bound_session_refreshes_only_with_a_proof_of_its_key(bound):
    _, client, key, body = bound
    refresh = body["refresh_token"]

    def refresh_with(proof: Optional[str]):
        headers = {"Authorization": "JWT " + refresh}
        if proof:
            headers["DPoP"] = proof
        return client.post("/auth/refresh", headers=headers, base_url=BASE)

    refused = refresh_with(None)
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_dpop_proof"
    other = refresh_with(Client().proof("POST", BASE + "/auth/refresh"))
    assert other.get_json() == {
        "status_code": 400,
        "error": "invalid_dpop_proof",
        "description": "The DPoP proof's key is not the session's key",
    }
    answer = refresh_with(key.proof("POST", BASE + "/auth/refresh"))
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["token_type"] == "DPoP"
    token = answer.get_json()["access_token"]
    assert pyjwt.decode(token, options={"verify_signature": False})["cnf"] == {"jkt": key.jkt}
    assert call(client, token, key.proof("GET", BASE + "/claims", token)).status_code == 200


def test_a_bad_proof_at_login_is_400_and_the_password_is_not_checked():
    app = dpop_app(JWT_LOGIN_RATE_LIMIT="1 per minute")
    client = app.test_client()
    key = Client()
    for _ in range(3):
        answer = login(client, key, proof=key.proof("POST", BASE + "/elsewhere"), status=400)
        assert answer.get_json()["description"] == "The DPoP proof's htu is not this request's URL"
    login(client, key)  # no failed password was counted


# --- nonces ----------------------------------------------------------------------------------


def test_server_nonces_are_asked_for_then_accepted():
    app = dpop_app(JWT_DPOP_NONCE=True)
    client = app.test_client()
    key = Client()
    first = login(client, key, status=400)
    assert first.get_json()["error"] == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]
    body = login(client, key, proof=key.proof("POST", BASE + "/auth", nonce=nonce)).get_json()
    token = body["access_token"]
    asked = call(client, token, key.proof("GET", BASE + "/claims", token))
    assert_proof_refused(asked, "The DPoP proof needs the server's current nonce", "use_dpop_nonce")
    assert asked.headers["DPoP-Nonce"] == nonce
    other_instance = dpop_app(JWT_DPOP_NONCE=True).test_client()  # same secret: same nonce
    proof = key.proof("GET", BASE + "/claims", token, nonce=nonce)
    assert call(other_instance, token, proof).status_code == 200


@pytest.mark.parametrize(
    "setting",
    [{"JWT_DPOP": "yes"}, {"JWT_DPOP_ALGORITHMS": ["HS256"]}, {"JWT_DPOP_ALGORITHMS": []},
     {"JWT_DPOP": "allowed", "JWT_DPOP_NONCE": True, "SECRET_KEY": None}],
)
def test_dpop_settings_that_cannot_work_fail_at_init_app(setting):
    with pytest.raises(ConfigurationError):
        make_app(setting)


# --- from code, and outside issuers --------------------------------------------------------


def test_create_access_token_binds_from_code():
    app = dpop_app()
    key = Client("EdDSA")
    with app.app_context():
        token = app.extensions["jwt"].create_access_token(1, dpop_jkt=key.jkt)
    client = app.test_client()
    assert call(client, token, key.proof("GET", BASE + "/claims", token)).status_code == 200
    assert call(client, token, None, scheme="Bearer").status_code == 401


def test_an_outside_issuers_bound_token_needs_a_proof_even_with_dpop_off():
    with IdP("generic") as idp:
        app = Flask(__name__)
        app.config.update(JWT_OIDC_ISSUER=idp.issuer, JWT_AUDIENCE=idp.audience)
        JWT(app)

        @app.route("/me")
        @jwt_required()
        def me():
            return jsonify(sub=current_token["sub"])

        key = Client()
        token = idp.mint({"cnf": {"jkt": key.jkt}})
        client = app.test_client()
        as_bearer = client.get("/me", headers={"Authorization": "Bearer " + token}, base_url=BASE)
        assert as_bearer.status_code == 401
        headers = {"Authorization": "DPoP " + token, "DPoP": key.proof("GET", BASE + "/me", token)}
        assert client.get("/me", headers=headers, base_url=BASE).get_json() == {"sub": idp.subject}



# --- what an outside review changed by hand and the tests above let pass ------------------


def test_a_proof_is_remembered_for_as_long_as_it_could_be_accepted():
    # Max age 2 s, leeway 1 s: a proof is good for up to 3 s after its iat, so a
    # replay 2 s later must still be caught.
    app = dpop_app(JWT_DPOP_PROOF_MAX_AGE=2, JWT_LEEWAY=1)
    client = app.test_client()
    key = Client()
    token = login(client, key).get_json()["access_token"]
    from tests.sessions_support import wait_next_second

    wait_next_second()  # the proof's iat is in whole seconds
    proof = key.proof("GET", BASE + "/claims", token)
    assert call(client, token, proof).status_code == 200
    time.sleep(1.5)
    assert_proof_refused(call(client, token, proof), "The DPoP proof was used before")


def test_jwt_dpop_algorithms_limits_what_a_login_may_bind():
    app = dpop_app(JWT_DPOP_ALGORITHMS=["ES256"])
    client = app.test_client()
    answer = login(client, Client("EdDSA"), status=400)
    assert answer.get_json()["description"] == "The DPoP proof's alg must be one of ES256"
    assert login(client, Client("ES256")).get_json()["token_type"] == "DPoP"


def test_a_proof_for_another_port_is_refused(bound):
    _, client, key, body = bound
    token = body["access_token"]
    urls = ("https://api.example:8443/claims", "http://api.example/claims", "https://api.example:80/claims")
    for url in urls:
        answer = call(client, token, key.proof("GET", url, token))
        assert_proof_refused(answer, "The DPoP proof's htu is not this request's URL")


def test_nonces_are_keyed_by_the_apps_secret():
    import hashlib
    import hmac as hmac_module

    from jwt.utils import base64url_encode

    for secret in ({"JWT_SECRET_KEY": "j" * 40}, {}):  # JWT_SECRET_KEY, else Flask's SECRET_KEY
        app = dpop_app(JWT_DPOP_NONCE=True, **secret)
        client = app.test_client()
        key = Client()
        issued = login(client, key, status=400).headers["DPoP-Nonce"]
        window = int(time.time() // 300)
        unkeyed = hmac_module.new(b"", b"flask-tokenauth dpop nonce %d" % window, hashlib.sha256).digest()
        guessed = base64url_encode(unkeyed[:18]).decode("ascii")
        assert issued != guessed  # nobody without the secret can make one
        answer = login(client, key, proof=key.proof("POST", BASE + "/auth", nonce=guessed), status=400)
        assert answer.get_json()["error"] == "use_dpop_nonce"
        other = dpop_app(JWT_DPOP_NONCE=True, SECRET_KEY="another-app-secret-long-enough-for-hs256")
        proof = key.proof("POST", BASE + "/auth", nonce=issued)
        answer = login(other.test_client(), key, proof=proof, status=400)
        assert answer.get_json()["error"] == "use_dpop_nonce"


def test_a_jti_of_256_characters_and_a_proof_just_under_8_kib_are_accepted(bound):
    _, client, key, body = bound
    token = body["access_token"]
    assert call(client, token, key.proof("GET", BASE + "/claims", token, jti="j" * 256)).status_code == 200
    padded = key.proof("GET", BASE + "/claims", token, claims={"pad": "p" * 4500})
    assert len(padded) < 8192
    assert call(client, token, padded).status_code == 200


def test_in_required_mode_an_unbound_session_cannot_refresh():
    app = dpop_app("required")
    with app.app_context():
        refresh = app.extensions["jwt"].create_refresh_token(1)  # made in code: no key
    answer = app.test_client().post(
        "/auth/refresh",
        headers={"Authorization": "JWT " + refresh, "DPoP": Client().proof("POST", BASE + "/auth/refresh")},
        base_url=BASE,
    )
    assert answer.get_json() == {
        "status_code": 400,
        "error": "invalid_dpop_proof",
        "description": "This session is not bound to a DPoP key: log in again",
    }


def test_a_proof_replayed_at_the_login_route_is_a_400():
    app = dpop_app()
    client = app.test_client()
    key = Client()
    proof = key.proof("POST", BASE + "/auth")
    login(client, key, proof=proof)
    answer = login(client, key, proof=proof, status=400)
    assert answer.get_json()["description"] == "The DPoP proof was used before"


def test_the_previous_nonce_is_still_accepted_for_one_window():
    # Nonces change every 300 s: a client holding the one from just before the
    # change must not be refused, one from two windows back must.
    from flask_tokenauth import dpop as server_dpop

    app = dpop_app(JWT_DPOP_NONCE=True)
    client = app.test_client()
    key = Client()
    window = int(time.time() // 300)
    with app.test_request_context():
        previous, older = server_dpop._nonce(window - 1), server_dpop._nonce(window - 2)
    login(client, key, proof=key.proof("POST", BASE + "/auth", nonce=previous))
    answer = login(client, key, proof=key.proof("POST", BASE + "/auth", nonce=older), status=400)
    assert answer.get_json()["error"] == "use_dpop_nonce"

