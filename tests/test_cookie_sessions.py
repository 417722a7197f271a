"""Browser sessions in cookie mode, with the Flask test client: logout from
whatever the browser still holds, cookie paths under a prefix, and cookie
settings a browser would refuse (the real-browser side is in test_browser.py).
"""

from __future__ import annotations

import time
from typing import Any, Dict

import pytest
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client

from flask_tokenauth import ConfigurationError
from tests.conftest import make_app
from tests.test_cookies import HTTPS, REVOKED, SESSION, cookie_app, cookie_login, csrf_header, set_cookies

SHORT = {"JWT_EXPIRATION_DELTA": 1, "JWT_LEEWAY": 0}


def session_cookies(client) -> Dict[str, str]:
    return {cookie.key: cookie.value for cookie in client._cookies.values()}


def drop_cookie(client, name: str) -> None:
    """What the browser does when a cookie's Max-Age runs out."""
    for key in [key for key in client._cookies if key[2] == name]:
        del client._cookies[key]


def assert_all_cleared(response) -> None:
    cleared = set_cookies(response)
    assert set(cleared) == {"access_token", "refresh_token", "csrf_token"}
    assert all(attributes["max-age"] == "0" for attributes in cleared.values())


# --- logout ends the session from what the browser still holds ------------------------


@pytest.mark.parametrize("dropped", [True, False], ids=["dropped by the browser", "still sent"])
def test_logout_after_the_access_cookie_expired_ends_the_session(dropped):
    app = cookie_app(SHORT)
    client = app.test_client()
    csrf = cookie_login(client).get_json()["csrf_token"]
    refresh = session_cookies(client)["refresh_token"]
    time.sleep(1.1)
    if dropped:  # what a browser does at the cookie's Max-Age: only the refresh cookie is left
        drop_cookie(client, "access_token")
        assert set(session_cookies(client)) == {"refresh_token", "csrf_token"}

    response = client.post("/auth/logout", headers=csrf_header(csrf), base_url=HTTPS)
    assert response.status_code == 200, response.get_json()
    assert_all_cleared(response)
    assert session_cookies(client) == {}
    thief = app.test_client()  # a copy of the refresh cookie is worthless now
    thief.set_cookie("refresh_token", refresh, domain="localhost", path="/auth/")
    refused = thief.post("/auth/refresh", headers=csrf_header(csrf), base_url=HTTPS)
    assert refused.status_code == 401 and refused.get_json() == REVOKED


