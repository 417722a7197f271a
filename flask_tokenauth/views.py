"""The routes the extension adds: ``POST /auth`` (login) and, when their
rules are set, refresh and logout.

The login body is read defensively: whatever arrives, the authentication
handler is called with two non-empty strings or not at all, and every
malformed body is a 4xx JSON error.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, Mapping, Optional, Tuple

from flask import current_app, jsonify, request, url_for
from werkzeug.wrappers import Response

from . import dpop, sessions, signals
from .config import config
from .cookies import clear_session_cookies, own_page, set_session_cookies
from .errors import ConfigurationError, JWTError
from .issuing import Login, login_tokens
from .reader import default_request_handler, refresh_token_from_request
from .state import app_state
from .throttle import throttled_login
from .verifying import challenge

logger = logging.getLogger("flask_tokenauth")

#: Largest login body read, and longest username or password accepted.
MAX_LOGIN_BODY_BYTES = 64 * 1024
MAX_CREDENTIAL_CHARS = 4096


def _bad_credentials() -> JWTError:
    # Flask-JWT's answer for every credential problem: 401 "Bad Request".
    return JWTError("Bad Request", "Invalid credentials")


def read_json_object() -> dict:
    """The request body as a JSON object, or a 4xx JWTError saying what is wrong."""
    if not request.is_json:
        raise JWTError(
            "Unsupported Media Type", "Send the body as JSON (Content-Type: application/json)", 415
        )
    length = request.content_length
    if length is not None and length > MAX_LOGIN_BODY_BYTES:
        raise JWTError("Request Entity Too Large", "Request body is too large", 413)
    raw = request.stream.read(MAX_LOGIN_BODY_BYTES + 1)
    if len(raw) > MAX_LOGIN_BODY_BYTES:
        raise JWTError("Request Entity Too Large", "Request body is too large", 413)
    try:
        data = json.loads(raw)
    except RecursionError:
        raise _too_deep() from None
    except ValueError:
        raise JWTError("Bad Request", "Request body is not valid JSON", 400) from None
    if _depth_over(data, MAX_JSON_DEPTH):
        # Python 3.13 parses nesting that earlier versions refuse: one answer for all.
        raise _too_deep()
    if not isinstance(data, dict):
        raise JWTError("Bad Request", "Request body must be a JSON object", 400)
    return data


#: JSON bodies nested deeper than this are refused (a login body is flat).
MAX_JSON_DEPTH = 32


def _too_deep() -> JWTError:
    return JWTError("Bad Request", "Request body is nested too deeply", 400)


def _depth_over(value: Any, limit: int) -> bool:
    """True when ``value`` nests lists or objects more than ``limit`` deep
    (without recursion: the value may be thousands of levels deep)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def read_credentials() -> Tuple[str, str]:
    """Username and password from the login body, as Flask-JWT required them:
    exactly the two configured keys, both non-empty strings."""
    data = read_json_object()
    username = data.get(config.username_key)
    password = data.get(config.password_key)
    if (
        len(data) != 2
        or not isinstance(username, str)
        or not isinstance(password, str)
        or not username
        or not password
        or len(username) > MAX_CREDENTIAL_CHARS
        or len(password) > MAX_CREDENTIAL_CHARS
        or not _encodable(username)
        or not _encodable(password)
    ):
        raise _bad_credentials()
    return username, password


def _encodable(text: str) -> bool:
    """False for strings with lone surrogates, which JSON allows and UTF-8 does not."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def default_auth_request_handler() -> Any:
    """Flask-JWT's login: check credentials, issue a token, build the answer."""
    jwt = app_state().jwt
    username, password = read_credentials()
    if jwt.authentication_callback is None:
        raise ConfigurationError(
            "No authentication handler: pass one to JWT(app, authenticate, identity) "
            "or decorate it with @jwt.authentication_handler"
        )
    jkt = dpop.binding_for_login()  # a bad proof is refused before the password is checked
    identity = throttled_login(username, lambda: jwt.authentication_callback(username, password))
    if not identity:
        logger.info("login refused: invalid credentials")
        signals.send(signals.login_failed, username=username, address=request.remote_addr)
        raise _bad_credentials()
    login = login_tokens(identity, with_refresh=bool(config.refresh_url_rule), dpop_jkt=jkt)
    answer = jwt.auth_response_callback(login.access, identity)
    if login.refresh is None and login.csrf is None and jkt is None:
        return answer
    return _deliver(current_app.make_response(answer), login, bound=jkt is not None)


