"""Token locations (issue 4): cookies with double-submit CSRF, headers + cookies, query string.

End to end with the Flask test client. Requests go to ``https://localhost`` so that the
``Secure`` cookies the extension sets by default are realistic for a browser.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

import jwt as pyjwt
import pytest
from flask import jsonify, request

from flask_tokenauth import current_identity, jwt_required
from tests.conftest import auth_header, make_app

HTTPS = "https://localhost"
TYPE_CLAIM = "token_type"
SESSION = {
    "JWT_TOKEN_LOCATION": ["cookies"],
    "JWT_REFRESH_URL_RULE": "/auth/refresh",
    "JWT_LOGOUT_URL_RULE": "/auth/logout",
}
NO_TOKEN = {
    "status_code": 401,
    "error": "Authorization Required",
    "description": "Request does not contain an access token",
}
REVOKED = {"status_code": 401, "error": "Invalid token", "description": "Token has been revoked"}
JOE = {"id": 1, "username": "joe"}


def csrf_refused(method: str = "POST", header: str = "X-CSRF-Token") -> Dict[str, Any]:
    return {
        "status_code": 401,
        "error": "Invalid CSRF token",
        "description": "A token sent in a cookie needs the %s header with the login's CSRF value "
        "for %s requests" % (header, method),
    }


def cookie_app(config: Optional[Dict[str, Any]] = None, base: Optional[Dict[str, Any]] = None):
    """The tutorial app plus state-changing routes and a cookie echo."""
    app = make_app({**(SESSION if base is None else base), **(config or {})})

    @app.route("/write", methods=["POST", "PUT", "PATCH", "DELETE"])
    @jwt_required()
    def write():
        return jsonify(written=True, id=current_identity.id, method=request.method)

    @app.route("/echo-cookies")
    def echo_cookies():
        return jsonify(sorted(request.cookies))

    return app


def set_cookies(response) -> Dict[str, Dict[str, Union[str, bool]]]:
    """The response's Set-Cookie headers: name -> {"value": ..., lowercased attributes}."""
    found: Dict[str, Dict[str, Union[str, bool]]] = {}
    for header in response.headers.getlist("Set-Cookie"):
        first, *params = [part.strip() for part in header.split(";")]
        name, _, value = first.partition("=")
        attributes: Dict[str, Union[str, bool]] = {"value": value}
        for param in params:
            key, sep, val = param.partition("=")
            attributes[key.lower()] = val if sep else True
        assert name not in found, "cookie %s set twice" % name
        found[name] = attributes
    return found


def claims_of(token: str) -> Dict[str, Any]:
    return pyjwt.decode(token, options={"verify_signature": False})


def cookie_login(client, base_url: str = HTTPS):
    response = client.post("/auth", json={"username": "joe", "password": "pass"}, base_url=base_url)
    assert response.status_code == 200, response.get_json()
    return response


def csrf_header(value: str) -> Dict[str, str]:
    return {"X-CSRF-Token": value}


@pytest.fixture(name="app")
def app_fixture():
    return cookie_app()


@pytest.fixture(name="logged_in")
def logged_in_fixture(app):
    """(client, login response, csrf value) after a cookie login."""
    client = app.test_client()
    response = cookie_login(client)
    return client, response, response.get_json()["csrf_token"]


# --- login ----------------------------------------------------------------------------------


def test_login_sets_access_refresh_and_csrf_cookies(logged_in):
    client, response, csrf = logged_in
    cookies = set_cookies(response)
    assert set(cookies) == {"access_token", "refresh_token", "csrf_token"}

    access = cookies["access_token"]
    assert access["httponly"] is True
    assert access["secure"] is True
    assert access["samesite"] == "Lax"
    assert access["path"] == "/"
    assert access["max-age"] == "300"
    assert "domain" not in access

    refresh = cookies["refresh_token"]
    assert refresh["httponly"] is True
    assert refresh["secure"] is True
    assert refresh["samesite"] == "Lax"
    assert refresh["path"] == "/auth/"  # the refresh and logout routes, not /auth itself
    assert refresh["max-age"] == str(30 * 86400)

    csrf_cookie = cookies["csrf_token"]
    assert "httponly" not in csrf_cookie
    assert csrf_cookie["secure"] is True
    assert csrf_cookie["samesite"] == "Lax"
    assert csrf_cookie["path"] == "/"
    assert csrf_cookie["value"] == csrf

    access_claims = claims_of(str(access["value"]))
    refresh_claims = claims_of(str(refresh["value"]))
    assert access_claims[TYPE_CLAIM] == "access"
    assert access_claims["identity"] == 1
    assert access_claims["csrf"] == csrf
    assert refresh_claims[TYPE_CLAIM] == "refresh"
    assert refresh_claims["csrf"] == csrf
    assert refresh_claims["fam"] == access_claims["fam"]


