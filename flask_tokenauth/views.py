"""The routes the extension adds: ``POST /auth`` (login).

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

from .config import config
from .errors import ConfigurationError, JWTError
from .issuing import as_token
from .state import app_state

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
    ):
        raise _bad_credentials()
    return username, password


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
    access_token = as_token(jwt.jwt_encode_callback(identity))
    return jwt.auth_response_callback(access_token, identity)


def default_auth_response_handler(access_token: Any, identity: Any) -> Any:
    return jsonify({"access_token": access_token.decode("utf-8")})


def no_store(response: Response) -> Response:
    """Token answers must not be cached (RFC 6749 section 5.1)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def login_view() -> Response:
    """The view behind ``JWT_AUTH_URL_RULE``."""
    return no_store(current_app.make_response(app_state().jwt.auth_request_callback()))
