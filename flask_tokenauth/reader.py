"""Where a token is read from the request (the only module that looks).

Flask-JWT's ``request_handler`` contract: return the token string, ``None``
when the request carries none, or raise :class:`JWTError` for a malformed
``Authorization`` header. ``JWT_TOKEN_LOCATION`` says where to look, in
order: ``"headers"`` (the default), ``"cookies"``, ``"query_string"``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from flask import current_app, request

from .config import DEFAULTS, config
from .errors import JWTError

#: Set in the request's environ when the token came from a cookie, so that
#: verification knows to ask for the CSRF header.
FROM_COOKIE_KEY = "flask_tokenauth.from_cookie"
#: The Authorization scheme the token came with ("jwt", "bearer", "dpop").
SCHEME_KEY = "flask_tokenauth.scheme"


def _header_error(description: str, oauth_error: Optional[str]) -> JWTError:
    # The WWW-Authenticate challenge is added where the route's realm is known.
    error = JWTError("Invalid JWT header", description)
    error.oauth_error = oauth_error
    return error


def token_from_header() -> Optional[str]:
    """The token from ``Authorization: <JWT_AUTH_HEADER_PREFIX> <token>`` or
    ``Authorization: Bearer <token>``."""
    return _token_from_header(request.environ, current_app.config)


def _token_from_header(environ: Dict[str, Any], conf: Mapping[str, Any]) -> Optional[str]:
    value = environ.get("HTTP_AUTHORIZATION")  # what request.headers["Authorization"] reads
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme and token and "\t" not in value and " " not in token:
        parts = [scheme, token]  # the common case: "<scheme> <token>"
    else:
        # Only ASCII space and tab separate the scheme from the token (RFC 9110);
        # str.split() would also split on Unicode and control "white space".
        parts = [part for part in value.replace("\t", " ").split(" ") if part]
        if not parts:  # only white space: no credentials were sent
            return None
    # Flask-JWT's scheme (JWT_AUTH_HEADER_PREFIX), and RFC 6750's Bearer,
    # which every OAuth client, Swagger UI and Postman send.
    scheme = parts[0].lower()
    prefix = conf.get("JWT_AUTH_HEADER_PREFIX", DEFAULTS["JWT_AUTH_HEADER_PREFIX"])
    if scheme != prefix.lower() and scheme not in ("bearer", "dpop"):
        raise _header_error("Unsupported authorization type", None)
    environ[SCHEME_KEY] = scheme
    if len(parts) == 1:
        raise _header_error("Token missing", "invalid_request")
    if len(parts) > 2:
        raise _header_error("Token contains spaces", "invalid_request")
    return parts[1]


def _from_cookie(name: str) -> Optional[str]:
    token = request.cookies.get(name)
    if token:
        request.environ[FROM_COOKIE_KEY] = True
        return token
    return None


def _find(cookie_name: str, *, query: bool) -> Optional[str]:
    for location in config.token_locations:
        if location == "headers":
            token = token_from_header()
        elif location == "cookies":
            token = _from_cookie(cookie_name)
        elif location == "query_string" and query:
            token = request.args.get(config.query_string_name) or None
        else:
            continue
        if token is not None:
            return token
    return None


def default_request_handler() -> Optional[str]:
    """The request's access token, from the configured locations in order."""
    conf = current_app.config
    locations = conf.get("JWT_TOKEN_LOCATION", DEFAULTS["JWT_TOKEN_LOCATION"])
    if locations == ["headers"] or locations == "headers":
        return _token_from_header(request.environ, conf)
    return _find(config.access_cookie_name, query=True)


def refresh_token_from_request() -> Optional[str]:
    """The refresh token from the header or the refresh cookie, as configured
    (the refresh route also reads JSON ``{"refresh_token": ...}``)."""
    return _find(config.refresh_cookie_name, query=False)


def session_tokens() -> List[Tuple[str, bool]]:
    """Every token the request holds, for logout: ``(token, came from a cookie)``.

    The access token where the request handler finds it (header, cookie, query
    string), the access and refresh cookies, and the header token again when
    it is a refresh token; duplicates once. A malformed ``Authorization``
    header raises, as for any route.
    """
    found: List[Tuple[str, bool]] = []
    jwt_request = _app_request_handler()
    if jwt_request is not None:  # an app's own request handler: only what it returns
        token = jwt_request()
        return [(token, came_from_cookie())] if token else []
    locations = config.token_locations
    if "headers" in locations:
        token = token_from_header()
        if token:
            found.append((token, False))
    if "cookies" in locations:
        for name in (config.access_cookie_name, config.refresh_cookie_name):
            token = request.cookies.get(name)
            if token:
                found.append((token, True))
    if "query_string" in locations:
        token = request.args.get(config.query_string_name)
        if token:
            found.append((token, False))
    unique: List[Tuple[str, bool]] = []
    for token, cookie in found:
        if all(token != seen for seen, _ in unique):
            unique.append((token, cookie))
    return unique


def _app_request_handler() -> Any:
    from .state import app_state

    handler = app_state().jwt.request_callback
    return None if handler is default_request_handler else handler


def scheme(environ: Optional[Mapping[str, Any]] = None) -> Optional[str]:
    """The ``Authorization`` scheme of the request's token (lowercased), if it came in that header."""
    if environ is None:
        environ = request.environ
    return None if environ.get(FROM_COOKIE_KEY) else environ.get(SCHEME_KEY)


def came_from_cookie() -> bool:
    return bool(request.environ.get(FROM_COOKIE_KEY))


def csrf_header() -> Optional[str]:
    return request.headers.get(config.csrf_header_name)
