"""Keys (issue 4): rotation with JWT_KEYS, the published JWK Set, outside issuers (JWT_JWKS_URL).

The outside issuer is a real HTTP server on 127.0.0.1 serving a JWK Set, so the app's
fetching, caching and refetch-on-unknown-kid run for real; the server counts its requests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from flask_tokenauth import ConfigurationError
from flask_tokenauth.keys import generate
from tests.conftest import SECRET, auth_header, make_app

JOE = {"id": 1, "username": "joe"}
ISSUER = "https://issuer.test"
AUDIENCE = "my-api"
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


def refused(description: str) -> Dict[str, Any]:
    return {"status_code": 401, "error": "Invalid token", "description": description}


def private_pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def public_pem(key: Any) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


@pytest.fixture(scope="module", name="keys")
def keys_fixture() -> Dict[str, Any]:
    """Private keys, made once per module (RSA generation is the slow part)."""
    return {
        "es_old": ec.generate_private_key(ec.SECP256R1()),
        "es_new": ec.generate_private_key(ec.SECP256R1()),
        "es_other": ec.generate_private_key(ec.SECP256R1()),
        "rs_old": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rs_issuer": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ed": ed25519.Ed25519PrivateKey.generate(),
    }


def login(client) -> str:
    response = client.post("/auth", json={"username": "joe", "password": "pass"})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


def header_of(token: str) -> Dict[str, Any]:
    return pyjwt.get_unverified_header(token)


def get(client, token: str):
    return client.get("/protected", headers=auth_header(token))


# --- rotation with JWT_KEYS ----------------------------------------------------------------


def test_old_key_still_verifies_after_new_key_becomes_current_then_removal_refuses(keys):
    old_kid, old_private, old_public = generate("ES256")
    new_kid, new_private, _ = generate("ES256")
    assert old_kid != new_kid
    app = make_app({"JWT_KEYS": [{"kid": old_kid, "alg": "ES256", "private_key": old_private}]})
    client = app.test_client()
    old_token = login(client)
    assert header_of(old_token) == {"alg": "ES256", "kid": old_kid, "typ": "JWT"}
    assert get(client, old_token).get_json() == JOE

    # rotate: the new key is current, the old one stays as a verify-only entry
    app.config["JWT_KEYS"] = [
        {"kid": new_kid, "alg": "ES256", "private_key": new_private},
        {"kid": old_kid, "alg": "ES256", "public_key": old_public},
    ]
    response = get(client, old_token)
    assert response.status_code == 200
    assert response.get_json() == JOE
    new_token = login(client)
    assert header_of(new_token)["kid"] == new_kid
    assert header_of(new_token)["alg"] == "ES256"
    assert get(client, new_token).get_json() == JOE
    # the new token really is signed by the new key
    claims = pyjwt.decode(new_token, public_pem(_load(new_private)), algorithms=["ES256"])
    assert claims["identity"] == 1

    # retire the old key
    app.config["JWT_KEYS"] = [{"kid": new_kid, "alg": "ES256", "private_key": new_private}]
    response = get(client, old_token)
    assert response.status_code == 401
    assert response.get_json() == refused("Unknown key id")
    assert get(client, new_token).get_json() == JOE


def _load(pem: str) -> Any:
    return serialization.load_pem_private_key(pem.encode("ascii"), password=None)


def test_removing_a_key_by_mutating_the_list_in_place_refuses_its_tokens(keys):
    old = {"kid": "old", "alg": "ES256", "private_key": private_pem(keys["es_old"])}
    new = {"kid": "new", "alg": "ES256", "private_key": private_pem(keys["es_new"])}
    app = make_app({"JWT_KEYS": [old]})
    client = app.test_client()
    old_token = login(client)
    app.config["JWT_KEYS"] = [new, old]
    assert get(client, old_token).status_code == 200
    app.config["JWT_KEYS"].pop()  # the old key is removed from the configured list
    response = get(client, old_token)
    assert response.status_code == 401
    assert response.get_json() == refused("Unknown key id")


def test_token_without_kid_is_refused_when_several_keys_are_configured(keys):
    app = make_app(
        {
            "JWT_KEYS": [
                {"kid": "a", "alg": "ES256", "private_key": private_pem(keys["es_new"])},
                {"kid": "b", "alg": "ES256", "private_key": private_pem(keys["es_old"])},
            ]
        }
    )
    now = int(time.time())
    token = pyjwt.encode(
        {"identity": 1, "exp": now + 60, "iat": now, "nbf": now}, keys["es_new"], algorithm="ES256"
    )
    response = get(app.test_client(), token)
    assert response.status_code == 401
    assert response.get_json() == refused("Token has no key id (kid)")


def test_kid_only_selects_among_configured_keys(keys):
    """A token naming a configured kid but signed by another key is refused."""
    app = make_app({"JWT_KEYS": [{"kid": "k1", "alg": "ES256", "private_key": private_pem(keys["es_new"])}]})
    now = int(time.time())
    forged = pyjwt.encode(
        {"identity": 1, "exp": now + 60, "iat": now, "nbf": now},
        keys["es_other"],
        algorithm="ES256",
        headers={"kid": "k1"},
    )
    response = get(app.test_client(), forged)
    assert response.status_code == 401
    assert response.get_json() == refused("Signature verification failed")


def test_mixed_algorithms_es256_current_rs256_old(keys):
    rs_entry = {"kid": "rs-old", "alg": "RS256", "private_key": private_pem(keys["rs_old"])}
    app = make_app({"JWT_KEYS": [rs_entry]})
    client = app.test_client()
    rs_token = login(client)
    assert header_of(rs_token)["alg"] == "RS256"
    assert header_of(rs_token)["kid"] == "rs-old"

    app.config["JWT_KEYS"] = [
        {"kid": "es-cur", "alg": "ES256", "private_key": private_pem(keys["es_new"])},
        {"kid": "rs-old", "alg": "RS256", "public_key": public_pem(keys["rs_old"])},
    ]
    es_token = login(client)
    assert header_of(es_token)["alg"] == "ES256"
    assert header_of(es_token)["kid"] == "es-cur"
    assert get(client, es_token).get_json() == JOE
    assert get(client, rs_token).get_json() == JOE

    # an RS256 token claiming the ES256 key's kid is refused (algorithm comes from the key)
    now = int(time.time())
    confused = pyjwt.encode(
        {"identity": 1, "exp": now + 60, "iat": now, "nbf": now},
        keys["rs_old"],
        algorithm="RS256",
        headers={"kid": "es-cur"},
    )
    response = get(client, confused)
    assert response.status_code == 401
    assert response.get_json() == refused("The specified alg value is not allowed")


def private_jwk(impl: Any, key: Any, kid: str, alg: str) -> Dict[str, Any]:
    jwk = impl.to_jwk(key, as_dict=True)
    jwk.update(kid=kid, alg=alg)
    return jwk


@pytest.mark.parametrize("as_json", [False, True], ids=["dict", "json-string"])
def test_jwk_set_document_form_of_jwt_keys(keys, as_json):
    jwks = {
        "keys": [
            private_jwk(ECAlgorithm, keys["es_new"], "jwk-es", "ES256"),
            private_jwk(RSAAlgorithm, keys["rs_old"], "jwk-rs", "RS256"),
        ]
    }
    assert "d" in jwks["keys"][0] and "d" in jwks["keys"][1]
    app = make_app({"JWT_KEYS": json.dumps(jwks) if as_json else jwks})
    client = app.test_client()
    token = login(client)
    assert header_of(token) == {"alg": "ES256", "kid": "jwk-es", "typ": "JWT"}
    assert get(client, token).get_json() == JOE
    assert pyjwt.decode(token, public_pem(keys["es_new"]), algorithms=["ES256"])["identity"] == 1

    # the second JWK verifies tokens it signed
    now = int(time.time())
    rs_token = pyjwt.encode(
        {"identity": 1, "exp": now + 60, "iat": now, "nbf": now},
        keys["rs_old"],
        algorithm="RS256",
        headers={"kid": "jwk-rs"},
    )
    assert get(client, rs_token).get_json() == JOE


def test_jwk_set_with_public_only_old_key(keys):
    public_rs = RSAAlgorithm.to_jwk(keys["rs_old"].public_key(), as_dict=True)
    public_rs.update(kid="old-rs", alg="RS256")
    app = make_app(
        {"JWT_KEYS": {"keys": [private_jwk(ECAlgorithm, keys["es_new"], "cur", "ES256"), public_rs]}}
    )
    now = int(time.time())
    old_token = pyjwt.encode(
        {"identity": 1, "exp": now + 60, "iat": now, "nbf": now},
        keys["rs_old"],
        algorithm="RS256",
        headers={"kid": "old-rs"},
    )
    assert get(app.test_client(), old_token).get_json() == JOE


# --- bad JWT_KEYS ----------------------------------------------------------------------------


def _es_entry(keys: Dict[str, Any], kid: Optional[str] = "k") -> Dict[str, Any]:
    entry = {"alg": "ES256", "private_key": private_pem(keys["es_new"])}
    if kid is not None:
        entry["kid"] = kid
    return entry


BAD_KEYS = {
    "duplicate-kid": lambda k: [_es_entry(k, "same"), {**_es_entry(k, "same"), "alg": "ES256"}],
    "missing-kid": lambda k: [_es_entry(k, None)],
    "empty-kid": lambda k: [_es_entry(k, "")],
    "hs-secret-is-a-pem-key": lambda k: [{"kid": "h", "alg": "HS256", "secret": public_pem(k["es_new"])}],
    "key-does-not-fit-alg": lambda k: [{"kid": "x", "alg": "RS256", "private_key": private_pem(k["es_new"])}],
    "public-key-as-private": lambda k: [{"kid": "x", "alg": "ES256", "private_key": public_pem(k["es_new"])}],
    "mismatched-pair": lambda k: [
        {
            "kid": "x",
            "alg": "ES256",
            "private_key": private_pem(k["es_new"]),
            "public_key": public_pem(k["es_other"]),
        }
    ],
    "alg-none": lambda k: [{"kid": "n", "alg": "none", "secret": SECRET}],
    "alg-None-case": lambda k: [{"kid": "n", "alg": "None", "secret": SECRET}],
    "unknown-alg": lambda k: [{"kid": "n", "alg": "XX256", "secret": SECRET}],
    "not-a-list-int": lambda k: 42,
    "not-a-list-dict-entry": lambda k: _es_entry(k),
    "not-json-string": lambda k: "not a key set",
    "entry-not-a-dict": lambda k: ["kid=k"],
    "unknown-field": lambda k: [{**_es_entry(k), "privat_key": "typo"}],
    "empty-jwk-set": lambda k: {"keys": []},
    "jwk-set-alg-none": lambda k: {
        "keys": [{"kty": "oct", "k": "c2VjcmV0LXNlY3JldA", "kid": "o", "alg": "none"}]
    },
    "jwk-set-duplicate-kid": lambda k: {
        "keys": [private_jwk(ECAlgorithm, k["es_new"], "d", "ES256")] * 2
    },
}


@pytest.mark.parametrize("name", sorted(BAD_KEYS))
def test_bad_jwt_keys_is_a_configuration_error_at_init_app(keys, name):
    with pytest.raises(ConfigurationError):
        make_app({"JWT_KEYS": BAD_KEYS[name](keys)})


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(
            {"kid": "h", "alg": "HS256", "private_key": "see-pem"}, id="hs-entry-with-pem-no-secret"
        ),
        pytest.param({"kid": "h", "alg": "HS256"}, id="hs-entry-without-secret"),
        pytest.param({"kid": "e", "alg": "ES256"}, id="es-entry-without-any-key"),
    ],
)
def test_entry_without_key_material_is_a_configuration_error(keys, entry):
    if entry.get("private_key") == "see-pem":
        entry = {**entry, "private_key": private_pem(keys["es_new"])}
    with pytest.raises(ConfigurationError):
        make_app({"JWT_KEYS": [entry]})


def test_empty_jwt_keys_list_is_a_configuration_error():
    with pytest.raises(ConfigurationError):
        make_app({"JWT_KEYS": []})


def test_short_hs_secret_in_jwt_keys_is_logged_as_weak(caplog):
    from flask_tokenauth import keys as keys_module

    keys_module._warned_weak.clear()  # said once per process: start from nothing
    with caplog.at_level(logging.WARNING, logger="flask_tokenauth"):
        make_app({"JWT_KEYS": [{"kid": "h", "alg": "HS256", "secret": "abc"}]})
    assert any(
        "secret of JWT_KEYS[0] (kid 'h') is 3 bytes; HS256 needs at least 32" in record.getMessage()
        for record in caplog.records
    )


def test_bad_jwt_keys_set_after_init_app_fails_at_first_use(keys):
    app = make_app()
    app.config["JWT_KEYS"] = [_es_entry(keys, "dup"), _es_entry(keys, "dup")]
    with app.app_context():
        with pytest.raises(ConfigurationError):
            app.extensions["jwt"].create_access_token(1)


# --- the published JWK Set (JWT_JWKS_URL_RULE) -------------------------------------------------


@pytest.fixture(name="jwks_app")
def jwks_app_fixture(keys):
    entries = [
        {"kid": "es-cur", "alg": "ES256", "private_key": private_pem(keys["es_new"])},
        {"kid": "rs-old", "alg": "RS256", "private_key": private_pem(keys["rs_old"])},
        {"kid": "ed-1", "alg": "EdDSA", "private_key": private_pem(keys["ed"])},
        {"kid": "es-verify-only", "alg": "ES256", "public_key": public_pem(keys["es_old"])},
        {"kid": "hs-1", "alg": "HS256", "secret": SECRET},
    ]
    app = make_app({"JWT_KEYS": entries, "JWT_JWKS_URL_RULE": "/.well-known/jwks.json"})
    return app, entries


def test_jwks_route_publishes_public_keys_only(jwks_app):
    app, _ = jwks_app
    response = app.test_client().get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=300"
    body = response.get_json()
    assert list(body) == ["keys"]
    published = body["keys"]
    assert [jwk["kid"] for jwk in published] == ["es-cur", "rs-old", "ed-1", "es-verify-only"]
    assert [jwk["alg"] for jwk in published] == ["ES256", "RS256", "EdDSA", "ES256"]
    assert [jwk["kty"] for jwk in published] == ["EC", "RSA", "OKP", "EC"]
    for jwk in published:
        assert jwk["use"] == "sig"
        assert "key_ops" not in jwk  # use or key_ops, not both (RFC 7517 section 4.3)
        leaked = [member for member in PRIVATE_MEMBERS if member in jwk]
        assert leaked == [], jwk["kid"]
    raw = response.get_data(as_text=True)
    assert SECRET not in raw
    assert base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("=") not in raw
    assert "hs-1" not in raw


def test_jwks_keys_verify_the_apps_tokens_with_pyjwt_alone(jwks_app):
    app, entries = jwks_app
    client = app.test_client()
    jwk_set = pyjwt.PyJWKSet.from_dict(client.get("/.well-known/jwks.json").get_json())
    signing = [e for e in entries if "private_key" in e]
    for current in signing:
        app.config["JWT_KEYS"] = [current] + [e for e in entries if e is not current]
        token = login(client)
        kid = header_of(token)["kid"]
        assert kid == current["kid"]
        jwk = jwk_set[kid]
        assert jwk.algorithm_name == current["alg"]
        claims = pyjwt.decode(token, jwk.key, algorithms=[jwk.algorithm_name])
        assert claims["identity"] == 1
        # a single JWK works too
        published = client.get("/.well-known/jwks.json").get_json()["keys"]
        single = pyjwt.PyJWK(next(k for k in published if k["kid"] == kid))
        assert pyjwt.decode(token, single.key, algorithms=[current["alg"]])["identity"] == 1
        # and a tampered token fails that verification
        head, _, signature = token.split(".")
        tampered = json.dumps({**claims, "identity": 2}).encode()
        body = base64.urlsafe_b64encode(tampered).decode().rstrip("=")
        with pytest.raises(pyjwt.InvalidSignatureError):
            pyjwt.decode("%s.%s.%s" % (head, body, signature), jwk.key, algorithms=[jwk.algorithm_name])


def test_hs_tokens_are_not_verifiable_from_the_published_set(jwks_app):
    app, entries = jwks_app
    client = app.test_client()
    app.config["JWT_KEYS"] = [entries[-1]] + entries[:-1]  # the HS key is current
    token = login(client)
    assert header_of(token) == {"alg": "HS256", "kid": "hs-1", "typ": "JWT"}
    assert get(client, token).get_json() == JOE
    jwk_set = pyjwt.PyJWKSet.from_dict(client.get("/.well-known/jwks.json").get_json())
    with pytest.raises(KeyError):
        jwk_set["hs-1"]


def test_jwks_route_is_off_by_default(keys):
    app = make_app({"JWT_KEYS": [_es_entry(keys)]})
    assert app.test_client().get("/.well-known/jwks.json").status_code == 404


def test_jwks_route_follows_key_rotation(jwks_app, keys):
    app, entries = jwks_app
    client = app.test_client()
    app.config["JWT_KEYS"] = [entries[0]]
    kids = [jwk["kid"] for jwk in client.get("/.well-known/jwks.json").get_json()["keys"]]
    assert kids == ["es-cur"]


# --- an outside issuer (JWT_JWKS_URL) -------------------------------------------------------------


class JWKSServer:
    """A JWK Set served over HTTP on 127.0.0.1; counts GET requests."""

    def __init__(self) -> None:
        self.jwks: Any = {"keys": []}
        self.raw: Optional[bytes] = None
        self.requests = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                with server.lock:
                    server.requests += 1
                    body = server.raw if server.raw is not None else json.dumps(server.jwks).encode("utf-8")
                if server.delay:
                    server.release.wait(server.delay)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (timeout test)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d/.well-known/jwks.json" % self.httpd.server_address[1]

    def count(self) -> int:
        with self.lock:
            return self.requests

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def public_jwk(impl: Any, key: Any, kid: str, alg: str) -> Dict[str, Any]:
    jwk = impl.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid=kid, alg=alg, use="sig")
    return jwk


ISSUER_HS_SECRET = "issuer-symmetric-secret-that-is-long-enough!"


@pytest.fixture(name="issuer")
def issuer_fixture(request, keys):
    server = JWKSServer()
    request.addfinalizer(server.close)
    server.jwks = {
        "keys": [
            public_jwk(ECAlgorithm, keys["es_new"], "iss-es", "ES256"),
            public_jwk(RSAAlgorithm, keys["rs_issuer"], "iss-rs", "RS256"),
            {
                "kty": "oct",
                "kid": "iss-hs",
                "alg": "HS256",
                "use": "sig",
                "k": base64.urlsafe_b64encode(ISSUER_HS_SECRET.encode()).decode().rstrip("="),
            },
        ]
    }
    return server


def outside_app(server: JWKSServer, **config: Any):
    """An app that only verifies the outside issuer's tokens (no local key)."""
    settings = {
        "SECRET_KEY": None,
        "JWT_JWKS_URL": server.url,
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
    }
    settings.update(config)
    return make_app(settings)


