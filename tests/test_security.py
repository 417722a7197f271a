"""Security properties: algorithms, keys, claims, secrets and logs."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import time
from typing import Any, Dict, Optional

import jwt as pyjwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm

from flask_tokenauth import JWT, ConfigurationError, JWTError
from tests.conftest import SECRET, auth_header, authenticate, identity, login, make_app

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def private_pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def public_pem(key: Any) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def public_jwk_json(key: Any) -> str:
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    family = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    return family.to_jwk(key.public_key())


def public_der(key: Any) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def claims(**changes: Any) -> Dict[str, Any]:
    now = int(time.time())
    base: Dict[str, Any] = {"exp": now + 300, "iat": now, "nbf": now, "identity": 1, "jti": "j" * 32}
    base.update(changes)
    return base


def raw_token(header: Dict[str, Any], payload: Dict[str, Any], signature: bytes = b"") -> str:
    return "%s.%s.%s" % (
        b64(json.dumps(header).encode()),
        b64(json.dumps(payload).encode()),
        b64(signature),
    )


def hmac_token(
    header: Dict[str, Any], payload: Dict[str, Any], key: bytes, digest: Any = hashlib.sha256
) -> str:
    signing_input = "%s.%s" % (b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()))
    signature = hmac.new(key, signing_input.encode("ascii"), digest).digest()
    return signing_input + "." + b64(signature)


def get(client, token: str, path: str = "/protected"):
    return client.get(path, headers=auth_header(token))


def assert_refused(
    response, description: Optional[str] = None, error: str = "Invalid token"
) -> Dict[str, Any]:
    assert response.status_code == 401, response.get_json()
    body = response.get_json()
    assert set(body) == {"status_code", "error", "description"}
    assert body["status_code"] == 401
    assert body["error"] == error, body
    if description is not None:
        assert body["description"] == description, body
    return body


@pytest.fixture(scope="module")
def keys() -> Dict[str, Any]:
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rsa_attacker": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p256_attacker": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "p384_attacker": ec.generate_private_key(ec.SECP384R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "ed25519_attacker": ed25519.Ed25519PrivateKey.generate(),
    }


@pytest.fixture(scope="module")
def rs256(keys):
    app = make_app(
        {
            "JWT_ALGORITHM": "RS256",
            "JWT_PRIVATE_KEY": private_pem(keys["rsa"]),
            "JWT_PUBLIC_KEY": public_pem(keys["rsa"]),
        }
    )
    client = app.test_client()
    return app, client, login(client)


@pytest.fixture(scope="module")
def hs256():
    app = make_app()
    client = app.test_client()
    return app, client, login(client)


# --------------------------------------------------------------------------
# alg "none"
# --------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", [b"", b"whatever"], ids=["unsigned", "junk-signature"])
def test_alg_none_token_refused(hs256, alg, signature):
    _, client, _ = hs256
    token = raw_token({"alg": alg, "typ": "JWT"}, claims(), signature)
    assert_refused(get(client, token), "The specified alg value is not allowed")


def test_alg_none_token_refused_by_rs256_app(rs256):
    _, client, _ = rs256
    token = raw_token({"alg": "none"}, claims())
    assert_refused(get(client, token), "The specified alg value is not allowed")


def test_alg_none_with_real_signature_of_valid_token_refused(hs256):
    _, client, good = hs256
    header, payload, signature = good.split(".")
    forged = ".".join([b64(json.dumps({"alg": "none", "typ": "JWT"}).encode()), payload, signature])
    assert_refused(get(client, forged))


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_jwt_algorithm_none_is_configuration_error_at_init(alg):
    with pytest.raises(ConfigurationError, match="JWT_ALGORITHM"):
        make_app({"JWT_ALGORITHM": alg})


def test_jwt_algorithm_none_set_after_init_is_configuration_error_at_use():
    app = make_app()
    app.testing = True
    client = app.test_client()
    token = login(client)
    app.config["JWT_ALGORITHM"] = "none"
    with pytest.raises(ConfigurationError, match="JWT_ALGORITHM"):
        client.post("/auth", json={"username": "joe", "password": "pass"})
    with pytest.raises(ConfigurationError, match="JWT_ALGORITHM"):
        get(client, token)


# --------------------------------------------------------------------------
# algorithm confusion
# --------------------------------------------------------------------------


@pytest.mark.parametrize("strip", [False, True], ids=["pem", "pem-stripped"])
def test_hs256_signed_with_public_pem_refused_by_rs256_app(rs256, keys, strip):
    _, client, good = rs256
    pem = public_pem(keys["rsa"])
    secret = (pem.strip() if strip else pem).encode("ascii")
    forged = hmac_token({"alg": "HS256", "typ": "JWT"}, claims(), secret)
    assert_refused(get(client, forged), "The specified alg value is not allowed")
    assert get(client, good).status_code == 200


@pytest.mark.parametrize(
    "alg, digest", [("HS512", hashlib.sha512), ("HS384", hashlib.sha384)]
)
def test_other_hmac_alg_with_right_secret_refused(hs256, alg, digest):
    _, client, _ = hs256
    token = pyjwt.encode(claims(), SECRET, algorithm=alg)
    assert json.loads(unb64(token.split(".")[0]))["alg"] == alg
    assert_refused(get(client, token), "The specified alg value is not allowed")
    # the same claims as HS256 with the same secret pass: only the alg differs
    assert get(client, pyjwt.encode(claims(), SECRET, algorithm="HS256")).status_code == 200


def test_rs512_with_right_key_refused_by_rs256_app(rs256, keys):
    _, client, _ = rs256
    token = pyjwt.encode(claims(), private_pem(keys["rsa"]), algorithm="RS512")
    assert_refused(get(client, token), "The specified alg value is not allowed")


def test_headers_handler_cannot_change_alg():
    jwt = JWT(authentication_handler=authenticate, identity_handler=identity)
    jwt.jwt_headers_handler(lambda ident: {"alg": "none", "kid": "k1"})
    app = make_app(jwt=jwt)
    client = app.test_client()
    token = login(client)
    header = pyjwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    assert header["kid"] == "k1"
    assert get(client, token).status_code == 200


# --------------------------------------------------------------------------
# embedded keys: jwk / jku / x5u / x5c
# --------------------------------------------------------------------------


def _self_signed_der(key: Any) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("which", ["jwk", "jku", "x5u", "x5c", "kid", "all"])
def test_token_embedding_attacker_key_refused_by_rs256_app(rs256, keys, which):
    _, client, _ = rs256
    attacker = keys["rsa_attacker"]
    jwk = RSAAlgorithm.to_jwk(attacker.public_key(), as_dict=True)
    extra = {
        "jwk": jwk,
        "jku": "https://attacker.example/.well-known/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "x5c": [base64.b64encode(_self_signed_der(attacker)).decode("ascii")],
        "kid": "attacker-key",
    }
    headers = extra if which == "all" else {which: extra[which]}
    token = pyjwt.encode(claims(), private_pem(attacker), algorithm="RS256", headers=headers)
    # the attacker's token really verifies with the embedded key...
    assert pyjwt.decode(token, attacker.public_key(), algorithms=["RS256"])["identity"] == 1
    # ...and is still refused: the key comes from the configuration only
    assert_refused(get(client, token), "Signature verification failed")


def test_hs256_token_with_embedded_oct_jwk_refused(hs256):
    _, client, _ = hs256
    attacker_secret = b"attacker-secret-that-is-long-enough-for-hs256!"
    header = {"alg": "HS256", "typ": "JWT", "jwk": {"kty": "oct", "k": b64(attacker_secret)}}
    token = hmac_token(header, claims(), attacker_secret)
    assert_refused(get(client, token), "Signature verification failed")


# --------------------------------------------------------------------------
# crit
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "crit, description",
    [
        (["http://example.com/unknown"], "Unsupported critical extension: http://example.com/unknown"),
        (["exp"], "Unsupported critical extension: exp"),
        ([], None),
        ("b64", None),
    ],
    ids=["unknown-uri", "exp-name", "empty-list", "not-a-list"],
)
def test_unknown_crit_header_refused_even_if_validly_signed(hs256, crit, description):
    _, client, _ = hs256
    header = {"alg": "HS256", "typ": "JWT", "crit": crit}
    if isinstance(crit, list) and crit:
        header[crit[0]] = True
    token = hmac_token(header, claims(), SECRET.encode())
    assert_refused(get(client, token), description)
    # control: same header without crit is accepted
    header.pop("crit")
    assert get(client, hmac_token(header, claims(), SECRET.encode())).status_code == 200


# --------------------------------------------------------------------------
# token size
# --------------------------------------------------------------------------


def test_token_over_max_bytes_refused_even_if_validly_signed():
    app = make_app()
    client = app.test_client()
    with app.app_context():
        big = app.extensions["jwt"].create_access_token(1, claims={"blob": "x" * 9000})
        small = app.extensions["jwt"].create_access_token(1, claims={"blob": "x" * 100})
    assert len(big) > 8192
    response = get(client, big)
    assert_refused(response, "Token is too large")
    assert response.headers["WWW-Authenticate"] == (
        'JWT realm="Login Required", error="invalid_token", error_description="Token is too large"'
    )
    assert get(client, small).status_code == 200
    # the limit is configuration, read per request
    app.config["JWT_MAX_TOKEN_BYTES"] = len(big)
    assert get(client, big).status_code == 200
    app.config["JWT_MAX_TOKEN_BYTES"] = len(big) - 1
    assert_refused(get(client, big), "Token is too large")


def test_decode_token_applies_size_limit_too():
    app = make_app({"JWT_MAX_TOKEN_BYTES": 300})
    jwt = app.extensions["jwt"]
    with app.app_context():
        token = jwt.create_access_token(1, claims={"blob": "y" * 400})
        with pytest.raises(JWTError) as info:
            jwt.decode_token(token)
    assert info.value.status_code == 401
    assert info.value.description == "Token is too large"


# --------------------------------------------------------------------------
# asymmetric algorithms
# --------------------------------------------------------------------------

ASYMMETRIC = [("RS256", "rsa"), ("PS256", "rsa"), ("ES256", "p256"), ("ES384", "p384"), ("EdDSA", "ed25519")]
ATTACKER = {kind: kind + "_attacker" for _, kind in ASYMMETRIC}


@pytest.mark.parametrize("alg, kind", ASYMMETRIC)
@pytest.mark.parametrize("with_public", [True, False], ids=["both-keys", "private-only"])
def test_asymmetric_algorithm_end_to_end(keys, alg, kind, with_public):
    key = keys[kind]
    config = {"JWT_ALGORITHM": alg, "JWT_PRIVATE_KEY": private_pem(key)}
    if with_public:
        config["JWT_PUBLIC_KEY"] = public_pem(key)
    app = make_app(config)
    client = app.test_client()
    token = login(client)
    response = get(client, token)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"id": 1, "username": "joe"}
    assert pyjwt.get_unverified_header(token)["alg"] == alg
    verified = pyjwt.decode(token, public_pem(key), algorithms=[alg])
    assert verified["identity"] == 1
    assert set(verified) >= {"exp", "iat", "nbf", "jti", "identity"}
    # a token of the same algorithm signed with another key is refused
    other = keys[ATTACKER[kind]]
    forged = pyjwt.encode(claims(), private_pem(other), algorithm=alg)
    assert_refused(get(client, forged), "Signature verification failed")
    # an HS256 token made with SECRET_KEY (still set by make_app) is refused
    assert_refused(get(client, pyjwt.encode(claims(), SECRET, algorithm="HS256")))


def test_public_key_only_app_verifies_but_cannot_issue(keys):
    key = keys["p256"]
    app = make_app({"JWT_ALGORITHM": "ES256", "JWT_PUBLIC_KEY": public_pem(key)})
    app.testing = True
    client = app.test_client()
    token = pyjwt.encode(claims(), private_pem(key), algorithm="ES256")
    assert get(client, token).status_code == 200
    with pytest.raises(ConfigurationError, match="JWT_PRIVATE_KEY"):
        client.post("/auth", json={"username": "joe", "password": "pass"})


def test_asymmetric_keys_may_be_bytes(keys):
    key = keys["ed25519"]
    app = make_app(
        {
            "JWT_ALGORITHM": "EdDSA",
            "JWT_PRIVATE_KEY": private_pem(key).encode(),
            "JWT_PUBLIC_KEY": public_pem(key).encode(),
        }
    )
    client = app.test_client()
    assert get(client, login(client)).status_code == 200


GARBAGE_PEM = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    "alg, setting, make_value",
    [
        ("RS256", "JWT_PRIVATE_KEY", lambda k: private_pem(k["p256"])),
        ("RS256", "JWT_PUBLIC_KEY", lambda k: public_pem(k["p256"])),
        ("PS256", "JWT_PRIVATE_KEY", lambda k: private_pem(k["ed25519"])),
        ("ES256", "JWT_PRIVATE_KEY", lambda k: private_pem(k["rsa"])),
        ("ES256", "JWT_PRIVATE_KEY", lambda k: private_pem(k["p384"])),
        ("ES384", "JWT_PUBLIC_KEY", lambda k: public_pem(k["p256"])),
        ("EdDSA", "JWT_PRIVATE_KEY", lambda k: private_pem(k["rsa"])),
        ("RS256", "JWT_PRIVATE_KEY", lambda k: GARBAGE_PEM),
        ("RS256", "JWT_PRIVATE_KEY", lambda k: "not a pem at all"),
        ("ES256", "JWT_PUBLIC_KEY", lambda k: GARBAGE_PEM.replace("PRIVATE", "PUBLIC")),
        ("HS256", "JWT_SECRET_KEY", lambda k: public_pem(k["rsa"])),
        ("HS256", "JWT_SECRET_KEY", lambda k: public_pem(k["p256"])),
        ("HS512", "JWT_SECRET_KEY", lambda k: public_pem(k["rsa"]).encode()),
        # Public keys in other shapes, which PyJWT before 2.14 took as HMAC secrets
        # (CVE-2026-48526 and its follow-ups): an attacker who knows the public key
        # could then sign tokens.
        ("HS256", "JWT_SECRET_KEY", lambda k: public_jwk_json(k["rsa"])),
        ("HS256", "JWT_SECRET_KEY", lambda k: "\ufeff" + public_jwk_json(k["p256"])),
        ("HS256", "JWT_SECRET_KEY", lambda k: public_der(k["rsa"])),
        ("HS256", "JWT_SECRET_KEY", lambda k: public_pem(k["rsa"]).replace("\n", "\r\n  ")),
    ],
    ids=[
        "RS256-ec-private", "RS256-ec-public", "PS256-ed25519", "ES256-rsa", "ES256-p384",
        "ES384-p256-public", "EdDSA-rsa", "RS256-garbage-pem", "RS256-not-pem", "ES256-garbage-public",
        "HS256-rsa-public", "HS256-ec-public", "HS512-rsa-public-bytes",
        "HS256-rsa-jwk", "HS256-ec-jwk-bom", "HS256-rsa-der", "HS256-rsa-pem-respaced",
    ],
)
def test_key_not_fitting_algorithm_is_configuration_error_at_init(keys, alg, setting, make_value):
    config: Dict[str, Any] = {"JWT_ALGORITHM": alg, setting: make_value(keys)}
    if setting == "JWT_PUBLIC_KEY":
        # a fitting private key next to the wrong public key: the public one is named
        config["JWT_PRIVATE_KEY"] = private_pem(keys[{"RS256": "rsa", "ES384": "p384", "ES256": "p256"}[alg]])
    with pytest.raises(ConfigurationError) as info:
        make_app(config)
    message = str(info.value)
    assert setting in message, message
    assert alg in message, message


def test_key_not_fitting_set_after_init_fails_at_first_use(keys):
    app = make_app()
    app.testing = True
    client = app.test_client()
    app.config.update({"JWT_ALGORITHM": "RS256", "JWT_PRIVATE_KEY": private_pem(keys["p256"])})
    with pytest.raises(ConfigurationError, match="JWT_PRIVATE_KEY"):
        client.post("/auth", json={"username": "joe", "password": "pass"})


def test_public_key_given_as_private_key_is_configuration_error(keys):
    with pytest.raises(ConfigurationError, match="JWT_PRIVATE_KEY"):
        make_app({"JWT_ALGORITHM": "RS256", "JWT_PRIVATE_KEY": public_pem(keys["rsa"])})


# --------------------------------------------------------------------------
# no secret
# --------------------------------------------------------------------------


def test_no_secret_init_succeeds_but_auth_raises_configuration_error():
    app = make_app({"SECRET_KEY": None})
    assert app.extensions["jwt"] is not None
    app.testing = True
    client = app.test_client()
    with pytest.raises(ConfigurationError, match="JWT_SECRET_KEY"):
        client.post("/auth", json={"username": "joe", "password": "pass"})
    token = pyjwt.encode(claims(), SECRET, algorithm="HS256")
    with pytest.raises(ConfigurationError, match="JWT_SECRET_KEY"):
        get(client, token)


def test_no_secret_is_500_not_a_token_when_not_testing():
    app = make_app({"SECRET_KEY": None})
    client = app.test_client()
    response = client.post("/auth", json={"username": "joe", "password": "pass"})
    assert response.status_code == 500
    assert b"access_token" not in response.data


@pytest.mark.parametrize("empty", ["", b""], ids=["str", "bytes"])
def test_empty_secret_counts_as_no_secret(empty):
    app = make_app({"SECRET_KEY": empty})
    app.testing = True
    with pytest.raises(ConfigurationError, match="JWT_SECRET_KEY"):
        app.test_client().post("/auth", json={"username": "joe", "password": "pass"})


def test_secret_set_after_init_is_used():
    app = make_app({"SECRET_KEY": None})
    client = app.test_client()
    app.config["JWT_SECRET_KEY"] = "late-secret-that-is-long-enough-for-hs256-tokens"
    token = login(client)
    pyjwt.decode(token, "late-secret-that-is-long-enough-for-hs256-tokens", algorithms=["HS256"])
    assert get(client, token).status_code == 200


# --------------------------------------------------------------------------
# issuer and audience
# --------------------------------------------------------------------------

ISSUER = "https://issuer.example"
AUDIENCE = "orders-api"


@pytest.fixture(scope="module")
def iss_aud():
    app = make_app({"JWT_ISSUER": ISSUER, "JWT_AUDIENCE": AUDIENCE})
    client = app.test_client()
    return app, client, login(client)


def test_issuer_and_audience_put_in_tokens(iss_aud):
    _, client, token = iss_aud
    payload = pyjwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER)
    assert payload["iss"] == ISSUER
    assert payload["aud"] == AUDIENCE
    assert get(client, token).status_code == 200


@pytest.mark.parametrize(
    "changes, description",
    [
        ({"iss": ISSUER}, 'Token is missing the "aud" claim'),
        ({"iss": ISSUER, "aud": "other-api"}, "Audience doesn't match"),
        ({"iss": ISSUER, "aud": ["other-api", "billing"]}, "Audience doesn't match"),
        ({"aud": AUDIENCE}, 'Token is missing the "iss" claim'),
        ({"iss": "https://evil.example", "aud": AUDIENCE}, "Invalid issuer"),
        ({"iss": ISSUER.upper(), "aud": AUDIENCE}, "Invalid issuer"),
    ],
    ids=["no-aud", "wrong-aud", "wrong-aud-list", "no-iss", "wrong-iss", "iss-case"],
)
def test_issuer_and_audience_verified(iss_aud, changes, description):
    _, client, _ = iss_aud
    token = pyjwt.encode(claims(**changes), SECRET, algorithm="HS256")
    assert_refused(get(client, token), description)


def test_right_issuer_and_audience_in_list_accepted(iss_aud):
    _, client, _ = iss_aud
    token = pyjwt.encode(claims(iss=ISSUER, aud=["billing", AUDIENCE]), SECRET, algorithm="HS256")
    assert get(client, token).status_code == 200


def test_token_from_app_without_audience_refused_by_app_with_audience():
    plain = make_app()
    token = login(plain.test_client())
    assert "aud" not in pyjwt.decode(token, SECRET, algorithms=["HS256"])
    strict = make_app({"JWT_AUDIENCE": AUDIENCE})
    assert_refused(get(strict.test_client(), token), 'Token is missing the "aud" claim')


# --------------------------------------------------------------------------
# jti
# --------------------------------------------------------------------------


def test_every_token_has_a_unique_jti():
    app = make_app()
    client = app.test_client()
    tokens = [login(client) for _ in range(50)]
    jtis = [pyjwt.decode(t, SECRET, algorithms=["HS256"])["jti"] for t in tokens]
    assert len(set(tokens)) == 50
    assert len(set(jtis)) == 50
    assert all(re.fullmatch(r"[0-9a-f]{32}", jti) for jti in jtis)


def test_created_tokens_have_unique_jti_too():
    app = make_app()
    jwt = app.extensions["jwt"]
    with app.app_context():
        jtis = {jwt.decode_token(jwt.create_access_token(1))["jti"] for _ in range(50)}
    assert len(jtis) == 50


# --------------------------------------------------------------------------
# JWT_VERIFY_CLAIMS never turns a check off (as in Flask-JWT on PyJWT 1)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("verify", [["exp", "nbf", "iat"], [], ["exp"], ["signature"]])
def test_verify_claims_cannot_switch_checks_off(verify):
    app = make_app({"JWT_VERIFY_CLAIMS": verify})
    client = app.test_client()
    token = login(client)
    assert get(client, token).status_code == 200
    forged = raw_token({"alg": "none"}, claims())
    assert get(client, forged).status_code == 401
    wrong_secret = pyjwt.encode(claims(), "another-secret-that-is-long-enough-for-hs256!!", algorithm="HS256")
    response = get(client, wrong_secret)
    assert response.status_code == 401
    assert response.get_json()["description"] == "Signature verification failed"
    expired = pyjwt.encode(claims(exp=int(time.time()) - 3600), SECRET, algorithm="HS256")
    response = get(client, expired)
    assert response.status_code == 401
    assert response.get_json()["description"] == "Signature has expired"


def test_verify_claims_changed_after_a_cached_success_still_checks_signature():
    app = make_app()
    client = app.test_client()
    token = login(client)
    assert get(client, token).status_code == 200
    app.config["JWT_VERIFY_CLAIMS"] = []
    assert get(client, token).status_code == 200
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert get(client, tampered).status_code == 401


# --------------------------------------------------------------------------
# logs
# --------------------------------------------------------------------------


def test_tokens_and_passwords_never_logged(caplog):
    password = "Pa55-word-that-must-not-leak"
    app = make_app()
    client = app.test_client()
    with caplog.at_level(logging.DEBUG, logger="flask_tokenauth"):
        good = login(client)
        expired = pyjwt.encode(
            claims(exp=int(time.time()) - 100, iat=0, nbf=0), SECRET, algorithm="HS256"
        )
        no_identity = pyjwt.encode({k: v for k, v in claims().items() if k != "identity"}, SECRET)
        unknown = pyjwt.encode(claims(identity=424242), SECRET, algorithm="HS256")
        wrong_key = pyjwt.encode(claims(), "wrong-key-that-is-long-enough-for-hs256-xxxx", algorithm="HS256")
        header, payload, signature = good.split(".")
        tampered = ".".join([header, payload, "A" + signature[1:]])
        huge = pyjwt.encode(claims(blob="z" * 9000), SECRET, algorithm="HS256")
        tokens = [good, expired, no_identity, unknown, wrong_key, tampered, huge, "garbage.token.value"]

        failed = [
            client.post("/auth", json={"username": "joe", "password": password}),
            client.post("/auth", json={"username": password, "password": password}),
            client.post("/auth", json={"username": "joe", "password": password, "extra": 1}),
            client.post("/auth", data=json.dumps({"password": password}), content_type="text/plain"),
        ]
        for token in tokens[1:]:
            failed.append(get(client, token))
            failed.append(client.get("/protected", headers={"Authorization": "Basic " + token}))
            failed.append(client.get("/protected", headers={"Authorization": "JWT %s extra" % token}))
        ok = get(client, good)
    assert ok.status_code == 200
    assert all(400 <= r.status_code < 500 for r in failed), [r.status_code for r in failed]
    assert caplog.records, "expected the refusals to be logged at some level"
    logged = "\n".join(
        [caplog.text]
        + [record.getMessage() for record in caplog.records]
        + [repr(record.args) for record in caplog.records]
    )
    assert password not in logged
    for token in tokens:
        assert token not in logged
        assert token.split(".")[-1] not in logged or len(token.split(".")[-1]) < 8


def test_a_weak_hmac_secret_is_reported_once_saying_what_to_do(caplog):
    import warnings

    from flask_tokenauth import keys as keys_module

    keys_module._warned_weak.clear()  # said once per process: start from nothing
    caplog.set_level(logging.WARNING, "flask_tokenauth")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        app = make_app({"SECRET_KEY": "too-short"})
        client = app.test_client()
        for _ in range(3):
            token = login(client)
            assert client.get("/protected", headers=auth_header(token)).status_code == 200
        make_app({"SECRET_KEY": "too-short"})  # a second app with the same secret
    said = [r.getMessage() for r in caplog.records if "bytes;" in r.getMessage()]
    assert len(said) == 1, said
    assert "JWT_SECRET_KEY (or SECRET_KEY) is 9 bytes; HS256 needs at least 32" in said[0]
    assert 'python -c "import secrets; print(secrets.token_urlsafe(32))"' in said[0]
    assert "too-short" not in said[0]  # never the secret itself
    pyjwt_warnings = [w for w in caught if w.category is pyjwt.warnings.InsecureKeyLengthWarning]
    assert pyjwt_warnings == []  # not said twice more by PyJWT


def test_a_flask_jwt_extended_refresh_token_is_not_accepted_as_an_access_token():
    """During a migration that keeps Flask-JWT-Extended's secret, its refresh
    tokens (claim ``type: refresh``, 30 days by default) must not open
    protected routes; its access tokens (``type: access``) still do."""
    client = make_app().test_client()
    now = int(time.time())
    claims = {"identity": 1, "sub": "1", "iat": now, "nbf": now, "exp": now + 600, "jti": "j1"}
    access = pyjwt.encode({**claims, "type": "access"}, SECRET, "HS256")
    refresh = pyjwt.encode({**claims, "jti": "j2", "type": "refresh"}, SECRET, "HS256")
    assert client.get("/protected", headers=auth_header(access)).status_code == 200
    refused = client.get("/protected", headers=auth_header(refresh))
    assert refused.status_code == 401
    assert refused.get_json() == {
        "status_code": 401,
        "error": "Invalid token",
        "description": "Only access tokens are accepted here",
    }
