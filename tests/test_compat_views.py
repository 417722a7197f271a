"""jwt_required and JWTError in plain views, MethodViews and Flask-RESTful Resources,
in debug, production and testing mode, and the Flask-JWT tutorial app over real HTTP.

Every refusal must be Flask-JWT's JSON body with the right status: never a 500,
never Flask-RESTful's ``{"message": ...}``.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Optional, Tuple

import jwt as pyjwt
import pytest
from flask import Blueprint, Flask, jsonify
from flask.views import MethodView
from flask_restful import Api, Resource
from werkzeug.serving import make_server

from flask_tokenauth import JWT, JWTError, current_identity, jwt_required
from tests.conftest import SECRET, auth_header, authenticate, identity, login

BAD_CREDENTIALS = {"status_code": 401, "error": "Bad Request", "description": "Invalid credentials"}
MODES = {
    "debug": {"debug": True, "testing": False},
    "production": {"debug": False, "testing": False},
    "testing": {"debug": False, "testing": True},
}


def forbid_ann() -> None:
    if current_identity.username == "ann":
        raise JWTError("Forbidden", "Admins only", status_code=403, headers={"X-Reason": "role"})


def me() -> Dict[str, Any]:
    return {"id": current_identity.id, "username": current_identity.username}


class ProtectedMethodView(MethodView):
    decorators = [jwt_required()]

    def get(self):
        forbid_ann()
        return jsonify(me())

    def post(self):
        forbid_ann()
        return jsonify(me()), 201


class MethodDecoratedResource(Resource):
    method_decorators = [jwt_required()]

    def get(self):
        forbid_ann()
        return me()

    def post(self):
        forbid_ann()
        return me(), 201


class DecoratedResource(Resource):
    decorators = [jwt_required()]

    def get(self):
        forbid_ann()
        return me()

    def post(self):
        forbid_ann()
        return me(), 201


class PostOnlyResource(Resource):
    method_decorators = {"post": [jwt_required()]}

    def get(self):
        return {"public": True}

    def post(self):
        forbid_ann()
        return me(), 201


class PlainResource(Resource):
    def get(self):
        forbid_ann()
        return me()

    def post(self):
        forbid_ann()
        return me(), 201


def build_app(debug: bool, testing: bool) -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = SECRET
    app.debug = debug
    app.testing = testing
    JWT(app, authenticate, identity)

    @app.route("/plain", methods=["GET", "POST"])
    @jwt_required()
    def plain():
        forbid_ann()
        return jsonify(me())

    app.add_url_rule("/methodview", view_func=ProtectedMethodView.as_view("methodview"))

    api = Api(app)
    api.add_resource(MethodDecoratedResource, "/restful/method-decorators")
    api.add_resource(DecoratedResource, "/restful/decorators")
    api.add_resource(PostOnlyResource, "/restful/post-only")

    blueprint = Blueprint("bp", __name__, url_prefix="/bp")
    Api(blueprint, decorators=[jwt_required()]).add_resource(PlainResource, "/api-decorators")
    app.register_blueprint(blueprint)
    return app


#: (path, method) of every protected view.
VIEWS = [
    ("/plain", "GET"),
    ("/methodview", "GET"),
    ("/methodview", "POST"),
    ("/restful/method-decorators", "GET"),
    ("/restful/method-decorators", "POST"),
    ("/restful/decorators", "GET"),
    ("/restful/post-only", "POST"),
    ("/bp/api-decorators", "GET"),
]


@pytest.fixture(scope="module", params=sorted(MODES))
def mode_app(request) -> Tuple[str, Flask, Dict[str, str]]:
    app = build_app(**MODES[request.param])
    client = app.test_client()
    tokens = {
        "joe": login(client),
        "ann": login(client, "ann", "secret"),
    }
    with app.app_context():
        tokens["expired"] = app.extensions["jwt"].create_access_token(1, expires_delta=-3600)
        tokens["unknown_user"] = app.extensions["jwt"].create_access_token(99)
    now = int(time.time())
    claims = {"exp": now + 300, "iat": now, "nbf": now, "identity": 1}
    tokens["bad_signature"] = pyjwt.encode(claims, "x" * 40, algorithm="HS256")
    return request.param, app, tokens


def refusal_cases(tokens: Dict[str, str]) -> Dict[str, Tuple[Optional[str], int, str, str]]:
    """case -> (Authorization header, status, error, description)"""
    return {
        "no_token": (None, 401, "Authorization Required", "Request does not contain an access token"),
        "empty_header": ("", 401, "Authorization Required", "Request does not contain an access token"),
        "wrong_prefix": (
            "Basic " + tokens["joe"], 401, "Invalid JWT header", "Unsupported authorization type"
        ),
        "token_missing": ("JWT", 401, "Invalid JWT header", "Token missing"),
        "token_with_spaces": ("JWT a b", 401, "Invalid JWT header", "Token contains spaces"),
        "garbage": ("JWT abc", 401, "Invalid token", "Not enough segments"),
        "bad_signature": (
            "JWT " + tokens["bad_signature"], 401, "Invalid token", "Signature verification failed"
        ),
        "expired": ("JWT " + tokens["expired"], 401, "Invalid token", "Signature has expired"),
        "unknown_user": ("JWT " + tokens["unknown_user"], 401, "Invalid JWT", "User does not exist"),
        "forbidden": ("JWT " + tokens["ann"], 403, "Forbidden", "Admins only"),
    }


CASES = [
    "no_token",
    "empty_header",
    "wrong_prefix",
    "token_missing",
    "token_with_spaces",
    "garbage",
    "bad_signature",
    "expired",
    "unknown_user",
    "forbidden",
]


def call(client, path: str, method: str, authorization: Optional[str]):
    headers = {} if authorization is None else {"Authorization": authorization}
    return client.open(path, method=method, headers=headers)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("path, method", VIEWS)
def test_every_refusal_is_the_flask_jwt_json_body(mode_app, path, method, case):
    mode, app, tokens = mode_app
    authorization, status, error, description = refusal_cases(tokens)[case]
    response = call(app.test_client(), path, method, authorization)
    assert response.status_code == status, (mode, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    assert response.get_json() == {"status_code": status, "error": error, "description": description}
    if status == 401:
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith('JWT realm="Login Required"')
    else:
        assert response.headers["X-Reason"] == "role"
        assert "WWW-Authenticate" not in response.headers


@pytest.mark.parametrize("path, method", VIEWS)
def test_valid_token_reaches_every_view(mode_app, path, method):
    _, app, tokens = mode_app
    response = call(app.test_client(), path, method, "JWT " + tokens["joe"])
    assert response.status_code == (201 if method == "POST" and path != "/plain" else 200)
    assert response.get_json() == {"id": 1, "username": "joe"}


def test_method_decorators_dict_leaves_other_methods_open(mode_app):
    _, app, _ = mode_app
    response = app.test_client().get("/restful/post-only")
    assert response.status_code == 200
    assert response.get_json() == {"public": True}


@pytest.mark.parametrize("path, method", VIEWS)
def test_non_ascii_authorization_is_401_not_500(mode_app, path, method):
    _, app, _ = mode_app
    response = call(app.test_client(), path, method, "JWT t\u00f6k\u00e9n")
    assert response.status_code == 401
    body = response.get_json()
    assert body["status_code"] == 401
    assert "message" not in body


@pytest.mark.parametrize("mode", sorted(MODES))
def test_custom_jwt_error_handler_wins_inside_restful_resources(mode):
    app = build_app(**MODES[mode])

    @app.extensions["jwt"].jwt_error_handler
    def on_error(error):
        return jsonify(msg=error.description), error.status_code

    client = app.test_client()
    for path, method in VIEWS:
        response = call(client, path, method, None)
        assert response.status_code == 401, path
        assert response.get_json() == {"msg": "Request does not contain an access token"}, path


@pytest.mark.parametrize("mode", sorted(MODES))
def test_login_refusals_are_json_in_every_mode(mode):
    client = build_app(**MODES[mode]).test_client()
    bad = client.post("/auth", json={"username": "joe", "password": "nope"})
    assert bad.status_code == 401
    assert bad.get_json() == BAD_CREDENTIALS
    not_json = client.post("/auth", data="username=joe&password=pass")
    assert not_json.status_code == 415
    assert not_json.get_json()["status_code"] == 415
    broken = client.post("/auth", data="{", content_type="application/json")
    assert broken.status_code == 400
    assert broken.get_json()["description"] == "Request body is not valid JSON"


# --- the Flask-JWT tutorial app over real HTTP --------------------------------------------


class TutorialUser:
    def __init__(self, id: int, username: str, password: str) -> None:
        self.id = id
        self.username = username
        self.password = password

    def __str__(self) -> str:
        return "User(id='%s')" % self.id


TUTORIAL_USERS = [TutorialUser(1, "user1", "abcxyz"), TutorialUser(2, "user2", "abcxyz")]
USERNAME_TABLE = {u.username: u for u in TUTORIAL_USERS}
USERID_TABLE = {u.id: u for u in TUTORIAL_USERS}


def tutorial_authenticate(username, password):
    user = USERNAME_TABLE.get(username, None)
    if user and hmac.compare_digest(user.password.encode("utf-8"), password.encode("utf-8")):
        return user


def tutorial_identity(payload):
    user_id = payload["identity"]
    return USERID_TABLE.get(user_id, None)


class WhoAmI(Resource):
    method_decorators = [jwt_required()]

    def get(self):
        return {"id": current_identity.id, "username": current_identity.username}


def tutorial_app(debug: bool) -> Flask:
    app = Flask(__name__)
    app.debug = debug
    app.config["SECRET_KEY"] = "super-secret"

    JWT(app, tutorial_authenticate, tutorial_identity)

    @app.route("/protected")
    @jwt_required()
    def protected():
        return "%s" % current_identity

    Api(app).add_resource(WhoAmI, "/whoami")
    return app


@pytest.fixture(params=[True, False], ids=["debug", "no-debug"])
def server(request):
    app = tutorial_app(debug=request.param)
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    def stop():
        srv.shutdown()
        thread.join(5)
        srv.server_close()

    request.addfinalizer(stop)
    return "http://127.0.0.1:%d" % srv.server_port


def http(
    method: str, url: str, *, body: Any = None, headers: Optional[Dict[str, str]] = None
) -> Tuple[int, Any, bytes]:
    data = None
    all_headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode("utf-8") if not isinstance(body, bytes) else body
        all_headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers, err.read()


def http_login(base: str, username: str = "user1", password: str = "abcxyz") -> str:
    status, headers, body = http("POST", base + "/auth", body={"username": username, "password": password})
    assert status == 200, body
    return json.loads(body)["access_token"]


def test_tutorial_login_and_protected_over_http(server):
    status, headers, body = http("POST", server + "/auth", body={"username": "user1", "password": "abcxyz"})
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Pragma"] == "no-cache"
    payload = json.loads(body)
    assert set(payload) == {"access_token"}
    token = payload["access_token"]
    assert pyjwt.decode(token, "super-secret", algorithms=["HS256"])["identity"] == 1

    status, _, body = http("GET", server + "/protected", headers=auth_header(token))
    assert (status, body) == (200, b"User(id='1')")
    status, _, body = http("GET", server + "/whoami", headers=auth_header(token))
    assert status == 200
    assert json.loads(body) == {"id": 1, "username": "user1"}


@pytest.mark.parametrize("path", ["/protected", "/whoami"])
def test_tutorial_refusals_over_http(server, path):
    status, headers, body = http("GET", server + path)
    assert status == 401
    assert headers["Content-Type"] == "application/json"
    assert headers["WWW-Authenticate"] == 'JWT realm="Login Required"'
    assert json.loads(body) == {
        "status_code": 401,
        "error": "Authorization Required",
        "description": "Request does not contain an access token",
    }

    now = int(time.time())
    claims = {"identity": 1, "exp": now + 60, "iat": now, "nbf": now}
    forged = pyjwt.encode(claims, "not-the-secret-but-long-enough-123", algorithm="HS256")
    status, headers, body = http("GET", server + path, headers=auth_header(forged))
    assert status == 401
    assert json.loads(body) == {
        "status_code": 401,
        "error": "Invalid token",
        "description": "Signature verification failed",
    }
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]

    status, _, body = http("GET", server + path, headers=auth_header(http_login(server), "Token"))
    assert status == 401
    assert json.loads(body)["description"] == "Unsupported authorization type"
    status, _, _ = http("GET", server + path, headers=auth_header(http_login(server), "Bearer"))
    assert status == 200  # RFC 6750's scheme is accepted beside Flask-JWT's


def test_tutorial_login_refusals_over_http(server):
    status, headers, body = http("POST", server + "/auth", body={"username": "user1", "password": "wrong"})
    assert status == 401
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == BAD_CREDENTIALS
    status, _, body = http("POST", server + "/auth", body={"username": "user1"})
    assert status == 401
    assert json.loads(body)["description"] == "Invalid credentials"
    status, _, _ = http("GET", server + "/auth")
    assert status == 405
    status, _, body = http(
        "POST", server + "/auth", body=b"username=user1&password=abcxyz",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 415
    assert json.loads(body)["status_code"] == 415


def test_tutorial_concurrent_requests_see_their_own_identity(server):
    tokens = {1: http_login(server, "user1"), 2: http_login(server, "user2")}

    def whoami(user_id: int) -> Tuple[int, Any]:
        status, _, body = http("GET", server + "/whoami", headers=auth_header(tokens[user_id]))
        return user_id, (status, json.loads(body))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(whoami, [1, 2] * 20))
    for user_id, (status, body) in results:
        assert status == 200
        assert body == {"id": user_id, "username": "user%d" % user_id}


# --- Flask-RESTful edge cases ---------------------------------------------------------------


@pytest.mark.parametrize("mode", sorted(MODES))
def test_api_set_up_before_jwt_init_app(mode):
    app = Flask(__name__)
    app.config["SECRET_KEY"] = SECRET
    app.config.update(DEBUG=MODES[mode]["debug"], TESTING=MODES[mode]["testing"])
    api = Api(app)
    api.add_resource(MethodDecoratedResource, "/r")
    jwt = JWT()
    jwt.authentication_handler(authenticate)
    jwt.identity_handler(identity)
    jwt.init_app(app)
    client = app.test_client()
    refused = client.get("/r", headers={"Authorization": "JWT abc"})
    assert refused.status_code == 401
    assert refused.get_json() == {
        "status_code": 401, "error": "Invalid token", "description": "Not enough segments"
    }
    assert client.get("/r", headers=auth_header(login(client))).get_json() == {"id": 1, "username": "joe"}


NOT_ADMIN = JWTError("Forbidden", "Admins only", status_code=403)


class SessionResource(Resource):
    def get(self):
        from flask import request, session

        if "who" in request.args:
            session["who"] = request.args["who"]
        raise NOT_ADMIN


@pytest.mark.parametrize("mode", ["debug", "production"])
def test_shared_jwt_error_instance_in_plain_view_renders_per_request(mode):
    app = build_app(**MODES[mode])

    @app.route("/shared")
    def shared():
        from flask import request, session

        if "who" in request.args:
            session["who"] = request.args["who"]
        raise NOT_ADMIN

    first = app.test_client().get("/shared?who=alice")
    assert first.status_code == 403
    assert "Set-Cookie" in first.headers
    second = app.test_client().get("/shared")
    assert second.status_code == 403
    assert second.get_json() == {"status_code": 403, "error": "Forbidden", "description": "Admins only"}
    assert "Set-Cookie" not in second.headers


@pytest.mark.parametrize("mode", ["debug", "production"])
def test_shared_jwt_error_instance_in_resource_renders_per_request(mode):
    app = build_app(**MODES[mode])
    Api(app).add_resource(SessionResource, "/shared")
    first = app.test_client().get("/shared?who=alice")
    assert first.status_code == 403
    assert "Set-Cookie" in first.headers
    second = app.test_client().get("/shared")
    assert second.status_code == 403
    assert second.get_json() == {"status_code": 403, "error": "Forbidden", "description": "Admins only"}
    assert "Set-Cookie" not in second.headers, second.headers["Set-Cookie"]


@pytest.mark.parametrize(
    "path",
    [
        "/plain",
        "/restful/method-decorators",
    ],
)
def test_app_errorhandler_for_jwt_error_applies_everywhere(path):
    app = build_app(debug=False, testing=False)

    @app.errorhandler(JWTError)
    def mine(error):
        return jsonify(custom=error.description), error.status_code

    response = app.test_client().get(path)
    assert response.status_code == 401
    assert response.get_json() == {"custom": "Request does not contain an access token"}