def test_cookie_only_login_body_has_csrf_and_no_tokens(logged_in):
    _, response, csrf = logged_in
    body = response.get_json()
    assert body == {"csrf_token": csrf}
    assert isinstance(csrf, str) and len(csrf) >= 16
    raw = response.get_data(as_text=True)
    assert "eyJ" not in raw  # no JWT anywhere in the body
    assert response.headers["Cache-Control"] == "no-store"


def test_each_login_gets_its_own_csrf_value(app):
    first = cookie_login(app.test_client()).get_json()["csrf_token"]
    second = cookie_login(app.test_client()).get_json()["csrf_token"]
    assert first != second


def test_refresh_cookie_is_only_sent_to_the_refresh_route(logged_in):
    client, _, _ = logged_in
    response = client.get("/echo-cookies", base_url=HTTPS)
    assert response.get_json() == ["access_token", "csrf_token"]


# --- CSRF on protected routes ----------------------------------------------------------------


def test_get_with_cookie_needs_no_csrf_header(logged_in):
    client, _, _ = logged_in
    response = client.get("/protected", base_url=HTTPS)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == JOE


def test_post_without_csrf_header_is_401(logged_in):
    client, _, _ = logged_in
    response = client.post("/write", base_url=HTTPS)
    assert response.status_code == 401
    assert response.get_json() == csrf_refused("POST")
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('JWT realm="Login Required", error="invalid_request"')


@pytest.mark.parametrize("wrong", ["nope", "x" * 32, " ", "last-char-changed", "with-suffix"])
def test_post_with_wrong_csrf_header_is_401(logged_in, wrong):
    client, _, csrf = logged_in
    value = {
        "last-char-changed": csrf[:-1] + ("A" if csrf[-1] != "A" else "B"),
        "with-suffix": csrf + "x",
    }.get(wrong, wrong)
    response = client.post("/write", headers=csrf_header(value), base_url=HTTPS)
    assert response.status_code == 401
    assert response.get_json() == csrf_refused("POST")


def test_post_with_csrf_header_is_200(logged_in):
    client, _, csrf = logged_in
    response = client.post("/write", headers=csrf_header(csrf), base_url=HTTPS)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"written": True, "id": 1, "method": "POST"}


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_other_state_changing_methods_need_csrf_too(logged_in, method):
    client, _, csrf = logged_in
    response = client.open("/write", method=method, base_url=HTTPS)
    assert response.status_code == 401
    assert response.get_json() == csrf_refused(method)
    response = client.open("/write", method=method, headers=csrf_header(csrf), base_url=HTTPS)
    assert response.status_code == 200
    assert response.get_json() == {"written": True, "id": 1, "method": method}


def test_csrf_value_of_another_login_is_refused(app):
    alice = app.test_client()
    cookie_login(alice)
    other_csrf = cookie_login(app.test_client()).get_json()["csrf_token"]
    response = alice.post("/write", headers=csrf_header(other_csrf), base_url=HTTPS)
    assert response.status_code == 401
    assert response.get_json() == csrf_refused("POST")


def test_csrf_cookie_value_alone_is_not_enough(logged_in):
    """The CSRF cookie is sent automatically; only the header proves the script read it."""
    client, _, csrf = logged_in
    assert client.get_cookie("csrf_token").value == csrf
    response = client.post("/write", base_url=HTTPS)
    assert response.status_code == 401


