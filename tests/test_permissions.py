"""Permissions (issue 4): jwt_required(permissions=...) / verify_jwt_in_request(permissions=...).

A missing or invalid token is a 401; a valid token lacking a permission is a 403 with
``error="insufficient_scope"``; permissions come from the identity at login (attribute,
mapping key or ``@jwt.permissions_handler``), survive refresh and never widen.
"""

from __future__ import annotations

import hmac
import time
from typing import Any, Dict, Optional

import jwt as pyjwt
import pytest
from flask import Blueprint, Flask, jsonify
from flask.views import MethodView
from flask_restful import Api, Resource

from flask_tokenauth import JWT, current_identity, current_token, jwt_required, verify_jwt_in_request
from tests.conftest import SECRET, auth_header

TYPE_CLAIM = "token_type"
REALM = "Login Required"

NO_TOKEN = {
    "status_code": 401,
    "error": "Authorization Required",
    "description": "Request does not contain an access token",
}
BAD_SIGNATURE = {
    "status_code": 401,
    "error": "Invalid token",
    "description": "Signature verification failed",
}


def forbidden(description: str) -> Dict[str, Any]:
    return {"status_code": 403, "error": "Forbidden", "description": description}


def scope_challenge(scope: str, realm: str = REALM) -> str:
    return 'JWT realm="%s", error="insufficient_scope", scope="%s"' % (realm, scope)


class PermUser:
    def __init__(self, id: int, username: str, password: str, permissions: Any) -> None:
        self.id = id
        self.username = username
        self.password = password
        self.permissions = permissions


USERS = {
    "admin": PermUser(10, "admin", "pw-admin", ["admin", "read"]),
    "reader": PermUser(11, "reader", "pw-reader", ["read"]),
    "spaced": PermUser(12, "spaced", "pw-spaced", "read predict"),
    "nobody": PermUser(13, "nobody", "pw-nobody", None),
}
BY_ID = {u.id: u for u in USERS.values()}
#: Users that are plain dicts: their permissions are the "permissions" key.
DICT_USERS = {
    "dadmin": {"id": 20, "password": "pw-dadmin", "permissions": ["admin"]},
    "dreader": {"id": 21, "password": "pw-dreader", "permissions": ["read"]},
}
DICT_BY_ID = {u["id"]: u for u in DICT_USERS.values()}


def authenticate(username: str, password: str) -> Any:
    user = USERS.get(username)
    if user is not None and hmac.compare_digest(user.password, password):
        return user
    found = DICT_USERS.get(username)
    if found is not None and hmac.compare_digest(found["password"], password):
        return found
    return None


def identity(payload: Dict[str, Any]) -> Any:
    uid = payload["identity"]
    return BY_ID.get(uid) or DICT_BY_ID.get(uid)


def identity_id(value: Any) -> Any:
    return value["id"] if isinstance(value, dict) else value.id


class AdminMethodView(MethodView):
    decorators = [jwt_required(permissions=["admin"])]

    def get(self):
        return jsonify(view="methodview", id=identity_id(current_identity))


class AdminResource(Resource):
    method_decorators = [jwt_required(permissions=["admin"])]

    def get(self):
        return {"view": "restful", "id": identity_id(current_identity)}


def build_app(
    config: Optional[Dict[str, Any]] = None, *, production: bool = False, jwt: Optional[JWT] = None
):
    app = Flask(__name__)
    app.config["SECRET_KEY"] = SECRET
    app.config.update(config or {})
    if production:
        app.debug = False
        app.testing = False
    else:
        app.testing = True
    jwt = jwt or JWT()
    jwt.authentication_callback = authenticate
    jwt.identity_callback = identity
    jwt.init_app(app)

    @app.route("/plain")
    @jwt_required(permissions=["admin"])
    def plain():
        return jsonify(view="plain", id=identity_id(current_identity))

    @app.route("/two")
    @jwt_required(permissions=["admin", "write"])
    def two():
        return jsonify(view="two")

    @app.route("/single-str")
    @jwt_required(permissions="admin")
    def single_str():
        return jsonify(view="single-str")

    @app.route("/realm")
    @jwt_required("Staff Area", permissions=["admin"])
    def realm():
        return jsonify(view="realm")

    @app.route("/read")
    @jwt_required(permissions=["read"])
    def read():
        return jsonify(view="read", permissions=sorted(current_token.get("permissions") or []))

    @app.route("/predict")
    @jwt_required(permissions=["predict"])
    def predict():
        return jsonify(view="predict")

    @app.route("/any")
    @jwt_required()
    def any_token():
        return jsonify(view="any")

    app.add_url_rule("/methodview", view_func=AdminMethodView.as_view("methodview"))
    Api(app).add_resource(AdminResource, "/restful")

    blueprint = Blueprint("adminbp", __name__, url_prefix="/bp")

    @blueprint.before_request
    def guard():
        verify_jwt_in_request(permissions=["admin"])

    @blueprint.route("/admin")
    def bp_admin():
        return jsonify(view="blueprint", id=identity_id(current_identity))

    app.register_blueprint(blueprint)
    return app


