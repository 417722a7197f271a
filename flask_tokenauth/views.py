"""The routes the extension adds: ``POST /auth`` (login) and, when their
rules are set, refresh and logout.

The login body is read defensively: whatever arrives, the authentication
handler is called with two non-empty strings or not at all, and every
malformed body is a 4xx JSON error.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Tuple

from flask import current_app, jsonify, request
from werkzeug.wrappers import Response

from . import revocation, sessions
from .config import config
from .errors import ConfigurationError, JWTError
from .issuing import login_tokens
from .state import app_state
from .verifying import challenge, verify_jwt_in_request

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
    except (ValueError, RecursionError):
        raise JWTError("Bad Request", "Request body is not valid JSON", 400) from None
    if not isinstance(data, dict):
        raise JWTError("Bad Request", "Request body must be a JSON object", 400)
    return data


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
    identity = jwt.authentication_callback(username, password)
    if not identity:
        logger.info("login refused: invalid credentials")
        raise _bad_credentials()
    access_token, refresh_token = login_tokens(identity, with_refresh=bool(config.refresh_url_rule))
    answer = jwt.auth_response_callback(access_token, identity)
    if refresh_token is None:
        return answer
    response = current_app.make_response(answer)
    body = response.get_json(silent=True) if response.is_json else None
    if isinstance(body, dict) and "refresh_token" not in body:
        body["refresh_token"] = str(refresh_token)
        response.set_data(json.dumps(body))
    return response


def default_auth_response_handler(access_token: Any, identity: Any) -> Any:
    return jsonify({"access_token": access_token.decode("utf-8")})


def refresh_view() -> Response:
    """``POST <JWT_REFRESH_URL_RULE>``: spend a refresh token, answer its successors.

    The refresh token comes in the ``Authorization`` header (with the
    configured prefix) or as JSON ``{"refresh_token": ...}``.
    """
    jwt = app_state().jwt
    try:
        token = jwt.request_callback()
        if token is None and request.content_length:
            token = read_json_object().get("refresh_token")
        if not isinstance(token, str) or not token:
            raise JWTError("Authorization Required", "Request does not contain a refresh token")
        access, refresh = sessions.rotate(token)
    except JWTError as error:
        raise challenge(error, config.realm) from None
    return no_store(jsonify(access_token=str(access), refresh_token=str(refresh)))


def logout_view() -> Response:
    """``POST <JWT_LOGOUT_URL_RULE>``: revoke the presented access token and its family."""
    claims = verify_jwt_in_request()
    if claims is not None:
        revocation.revoke_claims(claims)
    return no_store(jsonify(message="Logged out"))


def no_store(response: Response) -> Response:
    """Token answers must not be cached (RFC 6749 section 5.1)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def login_view() -> Response:
    """The view behind ``JWT_AUTH_URL_RULE``."""
    return no_store(current_app.make_response(app_state().jwt.auth_request_callback()))