def test_header_token_is_ignored_when_only_cookies_are_configured(app):
    client = app.test_client()
    cookie_login(client)
    token = client.get_cookie("access_token").value
    fresh_client = app.test_client()
    response = fresh_client.get("/protected", headers=auth_header(token), base_url=HTTPS)
    assert response.status_code == 401
    assert response.get_json() == NO_TOKEN


def test_cookie_token_without_csrf_claim_is_refused_on_post():
    app = cookie_app()
    with app.app_context():
        token = app.extensions["jwt"].create_access_token(1)
    assert "csrf" not in claims_of(token)
    client = app.test_client()
    client.set_cookie("access_token", token, domain="localhost")
    assert client.get("/protected", base_url=HTTPS).get_json() == JOE
    for header in ({}, csrf_header("anything"), csrf_header("None"), csrf_header("")):
        response = client.post("/write", headers=header, base_url=HTTPS)
        assert response.status_code == 401, header
        assert response.get_json() == csrf_refused("POST")


def test_cookie_token_with_non_string_csrf_claim_is_refused_on_post():
    app = cookie_app()
    with app.app_context():
        token = app.extensions["jwt"].create_access_token(1, claims={"csrf": 12345})
    client = app.test_client()
    client.set_cookie("access_token", token, domain="localhost")
    response = client.post("/write", headers=csrf_header("12345"), base_url=HTTPS)
    assert response.status_code == 401
    assert response.get_json() == csrf_refused("POST")


# --- refresh with cookies ----------------------------------------------------------------------


def test_refresh_via_cookie_needs_csrf_header_then_sets_new_cookies(logged_in):
    client, login_response, csrf = logged_in
    old = set_cookies(login_response)

    refused = client.post("/auth/refresh", base_url=HTTPS)
    assert refused.status_code == 401
    assert refused.get_json() == csrf_refused("POST")
    assert refused.headers.getlist("Set-Cookie") == []

    wrong = client.post("/auth/refresh", headers=csrf_header("wrong"), base_url=HTTPS)
    assert wrong.status_code == 401
    assert wrong.get_json() == csrf_refused("POST")

    # the refused attempts did not spend the refresh token
    response = client.post("/auth/refresh", headers=csrf_header(csrf), base_url=HTTPS)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"csrf_token": csrf}
    assert response.headers["Cache-Control"] == "no-store"
    new = set_cookies(response)
    assert set(new) == {"access_token", "refresh_token", "csrf_token"}
    assert new["access_token"]["value"] != old["access_token"]["value"]
    assert new["refresh_token"]["value"] != old["refresh_token"]["value"]
    assert new["access_token"]["httponly"] is True and new["access_token"]["path"] == "/"
    assert new["refresh_token"]["httponly"] is True and new["refresh_token"]["path"] == "/auth/"
    assert "httponly" not in new["csrf_token"]

    new_access = claims_of(str(new["access_token"]["value"]))
    assert new_access[TYPE_CLAIM] == "access"
    assert new_access["fresh"] is False
    assert new_access["csrf"] == csrf
    assert new_access["fam"] == claims_of(str(old["access_token"]["value"]))["fam"]

    # the client now holds the new cookies and they work
    assert client.get_cookie("access_token").value == new["access_token"]["value"]
    assert client.get_cookie("refresh_token", path="/auth/").value == new["refresh_token"]["value"]
    assert client.get("/protected", base_url=HTTPS).get_json() == JOE
    ok = client.post("/write", headers=csrf_header(csrf), base_url=HTTPS)
    assert ok.status_code == 200


def test_reusing_the_old_refresh_cookie_revokes_the_session(logged_in, app):
    client, login_response, csrf = logged_in
    old_refresh = str(set_cookies(login_response)["refresh_token"]["value"])
    assert client.post("/auth/refresh", headers=csrf_header(csrf), base_url=HTTPS).status_code == 200

    thief = app.test_client()
    thief.set_cookie("refresh_token", old_refresh, domain="localhost", path="/auth/")
    response = thief.post("/auth/refresh", headers=csrf_header(csrf), base_url=HTTPS)
    assert response.status_code == 401
    assert response.get_json()["description"] == (
        "Refresh token was already used; the session has been revoked"
    )
    after = client.get("/protected", base_url=HTTPS)
    assert after.status_code == 401
    assert after.get_json() == REVOKED