def login(client, username: str, password: str) -> Dict[str, Any]:
    response = client.post("/auth", json={"username": username, "password": password})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def token_for(client, name: str) -> str:
    password = USERS[name].password if name in USERS else DICT_USERS[name]["password"]
    return login(client, name, password)["access_token"]


def claims_of(token: str) -> Dict[str, Any]:
    return pyjwt.decode(token, options={"verify_signature": False})


# --- 401 vs 403 for every route style, debug/testing and production --------------------------

ROUTES = [
    ("/plain", "plain"),
    ("/methodview", "methodview"),
    ("/restful", "restful"),
    ("/bp/admin", "blueprint"),
]


@pytest.fixture(params=[False, True], ids=["testing", "production"], name="mode_app")
def mode_app_fixture(request):
    app = build_app(production=request.param)
    if request.param:
        assert app.debug is False and app.testing is False
        assert app.config["PROPAGATE_EXCEPTIONS"] is None
    return app


@pytest.mark.parametrize("path,view", ROUTES)
def test_no_token_is_401(mode_app, path, view):
    response = mode_app.test_client().get(path)
    assert response.status_code == 401
    assert response.get_json() == NO_TOKEN
    assert response.headers["WWW-Authenticate"] == 'JWT realm="Login Required"'


@pytest.mark.parametrize("path,view", ROUTES)
def test_invalid_token_is_401(mode_app, path, view):
    with mode_app.app_context():
        now = int(time.time())
        forged = pyjwt.encode(
            {"identity": 10, "exp": now + 60, "iat": now, "nbf": now, "permissions": ["admin"]},
            "another-secret-that-is-long-enough-for-hs256!!",
            algorithm="HS256",
        )
    response = mode_app.test_client().get(path, headers=auth_header(forged))
    assert response.status_code == 401
    assert response.get_json() == BAD_SIGNATURE
    assert response.headers["WWW-Authenticate"] == (
        'JWT realm="Login Required", error="invalid_token", '
        'error_description="Signature verification failed"'
    )


@pytest.mark.parametrize("path,view", ROUTES)
def test_garbage_token_is_401_not_403(mode_app, path, view):
    response = mode_app.test_client().get(path, headers=auth_header("not.a.token"))
    assert response.status_code == 401
    body = response.get_json()
    assert body["status_code"] == 401
    assert body["error"] == "Invalid token"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("path,view", ROUTES)
def test_valid_token_without_permission_is_403(mode_app, path, view):
    client = mode_app.test_client()
    token = token_for(client, "reader")
    response = client.get(path, headers=auth_header(token))
    assert response.status_code == 403
    assert response.get_json() == forbidden("Missing permission: admin")
    assert response.headers["WWW-Authenticate"] == scope_challenge("admin")
    assert response.content_type == "application/json"


@pytest.mark.parametrize("path,view", ROUTES)
def test_valid_token_with_permission_is_200(mode_app, path, view):
    client = mode_app.test_client()
    token = token_for(client, "admin")
    response = client.get(path, headers=auth_header(token))
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"view": view, "id": 10}


@pytest.mark.parametrize("path,view", ROUTES)
def test_token_without_any_permissions_claim_is_403(mode_app, path, view):
    client = mode_app.test_client()
    token = token_for(client, "nobody")
    assert "permissions" not in claims_of(token)
    response = client.get(path, headers=auth_header(token))
    assert response.status_code == 403
    assert response.get_json() == forbidden("Missing permission: admin")


