"""Where tokens are made: claims, headers, signing.

The default handlers here are Flask-JWT's ``jwt_payload_handler``,
``jwt_headers_handler`` and ``jwt_encode_handler``; every token also gets a
unique ``jti`` and, when configured, ``iss`` and ``aud``.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Mapping
from typing import Any, Dict, Iterable, NamedTuple, Optional, Union

from . import permissions as authz
from . import signals
from .config import TYPE_CLAIM, config, seconds
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


#: Claims that are made anew for every token and never carried over on refresh.
FRESH_CLAIMS = frozenset({"exp", "iat", "nbf", "jti", TYPE_CLAIM, "fresh"})


def identity_claim_value(identity: Any) -> Any:
    """The identity claim's value as it is written into tokens (and revoked)."""
    value = identity_value(identity)
    if config.identity_claim == "sub" and not isinstance(value, str):
        value = str(value)  # RFC 7519: sub is a string (and PyJWT checks it)
    return value


def base_claims(
    identity: Any,
    expires_delta: Any = None,
    *,
    now: Optional[float] = None,
    lifetime_cap: Optional[float] = None,
) -> Dict[str, Any]:
    """``exp``, ``iat``, ``nbf``, ``jti`` and the identity claim of a new token.

    ``lifetime_cap`` is the latest ``exp`` allowed (the end of a session).
    """
    now = int(time.time()) if now is None else int(now)
    lifetime = config.expiration_delta if expires_delta is None else seconds(expires_delta)
    exp = now + int(lifetime)
    if lifetime_cap is not None:
        exp = min(exp, int(lifetime_cap))
    return {
        "exp": exp,
        "iat": now,
        "nbf": now + int(config.not_before_delta),
        "jti": uuid.uuid4().hex,
        config.identity_claim: identity_claim_value(identity),
    }


def session_claims(now: float) -> Dict[str, Any]:
    """A new family: one login and every token refreshed from it."""
    return {"fam": uuid.uuid4().hex, "auth_time": int(now)}


def default_payload_handler(identity: Any) -> Dict[str, Any]:
    """Flask-JWT's payload: ``exp``, ``iat``, ``nbf`` and ``identity`` (plus ``jti``)."""
    return base_claims(identity)


def default_headers_handler(identity: Any) -> Optional[Dict[str, Any]]:
    return None


def sign(payload: Mapping[str, Any], headers: Optional[Dict[str, Any]] = None) -> TokenStr:
    """Add ``jti`` (when missing) and the configured ``iss``/``aud``, then sign."""
    claims = dict(payload)
    claims.setdefault("jti", uuid.uuid4().hex)
    issuer, audience = config.issuer, config.audience
    if issuer is not None:  # the configured values win: the app must accept its own tokens
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    sub = claims.get("sub")
    if sub is not None and not isinstance(sub, str):
        claims["sub"] = str(sub)  # RFC 7519: sub is a string (and PyJWT checks it)
    state = app_state()
    exp, iat = claims.get("exp"), claims.get("iat")
    if isinstance(exp, (int, float)) and isinstance(iat, (int, float)):
        state.note_lifetime(exp - iat)
    keyring = state.keyring()
    token = as_token(keyring.encode(claims, headers))
    state.check_signers(keyring)
    cnf = claims.get("cnf")
    signals.send(
        signals.token_issued,
        identity=claims.get(config.identity_claim),
        token_type=claims.get(TYPE_CLAIM, "access"),
        jti=claims.get("jti"),
        family=claims.get("fam"),
        dpop_jkt=cnf.get("jkt") if isinstance(cnf, dict) else None,
    )
    return token


def _payload(identity: Any) -> Dict[str, Any]:
    payload = app_state().jwt.jwt_payload_callback(identity)
    missing = set(config.required_claims) - set(payload)
    if missing:
        raise RuntimeError("Payload is missing required claims: %s" % ", ".join(sorted(missing)))
    return dict(payload)


def default_encode_handler(identity: Any) -> TokenStr:
    """Flask-JWT's ``jwt_encode_handler``: payload and headers handlers, then sign."""
    return sign(_payload(identity), app_state().jwt.jwt_headers_callback(identity))


class Login(NamedTuple):
    access: TokenStr
    refresh: Optional[TokenStr]
    csrf: Optional[str]
    #: The client key the tokens are bound to (DPoP), if any.
    dpop_jkt: Optional[str] = None


