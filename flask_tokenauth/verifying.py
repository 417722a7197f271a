"""Where a token is verified, and who the request is made by.

``verify_jwt_in_request`` is the whole check; ``jwt_required`` wraps a view in
it; ``current_identity`` and ``current_token`` expose its result for the rest
of the request. A token that verified once is kept in a small per-app cache
keyed by its exact string, so later requests with it skip the signature check
(its expiry is still checked on every request).
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
import time
from typing import Any, Callable, Dict, Iterable, Optional, TypeVar, Union, cast

from flask import current_app, has_request_context, request
from werkzeug.local import LocalProxy

from . import signals
from .codec import InvalidSignatureError, InvalidTokenError
from .config import DEFAULTS, TYPE_CLAIM, config
from .cookies import check_csrf
from .dpop import check_request as dpop_check
from .errors import JWTError
from .permissions import require as require_permissions
from .reader import FROM_COOKIE_KEY
from .reader import scheme as request_scheme
from .revocation import check_not_revoked, identity_of
from .state import AppState, app_state

logger = logging.getLogger("flask_tokenauth")

F = TypeVar("F", bound=Callable[..., Any])

_ENVIRON_KEY = "flask_tokenauth.verified"
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
#: What hostile input can make a decoder raise besides InvalidTokenError.
_DECODE_ERRORS = (InvalidTokenError, ValueError, TypeError, KeyError, UnicodeError, OverflowError)
#: What an identity handler raises when claims it needs are missing or malformed.
_IDENTITY_ERRORS = (LookupError, TypeError, ValueError)


def challenge(error: JWTError, realm: str, oauth_error: Optional[str] = None) -> JWTError:
    """The error with its RFC 6750 ``WWW-Authenticate`` challenge (a copy, so
    an error instance an app raises repeatedly is never changed).
    ``oauth_error`` is the error code when the error names none itself."""
    headers = error.headers or {}
    if error.status_code != 401 or "WWW-Authenticate" in headers:
        return error
    value = '%s realm="%s"' % (config.header_prefix, realm)
    code = error.oauth_error or oauth_error
    if code:
        text = "".join(c if " " <= c <= "~" and c not in '"\\' else "'" for c in str(error.description))
        value += ', error="%s", error_description="%s"' % (code, text)
    return error.with_headers({"WWW-Authenticate": value})


def invalid(error: str, description: str) -> JWTError:
    refused = JWTError(error, description)
    refused.oauth_error = "invalid_token"
    return refused


def default_decode_handler(token: str, *, verify_exp: bool = True) -> Dict[str, Any]:
    """Flask-JWT's ``jwt_decode_handler``: verify signature and claims, return them.

    An outside issuer's token needs only ``exp`` (identity providers put no
    ``nbf`` in theirs) unless the app set ``JWT_REQUIRED_CLAIMS`` itself, and
    the ``typ`` that ``JWT_ACCESS_TOKEN_TYPE`` names when that is set."""
    state = app_state()
    required = config.required_claims
    return state.keyring().decode(
        token,
        required_claims=required,
        leeway=config.leeway,
        issuer=config.issuer,
        audience=config.audience,
        verify_exp=verify_exp,
        outside_claims=required if state.explicit("JWT_REQUIRED_CLAIMS") else ("exp",),
        token_type=config.get("JWT_ACCESS_TOKEN_TYPE"),
    )


def verify_token(state: AppState, token: str, *, expired_ok: bool = False) -> Dict[str, Any]:
    """Verified claims of ``token``, or a 401 saying why it is refused.

    ``expired_ok`` (logout only) accepts a token past its ``exp`` whose
    signature and other claims are good; an app's own decode handler is
    then used as it is."""
    limit = state.config.get("JWT_MAX_TOKEN_BYTES", DEFAULTS["JWT_MAX_TOKEN_BYTES"])
    if len(token) > limit:
        raise invalid("Invalid token", "Token is too large")
    handler = state.jwt.jwt_decode_callback
    try:
        if handler is not default_decode_handler:
            claims = handler(token)
        else:
            state.keyring()  # drops the cache when the settings changed
            hit = state.verified.get(token)
            if hit is not None and time.time() <= hit[1]:
                return dict(hit[0])
            claims = default_decode_handler(token, verify_exp=not expired_ok)
            if _COMPACT_JWS.fullmatch(token) is None:
                # Only the base64url alphabet, in three parts: some PyJWT versions
                # skip stray characters, and a token is accepted exactly as issued.
                raise invalid("Invalid token", "Token is not a compact JWS (three base64url parts)")
            if not expired_ok:
                keyring = state.keyring()
                outside = keyring.remote is not None or keyring.by_issuer
                state.remember(token, claims, keyring.horizon(token) if outside else None)
            claims = dict(claims)
    except _DECODE_ERRORS as exc:
        if isinstance(exc, InvalidSignatureError):
            state.signature_failed()  # a sibling process signing with another key?
        raise invalid("Invalid token", str(exc) or type(exc).__name__) from exc
    if not isinstance(claims, dict):
        raise invalid("Invalid token", "Token payload is not a JSON object")
    return claims


def decode_token(token: str) -> Dict[str, Any]:
    """Verify ``token`` as requests are verified (signature, claims, revocation);
    its claims, or a 401 JWTError."""
    state = app_state()
    claims = verify_token(state, token)
    check_not_revoked(state, claims)
    return claims


def identify(state: AppState, claims: Dict[str, Any]) -> Any:
    handler = state.jwt.identity_callback
    try:
        if handler is None:
            identity = identity_of(state, claims)
        else:
            identity = handler(claims)
    except _IDENTITY_ERRORS as exc:
        logger.warning("refused a token whose claims the identity handler cannot use: %r", exc)
        raise invalid("Invalid JWT", "Token lacks the claims needed to identify its user") from exc
    if identity is None:
        raise invalid("Invalid JWT", "User does not exist")
    return identity


def verify_jwt_in_request(
    realm: Optional[str] = None,
    *,
    optional: bool = False,
    fresh: bool = False,
    permissions: Optional[Iterable[str]] = None,
    dpop: bool = False,
) -> Optional[Dict[str, Any]]:
    """Check the request's access token; set ``current_identity`` and ``current_token``.

    Returns the verified claims, or ``None`` when ``optional`` is true and the
    request carries no token (a token that is present must still be valid).
    ``fresh`` also requires a token from a login rather than a refresh;
    ``permissions`` requires the token to grant each one (else 403); ``dpop``
    requires a DPoP-bound token (RFC 9449) even when ``JWT_DPOP`` is ``"allowed"``.
    A bound token is always checked against the request's DPoP proof.
    Raises :class:`JWTError` (401; 403; 503 when the token store is unreachable).
    ``OPTIONS`` requests (CORS preflight) pass unchecked where Flask answers
    them itself; a view that handles ``OPTIONS`` (its ``methods`` list it, or
    ``provide_automatic_options=False``) is checked like any other method.
    """
    req = request._get_current_object()  # type: ignore[attr-defined]
    if req.method == "OPTIONS" and _answered_by_flask(req):
        return None
    state = app_state()
    realm = realm or state.config.get("JWT_DEFAULT_REALM") or config.realm
    token = None
    try:
        token = state.jwt.request_callback()
        if token is None:
            if optional:
                return None
            raise JWTError(
                "Authorization Required",
                "Request does not contain an access token",
                headers={"WWW-Authenticate": '%s realm="%s"' % (config.header_prefix, realm)},
            )
        claims = verify_token(state, token)
        # Ours say token_type; Flask-JWT-Extended's refresh tokens (an app
        # migrating with the same secret) say type.
        if claims.get(TYPE_CLAIM, "access") != "access" or (
            TYPE_CLAIM not in claims and claims.get("type") == "refresh"
        ):
            raise invalid("Invalid token", "Only access tokens are accepted here")
        if req.environ.get(FROM_COOKIE_KEY):
            check_csrf(claims)
        check_not_revoked(state, claims)
        scheme = request_scheme(req.environ)
        # Only a bound token, the DPoP scheme or a DPoP requirement has anything to check.
        if "cnf" in claims or scheme == "dpop" or dpop or state.config.get("JWT_DPOP") == "required":
            dpop_check(claims, token, scheme, dpop)
        identity = identify(state, claims)
        if fresh and claims.get("fresh") is not True:
            raise invalid("Fresh token required", "This action needs a token from a fresh login")
        if permissions:
            require_permissions(claims, permissions, realm)
    except JWTError as error:
        signals.send(
            signals.token_refused, status=error.status_code, error=error.error, reason=error.description
        )
        # A refusal of a token that was sent (an app's identity handler raising
        # JWTError among them) is RFC 6750's invalid_token unless it says otherwise.
        raise challenge(error, realm, "invalid_token" if token is not None else None) from None
    req.environ[_ENVIRON_KEY] = (identity, claims)
    return claims


def _answered_by_flask(req: Any) -> bool:
    """An ``OPTIONS`` request that Flask answers without running the view
    (automatic OPTIONS), or one no route matched (a 404 or 405 follows)."""
    rule = req.url_rule
    return rule is None or bool(getattr(rule, "provide_automatic_options", False))


def jwt_required(
    realm: Union[str, Callable[..., Any], None] = None,
    *,
    optional: bool = False,
    fresh: bool = False,
    permissions: Optional[Iterable[str]] = None,
    dpop: bool = False,
) -> Any:
    """Decorate a view so it runs only for a request with a valid token.

    Used as Flask-JWT taught, ``@jwt_required()``; a bare ``@jwt_required``
    works too. ``async def`` views are supported.
    """
    if callable(realm):  # used without parentheses
        return jwt_required()(realm)
    if isinstance(permissions, str):
        permissions = [permissions]
    permissions = tuple(permissions) if permissions else None

    def decorator(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                verify_jwt_in_request(
                    realm, optional=optional, fresh=fresh, permissions=permissions, dpop=dpop
                )
                return current_app.ensure_sync(fn)(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            verify_jwt_in_request(
                realm, optional=optional, fresh=fresh, permissions=permissions, dpop=dpop
            )
            return fn(*args, **kwargs)

        return cast(F, wrapper)

    return decorator


def _verified(index: int) -> Any:
    if not has_request_context():
        return None
    found = request.environ.get(_ENVIRON_KEY)
    return None if found is None else found[index]


#: The identity of the verified request (what the identity handler returned),
#: ``None`` outside a verified request.
current_identity: Any = LocalProxy(lambda: _verified(0))
#: The verified claims of the request's token, ``None`` outside a verified request.
current_token: Any = LocalProxy(lambda: _verified(1))