def test_several_missing_permissions_are_listed_and_scope_names_all_required():
    app = build_app()
    client = app.test_client()
    reader = token_for(client, "reader")
    response = client.get("/two", headers=auth_header(reader))
    assert response.status_code == 403
    assert response.get_json() == forbidden("Missing permissions: admin, write")
    assert response.headers["WWW-Authenticate"] == scope_challenge("admin write")

    admin = token_for(client, "admin")  # has admin, lacks write
    response = client.get("/two", headers=auth_header(admin))
    assert response.status_code == 403
    assert response.get_json() == forbidden("Missing permission: write")
    assert response.headers["WWW-Authenticate"] == scope_challenge("admin write")


def test_single_string_permission_and_custom_realm():
    app = build_app()
    client = app.test_client()
    reader = token_for(client, "reader")
    admin = token_for(client, "admin")
    response = client.get("/single-str", headers=auth_header(reader))
    assert response.status_code == 403
    assert response.get_json() == forbidden("Missing permission: admin")
    assert client.get("/single-str", headers=auth_header(admin)).status_code == 200

    response = client.get("/realm", headers=auth_header(reader))
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"] == scope_challenge("admin", realm="Staff Area")
    assert client.get("/realm").headers["WWW-Authenticate"] == 'JWT realm="Staff Area"'


def test_permission_check_does_not_affect_routes_without_permissions():
    app = build_app()
    client = app.test_client()
    token = token_for(client, "nobody")
    response = client.get("/any", headers=auth_header(token))
    assert response.status_code == 200
    assert response.get_json() == {"view": "any"}


# --- where login permissions come from ------------------------------------------------------


def test_login_token_carries_permissions_attribute_of_user():
    app = build_app()
    client = app.test_client()
    token = token_for(client, "admin")
    assert sorted(claims_of(token)["permissions"]) == ["admin", "read"]
    response = client.get("/read", headers=auth_header(token))
    assert response.get_json() == {"view": "read", "permissions": ["admin", "read"]}


def test_permissions_attribute_as_space_separated_string_is_split():
    app = build_app()
    client = app.test_client()
    token = token_for(client, "spaced")
    assert sorted(claims_of(token)["permissions"]) == ["predict", "read"]
    assert client.get("/predict", headers=auth_header(token)).status_code == 200
    assert client.get("/plain", headers=auth_header(token)).status_code == 403


def test_dict_identity_permissions_key():
    app = build_app()
    client = app.test_client()
    dadmin = token_for(client, "dadmin")
    dreader = token_for(client, "dreader")
    assert claims_of(dadmin)["permissions"] == ["admin"]
    assert claims_of(dadmin)["identity"] == 20
    response = client.get("/plain", headers=auth_header(dadmin))
    assert response.status_code == 200
    assert response.get_json() == {"view": "plain", "id": 20}
    response = client.get("/plain", headers=auth_header(dreader))
    assert response.status_code == 403
    assert response.get_json() == forbidden("Missing permission: admin")


def test_permissions_handler_wins_over_attribute():
    jwt = JWT()
    calls = []

    @jwt.permissions_handler
    def granted(user):
        calls.append(identity_id(user))
        return ["predict"] if identity_id(user) == 10 else ["admin"]

    app = build_app(jwt=jwt)
    client = app.test_client()
    admin = token_for(client, "admin")  # attribute says admin+read, handler says predict
    reader = token_for(client, "reader")  # attribute says read, handler says admin
    assert calls == [10, 11]
    assert claims_of(admin)["permissions"] == ["predict"]
    assert claims_of(reader)["permissions"] == ["admin"]
    assert client.get("/plain", headers=auth_header(admin)).status_code == 403
    assert client.get("/predict", headers=auth_header(admin)).status_code == 200
    assert client.get("/read", headers=auth_header(admin)).status_code == 403
    response = client.get("/plain", headers=auth_header(reader))
    assert response.status_code == 200
    assert response.get_json() == {"view": "plain", "id": 11}


