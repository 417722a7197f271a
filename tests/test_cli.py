"""The ``flask tokenauth`` CLI (issue 4), through ``app.test_cli_runner()``.

Each command runs in the app's context: it signs with the app's keys and revokes in the
app's token store (``memory://`` here, shared with the test client in this process).
"""

from __future__ import annotations

import inspect
import json
import re
from typing import Any, Dict, List

import click.testing
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from flask_tokenauth.keys import generate
from tests.conftest import auth_header, login, make_app

JOE = {"id": 1, "username": "joe"}
ANN = {"id": 2, "username": "ann"}
TYPE_CLAIM = "token_type"
REVOKED = {"status_code": 401, "error": "Invalid token", "description": "Token has been revoked"}
SESSION = {"JWT_REFRESH_URL_RULE": "/auth/refresh", "JWT_LOGOUT_URL_RULE": "/auth/logout"}

# click < 8.2 mixes stderr into stdout unless asked not to (and 8.2 dropped the option).
_SEPARATE_STDERR = (
    {"mix_stderr": False}
    if "mix_stderr" in inspect.signature(click.testing.CliRunner.__init__).parameters
    else {}
)


def invoke(app, *args: str):
    return app.test_cli_runner(**_SEPARATE_STDERR).invoke(args=["tokenauth", *args])