def test_access_cookie_is_not_accepted_at_refresh_route(app):
    client = app.test_client()
    response = cookie_login(client)
    csrf = response.get_json()["csrf_token"]
    access = client.get_cookie("access_token").value
    other = app.test_client()
    other.set_cookie("refresh_token", access, domain="localhost", path="/auth/refresh")
    refused = other.post("/auth/refresh", headers=csrf_header(csrf), base_url=HTTPS)
    assert refused.status_code == 401
    assert refused.get_json()["description"] == "Only refresh tokens are accepted here"


# --- logout --------------------------------------------------------------------------------


def test_logout_needs_csrf_and_clears_all_three_cookies(logged_in, app):
    client, login_response, csrf = logged_in
    old = set_cookies(login_response)
    old_access = str(old["access_token"]["value"])
    old_refresh = str(old["refresh_token"]["value"])

    refused = client.post("/auth/logout", base_url=HTTPS)
    assert refused.status_code == 401
    assert refused.get_json() == csrf_refused("POST")
    assert client.get("/protected", base_url=HTTPS).status_code == 200  # not logged out

    response = client.post("/auth/logout", headers=csrf_header(csrf), base_url=HTTPS)
    assert response.status_code == 200
    assert response.get_json() == {"message": "Logged out"}
    cleared = set_cookies(response)
    assert set(cleared) == {"access_token", "refresh_token", "csrf_token"}
    for name, path in (("access_token", "/"), ("refresh_token", "/auth/"), ("csrf_token", "/")):
        attributes = cleared[name]
        assert attributes["value"] == "", name
        assert attributes["max-age"] == "0", name
        assert "1970" in str(attributes["expires"]), name
        assert attributes["path"] == path, name
    assert client.get_cookie("access_token") is None
    assert client.get_cookie("refresh_token", path="/auth/") is None
    assert client.get_cookie("csrf_token") is None

    # the browser has nothing left to send
    assert client.get("/protected", base_url=HTTPS).get_json() == NO_TOKEN

    # the old access token, replayed as a cookie, is refused
    replay = app.test_client()
    replay.set_cookie("access_token", old_access, domain="localhost")
    response = replay.get("/protected", base_url=HTTPS)
    assert response.status_code == 401
    assert response.get_json() == REVOKED

    # ...and as a header once headers are read too
    app.config["JWT_TOKEN_LOCATION"] = ["headers", "cookies"]
    response = app.test_client().get("/protected", headers=auth_header(old_access), base_url=HTTPS)
    assert response.status_code == 401
    assert response.get_json() == REVOKED

    # the old refresh token is dead too
    replay.set_cookie("refresh_token", old_refresh, domain="localhost", path="/auth/refresh")
    response = replay.post("/auth/refresh", headers=csrf_header(csrf), base_url=HTTPS)
    assert response.status_code == 401
    assert response.get_json() == REVOKED


# --- cookie settings ---------------------------------------------------------------------------


def test_cookie_secure_false_is_reflected_and_works_over_http():
    app = cookie_app({"JWT_COOKIE_SECURE": False})
    client = app.test_client()
    response = cookie_login(client, base_url="http://localhost")
    cookies = set_cookies(response)
    assert set(cookies) == {"access_token", "refresh_token", "csrf_token"}
    for name, attributes in cookies.items():
        assert "secure" not in attributes, name
    assert cookies["access_token"]["httponly"] is True
    csrf = response.get_json()["csrf_token"]
    assert client.get("/protected").get_json() == JOE
    assert client.post("/write", headers=csrf_header(csrf)).status_code == 200
    logout = client.post("/auth/logout", headers=csrf_header(csrf))
    assert logout.status_code == 200
    for name, attributes in set_cookies(logout).items():
        assert "secure" not in attributes, name