def issued(key: Any, alg: str, kid: Optional[str], **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "identity": 1,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": now + 120,
        "iat": now,
        "nbf": now,
        "jti": "%s-%s" % (kid, time.perf_counter_ns()),
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return pyjwt.encode(payload, key, algorithm=alg, headers={"kid": kid} if kid else None)


def test_outside_issuer_tokens_are_accepted(issuer, keys):
    app = outside_app(issuer)
    client = app.test_client()
    for token in (issued(keys["es_new"], "ES256", "iss-es"), issued(keys["rs_issuer"], "RS256", "iss-rs")):
        response = get(client, token)
        assert response.status_code == 200, response.get_json()
        assert response.get_json() == JOE
    assert issuer.count() == 1  # one fetch served both kids


@pytest.mark.parametrize(
    "case,description",
    [
        ("wrong-iss", "Invalid issuer"),
        ("no-iss", 'Token is missing the "iss" claim'),
        ("wrong-aud", "Audience doesn't match"),
        ("no-aud", 'Token is missing the "aud" claim'),
        ("unknown-kid", "Unknown key id"),
        ("not-in-set", "Signature verification failed"),
        ("hs256-with-es-kid", "The specified alg value is not allowed"),
        ("hs256-public-pem-confusion", "The specified alg value is not allowed"),
        ("hs256-remote-oct-key", "Unknown key id"),
        ("hs256-no-kid", "Token has no key id (kid)"),
        ("expired", "Signature has expired"),
    ],
)
def test_outside_issuer_refusals(issuer, keys, case, description):
    app = outside_app(issuer)
    es, rs = keys["es_new"], keys["rs_issuer"]
    now = int(time.time())
    if case == "wrong-iss":
        token = issued(es, "ES256", "iss-es", iss="https://evil.test")
    elif case == "no-iss":
        token = issued(es, "ES256", "iss-es", iss=None)
    elif case == "wrong-aud":
        token = issued(rs, "RS256", "iss-rs", aud="another-api")
    elif case == "no-aud":
        token = issued(rs, "RS256", "iss-rs", aud=None)
    elif case == "unknown-kid":
        token = issued(es, "ES256", "nobody-knows")
    elif case == "not-in-set":
        token = issued(keys["es_other"], "ES256", "iss-es")
    elif case == "hs256-with-es-kid":
        token = issued(ISSUER_HS_SECRET, "HS256", "iss-es")
    elif case == "hs256-public-pem-confusion":
        token = hs256_signed_with(public_pem(es), "iss-es")
    elif case == "hs256-remote-oct-key":
        token = issued(ISSUER_HS_SECRET, "HS256", "iss-hs")
    elif case == "hs256-no-kid":
        token = issued(ISSUER_HS_SECRET, "HS256", None)
    else:
        token = issued(es, "ES256", "iss-es", exp=now - 3600, iat=now - 7200, nbf=now - 7200)
    response = get(app.test_client(), token)
    assert response.status_code == 401
    assert response.get_json() == refused(description)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def hs256_signed_with(secret: str, kid: str) -> str:
    """An HS256 token whose HMAC key is ``secret`` (PyJWT refuses to make this one)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")

    now = int(time.time())
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(
        json.dumps(
            {"identity": 1, "iss": ISSUER, "aud": AUDIENCE, "exp": now + 60, "iat": now, "nbf": now}
        ).encode()
    )
    signature = hmac.new(secret.encode(), ("%s.%s" % (head, body)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (head, body, b64(signature))


def test_unknown_kid_refetches_at_most_once_per_interval(issuer, keys):
    app = outside_app(issuer, JWT_JWKS_REFRESH_INTERVAL=60)
    client = app.test_client()
    # first use: the set is fetched once
    assert get(client, issued(keys["es_new"], "ES256", "iss-es")).status_code == 200
    assert issuer.count() == 1
    # unknown kids within the interval: no further fetch
    for kid in ("unknown-1", "unknown-2", "unknown-1"):
        response = get(client, issued(keys["es_new"], "ES256", kid))
        assert response.get_json() == refused("Unknown key id")
    assert issuer.count() == 1
    # known kids are served from the cache
    assert get(client, issued(keys["rs_issuer"], "RS256", "iss-rs")).status_code == 200
    assert issuer.count() == 1


def test_two_unknown_kids_after_the_interval_cause_one_extra_fetch(issuer, keys):
    app = outside_app(issuer, JWT_JWKS_REFRESH_INTERVAL=0.5)
    client = app.test_client()
    assert get(client, issued(keys["es_new"], "ES256", "iss-es")).status_code == 200
    assert issuer.count() == 1
    time.sleep(0.6)
    first = get(client, issued(keys["es_new"], "ES256", "unknown-a"))
    second = get(client, issued(keys["es_new"], "ES256", "unknown-b"))
    assert first.get_json() == refused("Unknown key id")
    assert second.get_json() == refused("Unknown key id")
    assert issuer.count() == 2


def test_first_request_with_unknown_kid_fetches_once(issuer, keys):
    app = outside_app(issuer)
    client = app.test_client()
    assert get(client, issued(keys["es_new"], "ES256", "unknown-a")).status_code == 401
    assert get(client, issued(keys["es_new"], "ES256", "unknown-b")).status_code == 401
    assert issuer.count() == 1
    # the keys fetched then are used without another fetch
    assert get(client, issued(keys["es_new"], "ES256", "iss-es")).get_json() == JOE
    assert issuer.count() == 1


def test_key_added_to_the_issuer_is_picked_up_on_unknown_kid_refetch(issuer, keys):
    app = outside_app(issuer, JWT_JWKS_REFRESH_INTERVAL=0)
    client = app.test_client()
    assert get(client, issued(keys["es_new"], "ES256", "iss-es")).status_code == 200
    new_key = ec.generate_private_key(ec.SECP256R1())
    token = issued(new_key, "ES256", "iss-new")
    response = get(client, token)
    assert response.get_json() == refused("Unknown key id")
    fetched = issuer.count()
    assert fetched == 2

    issuer.jwks = {"keys": issuer.jwks["keys"] + [public_jwk(ECAlgorithm, new_key, "iss-new", "ES256")]}
    response = get(client, token)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == JOE
    assert issuer.count() == fetched + 1


def test_key_removed_from_the_issuer_is_refused_after_a_refetch(issuer, keys):
    app = outside_app(issuer, JWT_JWKS_REFRESH_INTERVAL=0)
    client = app.test_client()
    assert get(client, issued(keys["es_new"], "ES256", "iss-es")).status_code == 200
    # the issuer retires its ES key; a token with an unknown kid triggers the refetch
    issuer.jwks = {"keys": [k for k in issuer.jwks["keys"] if k["kid"] != "iss-es"]}
    assert get(client, issued(keys["es_new"], "ES256", "unknown")).status_code == 401
    response = get(client, issued(keys["es_new"], "ES256", "iss-es"))
    assert response.status_code == 401
    assert response.get_json() == refused("Unknown key id")
    assert get(client, issued(keys["rs_issuer"], "RS256", "iss-rs")).get_json() == JOE


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("production", [False, True], ids=["testing", "production"])
def test_jwks_server_down_is_503_json(keys, production):
    app = make_app(
        {
            "SECRET_KEY": None,
            "JWT_JWKS_URL": "http://127.0.0.1:%d/jwks.json" % free_port(),
            "JWT_JWKS_TIMEOUT": 2.0,
            "JWT_AUDIENCE": AUDIENCE,
        }
    )
    app.testing = not production
    response = get(app.test_client(), issued(keys["es_new"], "ES256", "iss-es", iss=None))
    assert response.status_code == 503
    assert response.get_json() == {
        "status_code": 503,
        "error": "Service Unavailable",
        "description": "The issuer's key set cannot be fetched; try again shortly",
    }
    assert response.headers["Retry-After"] == "5"
    assert "WWW-Authenticate" not in response.headers


def test_jwks_server_too_slow_is_503(issuer, keys):
    issuer.delay = 3.0
    app = outside_app(issuer, JWT_JWKS_TIMEOUT=0.3)
    started = time.monotonic()
    response = get(app.test_client(), issued(keys["es_new"], "ES256", "iss-es"))
    assert time.monotonic() - started < 2.5
    assert response.status_code == 503
    assert response.get_json()["error"] == "Service Unavailable"


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(b"<html>not json</html>", id="not-json"),
        pytest.param(["a", "list"], id="json-array"),
        pytest.param({"keys": []}, id="empty-set"),
        pytest.param({}, id="no-keys-member"),
    ],
)
def test_broken_jwks_document_is_never_a_500(issuer, keys, document):
    if isinstance(document, bytes):
        issuer.raw = document
    else:
        issuer.jwks = document
    app = outside_app(issuer)
    app.testing = False
    response = get(app.test_client(), issued(keys["es_new"], "ES256", "iss-es"))
    # The issuer's key set is unusable: that is the server side's fault (503), not the token's.
    assert response.status_code == 503, response.get_data(as_text=True)[:200]
    assert response.get_json()["error"] == "Service Unavailable"


def test_no_local_key_means_verify_only(issuer, keys):
    app = outside_app(issuer)
    with app.app_context():
        with pytest.raises(ConfigurationError):
            app.extensions["jwt"].create_access_token(1)


def test_app_with_its_own_secret_and_jwks_url_accepts_its_own_tokens(issuer, keys):
    own = "own-" + "k" * 40
    app = make_app({"JWT_JWKS_URL": issuer.url, "JWT_SECRET_KEY": own, "JWT_AUDIENCE": AUDIENCE})
    client = app.test_client()
    token = login(client)
    response = get(client, token)
    assert response.status_code == 200, response.get_json()


def test_a_jwks_url_without_an_audience_fails_at_init_app(issuer):
    # Without it, tokens the issuer made for any other API would open this one.
    with pytest.raises(ConfigurationError) as caught:
        make_app({"JWT_JWKS_URL": issuer.url})
    assert "JWT_AUDIENCE" in str(caught.value)


def test_flasks_secret_key_signs_nothing_for_an_app_that_trusts_an_issuer(issuer, keys):
    # make_app sets only Flask's SECRET_KEY (for sessions): no key of the app's own.
    app = make_app({"JWT_JWKS_URL": issuer.url, "JWT_AUDIENCE": AUDIENCE})
    client = app.test_client()
    assert client.post("/auth", json={"username": "joe", "password": "pass"}).status_code == 404
    now = int(time.time())
    claims = {"identity": 1, "exp": now + 60, "iat": now, "nbf": now, "aud": AUDIENCE, "permissions": ["x"]}
    forged = pyjwt.encode(claims, app.config["SECRET_KEY"], algorithm="HS256")
    response = get(client, forged)
    assert response.status_code == 401, response.get_json()
    assert get(client, issued(keys["es_new"], "ES256", "iss-es", iss=None)).get_json() == JOE


def test_local_keys_and_outside_issuer_together(issuer, keys):
    app = make_app(
        {
            "JWT_KEYS": [{"kid": "local", "alg": "ES256", "private_key": private_pem(keys["es_old"])}],
            "JWT_JWKS_URL": issuer.url,
            "JWT_AUDIENCE": AUDIENCE,
        }
    )
    client = app.test_client()
    own = login(client)
    assert header_of(own)["kid"] == "local"
    assert get(client, own).get_json() == JOE
    assert issuer.count() == 0  # a local kid never causes a fetch
    outside = issued(keys["rs_issuer"], "RS256", "iss-rs", iss=None)
    assert get(client, outside).get_json() == JOE
    assert issuer.count() == 1