def test_permissions_handler_works_for_dict_identities():
    jwt = JWT()
    jwt.permissions_handler(lambda user: ("read", "write"))
    app = build_app(jwt=jwt)
    client = app.test_client()
    token = token_for(client, "dadmin")
    assert claims_of(token)["permissions"] == ["read", "write"]
    assert client.get("/plain", headers=auth_header(token)).status_code == 403


# --- create_access_token(permissions=...) -----------------------------------------------------


def test_create_access_token_with_permissions():
    app = build_app()
    jwt = app.extensions["jwt"]
    with app.app_context():
        granted = jwt.create_access_token(10, permissions=["admin"])
        other = jwt.create_access_token(10, permissions=["read"])
        empty = jwt.create_access_token(10, permissions=[])
        plain = jwt.create_access_token(10)
    assert claims_of(granted)["permissions"] == ["admin"]
    assert claims_of(empty)["permissions"] == []
    assert "permissions" not in claims_of(plain)
    client = app.test_client()
    assert client.get("/plain", headers=auth_header(granted)).status_code == 200
    response = client.get("/plain", headers=auth_header(other))
    assert response.status_code == 403
    assert response.get_json() == forbidden("Missing permission: admin")
    assert client.get("/plain", headers=auth_header(empty)).status_code == 403
    assert client.get("/plain", headers=auth_header(plain)).status_code == 403


# --- JWT_PERMISSIONS_CLAIM = "scope" ----------------------------------------------------------


def test_scope_claim_is_issued_as_space_separated_string():
    app = build_app({"JWT_PERMISSIONS_CLAIM": "scope"})
    client = app.test_client()
    token = token_for(client, "admin")
    claims = claims_of(token)
    assert claims["scope"] == "admin read"
    assert "permissions" not in claims
    assert client.get("/plain", headers=auth_header(token)).status_code == 200
    with app.app_context():
        made = app.extensions["jwt"].create_access_token(10, permissions=["write", "admin"])
    assert claims_of(made)["scope"] == "admin write"
    assert client.get("/two", headers=auth_header(made)).status_code == 200


def test_scope_string_claim_grants_each_word():
    app = build_app({"JWT_PERMISSIONS_CLAIM": "scope"})
    with app.app_context():
        token = app.extensions["jwt"].create_access_token(10, claims={"scope": "read predict"})
    assert claims_of(token)["scope"] == "read predict"
    client = app.test_client()
    response = client.get("/predict", headers=auth_header(token))
    assert response.status_code == 200
    assert response.get_json() == {"view": "predict"}
    response = client.get("/plain", headers=auth_header(token))
    assert response.status_code == 403
    assert response.get_json() == forbidden("Missing permission: admin")


def test_scope_claim_is_ignored_when_permissions_claim_is_default():
    app = build_app()
    with app.app_context():
        token = app.extensions["jwt"].create_access_token(10, claims={"scope": "admin"})
    response = app.test_client().get("/plain", headers=auth_header(token))
    assert response.status_code == 403


# --- malformed claims grant nothing ------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "admin",  # a string, but the claim is "permissions" (list of str)
        "admin read",
        [1, 2],
        [["admin"]],
        [{"admin": True}],
        [None],
        {"admin": True},
        True,
        1,
    ],
    ids=["str", "spaced-str", "ints", "nested-list", "list-of-dict", "list-of-null", "dict", "bool", "int"],
)
def test_malformed_permissions_claim_grants_nothing(value):
    app = build_app()
    with app.app_context():
        token = app.extensions["jwt"].create_access_token(10, claims={"permissions": value})
    assert claims_of(token)["permissions"] == value
    response = app.test_client().get("/plain", headers=auth_header(token))
    assert response.status_code == 403
    assert response.get_json() == forbidden("Missing permission: admin")


def test_non_string_item_never_matches_its_string_form():
    app = build_app()
    with app.app_context():
        token = app.extensions["jwt"].create_access_token(10, claims={"permissions": [1, None]})
    app.add_url_rule("/one", "one", jwt_required(permissions=["1"])(lambda: jsonify(ok=True)))
    response = app.test_client().get("/one", headers=auth_header(token))
    assert response.status_code == 403
    assert response.get_json() == forbidden("Missing permission: 1")