def test_logout_without_the_csrf_header_is_refused_and_clears_nothing():
    """A cross-site form post: no custom header can come with it."""
    app = cookie_app()
    client = app.test_client()
    cookie_login(client)
    response = client.post("/auth/logout", base_url=HTTPS, data={"x": "1"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "Invalid CSRF token"
    assert "Set-Cookie" not in response.headers  # the browser would apply these even cross-site
    assert client.get("/protected", base_url=HTTPS).status_code == 200


def test_logout_with_a_wrong_csrf_header_is_refused_and_clears_nothing():
    client = cookie_app().test_client()
    cookie_login(client)
    response = client.post("/auth/logout", headers=csrf_header("guess"), base_url=HTTPS)
    assert response.status_code == 401 and "Set-Cookie" not in response.headers


def test_logout_with_nothing_valid_from_the_own_page_clears_the_cookies_and_revokes_nothing():
    app = cookie_app()
    client = app.test_client()
    csrf = cookie_login(client).get_json()["csrf_token"]
    other = app.test_client()
    cookie_login(other)
    assert client.post("/auth/logout", headers=csrf_header(csrf), base_url=HTTPS).status_code == 200
    # the same tab logs out again (a second click): nothing valid, the page proves itself
    client.set_cookie("csrf_token", csrf, domain="localhost")
    client.set_cookie("access_token", "not-a-token", domain="localhost")
    again = client.post("/auth/logout", headers=csrf_header(csrf), base_url=HTTPS)
    assert again.status_code == 200 and again.get_json() == {"message": "Logged out"}
    assert_all_cleared(again)
    assert other.get("/protected", base_url=HTTPS).status_code == 200  # nobody else was touched


def test_logout_with_nothing_at_all_and_no_header_is_still_401():
    response = cookie_app().test_client().post("/auth/logout", base_url=HTTPS)
    assert response.status_code == 401 and "Set-Cookie" not in response.headers


def test_the_refresh_cookie_reaches_refresh_and_logout_but_no_other_route():
    client = cookie_app().test_client()
    cookie_login(client)
    paths = {cookie.key: cookie.path for cookie in client._cookies.values()}
    assert paths == {"access_token": "/", "csrf_token": "/", "refresh_token": "/auth/"}
    seen = client.get("/echo-cookies", base_url=HTTPS).get_json()
    assert "refresh_token" not in seen and "access_token" in seen


def test_routes_without_a_common_folder_get_one_refresh_cookie_each():
    app = cookie_app({"JWT_REFRESH_URL_RULE": "/refresh", "JWT_LOGOUT_URL_RULE": "/logout"})
    client = app.test_client()
    response = cookie_login(client)
    paths = sorted(
        value.split("Path=")[1].split(";")[0]
        for value in response.headers.getlist("Set-Cookie")
        if value.startswith("refresh_token=")
    )
    assert paths == ["/logout", "/refresh"]
    csrf = response.get_json()["csrf_token"]
    assert client.post("/refresh", headers=csrf_header(csrf), base_url=HTTPS).status_code == 200
    drop_cookie(client, "access_token")
    assert client.post("/logout", headers=csrf_header(csrf), base_url=HTTPS).status_code == 200
    assert session_cookies(client) == {}


# --- an app under a prefix ------------------------------------------------------------------


def mounted(config: Dict[str, Any] = None):
    app = cookie_app(config)
    return app, Client(DispatcherMiddleware(make_app(), {"/app": app}))


def test_cookie_paths_follow_the_mount_point():
    _, client = mounted()
    login = client.post("/app/auth", json={"username": "joe", "password": "pass"}, base_url=HTTPS)
    assert login.status_code == 200
    cookies = set_cookies(login)
    assert cookies["access_token"]["path"] == "/app"
    assert cookies["csrf_token"]["path"] == "/app"
    assert cookies["refresh_token"]["path"] == "/app/auth/"
    csrf = login.get_json()["csrf_token"]
    refreshed = client.post("/app/auth/refresh", headers=csrf_header(csrf), base_url=HTTPS)
    assert refreshed.status_code == 200, refreshed.get_json()
    assert client.get("/app/protected", base_url=HTTPS).status_code == 200
    out = client.post("/app/auth/logout", headers=csrf_header(csrf), base_url=HTTPS)
    assert out.status_code == 200
    assert {attributes["path"] for attributes in set_cookies(out).values()} == {"/app", "/app/auth/"}


def test_jwt_cookie_path_sets_the_mount_point_explicitly():
    client = cookie_app({"JWT_COOKIE_PATH": "/api/"}).test_client()
    cookies = set_cookies(cookie_login(client))
    assert cookies["access_token"]["path"] == "/api"
    assert cookies["refresh_token"]["path"] == "/api/auth/"


# --- cookie settings a browser would refuse fail at init_app ---------------------------


@pytest.mark.parametrize(
    "setting",
    [
        {"JWT_COOKIE_SAMESITE": "None", "JWT_COOKIE_SECURE": False},
        {"JWT_COOKIE_SAMESITE": "Relaxed"},
        {"JWT_ACCESS_COOKIE_NAME": "__Host-access", "JWT_COOKIE_DOMAIN": "example.test"},
        {"JWT_ACCESS_COOKIE_NAME": "__Host-access", "JWT_COOKIE_PATH": "/app"},
        {"JWT_REFRESH_COOKIE_NAME": "__Host-refresh"},
        {"JWT_ACCESS_COOKIE_NAME": "__Secure-access", "JWT_COOKIE_SECURE": False},
        {"JWT_COOKIE_PREFIX": "__Host-", "JWT_COOKIE_SECURE": False},
        {"JWT_COOKIE_PREFIX": "__Host-", "JWT_COOKIE_DOMAIN": "example.test"},
        {"JWT_COOKIE_PREFIX": "__Local-"},
    ],
    ids=lambda setting: ",".join("%s=%s" % item for item in setting.items()),
)
def test_cookie_settings_a_browser_refuses_fail_at_init_app(setting):
    with pytest.raises(ConfigurationError):
        make_app({**SESSION, **setting})


def test_samesite_none_with_secure_is_accepted():
    client = cookie_app({"JWT_COOKIE_SAMESITE": "None"}).test_client()
    assert set_cookies(cookie_login(client))["access_token"]["samesite"] == "None"


def test_host_prefix_option_names_the_cookies_and_they_work():
    app = cookie_app({"JWT_COOKIE_PREFIX": "__Host-"})
    client = app.test_client()
    login = cookie_login(client)
    cookies = set_cookies(login)
    assert set(cookies) == {"__Host-access_token", "__Host-csrf_token", "__Secure-refresh_token"}
    assert cookies["__Host-access_token"]["path"] == "/" and "domain" not in cookies["__Host-access_token"]
    assert cookies["__Secure-refresh_token"]["path"] == "/auth/"
    csrf = login.get_json()["csrf_token"]
    assert client.get("/protected", base_url=HTTPS).status_code == 200
    assert client.post("/auth/refresh", headers=csrf_header(csrf), base_url=HTTPS).status_code == 200
    out = client.post("/auth/logout", headers=csrf_header(csrf), base_url=HTTPS)
    assert out.status_code == 200 and session_cookies(client) == {}