def create_token(app, *args: str) -> str:
    result = invoke(app, "create-token", *args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    return lines[0]


def claims_of(token: str) -> Dict[str, Any]:
    return pyjwt.decode(token, options={"verify_signature": False})


def get(app, token: str):
    return app.test_client().get("/protected", headers=auth_header(token))


# --- create-token -------------------------------------------------------------------------


def test_create_token_makes_a_working_access_token():
    app = make_app()
    token = create_token(app, "1")
    response = get(app, token)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == JOE
    claims = claims_of(token)
    assert claims["identity"] == 1  # "1" on the command line is the int user id
    assert claims[TYPE_CLAIM] == "access"
    assert claims["fresh"] is False
    assert claims["exp"] - claims["iat"] == 300  # the app's JWT_EXPIRATION_DELTA
    assert "permissions" not in claims
    assert get(app, create_token(app, "2")).get_json() == ANN


def test_create_token_binds_to_a_dpop_key():
    from tests.dpop_support import Client

    app = make_app()
    key = Client()
    token = create_token(app, "1", "--dpop-jkt", key.jkt)
    assert claims_of(token)["cnf"] == {"jkt": key.jkt}
    client = app.test_client()
    assert get(app, token).status_code == 401  # a bound token as JWT <token>: refused
    url = "https://api.example/protected"
    headers = {"Authorization": "DPoP " + token, "DPoP": key.proof("GET", url, token)}
    assert client.get("/protected", headers=headers, base_url="https://api.example").get_json() == JOE
    refused = invoke(app, "create-token", "1", "--refresh", "--dpop-jkt", key.jkt)
    assert refused.exit_code == 2


def test_create_token_with_text_identity_keeps_it_a_string():
    app = make_app()
    token = create_token(app, "joe")
    assert claims_of(token)["identity"] == "joe"
    response = get(app, token)  # the tutorial identity handler looks users up by int id
    assert response.status_code == 401
    assert response.get_json()["description"] == "User does not exist"


def test_create_token_permissions_show_in_claims():
    app = make_app()
    token = create_token(app, "1", "--permissions", "read,predict")
    assert claims_of(token)["permissions"] == ["predict", "read"]
    decoded = invoke(app, "decode", token)
    assert decoded.exit_code == 0
    assert json.loads(decoded.stdout)["permissions"] == ["predict", "read"]


def test_create_token_permissions_with_scope_claim():
    app = make_app({"JWT_PERMISSIONS_CLAIM": "scope"})
    token = create_token(app, "1", "--permissions", "read,predict")
    assert claims_of(token)["scope"] == "predict read"


@pytest.mark.parametrize("expires,seconds", [("1h", 3600), ("90", 90), ("15m", 900), ("30d", 30 * 86400)])
def test_create_token_expires(expires, seconds):
    app = make_app()
    token = create_token(app, "1", "--expires", expires)
    claims = claims_of(token)
    assert claims["exp"] - claims["iat"] == seconds
    assert get(app, token).get_json() == JOE


def test_create_token_bad_expires_is_a_usage_error():
    result = invoke(make_app(), "create-token", "1", "--expires", "soon")
    assert result.exit_code == 2
    assert "use a number with an optional unit" in result.output + result.stderr


def test_create_token_refresh_makes_a_refresh_token():
    app = make_app(SESSION)
    token = create_token(app, "1", "--refresh", "--permissions", "admin")
    claims = claims_of(token)
    assert claims[TYPE_CLAIM] == "refresh"
    assert claims["identity"] == 1
    assert claims["permissions"] == ["admin"]
    assert "fam" in claims and "auth_time" in claims
    # it is refused where access tokens are expected...
    response = get(app, token)
    assert response.status_code == 401
    assert response.get_json()["description"] == "Only access tokens are accepted here"
    # ...and works at the refresh route
    refreshed = app.test_client().post("/auth/refresh", headers=auth_header(token))
    assert refreshed.status_code == 200, refreshed.get_json()
    access = refreshed.get_json()["access_token"]
    assert claims_of(access)["permissions"] == ["admin"]
    assert get(app, access).get_json() == JOE


def test_create_token_fresh_flag():
    app = make_app()
    assert claims_of(create_token(app, "1", "--fresh"))["fresh"] is True


def test_create_token_uses_the_apps_current_key():
    kid, private, _ = generate("ES256")
    app = make_app({"JWT_KEYS": [{"kid": kid, "alg": "ES256", "private_key": private}]})
    token = create_token(app, "1")
    assert pyjwt.get_unverified_header(token)["kid"] == kid
    assert pyjwt.get_unverified_header(token)["alg"] == "ES256"
    assert get(app, token).get_json() == JOE


# --- decode -------------------------------------------------------------------------------


def test_decode_prints_sorted_indented_json_claims():
    app = make_app()
    token = login(app.test_client())
    result = invoke(app, "decode", token)
    assert result.exit_code == 0, result.output
    claims = json.loads(result.stdout)
    assert claims == claims_of(token)
    assert claims["identity"] == 1
    assert result.stdout == json.dumps(claims, indent=2, sort_keys=True) + "\n"
    assert result.stderr == ""


@pytest.mark.parametrize(
    "kind,description",
    [
        ("garbage", "Not enough segments"),
        ("bad-signature", "Signature verification failed"),
        ("expired", "Signature has expired"),
    ],
)
def test_decode_refuses_bad_tokens_with_exit_code_1(kind, description):
    app = make_app()
    jwt = app.extensions["jwt"]
    with app.app_context():
        good = jwt.create_access_token(1)
        expired = jwt.create_access_token(1, expires_delta=-3600)
    token = {"garbage": "garbage", "bad-signature": good[:-4] + "AAAA", "expired": expired}[kind]
    result = invoke(app, "decode", token)
    assert result.exit_code == 1
    assert result.stderr == "refused: Invalid token: %s\n" % description
    assert result.stdout == ""


def test_decode_refuses_a_revoked_token():
    app = make_app()
    token = create_token(app, "1")
    assert invoke(app, "revoke", token).exit_code == 0
    result = invoke(app, "decode", token)
    assert result.exit_code == 1
    assert result.stderr == "refused: Invalid token: Token has been revoked\n"


def test_decode_uses_the_apps_key():
    app = make_app()
    other = make_app({"SECRET_KEY": "an-entirely-different-secret-of-enough-length!"})
    token = create_token(other, "1")
    result = invoke(app, "decode", token)
    assert result.exit_code == 1
    assert "Signature verification failed" in result.stderr
    assert invoke(other, "decode", token).exit_code == 0


# --- revoke -------------------------------------------------------------------------------


def test_revoke_token_then_the_same_app_refuses_it():
    app = make_app(SESSION)
    client = app.test_client()
    token = login(client)
    other = login(client)  # another login, another family
    assert get(app, token).get_json() == JOE

    result = invoke(app, "revoke", token)
    assert result.exit_code == 0, result.output
    assert result.stdout == "revoked the token and its session\n"
    assert "memory://" in result.stderr  # the warning about a per-process store

    response = get(app, token)
    assert response.status_code == 401
    assert response.get_json() == REVOKED
    assert get(app, other).get_json() == JOE


def test_revoke_a_cli_made_token():
    app = make_app()
    token = create_token(app, "2")
    assert get(app, token).get_json() == ANN
    assert invoke(app, "revoke", token).exit_code == 0
    assert get(app, token).get_json() == REVOKED


def test_revoke_identity():
    app = make_app()
    client = app.test_client()
    joe = login(client)
    joe_cli = create_token(app, "1")
    ann = login(client, "ann", "secret")

    result = invoke(app, "revoke", "--identity", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout == "revoked every token of identity 1 issued until now\n"
    assert "memory://" in result.stderr

    assert get(app, joe).get_json() == REVOKED
    assert get(app, joe_cli).get_json() == REVOKED
    assert get(app, ann).get_json() == ANN


def test_revoke_refuses_an_invalid_token_with_exit_code_1():
    app = make_app()
    result = invoke(app, "revoke", "not-a-token")
    assert result.exit_code == 1
    assert "refused: Invalid token: " in result.stderr


@pytest.mark.parametrize("both", [False, True], ids=["neither", "both"])
def test_revoke_needs_exactly_one_of_token_and_identity(both):
    app = make_app()
    token = create_token(app, "1")
    result = invoke(app, "revoke", *([token, "--identity", "1"] if both else []))
    assert result.exit_code == 2
    assert "give either a TOKEN or --identity, not both" in result.output + result.stderr
    assert get(app, token).get_json() == JOE  # nothing was revoked


# --- keygen -------------------------------------------------------------------------------

PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----\n[A-Za-z0-9+/=\n]+-----END \1-----")
KEY_TYPES = {
    "ES256": (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey),
    "RS256": (rsa.RSAPrivateKey, rsa.RSAPublicKey),
    "EdDSA": (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey),
}


def keygen(*args: str) -> str:
    result = invoke(make_app(), "keygen", *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def parse_header(line: str, alg: str) -> str:
    found = re.fullmatch(r"# kid: (\S+)  alg: %s  \(first in JWT_KEYS = the current key\)" % alg, line)
    assert found, line
    return found.group(1)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_keygen_pem_output_parses(alg):
    out = keygen("--alg", alg)
    kid = parse_header(out.splitlines()[0], alg)
    assert kid
    blocks: List[str] = [m.group(0) for m in PEM_BLOCK.finditer(out)]
    assert [b.splitlines()[0] for b in blocks] == [
        "-----BEGIN PRIVATE KEY-----",
        "-----BEGIN PUBLIC KEY-----",
    ]
    private = serialization.load_pem_private_key(blocks[0].encode(), password=None)
    public = serialization.load_pem_public_key(blocks[1].encode())
    private_type, public_type = KEY_TYPES[alg]
    assert isinstance(private, private_type)
    assert isinstance(public, public_type)
    der = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert private.public_key().public_bytes(*der) == public.public_bytes(*der)
    if alg == "ES256":
        assert isinstance(private.curve, ec.SECP256R1)
    if alg == "RS256":
        assert private.key_size >= 2048


def test_keygen_default_is_es256():
    out = keygen()
    parse_header(out.splitlines()[0], "ES256")
    private = serialization.load_pem_private_key(next(PEM_BLOCK.finditer(out)).group(0).encode(), None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)


def test_keygen_hs256_prints_a_secret():
    out = keygen("--alg", "HS256")
    lines = out.splitlines()
    assert len(lines) == 2
    parse_header(lines[0], "HS256")
    secret = lines[1]
    assert len(secret) >= 64
    assert re.fullmatch(r"[A-Za-z0-9_-]+", secret)
    assert "BEGIN" not in out


def test_keygen_kids_differ():
    first = parse_header(keygen("--alg", "HS256").splitlines()[0], "HS256")
    second = parse_header(keygen("--alg", "HS256").splitlines()[0], "HS256")
    assert first != second


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA", "HS256"])
def test_keygen_json_entry_works_as_jwt_keys(alg):
    entry = json.loads(keygen("--alg", alg, "--json"))
    if alg == "HS256":
        assert set(entry) == {"kid", "alg", "secret"}
    else:
        assert set(entry) == {"kid", "alg", "private_key", "public_key"}
        assert entry["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
        assert entry["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert entry["alg"] == alg

    app = make_app({"JWT_KEYS": [entry]})
    client = app.test_client()
    token = login(client)
    header = pyjwt.get_unverified_header(token)
    assert header["kid"] == entry["kid"]
    assert header["alg"] == alg
    response = client.get("/protected", headers=auth_header(token))
    assert response.status_code == 200
    assert response.get_json() == JOE
    if alg != "HS256":  # the public half verifies it on its own
        claims = pyjwt.decode(token, entry["public_key"], algorithms=[alg])
        assert claims["identity"] == 1
    # the CLI of the new app signs with that key too
    assert get(app, create_token(app, "1")).get_json() == JOE


@pytest.mark.parametrize("alg", ["none", "None", "XX999"])
def test_keygen_refuses_bad_algorithms(alg):
    result = invoke(make_app(), "keygen", "--alg", alg)
    assert result.exit_code == 2
    assert "Invalid value for --alg" in result.output + result.stderr
    assert "BEGIN" not in result.output