def login_tokens(identity: Any, *, with_refresh: bool, dpop_jkt: Optional[str] = None) -> Login:
    """The access token (fresh) and, when asked, refresh token of a new login.

    Both come from the app's payload handler, so a refresh token carries the
    same claims as the login's access token and refreshing never widens them.
    A custom ``jwt_encode_handler`` makes the access token on its own. With
    cookies on, the session gets a CSRF value bound into its tokens.
    """
    jwt = app_state().jwt
    now = time.time()
    session = session_claims(now)
    if dpop_jkt is not None:  # bound to the client's key (RFC 9449): cnf travels with the session
        session["cnf"] = {"jkt": dpop_jkt}
    if config.uses_cookies:
        session["csrf"] = secrets.token_urlsafe(24)
    headers = jwt.jwt_headers_callback(identity)
    granted = authz.of_identity(identity, jwt.permissions_callback)
    if jwt.jwt_encode_callback is default_encode_handler:
        payload = _payload(identity)
        if granted is not None:
            authz.put(payload, granted, replace=False)
        # The payload handler's own claims (even a "fresh" of its own) are kept;
        # the session and the token type are the extension's, and no token of
        # the session outlives its max age.
        claims = {"fresh": True, **payload, **session, TYPE_CLAIM: "access"}
        session_end = int(now + config.session_max_age)
        if isinstance(claims.get("exp"), (int, float)) and claims["exp"] > session_end:
            claims["exp"] = session_end
        access = sign(claims, headers)
    else:
        payload = {config.identity_claim: identity_claim_value(identity)}
        if granted is not None:
            authz.put(payload, granted)
        access = as_token(jwt.jwt_encode_callback(identity))
    csrf = session.get("csrf")
    if not with_refresh:
        return Login(access, None, csrf, dpop_jkt)
    carried = {k: v for k, v in payload.items() if k not in FRESH_CLAIMS}
    refresh = sign(refresh_claims(carried, session, now), headers)
    return Login(access, refresh, csrf, dpop_jkt)


def refresh_claims(
    carried: Mapping[str, Any], session: Mapping[str, Any], now: float, lifetime: Any = None
) -> Dict[str, Any]:
    """Claims of a refresh token; it never outlives the session's max age."""
    claims = dict(carried)
    claims.update(session)
    claims.update(
        base_claims(
            carried.get(config.identity_claim),
            config.refresh_expiration_delta if lifetime is None else lifetime,
            now=now,
            lifetime_cap=session["auth_time"] + config.session_max_age,
        )
    )
    claims[config.identity_claim] = carried.get(config.identity_claim)
    claims[TYPE_CLAIM] = "refresh"
    return claims


def create_access_token(
    identity: Any,
    *,
    expires_delta: Any = None,
    claims: Optional[Mapping[str, Any]] = None,
    fresh: bool = False,
    permissions: Optional[Iterable[str]] = None,
    dpop_jkt: Optional[str] = None,
) -> TokenStr:
    """A signed access token for ``identity`` (a user object or a plain id).

    ``claims`` adds claims; it cannot replace ``exp``, ``iat``, ``nbf``,
    ``jti``, ``token_type``, ``fresh`` or the identity claim, which this sets.
    ``dpop_jkt`` binds the token to a client key's RFC 7638 thumbprint.
    """
    if not isinstance(fresh, bool):
        raise TypeError("fresh must be True or False, not %r" % (fresh,))
    payload: Dict[str, Any] = dict(claims or {})
    payload.update(base_claims(identity, expires_delta))
    payload[TYPE_CLAIM] = "access"
    payload["fresh"] = bool(fresh)
    if permissions is not None:
        authz.put(payload, permissions)
    if dpop_jkt is not None:
        payload["cnf"] = {"jkt": dpop_jkt}
    return sign(payload, app_state().jwt.jwt_headers_callback(identity))


def create_refresh_token(
    identity: Any,
    *,
    expires_delta: Any = None,
    claims: Optional[Mapping[str, Any]] = None,
    permissions: Optional[Iterable[str]] = None,
) -> TokenStr:
    """A refresh token for ``identity``, starting a new family."""
    now = time.time()
    carried = {k: v for k, v in (claims or {}).items() if k not in FRESH_CLAIMS}
    carried[config.identity_claim] = identity_claim_value(identity)
    if permissions is not None:
        authz.put(carried, permissions)
    payload = refresh_claims(carried, session_claims(now), now, lifetime=expires_delta)
    return sign(payload, app_state().jwt.jwt_headers_callback(identity))