def test_list_mixing_strings_and_non_strings_grants_nothing():
    app = build_app()
    with app.app_context():
        token = app.extensions["jwt"].create_access_token(10, claims={"permissions": ["admin", 1]})
    response = app.test_client().get("/plain", headers=auth_header(token))
    assert response.status_code == 403


# --- refresh keeps permissions and never widens them ------------------------------------------


def refresh_app(jwt: Optional[JWT] = None, config: Optional[Dict[str, Any]] = None):
    return build_app({"JWT_REFRESH_URL_RULE": "/auth/refresh", **(config or {})}, jwt=jwt)


def refresh(client, refresh_token: str) -> Dict[str, Any]:
    response = client.post("/auth/refresh", headers=auth_header(refresh_token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_permissions_survive_refresh():
    app = refresh_app()
    client = app.test_client()
    pair = login(client, "admin", "pw-admin")
    assert sorted(claims_of(pair["refresh_token"])["permissions"]) == ["admin", "read"]
    new = refresh(client, pair["refresh_token"])
    claims = claims_of(new["access_token"])
    assert claims[TYPE_CLAIM] == "access"
    assert claims["fresh"] is False
    assert sorted(claims["permissions"]) == ["admin", "read"]
    response = client.get("/plain", headers=auth_header(new["access_token"]))
    assert response.status_code == 200
    assert response.get_json() == {"view": "plain", "id": 10}
    # and once more, from the successor refresh token
    again = refresh(client, new["refresh_token"])
    assert sorted(claims_of(again["access_token"])["permissions"]) == ["admin", "read"]
    assert client.get("/plain", headers=auth_header(again["access_token"])).status_code == 200


def test_reader_stays_forbidden_after_refresh():
    app = refresh_app()
    client = app.test_client()
    pair = login(client, "reader", "pw-reader")
    new = refresh(client, pair["refresh_token"])
    assert claims_of(new["access_token"])["permissions"] == ["read"]
    response = client.get("/plain", headers=auth_header(new["access_token"]))
    assert response.status_code == 403
    assert response.get_json() == forbidden("Missing permission: admin")


def test_refresh_never_widens_even_if_handler_changes():
    jwt = JWT()
    granted = {"now": ["read"]}
    jwt.permissions_handler(lambda user: granted["now"])
    app = refresh_app(jwt=jwt)
    client = app.test_client()
    pair = login(client, "reader", "pw-reader")
    assert claims_of(pair["access_token"])["permissions"] == ["read"]

    granted["now"] = ["read", "admin"]  # the app now grants more
    new = refresh(client, pair["refresh_token"])
    assert claims_of(new["access_token"])["permissions"] == ["read"]
    assert claims_of(new["refresh_token"])["permissions"] == ["read"]
    response = client.get("/plain", headers=auth_header(new["access_token"]))
    assert response.status_code == 403
    assert response.get_json() == forbidden("Missing permission: admin")

    # A new login does pick the new grant up (the handler really changed).
    relogin = login(client, "reader", "pw-reader")
    assert claims_of(relogin["access_token"])["permissions"] == ["admin", "read"]
    assert client.get("/plain", headers=auth_header(relogin["access_token"])).status_code == 200


def test_refresh_keeps_scope_string_form():
    app = refresh_app(config={"JWT_PERMISSIONS_CLAIM": "scope"})
    client = app.test_client()
    pair = login(client, "spaced", "pw-spaced")
    assert claims_of(pair["access_token"])["scope"] == "predict read"
    new = refresh(client, pair["refresh_token"])
    assert claims_of(new["access_token"])["scope"] == "predict read"
    assert client.get("/predict", headers=auth_header(new["access_token"])).status_code == 200
    assert client.get("/plain", headers=auth_header(new["access_token"])).status_code == 403


def test_create_refresh_token_permissions_carry_into_refreshed_access_token():
    app = refresh_app()
    with app.app_context():
        refresh_token = app.extensions["jwt"].create_refresh_token(11, permissions=["admin"])
    assert claims_of(refresh_token)["permissions"] == ["admin"]
    client = app.test_client()
    new = refresh(client, refresh_token)
    assert claims_of(new["access_token"])["permissions"] == ["admin"]
    response = client.get("/plain", headers=auth_header(new["access_token"]))
    assert response.status_code == 200
    assert response.get_json() == {"view": "plain", "id": 11}