def test_cookie_samesite_strict_is_reflected():
    app = cookie_app({"JWT_COOKIE_SAMESITE": "Strict"})
    client = app.test_client()
    response = cookie_login(client)
    cookies = set_cookies(response)
    assert {name: attributes["samesite"] for name, attributes in cookies.items()} == {
        "access_token": "Strict",
        "refresh_token": "Strict",
        "csrf_token": "Strict",
    }
    csrf = response.get_json()["csrf_token"]
    refreshed = client.post("/auth/refresh", headers=csrf_header(csrf), base_url=HTTPS)
    assert all(a["samesite"] == "Strict" for a in set_cookies(refreshed).values())
    logout = client.post("/auth/logout", headers=csrf_header(csrf), base_url=HTTPS)
    assert all(a["samesite"] == "Strict" for a in set_cookies(logout).values())


def test_cookie_domain_is_reflected():
    app = cookie_app({"JWT_COOKIE_DOMAIN": "example.test"})
    client = app.test_client()
    response = cookie_login(client, base_url="https://api.example.test")
    cookies = set_cookies(response)
    assert {name: attributes.get("domain") for name, attributes in cookies.items()} == {
        "access_token": "example.test",
        "refresh_token": "example.test",
        "csrf_token": "example.test",
    }
    # a domain cookie is sent to subdomains: the flow works on another host of the domain
    csrf = response.get_json()["csrf_token"]
    assert client.get("/protected", base_url="https://www.example.test").get_json() == JOE
    logout = client.post("/auth/logout", headers=csrf_header(csrf), base_url="https://www.example.test")
    assert logout.status_code == 200
    assert all(a.get("domain") == "example.test" for a in set_cookies(logout).values())


def test_default_cookies_have_no_domain(logged_in):
    _, response, _ = logged_in
    assert all("domain" not in attributes for attributes in set_cookies(response).values())


def test_custom_cookie_and_csrf_header_names():
    app = cookie_app(
        {
            "JWT_ACCESS_COOKIE_NAME": "at",
            "JWT_REFRESH_COOKIE_NAME": "rt",
            "JWT_CSRF_COOKIE_NAME": "xsrf",
            "JWT_CSRF_HEADER_NAME": "X-XSRF",
        }
    )
    client = app.test_client()
    response = cookie_login(client)
    assert set(set_cookies(response)) == {"at", "rt", "xsrf"}
    csrf = response.get_json()["csrf_token"]
    assert client.get("/protected", base_url=HTTPS).get_json() == JOE
    refused = client.post("/write", headers=csrf_header(csrf), base_url=HTTPS)
    assert refused.status_code == 401
    assert refused.get_json() == csrf_refused("POST", header="X-XSRF")
    assert client.post("/write", headers={"X-XSRF": csrf}, base_url=HTTPS).status_code == 200


# --- headers and cookies together ------------------------------------------------------------


@pytest.fixture(name="both_app")
def both_app_fixture():
    return cookie_app({"JWT_TOKEN_LOCATION": ["headers", "cookies"]})


def test_headers_and_cookies_login_answers_tokens_and_sets_cookies(both_app):
    client = both_app.test_client()
    response = cookie_login(client)
    body = response.get_json()
    assert set(body) == {"access_token", "refresh_token", "csrf_token"}
    cookies = set_cookies(response)
    assert cookies["access_token"]["value"] == body["access_token"]
    assert cookies["refresh_token"]["value"] == body["refresh_token"]
    assert cookies["csrf_token"]["value"] == body["csrf_token"]


def test_headers_and_cookies_both_work(both_app):
    client = both_app.test_client()
    body = cookie_login(client).get_json()
    # cookie
    assert client.get("/protected", base_url=HTTPS).get_json() == JOE
    # header, from a client without cookies
    header_client = both_app.test_client()
    response = header_client.get("/protected", headers=auth_header(body["access_token"]), base_url=HTTPS)
    assert response.status_code == 200
    assert response.get_json() == JOE


