"""Every configuration key, as a Flask-JWT 0.3.2 app sees it.

For each key: its default is in ``app.config`` after ``init_app``, and
changing it changes what a client sees (status, JSON body, headers).
Time-dependent cases use tokens whose ``exp``/``nbf`` are already in the past
or future instead of sleeping.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Dict

import jwt as pyjwt
import pytest
from flask import Flask, url_for

from flask_tokenauth import CONFIG_DEFAULTS, JWT, ConfigurationError
from flask_tokenauth import codec as tokenauth_codec
from tests.conftest import BY_ID, SECRET, auth_header, authenticate, identity, login, make_app

OTHER_SECRET = "another-secret-that-is-also-long-enough-for-hs256"

#: Flask-JWT 0.3.2's defaults, then the keys flask_tokenauth adds (written out,
#: not copied from the package, so a changed default fails here).
EXPECTED_DEFAULTS: Dict[str, Any] = {
    "JWT_DEFAULT_REALM": "Login Required",
    "JWT_AUTH_URL_RULE": "/auth",
    "JWT_AUTH_ENDPOINT": "jwt",
    "JWT_AUTH_URL_OPTIONS": {"methods": ["POST"]},
    "JWT_AUTH_USERNAME_KEY": "username",
    "JWT_AUTH_PASSWORD_KEY": "password",
    "JWT_ALGORITHM": "HS256",
    "JWT_LEEWAY": dt.timedelta(seconds=10),
    "JWT_AUTH_HEADER_PREFIX": "JWT",
    "JWT_EXPIRATION_DELTA": dt.timedelta(seconds=300),
    "JWT_NOT_BEFORE_DELTA": dt.timedelta(seconds=0),
    "JWT_VERIFY_CLAIMS": ["signature", "exp", "nbf", "iat"],
    "JWT_REQUIRED_CLAIMS": ["exp", "iat", "nbf"],
    "JWT_PRIVATE_KEY": None,
    "JWT_PUBLIC_KEY": None,
    "JWT_ISSUER": None,
    "JWT_AUDIENCE": None,
    "JWT_IDENTITY_CLAIM": "identity",
    "JWT_MAX_TOKEN_BYTES": 8192,
    "JWT_VERIFIED_TOKEN_CACHE_SIZE": 1024,
}


# --- helpers -----------------------------------------------------------------


def claims_of(token: str) -> Dict[str, Any]:
    return pyjwt.decode(token, options={"verify_signature": False})


def get_protected(client, token: str, prefix: str = "JWT"):
    return client.get("/protected", headers=auth_header(token, prefix))


def refusal(response) -> tuple:
    body = response.get_json()
    assert body is not None, response.get_data(as_text=True)
    assert body["status_code"] == response.status_code
    return response.status_code, body["error"], body["description"]


def app_token(app: Flask, identity_value: Any = 1, **kwargs: Any) -> str:
    with app.app_context():
        return app.extensions["jwt"].create_access_token(identity_value, **kwargs)


def raw_token(claims: Dict[str, Any], key: Any = SECRET, algorithm: str = "HS256", **kwargs: Any) -> str:
    return pyjwt.encode(claims, key, algorithm=algorithm, **kwargs)


def standard_claims(**overrides: Any) -> Dict[str, Any]:
    now = int(time.time())
    claims: Dict[str, Any] = {"exp": now + 300, "iat": now, "nbf": now, "identity": 1}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


# --- defaults ------------------------------------------------------------------


def test_defaults_table_has_every_documented_key():
    missing = set(EXPECTED_DEFAULTS) - set(CONFIG_DEFAULTS)
    assert not missing
    assert {key: CONFIG_DEFAULTS[key] for key in EXPECTED_DEFAULTS} == EXPECTED_DEFAULTS


@pytest.mark.parametrize("key", sorted(EXPECTED_DEFAULTS))
def test_default_present_in_app_config_after_init_app(key):
    app = make_app()
    assert key in app.config
    assert app.config[key] == EXPECTED_DEFAULTS[key]


def test_init_app_keeps_values_the_app_set_first():
    app = make_app({"JWT_DEFAULT_REALM": "Mine", "JWT_EXPIRATION_DELTA": dt.timedelta(hours=1)})
    assert app.config["JWT_DEFAULT_REALM"] == "Mine"
    assert app.config["JWT_EXPIRATION_DELTA"] == dt.timedelta(hours=1)


def test_default_url_options_are_not_shared_or_mutated():
    first, second = make_app(), make_app()
    # Flask-JWT put view_func into the shared defaults dict; this must not happen.
    assert first.config["JWT_AUTH_URL_OPTIONS"] == {"methods": ["POST"]}
    assert CONFIG_DEFAULTS["JWT_AUTH_URL_OPTIONS"] == {"methods": ["POST"]}
    first.config["JWT_AUTH_URL_OPTIONS"]["methods"].append("PUT")
    assert second.config["JWT_AUTH_URL_OPTIONS"] == {"methods": ["POST"]}
    assert CONFIG_DEFAULTS["JWT_AUTH_URL_OPTIONS"] == {"methods": ["POST"]}


def test_app_supplied_url_options_dict_is_not_mutated():
    options = {"methods": ["POST"]}
    app = make_app({"JWT_AUTH_URL_OPTIONS": options})
    assert options == {"methods": ["POST"]}
    assert app.test_client().post("/auth", json={"username": "joe", "password": "pass"}).status_code == 200


# --- JWT_DEFAULT_REALM -------------------------------------------------------------


def test_default_realm_appears_in_www_authenticate():
    client = make_app({"JWT_DEFAULT_REALM": "Secret Area"}).test_client()
    response = client.get("/protected")
    assert refusal(response) == (401, "Authorization Required", "Request does not contain an access token")
    assert response.headers["WWW-Authenticate"] == 'JWT realm="Secret Area"'


def test_default_realm_in_invalid_token_challenge():
    client = make_app({"JWT_DEFAULT_REALM": "Secret Area"}).test_client()
    response = get_protected(client, "not.a.token")
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('JWT realm="Secret Area"')
    assert 'error="invalid_token"' in challenge


def test_realm_passed_to_jwt_required_wins_over_default():
    from flask_tokenauth import jwt_required

    app = make_app({"JWT_DEFAULT_REALM": "Secret Area"})

    @app.route("/admin")
    @jwt_required("Admins")
    def admin():
        return "ok"

    response = app.test_client().get("/admin")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'JWT realm="Admins"'


# --- JWT_AUTH_HEADER_PREFIX ----------------------------------------------------------


def test_default_prefix_jwt_is_case_insensitive():
    client = make_app().test_client()
    token = login(client)
    assert get_protected(client, token, "JWT").status_code == 200
    assert get_protected(client, token, "jwt").status_code == 200


def test_bearer_prefix_accepts_bearer_and_refuses_jwt():
    client = make_app({"JWT_AUTH_HEADER_PREFIX": "Bearer"}).test_client()
    token = login(client)
    ok = get_protected(client, token, "Bearer")
    assert ok.status_code == 200
    assert ok.get_json() == {"id": 1, "username": "joe"}
    assert get_protected(client, token, "bearer").status_code == 200
    refused = get_protected(client, token, "JWT")
    assert refusal(refused) == (401, "Invalid JWT header", "Unsupported authorization type")
    assert 'realm="Login Required"' in refused.headers["WWW-Authenticate"]


# --- JWT_AUTH_URL_RULE / JWT_AUTH_ENDPOINT / JWT_AUTH_URL_OPTIONS ------------------------


def test_auth_url_rule_moves_login_route():
    client = make_app({"JWT_AUTH_URL_RULE": "/login"}).test_client()
    response = client.post("/login", json={"username": "joe", "password": "pass"})
    assert response.status_code == 200
    assert set(response.get_json()) == {"access_token"}
    assert client.post("/auth", json={"username": "joe", "password": "pass"}).status_code == 404


def test_auth_url_rule_none_removes_login_route():
    app = make_app({"JWT_AUTH_URL_RULE": None})
    client = app.test_client()
    assert client.post("/auth", json={"username": "joe", "password": "pass"}).status_code == 404
    assert "jwt" not in app.view_functions
    # Tokens made by the app's own login route still verify.
    assert get_protected(client, app_token(app)).status_code == 200


@pytest.mark.parametrize("endpoint", [None, "api_login"])
def test_auth_endpoint_names_the_route_for_url_for(endpoint):
    config = {} if endpoint is None else {"JWT_AUTH_ENDPOINT": endpoint}
    app = make_app(config)
    with app.test_request_context():
        assert url_for(endpoint or "jwt") == "/auth"
    assert (endpoint or "jwt") in app.view_functions
    if endpoint is not None:
        assert "jwt" not in app.view_functions


def test_auth_url_options_methods():
    client = make_app({"JWT_AUTH_URL_OPTIONS": {"methods": ["PUT"]}}).test_client()
    response = client.put("/auth", json={"username": "joe", "password": "pass"})
    assert response.status_code == 200
    assert "access_token" in response.get_json()
    assert client.post("/auth", json={"username": "joe", "password": "pass"}).status_code == 405


# --- JWT_AUTH_USERNAME_KEY / JWT_AUTH_PASSWORD_KEY ------------------------------------


def test_username_key():
    client = make_app({"JWT_AUTH_USERNAME_KEY": "email"}).test_client()
    ok = client.post("/auth", json={"email": "joe", "password": "pass"})
    assert ok.status_code == 200
    assert claims_of(ok.get_json()["access_token"])["identity"] == 1
    old = client.post("/auth", json={"username": "joe", "password": "pass"})
    assert refusal(old) == (401, "Bad Request", "Invalid credentials")


def test_password_key():
    client = make_app({"JWT_AUTH_PASSWORD_KEY": "pw"}).test_client()
    assert client.post("/auth", json={"username": "ann", "pw": "secret"}).status_code == 200
    old = client.post("/auth", json={"username": "ann", "password": "secret"})
    assert refusal(old) == (401, "Bad Request", "Invalid credentials")


# --- JWT_ALGORITHM ---------------------------------------------------------------


def test_algorithm_hs512_signs_and_refuses_other_algorithms():
    client = make_app({"JWT_ALGORITHM": "HS512"}).test_client()
    token = login(client)
    assert pyjwt.get_unverified_header(token)["alg"] == "HS512"
    assert pyjwt.decode(token, SECRET, algorithms=["HS512"])["identity"] == 1
    assert get_protected(client, token).status_code == 200
    hs256 = raw_token(standard_claims(), algorithm="HS256")
    assert refusal(get_protected(client, hs256)) == (
        401, "Invalid token", "The specified alg value is not allowed"
    )


def test_unsigned_token_is_refused():
    client = make_app().test_client()
    unsigned = pyjwt.encode(standard_claims(), None, algorithm="none")
    status, error, _ = refusal(get_protected(client, unsigned))
    assert (status, error) == (401, "Invalid token")


def test_algorithm_none_is_a_configuration_error():
    with pytest.raises(ConfigurationError):
        make_app({"JWT_ALGORITHM": "none"})


# --- JWT_EXPIRATION_DELTA / JWT_NOT_BEFORE_DELTA ---------------------------------


@pytest.mark.parametrize(
    "delta, seconds",
    [(None, 300), (60, 60), (dt.timedelta(hours=1), 3600), (dt.timedelta(seconds=90), 90)],
)
def test_expiration_delta_sets_exp_minus_iat(delta, seconds):
    client = make_app({} if delta is None else {"JWT_EXPIRATION_DELTA": delta}).test_client()
    token = login(client)
    claims = claims_of(token)
    assert claims["exp"] - claims["iat"] == seconds
    assert claims["nbf"] == claims["iat"]
    assert get_protected(client, token).status_code == 200


@pytest.mark.parametrize("delta", [dt.timedelta(seconds=60), 60])
def test_not_before_delta_makes_fresh_token_not_yet_valid(delta):
    client = make_app({"JWT_NOT_BEFORE_DELTA": delta}).test_client()
    token = login(client)
    claims = claims_of(token)
    assert claims["nbf"] - claims["iat"] == 60
    response = get_protected(client, token)
    assert refusal(response) == (401, "Invalid token", "The token is not yet valid (nbf)")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


# --- JWT_LEEWAY ---------------------------------------------------------------------


def test_default_leeway_lets_a_just_expired_token_pass():
    app = make_app()
    client = app.test_client()
    assert get_protected(client, app_token(app, expires_delta=-3)).status_code == 200
    expired = get_protected(client, app_token(app, expires_delta=-60))
    assert refusal(expired) == (401, "Invalid token", "Signature has expired")


@pytest.mark.parametrize("leeway", [120, dt.timedelta(minutes=2)])
def test_larger_leeway_lets_an_expired_token_pass(leeway):
    app = make_app({"JWT_LEEWAY": leeway})
    assert get_protected(app.test_client(), app_token(app, expires_delta=-60)).status_code == 200


@pytest.mark.parametrize("leeway", [0, dt.timedelta(0)])
def test_zero_leeway_refuses_a_just_expired_token(leeway):
    app = make_app({"JWT_LEEWAY": leeway})
    response = get_protected(app.test_client(), app_token(app, expires_delta=-3))
    assert refusal(response) == (401, "Invalid token", "Signature has expired")


# --- JWT_VERIFY_CLAIMS / JWT_REQUIRED_CLAIMS ----------------------------------------


@pytest.mark.parametrize("verify_claims", [["exp", "nbf", "iat"], ["signature"], []])
def test_verify_claims_never_switches_the_signature_check_off(verify_claims):
    # Flask-JWT only turned PyJWT checks on; PyJWT checks the signature by default.
    client = make_app({"JWT_VERIFY_CLAIMS": verify_claims}).test_client()
    forged = raw_token(standard_claims(), key=OTHER_SECRET)
    assert refusal(get_protected(client, forged)) == (401, "Invalid token", "Signature verification failed")
    assert get_protected(client, login(client)).status_code == 200


@pytest.mark.parametrize(
    "verify_claims, claims, description",
    [
        (["signature"], {"exp": -3600}, "Signature has expired"),
        (["signature", "iat"], {"exp": -3600}, "Signature has expired"),
        (["signature", "exp"], {"nbf": 3600}, "The token is not yet valid (nbf)"),
        (["signature", "exp", "nbf"], {"iat": 3600}, "The token is not yet valid (iat)"),
    ],
)
def test_verify_claims_without_a_claim_still_checks_it_like_flask_jwt(verify_claims, claims, description):
    # JWT_VERIFY_CLAIMS only ever switched PyJWT checks on: leaving one out changed nothing.
    client = make_app({"JWT_VERIFY_CLAIMS": verify_claims}).test_client()
    now = int(time.time())
    token = raw_token(standard_claims(**{name: now + offset for name, offset in claims.items()}))
    response = get_protected(client, token)
    assert response.status_code == 401, response.get_json()
    assert refusal(response) == (401, "Invalid token", description)


def test_verify_claims_default_checks_iat_not_in_future():
    client = make_app().test_client()
    future_iat = raw_token(standard_claims(iat=int(time.time()) + 3600))
    assert refusal(get_protected(client, future_iat)) == (
        401, "Invalid token", "The token is not yet valid (iat)"
    )


def test_required_claims_default_refuses_token_without_iat():
    client = make_app().test_client()
    response = get_protected(client, raw_token(standard_claims(iat=None)))
    assert refusal(response) == (401, "Invalid token", 'Token is missing the "iat" claim')


def test_required_claims_can_be_relaxed():
    client = make_app({"JWT_REQUIRED_CLAIMS": ["exp"]}).test_client()
    response = get_protected(client, raw_token(standard_claims(iat=None, nbf=None)))
    assert response.status_code == 200
    assert response.get_json() == {"id": 1, "username": "joe"}


def test_required_claims_can_be_extended():
    client = make_app({"JWT_REQUIRED_CLAIMS": ["exp", "iat", "nbf", "scope"]}).test_client()
    response = get_protected(client, raw_token(standard_claims()))
    assert refusal(response) == (401, "Invalid token", 'Token is missing the "scope" claim')
    assert get_protected(client, raw_token(standard_claims(scope="read"))).status_code == 200


def test_required_claim_missing_from_payload_fails_at_login_like_flask_jwt():
    app = make_app({"JWT_REQUIRED_CLAIMS": ["exp", "iat", "nbf", "scope"]})
    app.testing = True
    with pytest.raises(RuntimeError, match="Payload is missing required claims: scope"):
        app.test_client().post("/auth", json={"username": "joe", "password": "pass"})


# --- JWT_SECRET_KEY / SECRET_KEY ------------------------------------------------------


def test_jwt_secret_key_overrides_secret_key():
    client = make_app({"JWT_SECRET_KEY": OTHER_SECRET}).test_client()
    token = login(client)
    assert pyjwt.decode(token, OTHER_SECRET, algorithms=["HS256"])["identity"] == 1
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(token, SECRET, algorithms=["HS256"])
    assert get_protected(client, token).status_code == 200
    signed_with_secret_key = raw_token(standard_claims(), key=SECRET)
    assert refusal(get_protected(client, signed_with_secret_key)) == (
        401, "Invalid token", "Signature verification failed"
    )


def test_secret_key_is_used_when_no_jwt_secret_key():
    client = make_app().test_client()
    token = login(client)
    assert pyjwt.decode(token, SECRET, algorithms=["HS256"])["identity"] == 1
    assert get_protected(client, raw_token(standard_claims(identity=2))).get_json() == {
        "id": 2, "username": "ann"
    }


def _app_without_secret() -> Flask:
    app = Flask(__name__)
    JWT(app, authenticate, identity)

    @app.route("/protected")
    def protected():
        from flask import jsonify

        from flask_tokenauth import current_identity, verify_jwt_in_request

        verify_jwt_in_request()
        return jsonify(id=current_identity.id)

    return app


def test_secret_key_set_after_init_app_works():
    app = _app_without_secret()
    app.config["SECRET_KEY"] = SECRET
    client = app.test_client()
    token = login(client)
    assert pyjwt.decode(token, SECRET, algorithms=["HS256"])["identity"] == 1
    assert get_protected(client, token).get_json() == {"id": 1}


def test_jwt_secret_key_set_after_init_app_works():
    app = _app_without_secret()
    app.config["JWT_SECRET_KEY"] = OTHER_SECRET
    token = login(app.test_client())
    assert pyjwt.decode(token, OTHER_SECRET, algorithms=["HS256"])["identity"] == 1


def test_no_secret_at_all_is_a_configuration_error_at_first_use():
    app = _app_without_secret()  # init_app itself does not fail
    app.testing = True
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        app.test_client().post("/auth", json={"username": "joe", "password": "pass"})


# --- config changed after init_app ----------------------------------------------------


def test_jwt_secret_key_is_snapshotted_from_secret_key_at_init_app_like_flask_jwt():
    # Flask-JWT did app.config.setdefault("JWT_SECRET_KEY", app.config["SECRET_KEY"]):
    # the JWT key is fixed at init_app, and rotating SECRET_KEY later leaves it alone.
    app = make_app()
    assert app.config["JWT_SECRET_KEY"] == SECRET
    client = app.test_client()
    old = login(client)
    app.config["SECRET_KEY"] = OTHER_SECRET
    assert get_protected(client, old).status_code == 200
    assert pyjwt.decode(login(client), SECRET, algorithms=["HS256"])["identity"] == 1


def test_jwt_secret_key_rotated_after_init_app_refuses_old_token():
    app = make_app()
    client = app.test_client()
    old = login(client)
    assert get_protected(client, old).status_code == 200  # verified (and cached) once
    app.config["JWT_SECRET_KEY"] = OTHER_SECRET
    response = get_protected(client, old)
    assert refusal(response) == (401, "Invalid token", "Signature verification failed")
    assert 'error_description="Signature verification failed"' in response.headers["WWW-Authenticate"]
    new = login(client)
    assert pyjwt.decode(new, OTHER_SECRET, algorithms=["HS256"])["identity"] == 1
    assert get_protected(client, new).status_code == 200


def test_jwt_secret_key_added_after_init_app_refuses_old_token():
    app = make_app()
    client = app.test_client()
    old = login(client)
    assert get_protected(client, old).status_code == 200
    app.config["JWT_SECRET_KEY"] = OTHER_SECRET
    assert refusal(get_protected(client, old)) == (401, "Invalid token", "Signature verification failed")


def test_leeway_lowered_after_init_app_refuses_cached_token():
    app = make_app()
    client = app.test_client()
    token = app_token(app, expires_delta=-3)
    assert get_protected(client, token).status_code == 200
    app.config["JWT_LEEWAY"] = 0
    assert refusal(get_protected(client, token)) == (401, "Invalid token", "Signature has expired")


def test_prefix_realm_and_lifetime_changed_after_init_app():
    app = make_app()
    client = app.test_client()
    app.config["JWT_AUTH_HEADER_PREFIX"] = "Bearer"
    app.config["JWT_DEFAULT_REALM"] = "Changed"
    app.config["JWT_EXPIRATION_DELTA"] = dt.timedelta(seconds=42)
    token = login(client)
    claims = claims_of(token)
    assert claims["exp"] - claims["iat"] == 42
    assert get_protected(client, token, "Bearer").status_code == 200
    assert refusal(get_protected(client, token, "JWT")) == (
        401, "Invalid JWT header", "Unsupported authorization type"
    )
    assert 'realm="Changed"' in client.get("/protected").headers["WWW-Authenticate"]


def test_username_key_changed_after_init_app():
    app = make_app()
    app.config["JWT_AUTH_USERNAME_KEY"] = "email"
    client = app.test_client()
    assert client.post("/auth", json={"email": "joe", "password": "pass"}).status_code == 200
    assert client.post("/auth", json={"username": "joe", "password": "pass"}).status_code == 401


# --- keys added by flask_tokenauth ------------------------------------------------------


def test_issuer_is_put_in_tokens_and_verified():
    client = make_app({"JWT_ISSUER": "https://issuer.example"}).test_client()
    token = login(client)
    assert claims_of(token)["iss"] == "https://issuer.example"
    assert get_protected(client, token).status_code == 200
    assert refusal(get_protected(client, raw_token(standard_claims(iss="https://evil.example")))) == (
        401, "Invalid token", "Invalid issuer"
    )
    assert refusal(get_protected(client, raw_token(standard_claims()))) == (
        401, "Invalid token", 'Token is missing the "iss" claim'
    )


def test_audience_is_put_in_tokens_and_verified():
    client = make_app({"JWT_AUDIENCE": "my-api"}).test_client()
    token = login(client)
    assert claims_of(token)["aud"] == "my-api"
    assert get_protected(client, token).status_code == 200
    assert refusal(get_protected(client, raw_token(standard_claims(aud="other-api")))) == (
        401, "Invalid token", "Audience doesn't match"
    )
    status, error, _ = refusal(get_protected(client, raw_token(standard_claims())))
    assert (status, error) == (401, "Invalid token")


def test_identity_claim_renames_the_claim():
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, JWT_IDENTITY_CLAIM="uid")
    JWT(app, authenticate, lambda payload: BY_ID.get(payload["uid"]))

    @app.route("/protected")
    def protected():
        from flask import jsonify

        from flask_tokenauth import current_identity, verify_jwt_in_request

        verify_jwt_in_request()
        return jsonify(username=current_identity.username)

    client = app.test_client()
    token = login(client)
    claims = claims_of(token)
    assert claims["uid"] == 1
    assert "identity" not in claims
    assert get_protected(client, token).get_json() == {"username": "joe"}


def test_identity_claim_sub_with_integer_ids():
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, JWT_IDENTITY_CLAIM="sub")
    JWT(app, authenticate, lambda payload: BY_ID.get(int(payload["sub"])))

    @app.route("/protected")
    def protected():
        from flask import jsonify

        from flask_tokenauth import current_identity, verify_jwt_in_request

        verify_jwt_in_request()
        return jsonify(username=current_identity.username)

    client = app.test_client()
    token = login(client)
    assert claims_of(token)["sub"] == "1"  # RFC 7519: sub is a string
    response = get_protected(client, token)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"username": "joe"}


def test_max_token_bytes_refuses_big_tokens_before_decoding():
    client = make_app({"JWT_MAX_TOKEN_BYTES": 64}).test_client()
    token = login(client)
    assert len(token) > 64
    response = get_protected(client, token)
    assert refusal(response) == (401, "Invalid token", "Token is too large")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("size, decodes", [(1024, 1), (0, 3)])
def test_verified_token_cache_size(monkeypatch, size, decodes):
    calls = []
    real_decode = tokenauth_codec._pyjwt.decode

    def counting_decode(*args, **kwargs):
        calls.append(1)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(tokenauth_codec._pyjwt, "decode", counting_decode)
    client = make_app({"JWT_VERIFIED_TOKEN_CACHE_SIZE": size}).test_client()
    token = login(client)
    for _ in range(3):
        assert get_protected(client, token).status_code == 200
    assert len(calls) == decodes


# --- JWT_PRIVATE_KEY / JWT_PUBLIC_KEY ----------------------------------------------------


@pytest.fixture(scope="module")
def rsa_pem():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def test_private_key_signs_rs256_and_public_key_verifies(rsa_pem):
    private, public = rsa_pem
    signer = make_app({"JWT_ALGORITHM": "RS256", "JWT_PRIVATE_KEY": private})
    token = login(signer.test_client())
    assert pyjwt.get_unverified_header(token)["alg"] == "RS256"
    assert pyjwt.decode(token, public, algorithms=["RS256"])["identity"] == 1
    assert get_protected(signer.test_client(), token).status_code == 200

    verifier = make_app({"JWT_ALGORITHM": "RS256", "JWT_PUBLIC_KEY": public})
    assert get_protected(verifier.test_client(), token).get_json() == {"id": 1, "username": "joe"}
    # A token signed with the HS256 secret is refused by the RS256 app.
    hs = raw_token(standard_claims())
    assert refusal(get_protected(verifier.test_client(), hs)) == (
        401, "Invalid token", "The specified alg value is not allowed"
    )
    verifier.testing = True
    with pytest.raises(ConfigurationError, match="JWT_PRIVATE_KEY"):
        verifier.test_client().post("/auth", json={"username": "joe", "password": "pass"})


def test_key_that_does_not_fit_algorithm_fails_at_init_app():
    with pytest.raises(ConfigurationError, match="JWT_PRIVATE_KEY"):
        make_app({"JWT_ALGORITHM": "RS256", "JWT_PRIVATE_KEY": "not a pem key"})


# --- handlers copied from Flask-JWT's defaults read app.config["JWT_SECRET_KEY"] ------------


def _flask_jwt_style_decode_handler(token):
    # Flask-JWT 0.3.2's _default_jwt_decode_handler, as apps copied it.
    from flask import current_app

    secret = current_app.config["JWT_SECRET_KEY"]
    algorithm = current_app.config["JWT_ALGORITHM"]
    leeway = current_app.config["JWT_LEEWAY"]
    return pyjwt.decode(token, secret, algorithms=[algorithm], leeway=leeway)


def test_jwt_secret_key_readable_from_app_config_after_init_app():
    jwt = JWT(None, authenticate, identity)
    jwt.jwt_decode_handler(_flask_jwt_style_decode_handler)
    app = make_app(jwt=jwt)
    client = app.test_client()
    response = get_protected(client, login(client))
    assert response.status_code == 200, response.get_json()
    assert app.config["JWT_SECRET_KEY"] == SECRET