def _deliver(response: Response, login: Login, bound: bool = False) -> Response:
    """Add the refresh token and CSRF value to a JSON answer (and
    ``"token_type": "DPoP"`` for tokens bound to a key), and set cookies when
    tokens travel in cookies."""
    extra: Dict[str, str] = {}
    if bound:
        extra["token_type"] = "DPoP"
    if login.refresh is not None and not _cookies_only():
        extra["refresh_token"] = str(login.refresh)
    if login.csrf is not None:
        extra["csrf_token"] = login.csrf
    body = response.get_json(silent=True) if response.is_json else None
    if isinstance(body, dict) and extra:
        response.set_data(json.dumps({**extra, **body}))
    if config.uses_cookies:
        set_session_cookies(response, login.access, login.refresh, login.csrf)
    return response


def login_answer(identity: Any, body: Optional[Mapping[str, Any]] = None) -> Response:
    """What the login route answers once ``identity`` is authenticated, for a
    login view of the app's own: one session's tokens (the refresh token too
    when the refresh route is on), in the body and/or cookies as configured,
    with the CSRF value and a DPoP binding as the login route makes them.
    ``body`` adds fields to the JSON answer."""
    jkt = dpop.binding_for_login()
    login = login_tokens(identity, with_refresh=bool(config.refresh_url_rule), dpop_jkt=jkt)
    answer = {**_access_body(login.access), **(body or {})}
    return no_store(_deliver(jsonify(answer), login, bound=jkt is not None))


def _cookies_only() -> bool:
    """Tokens travel only in HttpOnly cookies: keep them out of answer bodies."""
    return config.token_locations == ("cookies",)


def _access_body(access_token: Any) -> Dict[str, Any]:
    """The login answer's own field: the access token, unless tokens travel
    only in HttpOnly cookies."""
    return {} if _cookies_only() else {"access_token": access_token.decode("utf-8")}


def default_auth_response_handler(access_token: Any, identity: Any) -> Any:
    return jsonify(_access_body(access_token))


def refresh_view() -> Response:
    """``POST <JWT_REFRESH_URL_RULE>``: spend a refresh token, answer its successors.

    The refresh token comes in the ``Authorization`` header (with the
    configured prefix), the refresh cookie, or JSON ``{"refresh_token": ...}``.
    """
    jwt = app_state().jwt
    try:
        if jwt.request_callback is default_request_handler:
            token = refresh_token_from_request()
        else:
            token = jwt.request_callback()
        if token is None and request.content_length:
            token = read_json_object().get("refresh_token")
        if not isinstance(token, str) or not token:
            raise JWTError("Authorization Required", "Request does not contain a refresh token")
        login = sessions.rotate(token)
    except JWTError as error:
        raise challenge(error, config.realm) from None
    body = {} if _cookies_only() else {"access_token": str(login.access)}
    response = no_store(jsonify(body))
    return _deliver(response, login, bound=login.dpop_jkt is not None)


def logout_view() -> Response:
    """``POST <JWT_LOGOUT_URL_RULE>``: end the session from whatever the request
    still holds (a live or expired access token, the refresh token in its
    cookie or in JSON ``{"refresh_token": ...}``) and clear the token cookies.

    With nothing valid, a request from the app's own page (it carries the
    CSRF header, equal to the CSRF cookie) still gets its cookies cleared and
    a 200; anything else is refused as before, and clears nothing: another
    site must never be able to log a user out.
    """
    body_token = None
    if request.content_length and request.is_json:
        found = read_json_object().get("refresh_token")
        body_token = found if isinstance(found, str) and found else None
    try:
        sessions.end_session(body_token)
    except JWTError as error:
        if error.status_code != 401 or not (config.uses_cookies and own_page()):
            raise challenge(error, config.realm) from None
    response = no_store(jsonify(message="Logged out"))
    return clear_session_cookies(response) if config.uses_cookies else response


def jwks_view() -> Response:
    """``GET <JWT_JWKS_URL_RULE>``: the public keys, as a JWK Set."""
    response = jsonify(app_state().keyring().jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


#: Where OpenID Connect clients look for an issuer's metadata (OIDC Discovery 1.0, section 4).
DISCOVERY_PATH = "/.well-known/openid-configuration"


def discovery_view() -> Response:
    """``GET /.well-known/openid-configuration``: this app as an issuer (its
    ``JWT_ISSUER`` and where its JWK Set is), for services that verify its
    tokens with ``JWT_OIDC_ISSUER``."""
    issuer = config.issuer
    document = {
        "issuer": issuer,
        "jwks_uri": url_for("jwt_jwks", _external=True),
        "id_token_signing_alg_values_supported": sorted(
            {key.algorithm for key in app_state().keyring().keys if key.verifying is not None}
        ),
    }
    response = jsonify(document)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def no_store(response: Response) -> Response:
    """Token answers must not be cached (RFC 6749 section 5.1)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def login_view() -> Response:
    """The view behind ``JWT_AUTH_URL_RULE``."""
    return no_store(current_app.make_response(app_state().jwt.auth_request_callback()))