def test_header_token_on_post_needs_no_csrf(both_app):
    client = both_app.test_client()
    body = cookie_login(client).get_json()
    header_client = both_app.test_client()
    response = header_client.post("/write", headers=auth_header(body["access_token"]), base_url=HTTPS)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"written": True, "id": 1, "method": "POST"}
    # also when the same client holds the cookies: the header (looked up first) is used
    response = client.post("/write", headers=auth_header(body["access_token"]), base_url=HTTPS)
    assert response.status_code == 200
    # but the cookie alone on POST still needs the CSRF header
    response = client.post("/write", base_url=HTTPS)
    assert response.status_code == 401
    assert response.get_json() == csrf_refused("POST")


def test_header_refresh_token_needs_no_csrf(both_app):
    client = both_app.test_client()
    body = cookie_login(client).get_json()
    response = both_app.test_client().post(
        "/auth/refresh", headers=auth_header(body["refresh_token"]), base_url=HTTPS
    )
    assert response.status_code == 200, response.get_json()
    assert set(response.get_json()) == {"access_token", "refresh_token", "csrf_token"}


# --- query string ------------------------------------------------------------------------------


def header_token(app) -> str:
    with app.app_context():
        return app.extensions["jwt"].create_access_token(1)


def test_query_string_is_ignored_by_default():
    app = make_app()
    token = header_token(app)
    response = app.test_client().get("/protected?jwt=%s" % token)
    assert response.status_code == 401
    assert response.get_json() == NO_TOKEN


def test_query_string_is_ignored_when_only_cookies_are_configured():
    app = cookie_app()
    token = header_token(app)
    response = app.test_client().get("/protected?jwt=%s" % token, base_url=HTTPS)
    assert response.status_code == 401
    assert response.get_json() == NO_TOKEN


def test_query_string_works_when_configured():
    app = cookie_app({"JWT_TOKEN_LOCATION": ["headers", "query_string"]}, base={})
    token = header_token(app)
    client = app.test_client()
    response = client.get("/protected?jwt=%s" % token)
    assert response.status_code == 200
    assert response.get_json() == JOE
    # no CSRF needed for a query-string token
    response = client.post("/write?jwt=%s" % token)
    assert response.status_code == 200
    assert response.get_json() == {"written": True, "id": 1, "method": "POST"}
    # headers still work
    assert client.get("/protected", headers=auth_header(token)).get_json() == JOE
    # another parameter name is not read
    assert client.get("/protected?token=%s" % token).status_code == 401
    # a bad token in the query string is refused like any bad token
    refused = client.get("/protected?jwt=%s" % token[:-4])
    assert refused.status_code == 401
    assert refused.get_json()["error"] == "Invalid token"


def test_the_refresh_route_never_takes_a_refresh_token_from_the_query_string():
    # A refresh token in a URL ends up in logs and histories: access tokens only.
    app = cookie_app({"JWT_TOKEN_LOCATION": ["headers", "query_string"]})
    client = app.test_client()
    refresh = client.post("/auth", json={"username": "joe", "password": "pass"}).get_json()["refresh_token"]
    refused = client.post("/auth/refresh?jwt=%s" % refresh)
    assert refused.status_code == 401
    assert refused.get_json()["description"] == "Request does not contain a refresh token"
    assert client.post("/auth/refresh", headers=auth_header(refresh)).status_code == 200


def test_query_string_name_setting():
    app = cookie_app({"JWT_TOKEN_LOCATION": ["query_string"], "JWT_QUERY_STRING_NAME": "token"}, base={})
    token = header_token(app)
    client = app.test_client()
    assert client.get("/protected?token=%s" % token).get_json() == JOE
    assert client.get("/protected?jwt=%s" % token).status_code == 401
    # only the query string is configured: a header is ignored
    response = client.get("/protected", headers=auth_header(token))
    assert response.status_code == 401
    assert response.get_json() == NO_TOKEN


def test_query_string_location_toggled_at_runtime():
    app = make_app()
    token = header_token(app)
    client = app.test_client()
    assert client.get("/protected?jwt=%s" % token).status_code == 401
    app.config["JWT_TOKEN_LOCATION"] = ["query_string"]
    assert client.get("/protected?jwt=%s" % token).get_json() == JOE
