"""Errors, and the one place where an error becomes a response.

Every refusal is a :class:`JWTError`, a werkzeug ``HTTPException``: Flask
renders it from any view, and Flask-RESTful, which answers ``500`` for
exceptions it does not know, hands HTTP exceptions that carry their own
response straight back. The body is always
``{"status_code", "error", "description"}``.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, Mapping, Optional

from flask import current_app, has_app_context, has_request_context, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

logger = logging.getLogger("flask_tokenauth")

_RENDERED_KEY = "flask_tokenauth.rendered_errors"


class JWTError(HTTPException):
    """A refused request: ``error`` is a short title, ``description`` says why.

    The constructor is Flask-JWT's: ``JWTError(error, description,
    status_code=401, headers=None)``. ``oauth_error`` is the RFC 6750 error
    code (``invalid_token``...) put into the ``WWW-Authenticate`` challenge.
    """

    oauth_error: Optional[str] = None

    def __init__(
        self,
        error: str,
        description: str,
        status_code: int = 401,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        super().__init__(description=description)
        self.error = error
        self.status_code = status_code
        self.headers = dict(headers) if headers else None
        self._explicit: Optional[Response] = None

    # werkzeug reads ``code``; Flask-JWT code reads ``status_code``.
    @property  # type: ignore[override]
    def code(self) -> int:  # type: ignore[override]
        return self.status_code

    @code.setter
    def code(self, value: int) -> None:
        self.status_code = value

    # Flask-RESTful returns ``e.get_response()`` as it is when ``e.response``
    # is set; exposing the rendered response here is what keeps our JSON body
    # (and the app's error handlers) in charge inside Resources.
    @property  # type: ignore[override]
    def response(self) -> Optional[Response]:  # type: ignore[override]
        return self.get_response()

    @response.setter
    def response(self, value: Optional[Response]) -> None:
        self._explicit = value

    def get_response(self, environ: Any = None, scope: Any = None) -> Response:
        """The rendered error, made once per request.

        Kept in the request's environ, never on the error itself: an app may
        raise one shared JWTError instance, and a response (with its cookies)
        must never travel from one request to another.
        """
        if self._explicit is not None:
            return self._explicit
        if not has_request_context():
            return render_error(self)
        rendered = request.environ.setdefault(_RENDERED_KEY, {})
        found = rendered.get(id(self))
        if found is None or found[0] is not self:
            found = rendered[id(self)] = (self, render_error(self))
        return found[1]

    def with_headers(self, headers: Mapping[str, str]) -> JWTError:
        """A copy of this error with ``headers`` added (the original is untouched)."""
        copy = type(self).__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.args = self.args
        copy.headers = {**(self.headers or {}), **headers}
        return copy

    def get_body(self, environ: Any = None, scope: Any = None) -> str:
        return json.dumps(error_body(self))

    def get_headers(self, environ: Any = None, scope: Any = None) -> list:
        return [("Content-Type", "application/json"), *(self.headers or {}).items()]

    def __repr__(self) -> str:
        return "JWTError: %s" % self.error

    def __str__(self) -> str:
        return "%s. %s" % (self.error, self.description)


class ConfigurationError(RuntimeError):
    """The app's JWT settings cannot work (a missing secret, a key that does
    not fit the algorithm). A server fault, raised early with a clear message."""


class StoreUnavailable(JWTError):
    """The token store cannot be reached: refuse (503) rather than guess."""

    def __init__(self, description: str = "The token store is unreachable") -> None:
        super().__init__("Service Unavailable", description, 503, {"Retry-After": "1"})


def error_body(error: JWTError) -> Dict[str, Any]:
    return {
        "status_code": error.status_code,
        "error": error.error,
        "description": error.description,
    }


def default_error_handler(error: JWTError) -> Any:
    """Flask-JWT's default ``jwt_error_handler``: a JSON body, status, headers."""
    logger.info("refused (%s): %s. %s", error.status_code, error.error, error.description)
    return jsonify(error_body(error)), error.status_code, error.headers


def render_error(error: JWTError) -> Response:
    """Turn ``error`` into a response through the app's ``jwt_error_handler``."""
    if has_app_context():
        handler = _app_error_handler(error)
        if handler is None:
            ext = current_app.extensions.get("jwt")
            handler = getattr(ext, "jwt_error_callback", None) or default_error_handler
        return current_app.make_response(handler(error))
    response = Response(
        json.dumps(error_body(error)), error.status_code, mimetype="application/json"
    )
    for name, value in (error.headers or {}).items():
        response.headers[name] = value
    return response


def _app_error_handler(error: JWTError) -> Any:
    """A handler the app registered for JWTError itself (``@app.errorhandler``),
    so that Flask-RESTful resources honour it as plain views do."""
    find = getattr(current_app, "_find_error_handler", None)
    if find is None or not has_request_context():
        return None
    try:
        handler = find(error, request.blueprints)
    except TypeError:  # an older Flask signature
        return None
    return None if handler is None or handler is render_error else handler
