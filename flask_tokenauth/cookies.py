"""Tokens in cookies: setting and clearing them, and the CSRF check they need.

With ``"cookies"`` in ``JWT_TOKEN_LOCATION``, login and refresh answers set
the access token (path: where the app is mounted) and the refresh token
(path: the refresh and logout routes only) as ``HttpOnly`` cookies, plus a
CSRF cookie that scripts can read. A request
authenticated by cookie with a state-changing method must echo that value in
the ``X-CSRF-Token`` header: the double-submit pattern, with the expected
value bound into the signed token rather than trusted from a cookie.
"""

from __future__ import annotations

import hmac
from typing import Any, Dict, List, Mapping, Optional

from flask import request
from werkzeug.wrappers import Response

from .config import DEFAULTS, config, cookie_name
from .errors import ConfigurationError, JWTError
from .reader import came_from_cookie, csrf_header


def _options(path: str, max_age: Optional[int]) -> Dict[str, Any]:
    return {
        "max_age": max_age,
        "path": path,
        "domain": config.get("JWT_COOKIE_DOMAIN"),
        "secure": bool(config.get("JWT_COOKIE_SECURE")),
        "samesite": config.get("JWT_COOKIE_SAMESITE"),
    }


def _mount() -> str:
    """Where the app lives on its host: ``JWT_COOKIE_PATH``, else the WSGI
    ``SCRIPT_NAME`` (an app under ``DispatcherMiddleware`` or a prefix)."""
    explicit = config.get("JWT_COOKIE_PATH")
    mount = explicit if explicit is not None else request.script_root
    return mount.rstrip("/")


def access_cookie_path() -> str:
    """The access and CSRF cookies go to every route of the app (``__Host-``
    cookies must have ``Path=/``)."""
    if config.cookie_prefix == "__Host-":
        return "/"
    return _mount() or "/"


def refresh_cookie_paths() -> List[str]:
    """Where the refresh cookie goes: the refresh and logout routes and no
    ordinary route. One path when the two routes share a folder (``/auth/``
    for ``/auth/refresh`` and ``/auth/logout``: not even the login route
    ``/auth`` gets it); else one cookie per route."""
    rules = [rule for rule in (config.refresh_url_rule, config.get("JWT_LOGOUT_URL_RULE")) if rule]
    if not rules:
        return [_mount() or "/"]
    split = [[part for part in rule.split("/") if part] for rule in rules]
    common: List[str] = []
    for parts in zip(*split):
        if len(set(parts)) != 1 or "<" in parts[0]:
            break
        common.append(parts[0])
    if common:
        return [_mount() + "/" + "/".join(common) + "/"]
    return [_mount() + "/" + "/".join(parts) for parts in split]


def set_session_cookies(
    response: Response, access: str, refresh: Optional[str], csrf: Optional[str]
) -> Response:
    """Put a login's (or a refresh's) tokens and CSRF value into cookies."""
    access_age = int(config.expiration_delta)
    here = access_cookie_path()
    response.set_cookie(config.access_cookie_name, access, httponly=True, **_options(here, access_age))
    if refresh is not None:
        refresh_age = int(config.refresh_expiration_delta)
        for path in refresh_cookie_paths():
            response.set_cookie(
                config.refresh_cookie_name, refresh, httponly=True, **_options(path, refresh_age)
            )
    if csrf is not None:
        age = int(config.refresh_expiration_delta) if refresh is not None else access_age
        response.set_cookie(config.csrf_cookie_name, csrf, httponly=False, **_options(here, age))
    return response


def clear_session_cookies(response: Response) -> Response:
    """Expire every cookie the extension sets (logout)."""
    here = access_cookie_path()
    places = [(config.access_cookie_name, here), (config.csrf_cookie_name, here)]
    places += [(config.refresh_cookie_name, path) for path in refresh_cookie_paths()]
    for name, path in places:
        options = _options(path, None)
        response.delete_cookie(
            name, path=path, domain=options["domain"], secure=options["secure"],
            samesite=options["samesite"],
        )
    return response


def own_page() -> bool:
    """The request comes from the app's own page: it carries the CSRF header,
    equal to the CSRF cookie when there is one. Another site can make the
    browser post a form, but not add a header (unless the app allows
    credentialed CORS from it)."""
    sent = csrf_header()
    if not sent:
        return False
    cookie = request.cookies.get(config.csrf_cookie_name)
    return cookie is None or _same(sent, cookie)


def _same(sent: str, expected: str) -> bool:
    return hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


def check_cookie_settings(conf: Mapping[str, Any]) -> None:
    """Cookie settings a browser would refuse, as a ConfigurationError at
    init_app (else login answers 200, the browser drops the cookies, and every
    later request is a 401)."""

    def get(key: str) -> Any:
        return conf.get(key, DEFAULTS.get(key))

    samesite, secure = get("JWT_COOKIE_SAMESITE"), bool(get("JWT_COOKIE_SECURE"))
    if samesite is not None and str(samesite).title() not in ("Strict", "Lax", "None"):
        raise ConfigurationError('JWT_COOKIE_SAMESITE %r: use "Strict", "Lax", "None" or None' % (samesite,))
    if samesite is not None and str(samesite).title() == "None" and not secure:
        raise ConfigurationError(
            'JWT_COOKIE_SAMESITE = "None" needs JWT_COOKIE_SECURE = True: browsers drop '
            "SameSite=None cookies that are not Secure"
        )
    if get("JWT_COOKIE_PREFIX") not in (None, "", "__Host-", "__Secure-"):
        raise ConfigurationError(
            'JWT_COOKIE_PREFIX %r: use "__Host-", "__Secure-" or None' % (get("JWT_COOKIE_PREFIX"),)
        )
    for key in ("JWT_ACCESS_COOKIE_NAME", "JWT_CSRF_COOKIE_NAME", "JWT_REFRESH_COOKIE_NAME"):
        name = cookie_name(get, key)
        where = "%s %r" % (key, name)
        if name.startswith(("__Host-", "__Secure-")) and not secure:
            raise ConfigurationError(
                "%s: a prefixed cookie must be Secure (JWT_COOKIE_SECURE = True)" % where
            )
        if not name.startswith("__Host-"):
            continue
        if get("JWT_COOKIE_DOMAIN"):
            raise ConfigurationError("%s: a __Host- cookie cannot have a Domain (JWT_COOKIE_DOMAIN)" % where)
        if key == "JWT_REFRESH_COOKIE_NAME" or get("JWT_COOKIE_PATH") not in (None, "", "/"):
            raise ConfigurationError(
                "%s: a __Host- cookie must have Path=/, and the refresh cookie's path is its "
                'route (JWT_COOKIE_PREFIX = "__Host-" gives the refresh cookie __Secure-)' % where
            )


def check_csrf(claims: Dict[str, Any], *, from_cookie: Optional[bool] = None) -> None:
    """For a cookie-borne token on a state-changing request, require the
    CSRF header to match the value bound into the token (401 otherwise).
    ``from_cookie`` says where the token came from (default: what the reader
    noted for this request)."""
    if from_cookie is None:
        from_cookie = came_from_cookie()
    if not from_cookie or request.method not in config.csrf_methods:
        return
    expected = claims.get("csrf")
    sent = csrf_header()
    if not isinstance(expected, str) or not sent or not _same(sent, expected):
        error = JWTError(
            "Invalid CSRF token",
            "A token sent in a cookie needs the %s header with the login's CSRF value "
            "for %s requests" % (config.csrf_header_name, request.method),
        )
        error.oauth_error = "invalid_request"
        raise error
