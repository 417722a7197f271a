"""Flask-JWT 0.3.2's handler decorators, the app-factory pattern, current_identity and JWTError."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Dict, List

import jwt as pyjwt
import pytest
from flask import Flask, current_app, jsonify, request

from flask_tokenauth import (
    JWT,
    ConfigurationError,
    JWTError,
    current_identity,
    current_token,
    jwt_required,
    verify_jwt_in_request,
)
from tests.conftest import BY_ID, BY_NAME, SECRET, User, auth_header, authenticate, identity, login, make_app

OTHER_SECRET = "another-secret-that-is-also-long-enough-for-hs256"
CREDS = {"username": "joe", "password": "pass"}
NO_TOKEN = {
    "status_code": 401,
    "error": "Authorization Required",
    "description": "Request does not contain an access token",
}
BAD_CREDENTIALS = {"status_code": 401, "error": "Bad Request", "description": "Invalid credentials"}


def claims_of(token: str) -> Dict[str, Any]:
    return pyjwt.decode(token, options={"verify_signature": False})


def flask_jwt_claims(identity_value: Any, **extra: Any) -> Dict[str, Any]:
    now = int(time.time())
    return {"exp": now + 300, "iat": now, "nbf": now, "identity": identity_value, **extra}


def protected(client, token: str):
    return client.get("/protected", headers=auth_header(token))


# --- authentication_handler / identity_handler ---------------------------------------


def test_authentication_handler_decorator_gets_two_strings():
    jwt = JWT()
    calls: List[tuple] = []

    @jwt.authentication_handler
    def check(username, password):
        calls.append((username, password))
        return BY_NAME.get(username) if password == "pw-" + username else None

    jwt.identity_handler(identity)
    client = make_app(jwt=jwt).test_client()
    ok = client.post("/auth", json={"username": "ann", "password": "pw-ann"})
    assert ok.status_code == 200
    assert claims_of(ok.get_json()["access_token"])["identity"] == 2
    refused = client.post("/auth", json={"username": "ann", "password": "pass"})
    assert refused.status_code == 401
    assert refused.get_json() == BAD_CREDENTIALS
    assert calls == [("ann", "pw-ann"), ("ann", "pass")]


@pytest.mark.parametrize("falsy", [None, False, 0, "", {}])
def test_falsy_authentication_result_is_invalid_credentials(falsy):
    jwt = JWT(None, lambda username, password: falsy, identity)
    response = make_app(jwt=jwt).test_client().post("/auth", json=CREDS)
    assert response.status_code == 401
    assert response.get_json() == BAD_CREDENTIALS


@pytest.mark.parametrize(
    "user, claim",
    [(BY_ID[2], 2), ({"id": 7, "name": "x"}, 7), (42, 42), ("user-9", "user-9")],
)
def test_identity_claim_comes_from_what_authentication_returns(user, claim):
    jwt = JWT(None, lambda username, password: user, lambda payload: payload["identity"])
    token = login(make_app(jwt=jwt).test_client())
    assert claims_of(token)["identity"] == claim


def test_missing_authentication_handler_is_a_configuration_error_at_login():
    jwt = JWT()
    jwt.identity_handler(identity)
    app = make_app(jwt=jwt)
    assert app.test_client().post("/auth", json=CREDS).status_code == 500
    app.testing = True
    with pytest.raises(ConfigurationError):
        app.test_client().post("/auth", json=CREDS)


def test_identity_handler_gets_the_verified_payload():
    seen: List[Dict[str, Any]] = []

    def who(payload):
        seen.append(payload)
        return BY_ID.get(payload["identity"])

    client = make_app(jwt=JWT(None, authenticate, who)).test_client()
    token = login(client)
    response = protected(client, token)
    assert response.get_json() == {"id": 1, "username": "joe"}
    assert len(seen) == 1
    payload = seen[0]
    assert {"exp", "iat", "nbf", "identity", "jti"} <= set(payload)
    assert payload["identity"] == 1
    assert payload["exp"] - payload["iat"] == 300


def test_identity_handler_returning_none_is_401_user_does_not_exist():
    client = make_app(jwt=JWT(None, authenticate, lambda payload: None)).test_client()
    response = protected(client, login(client))
    assert response.status_code == 401
    assert response.get_json() == {
        "status_code": 401, "error": "Invalid JWT", "description": "User does not exist"
    }
    assert response.headers["WWW-Authenticate"].startswith('JWT realm="Login Required"')


def test_deleted_user_token_is_401_user_does_not_exist():
    users = {3: User(3, "tmp", "pw")}
    jwt = JWT(
        None,
        lambda username, password: users[3] if username == "tmp" else None,
        lambda payload: users.get(payload["identity"]),
    )
    client = make_app(jwt=jwt).test_client()
    token = login(client, "tmp", "pw")
    assert protected(client, token).get_json() == {"id": 3, "username": "tmp"}
    del users[3]
    response = protected(client, token)
    assert response.status_code == 401
    assert response.get_json()["description"] == "User does not exist"


@pytest.mark.parametrize("exc", [KeyError("identity"), TypeError("bad"), ValueError("bad")])
def test_identity_handler_raising_on_claims_is_401_invalid_jwt(exc):
    def who(payload):
        raise exc

    client = make_app(jwt=JWT(None, authenticate, who)).test_client()
    response = protected(client, login(client))
    assert response.status_code == 401
    assert response.get_json()["error"] == "Invalid JWT"


# --- jwt_error_handler ------------------------------------------------------------------


def test_jwt_error_handler_replaces_body_and_status():
    jwt = JWT(None, authenticate, identity)
    received: List[JWTError] = []

    @jwt.jwt_error_handler
    def on_error(error):
        received.append(error)
        return jsonify(message=error.description, kind=error.error), 418

    app = make_app(jwt=jwt)

    @app.route("/forbidden")
    def forbidden():
        raise JWTError("Forbidden", "Admins only", status_code=403)

    client = app.test_client()
    no_token = client.get("/protected")
    assert no_token.status_code == 418
    assert no_token.get_json() == {
        "message": "Request does not contain an access token",
        "kind": "Authorization Required",
    }
    bad_login = client.post("/auth", json={"username": "joe", "password": "wrong"})
    assert bad_login.status_code == 418
    assert bad_login.get_json() == {"message": "Invalid credentials", "kind": "Bad Request"}
    manual = client.get("/forbidden")
    assert (manual.status_code, manual.get_json()) == (418, {"message": "Admins only", "kind": "Forbidden"})
    assert [e.status_code for e in received] == [401, 401, 403]
    assert received[0].headers == {"WWW-Authenticate": 'JWT realm="Login Required"'}


def test_jwt_error_handler_keeping_status_and_headers():
    jwt = JWT(None, authenticate, identity)

    @jwt.jwt_error_handler
    def on_error(error):
        return jsonify(msg=str(error)), error.status_code, error.headers

    client = make_app(jwt=jwt).test_client()
    response = client.get("/protected", headers={"Authorization": "JWT a.b.c"})
    assert response.status_code == 401
    assert response.get_json()["msg"].startswith("Invalid token. ")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    # A good token still passes.
    assert protected(client, login(client)).status_code == 200


# --- auth_response_handler ---------------------------------------------------------------


def test_auth_response_handler_access_token_decode_works():
    jwt = JWT(None, authenticate, identity)
    seen: List[Any] = []

    @jwt.auth_response_handler
    def answer(access_token, user):
        seen.append((access_token, user))
        return jsonify(token=access_token.decode("utf-8"), user=user.username)

    client = make_app(jwt=jwt).test_client()
    response = client.post("/auth", json=CREDS)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"token", "user"}
    assert body["user"] == "joe"
    access_token, user = seen[0]
    assert user is BY_NAME["joe"]
    assert isinstance(access_token, str)
    assert access_token.decode("utf-8") == str(access_token) == body["token"]
    assert response.headers["Cache-Control"] == "no-store"
    assert protected(client, body["token"]).get_json() == {"id": 1, "username": "joe"}


def test_auth_response_handler_may_return_a_status():
    jwt = JWT(None, authenticate, identity)

    @jwt.auth_response_handler
    def answer(access_token, user):
        return jsonify(token=access_token.decode("utf-8")), 201

    response = make_app(jwt=jwt).test_client().post("/auth", json=CREDS)
    assert response.status_code == 201
    assert claims_of(response.get_json()["token"])["identity"] == 1


# --- auth_request_handler (deprecated) -------------------------------------------------


@pytest.mark.parametrize("when", ["before_init_app", "after_init_app"])
def test_auth_request_handler_warns_and_replaces_the_login_view(when):
    jwt = JWT(None, authenticate, identity)

    def custom_login():
        data = request.get_json()
        user = authenticate(data["user"], data["pw"])
        if user is None:
            raise JWTError("Bad Request", "Nope")
        token = jwt.jwt_encode_callback(user)
        return jsonify(custom=True, access_token=token.decode("utf-8"))

    if when == "before_init_app":
        with pytest.warns(DeprecationWarning, match="deprecated"):
            jwt.auth_request_handler(custom_login)
        app = make_app(jwt=jwt)
    else:
        app = make_app(jwt=jwt)
        with pytest.warns(DeprecationWarning, match="deprecated"):
            jwt.auth_request_handler(custom_login)
    client = app.test_client()
    response = client.post("/auth", json={"user": "joe", "pw": "pass"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["custom"] is True
    assert protected(client, body["access_token"]).get_json() == {"id": 1, "username": "joe"}
    refused = client.post("/auth", json={"user": "joe", "pw": "bad"})
    assert refused.status_code == 401
    assert refused.get_json() == {"status_code": 401, "error": "Bad Request", "description": "Nope"}
    other = client.post("/auth", json={"user": "ann", "pw": "secret"})
    assert claims_of(other.get_json()["access_token"])["identity"] == 2


def test_auth_request_handler_decorator_returns_the_function():
    jwt = JWT()

    def view():
        return "x"

    with pytest.warns(DeprecationWarning):
        assert jwt.auth_request_handler(view) is view


# --- request_handler --------------------------------------------------------------------


def test_request_handler_reads_token_from_custom_header():
    jwt = JWT(None, authenticate, identity)

    @jwt.request_handler
    def from_header():
        return request.headers.get("X-Auth-Token")

    client = make_app(jwt=jwt).test_client()
    token = login(client)
    ok = client.get("/protected", headers={"X-Auth-Token": token})
    assert ok.get_json() == {"id": 1, "username": "joe"}
    ignored = client.get("/protected", headers=auth_header(token))
    assert ignored.status_code == 401
    assert ignored.get_json() == NO_TOKEN
    forged = client.get("/protected", headers={"X-Auth-Token": token + "x"})
    assert forged.status_code == 401
    assert forged.get_json()["error"] == "Invalid token"


def test_request_handler_may_raise_jwt_error():
    jwt = JWT(None, authenticate, identity)

    @jwt.request_handler
    def strict():
        if "token" not in request.args:
            raise JWTError("Invalid JWT header", "Put the token in ?token=")
        return request.args["token"]

    client = make_app(jwt=jwt).test_client()
    refused = client.get("/protected")
    assert refused.status_code == 401
    assert refused.get_json() == {
        "status_code": 401,
        "error": "Invalid JWT header",
        "description": "Put the token in ?token=",
    }
    assert 'realm="Login Required"' in refused.headers["WWW-Authenticate"]
    assert client.get("/protected", query_string={"token": login(client)}).status_code == 200


def test_an_identity_handler_refusing_a_sent_token_gets_the_invalid_token_challenge():
    """RFC 6750 3.1: a request whose token was refused is told ``invalid_token``,
    also when the app's identity handler refuses it; the body is the app's."""
    disabled = JWTError("Account disabled", "Ask an administrator")

    def strict_identity(payload):
        raise disabled

    client = make_app(jwt=JWT(None, authenticate, strict_identity)).test_client()
    token = login(client)
    for _ in range(2):  # the app's error instance is raised twice and never changed
        refused = protected(client, token)
        assert refused.status_code == 401
        assert refused.get_json() == {
            "status_code": 401,
            "error": "Account disabled",
            "description": "Ask an administrator",
        }
        assert refused.headers["WWW-Authenticate"] == (
            'JWT realm="Login Required", error="invalid_token", error_description="Ask an administrator"'
        )
    assert disabled.oauth_error is None and not disabled.headers
    # Without a token, still the bare challenge (RFC 6750: no error code).
    assert client.get("/protected").headers["WWW-Authenticate"] == 'JWT realm="Login Required"'


# --- jwt_encode_handler / jwt_decode_handler ----------------------------------------------


def test_jwt_encode_handler_returning_bytes_like_pyjwt1():
    jwt = JWT(None, authenticate, identity)

    @jwt.jwt_encode_handler
    def encode(user):
        claims = flask_jwt_claims(user.id, enc="custom")
        return pyjwt.encode(claims, current_app.config["SECRET_KEY"], algorithm="HS256").encode("ascii")

    client = make_app(jwt=jwt).test_client()
    response = client.post("/auth", json=CREDS)
    assert response.status_code == 200
    token = response.get_json()["access_token"]
    assert isinstance(token, str)
    assert claims_of(token)["enc"] == "custom"
    assert "jti" not in claims_of(token)
    assert protected(client, token).get_json() == {"id": 1, "username": "joe"}


def test_jwt_encode_handler_returning_str():
    jwt = JWT(None, authenticate, identity)
    jwt.jwt_encode_handler(
        lambda user: pyjwt.encode(flask_jwt_claims(user.id, enc="str"), SECRET, algorithm="HS256")
    )
    client = make_app(jwt=jwt).test_client()
    token = login(client)
    assert claims_of(token)["enc"] == "str"
    assert protected(client, token).status_code == 200


def test_jwt_decode_handler_raising_invalid_token_error_is_401():
    jwt = JWT(None, authenticate, identity)
    received: List[str] = []

    @jwt.jwt_decode_handler
    def decode(token):
        received.append(token)
        raise pyjwt.InvalidTokenError("Token revoked by custom decoder")

    client = make_app(jwt=jwt).test_client()
    token = login(client)
    response = protected(client, token)
    assert response.status_code == 401
    assert response.get_json() == {
        "status_code": 401,
        "error": "Invalid token",
        "description": "Token revoked by custom decoder",
    }
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert received == [token]


def test_jwt_decode_handler_raising_expired_signature_is_401():
    jwt = JWT(None, authenticate, identity)

    @jwt.jwt_decode_handler
    def decode(token):
        raise pyjwt.ExpiredSignatureError("Signature has expired")

    client = make_app(jwt=jwt).test_client()
    response = protected(client, login(client))
    assert response.status_code == 401
    assert response.get_json()["description"] == "Signature has expired"


def test_jwt_decode_handler_accepting_a_legacy_secret():
    jwt = JWT(None, authenticate, identity)

    @jwt.jwt_decode_handler
    def decode(token):
        try:
            return pyjwt.decode(token, current_app.config["SECRET_KEY"], algorithms=["HS256"])
        except pyjwt.InvalidSignatureError:
            return pyjwt.decode(token, OTHER_SECRET, algorithms=["HS256"])

    client = make_app(jwt=jwt).test_client()
    legacy = pyjwt.encode(flask_jwt_claims(2), OTHER_SECRET, algorithm="HS256")
    assert protected(client, legacy).get_json() == {"id": 2, "username": "ann"}
    assert protected(client, login(client)).get_json() == {"id": 1, "username": "joe"}
    unknown = pyjwt.encode(flask_jwt_claims(2), "x" * 40, algorithm="HS256")
    response = protected(client, unknown)
    assert response.status_code == 401
    assert response.get_json()["description"] == "Signature verification failed"


# --- jwt_payload_handler / jwt_headers_handler ----------------------------------------------


def test_jwt_payload_handler_extra_claims_reach_identity_handler():
    jwt = JWT(None, authenticate)
    seen: List[Dict[str, Any]] = []

    @jwt.jwt_payload_handler
    def payload(user):
        now = dt.datetime.now(dt.UTC)
        return {
            "exp": now + dt.timedelta(minutes=5),
            "iat": now,
            "nbf": now,
            "identity": user.id,
            "role": "admin" if user.username == "joe" else "user",
        }

    @jwt.identity_handler
    def who(claims):
        seen.append(claims)
        return BY_ID.get(claims["identity"])

    client = make_app(jwt=jwt).test_client()
    token = login(client)
    claims = claims_of(token)
    assert claims["role"] == "admin"
    assert isinstance(claims["exp"], int)
    assert claims["exp"] - claims["iat"] == 300
    assert protected(client, token).get_json() == {"id": 1, "username": "joe"}
    assert seen[0]["role"] == "admin"
    assert protected(client, login(client, "ann", "secret")).status_code == 200
    assert seen[1]["role"] == "user"


def test_jwt_payload_handler_missing_required_claim_fails_login():
    jwt = JWT(None, authenticate, identity)
    now = int(time.time())
    jwt.jwt_payload_handler(lambda user: {"exp": now + 60, "iat": now, "identity": user.id})
    app = make_app(jwt=jwt)
    app.testing = True
    with pytest.raises(RuntimeError, match="Payload is missing required claims: nbf"):
        app.test_client().post("/auth", json=CREDS)


def test_jwt_headers_handler_adds_kid():
    jwt = JWT(None, authenticate, identity)
    got: List[Any] = []

    @jwt.jwt_headers_handler
    def headers(user):
        got.append(user)
        return {"kid": "key-%d" % user.id}

    client = make_app(jwt=jwt).test_client()
    token = login(client, "ann", "secret")
    header = pyjwt.get_unverified_header(token)
    assert header["kid"] == "key-2"
    assert header["alg"] == "HS256"
    assert got == [BY_NAME["ann"]]
    assert protected(client, token).get_json() == {"id": 2, "username": "ann"}


def test_jwt_headers_handler_cannot_change_the_algorithm():
    jwt = JWT(None, authenticate, identity)
    jwt.jwt_headers_handler(lambda user: {"alg": "none", "kid": "k"})
    client = make_app(jwt=jwt).test_client()
    token = login(client)
    assert pyjwt.get_unverified_header(token) == {"alg": "HS256", "kid": "k", "typ": "JWT"}
    assert protected(client, token).status_code == 200


def test_jwt_headers_handler_returning_none_gives_plain_header():
    client = make_app().test_client()
    assert pyjwt.get_unverified_header(login(client)) == {"alg": "HS256", "typ": "JWT"}


# --- app factory, constructor vs decorators ---------------------------------------------------


def test_one_jwt_object_two_apps_with_different_secrets():
    jwt = JWT(None, authenticate, identity)
    app_a = make_app({"SECRET_KEY": SECRET}, jwt=jwt)
    app_b = make_app({"SECRET_KEY": OTHER_SECRET, "JWT_AUTH_HEADER_PREFIX": "Bearer"}, jwt=jwt)
    assert app_a.extensions["jwt"] is jwt
    assert app_b.extensions["jwt"] is jwt
    client_a, client_b = app_a.test_client(), app_b.test_client()
    token_a, token_b = login(client_a), login(client_b, "ann", "secret")
    assert pyjwt.decode(token_a, SECRET, algorithms=["HS256"])["identity"] == 1
    assert pyjwt.decode(token_b, OTHER_SECRET, algorithms=["HS256"])["identity"] == 2

    assert protected(client_a, token_a).get_json() == {"id": 1, "username": "joe"}
    refused = client_b.get("/protected", headers=auth_header(token_a, "Bearer"))
    assert refused.status_code == 401
    assert refused.get_json() == {
        "status_code": 401,
        "error": "Invalid token",
        "description": "Signature verification failed",
    }
    assert client_b.get("/protected", headers=auth_header(token_b, "Bearer")).get_json() == {
        "id": 2, "username": "ann"
    }
    assert protected(client_a, token_b).get_json()["description"] == "Signature verification failed"
    # Each app keeps its own header prefix.
    assert protected(client_b, token_b).get_json()["description"] == "Unsupported authorization type"


def _setup(style: str) -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = SECRET
    if style == "constructor":
        JWT(app, authenticate, identity)
    elif style == "decorators":
        jwt = JWT(app)
        jwt.authentication_handler(authenticate)
        jwt.identity_handler(identity)
    else:  # factory: handlers by decorator, init_app last
        jwt = JWT()
        jwt.authentication_handler(authenticate)
        jwt.identity_handler(identity)
        jwt.init_app(app)

    @app.route("/protected")
    @jwt_required()
    def whoami():
        return jsonify(id=current_identity.id, username=current_identity.username)

    return app


@pytest.mark.parametrize("style", ["constructor", "decorators", "init_app"])
def test_handlers_by_constructor_or_decorators_behave_the_same(style):
    client = _setup(style).test_client()
    assert protected(client, login(client, "ann", "secret")).get_json() == {"id": 2, "username": "ann"}
    assert client.post("/auth", json={"username": "ann", "password": "x"}).get_json() == BAD_CREDENTIALS
    assert client.get("/protected").get_json() == NO_TOKEN


def test_handler_decorators_return_the_function():
    jwt = JWT()

    def fn(*args):
        return None

    for name in (
        "authentication_handler",
        "identity_handler",
        "jwt_error_handler",
        "auth_response_handler",
        "request_handler",
        "jwt_encode_handler",
        "jwt_decode_handler",
        "jwt_payload_handler",
        "jwt_headers_handler",
    ):
        assert getattr(jwt, name)(fn) is fn, name


# --- current_identity ---------------------------------------------------------------------


def test_current_identity_is_none_outside_a_request():
    assert current_identity._get_current_object() is None
    assert not current_identity
    app = make_app()
    with app.app_context():
        assert current_identity._get_current_object() is None
        assert current_token._get_current_object() is None


def test_current_identity_is_none_outside_a_verified_request():
    app = make_app()
    seen: List[Any] = []

    @app.route("/peek")
    def peek():
        seen.append(current_identity._get_current_object())
        return jsonify(anonymous=not current_identity)

    @app.route("/maybe")
    @jwt_required(optional=True)
    def maybe():
        seen.append(current_identity._get_current_object())
        return jsonify(anonymous=current_identity._get_current_object() is None)

    @app.route("/tolerant")
    def tolerant():
        try:
            verify_jwt_in_request()
        except JWTError as error:
            seen.append(current_identity._get_current_object())
            return jsonify(refused=error.error)
        return jsonify(refused=None)

    client = app.test_client()
    token = login(client)
    # A valid token on a route that does not verify it sets nothing.
    assert client.get("/peek", headers=auth_header(token)).get_json() == {"anonymous": True}
    assert client.get("/maybe").get_json() == {"anonymous": True}
    assert client.get("/tolerant", headers=auth_header("x.y.z")).get_json() == {"refused": "Invalid token"}
    assert seen == [None, None, None]
    # Verified: the identity handler's object; then the next request is anonymous again.
    assert client.get("/maybe", headers=auth_header(token)).get_json() == {"anonymous": False}
    assert seen[-1] is BY_ID[1]
    assert client.get("/peek").get_json() == {"anonymous": True}
    assert seen[-1] is None


def test_current_identity_and_token_in_a_verified_request():
    app = make_app()

    @app.route("/me")
    @jwt_required()
    def me():
        return jsonify(username=current_identity.username, claim=current_token["identity"])

    client = app.test_client()
    assert client.get("/me", headers=auth_header(login(client, "ann", "secret"))).get_json() == {
        "username": "ann", "claim": 2
    }


def test_current_identity_without_identity_handler_is_the_claim():
    app = make_app(jwt=JWT(None, authenticate))

    @app.route("/raw")
    @jwt_required()
    def raw():
        return jsonify(identity=current_identity._get_current_object())

    client = app.test_client()
    assert client.get("/raw", headers=auth_header(login(client))).get_json() == {"identity": 1}


# --- JWTError ---------------------------------------------------------------------------


def test_jwt_error_attributes_and_str():
    error = JWTError("Forbidden", "Admins only", status_code=403, headers={"X-Reason": "role"})
    assert isinstance(error, Exception)
    assert error.error == "Forbidden"
    assert error.description == "Admins only"
    assert error.status_code == 403
    assert error.headers == {"X-Reason": "role"}
    assert str(error) == "Forbidden. Admins only"
    assert repr(error) == "JWTError: Forbidden"


def test_jwt_error_defaults():
    error = JWTError("Bad Request", "Invalid credentials")
    assert error.status_code == 401
    assert error.headers is None
    assert str(error) == "Bad Request. Invalid credentials"
    with pytest.raises(JWTError) as caught:
        raise error
    assert caught.value is error


@pytest.mark.parametrize("debug", [False, True])
def test_jwt_error_raised_in_a_view_is_its_json_body(debug):
    app = make_app()
    app.debug = debug

    @app.route("/admin")
    @jwt_required()
    def admin():
        if current_identity.username != "joe":
            raise JWTError("Forbidden", "Admins only", status_code=403, headers={"X-Reason": "role"})
        return jsonify(ok=True)

    client = app.test_client()
    refused = client.get("/admin", headers=auth_header(login(client, "ann", "secret")))
    assert refused.status_code == 403
    assert refused.get_json() == {"status_code": 403, "error": "Forbidden", "description": "Admins only"}
    assert refused.headers["X-Reason"] == "role"
    assert refused.mimetype == "application/json"
    assert "WWW-Authenticate" not in refused.headers
    assert client.get("/admin", headers=auth_header(login(client))).get_json() == {"ok": True}


def test_shared_jwt_error_from_request_handler_keeps_each_routes_realm():
    jwt = JWT(None, authenticate, identity)
    missing = JWTError("Invalid JWT header", "Send X-Key")

    @jwt.request_handler
    def from_key():
        if "X-Key" not in request.headers:
            raise missing
        return request.headers["X-Key"]

    app = make_app(jwt=jwt)

    @app.route("/a")
    @jwt_required("Area A")
    def area_a():
        return "a"

    @app.route("/b")
    @jwt_required("Area B")
    def area_b():
        return "b"

    client = app.test_client()
    assert client.get("/a").headers["WWW-Authenticate"] == 'JWT realm="Area A"'
    response = client.get("/b")
    assert response.get_json()["description"] == "Send X-Key"
    assert response.headers["WWW-Authenticate"] == 'JWT realm="Area B"'


@pytest.mark.parametrize("value", [0, "", False, []])
def test_identity_handler_returning_falsy_non_none_is_accepted(value):
    # Flask-JWT refused only None ("User does not exist").
    app = make_app(jwt=JWT(None, authenticate, lambda payload: value))

    @app.route("/falsy")
    @jwt_required()
    def falsy():
        return jsonify(identity=current_identity._get_current_object())

    client = app.test_client()
    response = client.get("/falsy", headers=auth_header(login(client)))
    assert response.status_code == 200
    assert response.get_json() == {"identity": value}


def test_jwt_payload_handler_claims_named_type_and_fresh_survive_login():
    jwt = JWT(None, authenticate)
    seen: List[Dict[str, Any]] = []

    @jwt.jwt_payload_handler
    def payload(user):
        return {**flask_jwt_claims(user.id), "type": "admin", "fresh": "mint"}

    @jwt.identity_handler
    def who(claims):
        seen.append(claims)
        return BY_ID.get(claims["identity"])

    client = make_app(jwt=jwt).test_client()
    token = login(client)
    assert protected(client, token).status_code == 200
    assert (seen[0]["type"], seen[0]["fresh"]) == ("admin", "mint")
    assert (claims_of(token)["type"], claims_of(token)["fresh"]) == ("admin", "mint")


@pytest.mark.parametrize("minted_by", ["legacy_flask_jwt", "custom_encode_handler"])
def test_token_with_application_type_claim_is_accepted(minted_by):
    jwt = JWT(None, authenticate, identity)
    if minted_by == "custom_encode_handler":
        jwt.jwt_encode_handler(
            lambda user: pyjwt.encode(flask_jwt_claims(user.id, type="admin"), SECRET, algorithm="HS256")
        )
    client = make_app(jwt=jwt).test_client()
    if minted_by == "custom_encode_handler":
        token = login(client)
    else:
        token = pyjwt.encode(flask_jwt_claims(1, type="admin"), SECRET, algorithm="HS256")
    response = protected(client, token)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"id": 1, "username": "joe"}
