"""Tokens in cookies: setting and clearing them, and the CSRF check they need.

With ``"cookies"`` in ``JWT_TOKEN_LOCATION``, login and refresh answers set
the access token (path ``/``) and the refresh token (path: the refresh route)
as ``HttpOnly`` cookies, plus a CSRF cookie that scripts can read. A request
authenticated by cookie with a state-changing method must echo that value in
the ``X-CSRF-Token`` header: the double-submit pattern, with the expected
value bound into the signed token rather than trusted from a cookie.
"""

from __future__ import annotations

import hmac
from typing import Any, Dict, Optional

from flask import request
from werkzeug.wrappers import Response

from .config import config
from .errors import JWTError
from .reader import came_from_cookie, csrf_header


def _options(path: str, max_age: Optional[int]) -> Dict[str, Any]:
    return {
        "max_age": max_age,
        "path": path,
        "domain": config.get("JWT_COOKIE_DOMAIN"),
        "secure": bool(config.get("JWT_COOKIE_SECURE")),
        "samesite": config.get("JWT_COOKIE_SAMESITE"),
    }


def refresh_cookie_path() -> str:
    return config.refresh_url_rule or "/"


def set_session_cookies(
    response: Response, access: str, refresh: Optional[str], csrf: Optional[str]
) -> Response:
    """Put a login's (or a refresh's) tokens and CSRF value into cookies."""
    access_age = int(config.expiration_delta)
    response.set_cookie(config.access_cookie_name, access, httponly=True, **_options("/", access_age))
    if refresh is not None:
        refresh_age = int(config.refresh_expiration_delta)
        response.set_cookie(
            config.refresh_cookie_name, refresh, httponly=True,
            **_options(refresh_cookie_path(), refresh_age),
        )
    if csrf is not None:
        age = int(config.refresh_expiration_delta) if refresh is not None else access_age
        response.set_cookie(config.csrf_cookie_name, csrf, httponly=False, **_options("/", age))
    return response


def clear_session_cookies(response: Response) -> Response:
    """Expire every cookie the extension sets (logout)."""
    for name, path in (
        (config.access_cookie_name, "/"),
        (config.refresh_cookie_name, refresh_cookie_path()),
        (config.csrf_cookie_name, "/"),
    ):
        options = _options(path, None)
        response.delete_cookie(
            name, path=path, domain=options["domain"], secure=options["secure"],
            samesite=options["samesite"],
        )
    return response


def check_csrf(claims: Dict[str, Any]) -> None:
    """For a cookie-borne token on a state-changing request, require the
    CSRF header to match the value bound into the token (401 otherwise)."""
    if not came_from_cookie() or request.method not in config.csrf_methods:
        return
    expected = claims.get("csrf")
    sent = csrf_header()
    if (
        not isinstance(expected, str)
        or not sent
        or not hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))
    ):
        error = JWTError(
            "Invalid CSRF token",
            "A token sent in a cookie needs the %s header with the login's CSRF value "
            "for %s requests" % (config.csrf_header_name, request.method),
        )
        error.oauth_error = "invalid_request"
        raise error
