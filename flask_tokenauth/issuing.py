"""Where tokens are made: claims, headers, signing.

The default handlers here are Flask-JWT's ``jwt_payload_handler``,
``jwt_headers_handler`` and ``jwt_encode_handler``; every token also gets a
unique ``jti`` and, when configured, ``iss`` and ``aud``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any, Dict, Optional, Union

from .config import config, seconds
from .state import app_state

_MISSING = object()


class TokenStr(str):
    """A token string that still answers ``.decode('utf-8')``.

    Flask-JWT ran on PyJWT 1, whose tokens were bytes; response handlers
    written for it call ``access_token.decode('utf-8')``.
    """

    __slots__ = ()

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return str(self)


def as_token(value: Union[str, bytes]) -> TokenStr:
    if isinstance(value, bytes):
        value = value.decode("ascii")
    return TokenStr(value)


def identity_value(identity: Any) -> Any:
    """What goes into the identity claim: ``identity.id``, ``identity["id"]``,
    or the identity itself when it is a plain value such as a user id."""
    if isinstance(identity, Mapping):
        return identity.get("id", identity)
    value = getattr(identity, "id", _MISSING)
    return identity if value is _MISSING else value


def base_claims(identity: Any, expires_delta: Any = None) -> Dict[str, Any]:
    """``exp``, ``iat``, ``nbf``, ``jti`` and the identity claim of a new token."""
    now = int(time.time())
    lifetime = config.expiration_delta if expires_delta is None else seconds(expires_delta)
    return {
        "exp": now + int(lifetime),
        "iat": now,
        "nbf": now + int(config.not_before_delta),
        "jti": uuid.uuid4().hex,
        config.identity_claim: identity_value(identity),
    }


def default_payload_handler(identity: Any) -> Dict[str, Any]:
    """Flask-JWT's payload: ``exp``, ``iat``, ``nbf`` and ``identity`` (plus ``jti``)."""
    return base_claims(identity)


def default_headers_handler(identity: Any) -> Optional[Dict[str, Any]]:
    return None


def sign(payload: Mapping[str, Any], headers: Optional[Dict[str, Any]] = None) -> TokenStr:
    """Add ``jti``/``iss``/``aud`` where missing, then sign with the app's key."""
    claims = dict(payload)
    claims.setdefault("jti", uuid.uuid4().hex)
    issuer, audience = config.issuer, config.audience
    if issuer is not None:
        claims.setdefault("iss", issuer)
    if audience is not None:
        claims.setdefault("aud", audience)
    return as_token(app_state().keyring().encode(claims, headers))


def default_encode_handler(identity: Any) -> TokenStr:
    """Flask-JWT's ``jwt_encode_handler``: payload and headers handlers, then sign."""
    jwt = app_state().jwt
    payload = jwt.jwt_payload_callback(identity)
    missing = set(config.required_claims) - set(payload)
    if missing:
        raise RuntimeError("Payload is missing required claims: %s" % ", ".join(sorted(missing)))
    return sign(payload, jwt.jwt_headers_callback(identity))


def create_access_token(
    identity: Any,
    *,
    expires_delta: Any = None,
    claims: Optional[Mapping[str, Any]] = None,
) -> TokenStr:
    """A signed access token for ``identity`` (a user object or a plain id).

    ``claims`` adds claims; it cannot replace ``exp``, ``iat``, ``nbf``,
    ``jti`` or the identity claim, which this function sets.
    """
    payload: Dict[str, Any] = dict(claims or {})
    payload.update(base_claims(identity, expires_delta))
    return sign(payload, app_state().jwt.jwt_headers_callback(identity))
