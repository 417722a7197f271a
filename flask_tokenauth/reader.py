"""Where a token is read from the request (the only module that looks).

Flask-JWT's ``request_handler`` contract: return the token string, ``None``
when the request carries none, or raise :class:`JWTError` for a malformed
``Authorization`` header.
"""

from __future__ import annotations

from typing import Optional

from flask import request

from .config import config
from .errors import JWTError


def _header_error(description: str, oauth_error: Optional[str]) -> JWTError:
    # The WWW-Authenticate challenge is added where the route's realm is known.
    error = JWTError("Invalid JWT header", description)
    error.oauth_error = oauth_error
    return error


def default_request_handler() -> Optional[str]:
    """The token from ``Authorization: <JWT_AUTH_HEADER_PREFIX> <token>``."""
    value = request.headers.get("Authorization")
    if not value:
        return None
    # Only ASCII space and tab separate the scheme from the token (RFC 9110);
    # str.split() would also split on Unicode and control "white space".
    parts = value.replace("\t", " ").split(" ")
    parts = [part for part in parts if part]
    if not parts:  # only white space: no credentials were sent
        return None
    prefix = config.header_prefix
    if parts[0].lower() != prefix.lower():
        raise _header_error("Unsupported authorization type", None)
    if len(parts) == 1:
        raise _header_error("Token missing", "invalid_request")
    if len(parts) > 2:
        raise _header_error("Token contains spaces", "invalid_request")
    return parts[1]
