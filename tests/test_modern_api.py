"""The modern API: create_access_token, decode_token, current_token,
verify_jwt_in_request, optional tokens, async views, realms and the verified-token cache."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any, Dict, List

import jwt as pyjwt
import pytest
from flask import Blueprint, jsonify, request

import flask_tokenauth.codec as codec
import flask_tokenauth.verifying as verifying
from flask_tokenauth import (
    JWT,
    JWTError,
    TokenStr,
    current_identity,
    current_token,
    jwt_required,
    verify_jwt_in_request,
)
from tests.conftest import SECRET, auth_header, authenticate, identity, login, make_app


def who() -> Any:
    """The username of current_identity, or None (current_identity is a proxy, never `is None`)."""
    return getattr(current_identity, "username", None)


def decoded(token: str, **kwargs: Any) -> Dict[str, Any]:
    return pyjwt.decode(token, SECRET, algorithms=["HS256"], **kwargs)


# --------------------------------------------------------------------------
# create_access_token
# --------------------------------------------------------------------------


@pytest.fixture
def app():
    app = make_app()

    @app.route("/claims")
    @jwt_required()
    def claims_view():
        return jsonify(claims=dict(current_token), who=who())

    return app


@pytest.fixture
def jwt(app) -> JWT:
    return app.extensions["jwt"]


def test_create_access_token_is_str_usable_on_protected_routes(app, jwt):
    with app.app_context():
        token = jwt.create_access_token(1, expires_delta=dt.timedelta(minutes=2), claims={"role": "admin"})
    assert isinstance(token, str)
    assert isinstance(token, TokenStr)
    assert token.decode("utf-8") == str(token)
    assert token.count(".") == 2
    client = app.test_client()
    response = client.get("/protected", headers=auth_header(token))
    assert response.status_code == 200
    assert response.get_json() == {"id": 1, "username": "joe"}
    payload = decoded(token)
    assert payload["role"] == "admin"
    assert payload["identity"] == 1
    assert payload["exp"] - payload["iat"] == 120
    assert payload["nbf"] == payload["iat"]


@pytest.mark.parametrize(
    "delta, lifetime", [(30, 30), (dt.timedelta(hours=1), 3600), (None, 300), (2.9, 2)]
)
def test_create_access_token_expires_delta(app, jwt, delta, lifetime):
    with app.app_context():
        token = jwt.create_access_token(2, expires_delta=delta)
    payload = decoded(token)
    assert payload["exp"] - payload["iat"] == lifetime
    assert payload["identity"] == 2


def test_create_access_token_identity_from_object_mapping_or_value(app, jwt):
    class U:
        id = 7

    with app.app_context():
        from_obj = decoded(jwt.create_access_token(U()))["identity"]
        from_map = decoded(jwt.create_access_token({"id": 8, "name": "x"}))["identity"]
        from_value = decoded(jwt.create_access_token("user-9"))["identity"]
    assert (from_obj, from_map, from_value) == (7, 8, "user-9")


def test_claims_cannot_override_reserved_claims(app, jwt):
    before = int(time.time())
    with app.app_context():
        token = jwt.create_access_token(
            1,
            claims={
                "exp": 1, "iat": 2, "nbf": 3, "jti": "chosen-jti", "identity": 2, "scope": "read",
                "token_type": "refresh", "fresh": True,
            },
        )
    payload = decoded(token)
    assert payload["token_type"] == "access"
    assert payload["fresh"] is False
    assert payload["identity"] == 1
    assert payload["jti"] != "chosen-jti"
    assert len(payload["jti"]) == 32
    assert payload["exp"] >= before + 300
    assert payload["iat"] >= before
    assert payload["nbf"] >= before
    assert payload["scope"] == "read"
    # and the token is joe's, not ann's
    response = app.test_client().get("/protected", headers=auth_header(token))
    assert response.get_json()["username"] == "joe"


def test_claims_argument_is_not_mutated(app, jwt):
    extra = {"role": "admin", "exp": 1}
    with app.app_context():
        jwt.create_access_token(1, claims=extra)
    assert extra == {"role": "admin", "exp": 1}


def test_create_access_token_needs_app_context(jwt):
    with pytest.raises(RuntimeError):
        jwt.create_access_token(1)


# --------------------------------------------------------------------------
# decode_token
# --------------------------------------------------------------------------


def test_decode_token_returns_claims(app, jwt):
    with app.app_context():
        token = jwt.create_access_token(2, claims={"role": "ops"})
        payload = jwt.decode_token(token)
    assert payload["identity"] == 2
    assert payload["role"] == "ops"
    assert set(payload) >= {"exp", "iat", "nbf", "jti", "identity", "role"}
    assert payload == decoded(token)


@pytest.mark.parametrize(
    "make_bad, description",
    [
        (lambda good: "garbage", "Not enough segments"),
        (
            lambda good: good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
            "Signature verification failed",
        ),
        (
            lambda good: pyjwt.encode({"identity": 1, "exp": 1, "iat": 0, "nbf": 0}, SECRET),
            "Signature has expired",
        ),
        (
            lambda good: pyjwt.encode({"identity": 1}, SECRET, algorithm="HS256"),
            'Token is missing the "exp" claim',
        ),
        (lambda good: "x" * 9000, "Token is too large"),
    ],
    ids=["garbage", "bad-signature", "expired", "missing-exp", "too-large"],
)
def test_decode_token_raises_jwterror_401(app, jwt, make_bad, description):
    with app.app_context():
        good = jwt.create_access_token(1)
        with pytest.raises(JWTError) as info:
            jwt.decode_token(make_bad(good))
    error = info.value
    assert error.status_code == 401
    assert error.code == 401
    assert error.error == "Invalid token"
    assert error.description == description


def test_decode_token_inside_request(app, jwt):
    with app.app_context():
        token = jwt.create_access_token(1)

    @app.route("/decode-body", methods=["POST"])
    def decode_body():
        return jsonify(jwt.decode_token(request.get_json()["token"]))

    client = app.test_client()
    assert client.post("/decode-body", json={"token": token}).get_json()["identity"] == 1
    response = client.post("/decode-body", json={"token": token + "x"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "Invalid token"


# --------------------------------------------------------------------------
# current_token / current_identity
# --------------------------------------------------------------------------


def test_current_token_has_the_claims_in_a_protected_view(app, jwt):
    with app.app_context():
        token = jwt.create_access_token(2, claims={"role": "admin", "tenant": 42})
    response = app.test_client().get("/claims", headers=auth_header(token))
    assert response.status_code == 200
    body = response.get_json()
    assert body["who"] == "ann"
    assert body["claims"] == decoded(token)
    assert body["claims"]["role"] == "admin"
    assert body["claims"]["tenant"] == 42


def test_current_token_and_identity_are_none_outside_verified_requests(app):
    assert current_token._get_current_object() is None
    assert current_identity._get_current_object() is None
    with app.test_request_context("/protected", headers=auth_header("a.b.c")):
        assert current_token._get_current_object() is None
        assert current_identity._get_current_object() is None


def test_current_token_does_not_leak_between_requests(app):
    @app.route("/peek")
    def peek():
        return jsonify(token=current_token._get_current_object(), who=who())

    client = app.test_client()
    token = login(client)
    assert client.get("/claims", headers=auth_header(token)).status_code == 200
    assert client.get("/peek", headers=auth_header(token)).get_json() == {"token": None, "who": None}


# --------------------------------------------------------------------------
# verify_jwt_in_request in a blueprint
# --------------------------------------------------------------------------


@pytest.fixture
def bp_app():
    app = make_app()
    bp = Blueprint("api", __name__, url_prefix="/api")

    @bp.before_request
    def guard():
        verify_jwt_in_request()

    @bp.route("/a")
    def a():
        return jsonify(route="a", who=who())

    @bp.route("/b", methods=["GET", "POST"])
    def b():
        return jsonify(route="b", who=who(), claims_identity=current_token["identity"])

    app.register_blueprint(bp)

    @app.route("/public")
    def public():
        return jsonify(route="public", who=who())

    return app


@pytest.mark.parametrize("method, path", [("GET", "/api/a"), ("GET", "/api/b"), ("POST", "/api/b")])
def test_blueprint_before_request_protects_every_route(bp_app, method, path):
    client = bp_app.test_client()
    response = client.open(path, method=method)
    assert response.status_code == 401
    assert response.get_json() == {
        "status_code": 401,
        "error": "Authorization Required",
        "description": "Request does not contain an access token",
    }
    assert response.headers["WWW-Authenticate"] == 'JWT realm="Login Required"'
    bad = client.open(path, method=method, headers=auth_header("a.b.c"))
    assert bad.status_code == 401
    assert bad.get_json()["error"] == "Invalid token"
    token = login(client, "ann", "secret")
    ok = client.open(path, method=method, headers=auth_header(token))
    assert ok.status_code == 200
    assert ok.get_json()["who"] == "ann"


def test_blueprint_guard_does_not_protect_other_routes(bp_app):
    client = bp_app.test_client()
    assert client.get("/public").get_json() == {"route": "public", "who": None}
    assert client.get("/open").status_code == 200
    # a bad token on an unprotected route is simply ignored
    assert client.get("/public", headers=auth_header("a.b.c")).status_code == 200
    assert client.get("/api/b", headers=auth_header(login(client))).get_json() == {
        "route": "b",
        "who": "joe",
        "claims_identity": 1,
    }


# --------------------------------------------------------------------------
# optional tokens
# --------------------------------------------------------------------------


@pytest.fixture
def optional_app():
    app = make_app()

    @app.route("/maybe")
    def maybe():
        claims = verify_jwt_in_request(optional=True)
        return jsonify(
            claims_is_none=claims is None,
            identity_is_none=current_identity._get_current_object() is None,
            who=who(),
        )

    @app.route("/maybe-decorated")
    @jwt_required(optional=True)
    def maybe_decorated():
        return jsonify(identity_is_none=current_identity._get_current_object() is None, who=who())

    return app


def test_optional_without_token_runs_view_with_no_identity(optional_app):
    client = optional_app.test_client()
    assert client.get("/maybe").get_json() == {"claims_is_none": True, "identity_is_none": True, "who": None}
    assert client.get("/maybe-decorated").get_json() == {"identity_is_none": True, "who": None}
    blank = client.get("/maybe", headers={"Authorization": "   "})
    assert blank.get_json() == {"claims_is_none": True, "identity_is_none": True, "who": None}


def test_optional_with_valid_token_identifies(optional_app):
    client = optional_app.test_client()
    token = login(client)
    assert client.get("/maybe", headers=auth_header(token)).get_json() == {
        "claims_is_none": False,
        "identity_is_none": False,
        "who": "joe",
    }
    assert client.get("/maybe-decorated", headers=auth_header(token)).get_json() == {
        "identity_is_none": False,
        "who": "joe",
    }


@pytest.mark.parametrize("path", ["/maybe", "/maybe-decorated"])
@pytest.mark.parametrize(
    "header, error",
    [
        ("JWT a.b.c", "Invalid token"),
        ("JWT", "Invalid JWT header"),
        ("Basic abc", "Invalid JWT header"),
        ("JWT " + pyjwt.encode({"identity": 1, "exp": 1, "iat": 0, "nbf": 0}, SECRET), "Invalid token"),
    ],
    ids=["garbage", "prefix-only", "other-scheme", "expired"],
)
def test_optional_with_bad_token_is_401(optional_app, path, header, error):
    response = optional_app.test_client().get(path, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.get_json()["error"] == error


def test_optional_with_token_of_unknown_user_is_401(optional_app):
    client = optional_app.test_client()
    with optional_app.app_context():
        token = optional_app.extensions["jwt"].create_access_token(999)
    response = client.get("/maybe", headers=auth_header(token))
    assert response.status_code == 401
    assert response.get_json()["description"] == "User does not exist"


# --------------------------------------------------------------------------
# decorator forms, async, OPTIONS
# --------------------------------------------------------------------------


def test_bare_jwt_required_without_parentheses():
    app = make_app()

    @app.route("/bare")
    @jwt_required
    def bare():
        return jsonify(who=who())

    assert bare.__name__ == "bare"
    client = app.test_client()
    response = client.get("/bare")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'JWT realm="Login Required"'
    assert client.get("/bare", headers=auth_header(login(client))).get_json() == {"who": "joe"}


@pytest.mark.parametrize("decorator", [jwt_required(), jwt_required], ids=["called", "bare"])
def test_async_view_under_jwt_required(decorator):
    app = make_app()

    async def async_view():
        await asyncio.sleep(0)
        return jsonify(who=who(), identity=current_token["identity"])

    app.add_url_rule("/async", view_func=decorator(async_view))
    client = app.test_client()
    no_token = client.get("/async")
    assert no_token.status_code == 401
    assert no_token.get_json()["error"] == "Authorization Required"
    response = client.get("/async", headers=auth_header(login(client, "ann", "secret")))
    assert response.status_code == 200
    assert response.get_json() == {"who": "ann", "identity": 2}


def test_options_to_a_view_that_handles_options_itself_needs_a_token():
    # The view's own OPTIONS branch runs as the view: it must not run for anyone.
    app = make_app()
    ran = []

    @app.route("/cors", methods=["GET", "OPTIONS"])
    @jwt_required()
    def cors():
        if request.method == "OPTIONS":
            ran.append(current_identity)
            return "", 204, {"X-Preflight": "handled-by-view"}
        return jsonify(who=who())

    client = app.test_client()
    refused = client.options("/cors")
    assert refused.status_code == 401 and ran == []
    assert refused.get_json()["description"] == "Request does not contain an access token"
    preflight = client.options("/cors", headers=auth_header(login(client)))
    assert preflight.status_code == 204 and preflight.headers["X-Preflight"] == "handled-by-view"
    assert client.get("/cors").status_code == 401


def test_options_that_flask_answers_itself_pass_without_a_token():
    from flask_restful import Api, Resource

    from flask_tokenauth import verify_jwt_in_request

    app = make_app()
    guarded = Blueprint("guarded", __name__)

    @guarded.before_request
    def guard():
        verify_jwt_in_request()

    @guarded.route("/inside")
    def inside():
        return jsonify(who=who())

    app.register_blueprint(guarded, url_prefix="/bp")

    class Open(Resource):
        method_decorators = [jwt_required()]

        def get(self):
            return {"who": who()}

    class Preflighted(Resource):
        method_decorators = [jwt_required()]

        def get(self):
            return {"who": who()}

        def options(self):
            return {"preflight": "by the resource"}

    api = Api(app)
    api.add_resource(Open, "/resource")
    api.add_resource(Preflighted, "/preflighted")
    client = app.test_client()
    for path in ("/protected", "/bp/inside", "/resource"):  # CORS preflights carry no token
        answer = client.options(path)
        assert answer.status_code == 200 and "GET" in answer.headers["Allow"], path
        assert client.get(path).status_code == 401
    assert client.options("/preflighted").status_code == 401  # the resource's own options()
    token = login(client)
    answer = client.options("/preflighted", headers=auth_header(token))
    assert answer.get_json() == {"preflight": "by the resource"}
    assert client.get("/bp/inside", headers=auth_header(token)).get_json() == {"who": "joe"}


# --------------------------------------------------------------------------
# no identity handler
# --------------------------------------------------------------------------


def _no_identity_handler_app(config: Dict[str, Any]):
    app = make_app(config, jwt=JWT(authentication_handler=authenticate))

    @app.route("/whoami")
    @jwt_required()
    def whoami():
        return jsonify(identity=current_identity._get_current_object())

    return app


@pytest.mark.parametrize("claim", ["identity", "uid"])
def test_without_identity_handler_current_identity_is_identity_claim(claim):
    app = _no_identity_handler_app({"JWT_IDENTITY_CLAIM": claim})
    client = app.test_client()
    token = login(client, "ann", "secret")
    payload = decoded(token)
    assert payload[claim] == 2
    response = client.get("/whoami", headers=auth_header(token))
    assert response.status_code == 200
    assert response.get_json() == {"identity": 2}


def test_without_identity_handler_token_lacking_claim_is_401():
    app = _no_identity_handler_app({})
    now = int(time.time())
    token = pyjwt.encode({"exp": now + 60, "iat": now, "nbf": now, "user": 1}, SECRET, algorithm="HS256")
    response = app.test_client().get("/whoami", headers=auth_header(token))
    assert response.status_code == 401
    assert response.get_json() == {
        "status_code": 401,
        "error": "Invalid JWT",
        "description": "User does not exist",
    }


def test_identity_claim_sub_round_trips_with_integer_user_ids():
    app = _no_identity_handler_app({"JWT_IDENTITY_CLAIM": "sub"})
    client = app.test_client()
    token = login(client)
    response = client.get("/whoami", headers=auth_header(token))
    assert response.status_code == 200, response.get_json()


# --------------------------------------------------------------------------
# realms and prefixes
# --------------------------------------------------------------------------


@pytest.fixture
def realm_app():
    app = make_app()

    @app.route("/admin")
    @jwt_required("Admin")
    def admin():
        return jsonify(who=who())

    @app.route("/admin-optional")
    @jwt_required("Admin Area", optional=True)
    def admin_optional():
        return jsonify(who=who())

    @app.route("/staff")
    def staff():
        verify_jwt_in_request("Staff")
        return jsonify(who=who())

    return app


@pytest.mark.parametrize("path, realm", [("/admin", "Admin"), ("/staff", "Staff")])
def test_custom_realm_in_www_authenticate(realm_app, path, realm):
    client = realm_app.test_client()
    assert client.get(path).headers["WWW-Authenticate"] == 'JWT realm="%s"' % realm
    bad = client.get(path, headers=auth_header("a.b.c"))
    assert bad.headers["WWW-Authenticate"].startswith('JWT realm="%s", error="invalid_token"' % realm)
    header = client.get(path, headers={"Authorization": "JWT"})
    assert header.headers["WWW-Authenticate"] == (
        'JWT realm="%s", error="invalid_request", error_description="Token missing"' % realm
    )
    assert client.get(path, headers=auth_header(login(client))).get_json() == {"who": "joe"}


def test_custom_realm_with_optional(realm_app):
    client = realm_app.test_client()
    assert client.get("/admin-optional").get_json() == {"who": None}
    bad = client.get("/admin-optional", headers=auth_header("a.b.c"))
    assert bad.status_code == 401
    assert bad.headers["WWW-Authenticate"].startswith('JWT realm="Admin Area", error="invalid_token"')


def test_default_realm_and_prefix_follow_config_after_init(realm_app):
    client = realm_app.test_client()
    token = login(client)
    realm_app.config["JWT_DEFAULT_REALM"] = "Shop"
    realm_app.config["JWT_AUTH_HEADER_PREFIX"] = "Bearer"
    assert client.get("/protected").headers["WWW-Authenticate"] == 'Bearer realm="Shop"'
    assert client.get("/admin").headers["WWW-Authenticate"] == 'Bearer realm="Admin"'
    assert client.get("/protected", headers=auth_header(token, "Bearer")).status_code == 200
    old = client.get("/protected", headers=auth_header(token, "JWT"))
    assert old.status_code == 401
    assert old.get_json()["description"] == "Unsupported authorization type"


# --------------------------------------------------------------------------
# the verified-token cache
# --------------------------------------------------------------------------


class CountingPyJWT:
    """Stands in for the PyJWT module inside flask_tokenauth.codec, counting decodes."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.calls: List[str] = []

    def decode(self, token: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(token)
        return self._real.decode(token, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def decode_calls(monkeypatch) -> List[str]:
    """The tokens whose signature the package really checked (PyJWT decodes), in order."""
    counting = CountingPyJWT(codec._pyjwt)
    monkeypatch.setattr(codec, "_pyjwt", counting)
    return counting.calls


class FakeTimeModule:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def test_cache_skips_repeated_signature_checks(decode_calls):
    app = make_app()
    client = app.test_client()
    token = login(client)
    for _ in range(3):
        assert client.get("/protected", headers=auth_header(token)).status_code == 200
    assert decode_calls == [token]


def test_rotating_secret_refuses_cached_token_at_next_request():
    app = make_app()
    client = app.test_client()
    token = login(client)
    assert client.get("/protected", headers=auth_header(token)).status_code == 200
    assert client.get("/protected", headers=auth_header(token)).status_code == 200
    app.config["JWT_SECRET_KEY"] = "rotated-secret-that-is-long-enough-for-hs256!!"
    response = client.get("/protected", headers=auth_header(token))
    assert response.status_code == 401
    assert response.get_json()["description"] == "Signature verification failed"
    fresh = login(client)
    assert client.get("/protected", headers=auth_header(fresh)).status_code == 200


@pytest.mark.parametrize(
    "setting, value",
    [
        ("JWT_SECRET_KEY", "another-secret-key-that-is-long-enough-for-hs256"),
        ("JWT_ALGORITHM", "HS512"),
        ("JWT_AUDIENCE", "some-api"),
        ("JWT_ISSUER", "https://issuer.example"),
        ("JWT_REQUIRED_CLAIMS", ["exp", "iat", "nbf", "role"]),
    ],
)
def test_settings_change_invalidates_cached_token(setting, value):
    app = make_app()
    client = app.test_client()
    token = login(client)
    assert client.get("/protected", headers=auth_header(token)).status_code == 200
    app.config[setting] = value
    response = client.get("/protected", headers=auth_header(token))
    assert response.status_code == 401, setting
    assert response.get_json()["error"] == "Invalid token"


def test_cached_token_past_exp_is_not_served_from_cache(monkeypatch, decode_calls):
    app = make_app({"JWT_LEEWAY": 0})
    client = app.test_client()
    with app.app_context():
        token = app.extensions["jwt"].create_access_token(1, expires_delta=1)
    exp = decoded(token)["exp"]
    assert client.get("/protected", headers=auth_header(token)).status_code == 200
    assert client.get("/protected", headers=auth_header(token)).status_code == 200
    assert len(decode_calls) == 1  # the second request was a cache hit

    later = exp + 5
    monkeypatch.setattr(verifying, "time", FakeTimeModule(later))

    class LaterDatetime(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime.fromtimestamp(later, tz)

    monkeypatch.setattr(pyjwt.api_jwt, "datetime", LaterDatetime)
    response = client.get("/protected", headers=auth_header(token))
    assert len(decode_calls) == 2  # the cache entry was rejected: full check again
    assert response.status_code == 401
    assert response.get_json()["description"] == "Signature has expired"


def test_cached_token_within_leeway_still_served(monkeypatch, decode_calls):
    app = make_app({"JWT_LEEWAY": dt.timedelta(seconds=30)})
    client = app.test_client()
    with app.app_context():
        token = app.extensions["jwt"].create_access_token(1, expires_delta=1)
    exp = decoded(token)["exp"]
    assert client.get("/protected", headers=auth_header(token)).status_code == 200
    monkeypatch.setattr(verifying, "time", FakeTimeModule(exp + 10))
    assert client.get("/protected", headers=auth_header(token)).status_code == 200
    assert len(decode_calls) == 1


def test_cache_still_asks_identity_handler(decode_calls):
    users = {1: {"name": "joe"}}
    jwt = JWT(authentication_handler=authenticate, identity_handler=lambda p: users.get(p["identity"]))
    app = make_app(jwt=jwt)

    @app.route("/me")
    @jwt_required()
    def me():
        return jsonify(name=current_identity["name"])

    client = app.test_client()
    token = login(client)
    assert client.get("/me", headers=auth_header(token)).get_json() == {"name": "joe"}
    users.clear()
    response = client.get("/me", headers=auth_header(token))
    assert response.status_code == 401
    assert response.get_json()["description"] == "User does not exist"
    assert len(decode_calls) == 1


def test_cache_size_zero_checks_every_time(decode_calls):
    app = make_app({"JWT_VERIFIED_TOKEN_CACHE_SIZE": 0})
    client = app.test_client()
    token = login(client)
    for _ in range(3):
        assert client.get("/protected", headers=auth_header(token)).status_code == 200
    assert decode_calls == [token] * 3


def test_cache_size_one_evicts(decode_calls):
    app = make_app({"JWT_VERIFIED_TOKEN_CACHE_SIZE": 1})
    client = app.test_client()
    a, b = login(client), login(client, "ann", "secret")
    for token in (a, a, b, b, a):
        assert client.get("/protected", headers=auth_header(token)).status_code == 200
    assert decode_calls == [a, b, a]


def test_cache_size_changed_after_init_takes_effect(decode_calls):
    app = make_app()
    client = app.test_client()
    token = login(client)
    app.config["JWT_VERIFIED_TOKEN_CACHE_SIZE"] = 0
    for _ in range(3):
        assert client.get("/protected", headers=auth_header(token)).status_code == 200
    assert decode_calls == [token] * 3


def test_custom_decode_handler_bypasses_cache():
    calls = []
    jwt = JWT(authentication_handler=authenticate, identity_handler=identity)

    @jwt.jwt_decode_handler
    def decode(token):
        calls.append(token)
        return pyjwt.decode(token, SECRET, algorithms=["HS256"])

    app = make_app(jwt=jwt)
    client = app.test_client()
    token = login(client)
    for _ in range(2):
        assert client.get("/protected", headers=auth_header(token)).status_code == 200
    assert calls == [token, token]


def test_cache_does_not_bypass_revocation():
    app = make_app()
    client = app.test_client()
    token = login(client)
    other = login(client)
    for _ in range(2):  # the second request is served from the cache
        assert client.get("/protected", headers=auth_header(token)).status_code == 200
    with app.app_context():
        app.extensions["jwt"].revoke(token)
    response = client.get("/protected", headers=auth_header(token))
    assert response.status_code == 401
    assert response.get_json()["error"] == "Invalid token"
    assert client.get("/protected", headers=auth_header(other)).status_code == 200
