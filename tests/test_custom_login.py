"""A login view of the app's own (``jwt.login_response``) and a logout view
of its own (``jwt.clear_cookies``): the answers the built-in routes give, one
session whose tokens the refresh and logout routes treat as theirs, in
headers, in cookies with CSRF, and from a Flask-RESTful resource.
"""

from __future__ import annotations

from flask import current_app, jsonify, request
from flask_restful import Api, Resource

from flask_tokenauth import current_token, jwt_required
from tests.conftest import BY_NAME, auth_header, make_app
from tests.test_cookies import HTTPS, REVOKED, claims_of, csrf_header, csrf_refused, set_cookies

JOE = {"id": 1, "username": "joe"}
ROUTES = {"JWT_REFRESH_URL_RULE": "/auth/refresh", "JWT_LOGOUT_URL_RULE": "/auth/logout"}


def app_with_own_views(config):
    """The tutorial app with /auth off and a login and a logout view of its own."""
    app = make_app({"JWT_AUTH_URL_RULE": None, **ROUTES, **config})
    jwt = app.extensions["jwt"]

    @app.route("/login", methods=["POST"])
    def login():
        user = BY_NAME.get(request.get_json()["user"])  # the app checks the user its own way
        return jwt.login_response(user, {"welcome": user.username})

    @app.route("/signout", methods=["POST"])
    @jwt_required()
    def signout():
        jwt.revoke(dict(current_token))
        return jwt.clear_cookies(jsonify(bye=True))

    return app


def test_a_custom_login_view_answers_as_the_login_route_with_one_session():
    client = app_with_own_views({}).test_client()
    assert client.post("/auth", json={"username": "joe", "password": "pass"}).status_code == 404
    answer = client.post("/login", json={"user": "joe"})
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.get_json()
    assert set(body) == {"access_token", "refresh_token", "welcome"} and body["welcome"] == "joe"
    access, refresh = body["access_token"], body["refresh_token"]
    assert claims_of(access)["fam"] == claims_of(refresh)["fam"]  # one session
    assert claims_of(access)["fresh"] is True
    assert client.get("/protected", headers=auth_header(access)).get_json() == JOE
    # The logout route ends the whole session from the access token alone.
    assert client.post("/auth/logout", headers=auth_header(access)).status_code == 200
    assert client.get("/protected", headers=auth_header(access)).get_json() == REVOKED
    assert client.post("/auth/refresh", headers=auth_header(refresh)).get_json() == REVOKED


def test_its_refresh_token_rotates_at_the_refresh_route():
    client = app_with_own_views({}).test_client()
    refresh = client.post("/login", json={"user": "ann"}).get_json()["refresh_token"]
    rotated = client.post("/auth/refresh", headers=auth_header(refresh))
    assert rotated.status_code == 200
    assert client.get("/protected", headers=auth_header(rotated.get_json()["access_token"])).get_json() == {
        "id": 2,
        "username": "ann",
    }


def test_with_cookies_the_tokens_go_in_cookies_with_csrf_and_a_custom_logout_clears_them():
    app = app_with_own_views({"JWT_TOKEN_LOCATION": ["cookies"]})
    client = app.test_client()
    answer = client.post("/login", json={"user": "joe"}, base_url=HTTPS)
    assert answer.status_code == 200
    body = answer.get_json()
    assert "access_token" not in body and "refresh_token" not in body  # HttpOnly cookies only
    cookies = set_cookies(answer)
    assert set(cookies) == {"access_token", "refresh_token", "csrf_token"}
    assert cookies["access_token"]["httponly"] is True and cookies["refresh_token"]["path"] == "/auth/"
    csrf = body["csrf_token"]
    assert cookies["csrf_token"]["value"] == csrf == claims_of(str(cookies["access_token"]["value"]))["csrf"]

    assert client.get("/protected", base_url=HTTPS).get_json() == JOE
    assert client.post("/signout", base_url=HTTPS).get_json() == csrf_refused()
    out = client.post("/signout", headers=csrf_header(csrf), base_url=HTTPS)
    assert out.get_json() == {"bye": True}
    cleared = set_cookies(out)
    assert set(cleared) == {"access_token", "refresh_token", "csrf_token"}
    assert all(cookie["value"] == "" for cookie in cleared.values())
    assert client.get("/protected", base_url=HTTPS).status_code == 401  # the jar is empty
    # The revoked session stays refused to a client that kept the old cookie.
    client.set_cookie("access_token", str(cookies["access_token"]["value"]))
    assert client.get("/protected", base_url=HTTPS).get_json() == REVOKED


def test_a_flask_restful_resource_may_return_it():
    app = make_app({"JWT_AUTH_URL_RULE": None, **ROUTES})

    class Login(Resource):
        def post(self):
            jwt = current_app.extensions["jwt"]
            return jwt.login_response(BY_NAME[request.get_json()["user"]])

    Api(app).add_resource(Login, "/login")
    client = app.test_client()
    body = client.post("/login", json={"user": "joe"}).get_json()
    assert set(body) == {"access_token", "refresh_token"}
    assert client.get("/protected", headers=auth_header(body["access_token"])).get_json() == JOE
