"""Where revocation lives: logout, "log out everywhere", and the per-request check.

A token is refused when its ``jti`` was revoked, when its family (``fam``, one
login and every token refreshed from it) was revoked, when it was issued
before its identity's cut-off, or when it was issued before the store's epoch
(a shared store that lost its memory cannot vouch for older tokens). Entries
are keyed on those claims, never on the token string, so a re-encoded copy of
a revoked token is refused too.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Dict, Optional

from . import signals
from .config import config, identity_claim_of
from .errors import JWTError, StoreUnavailable
from .state import AppState, app_state
from .store import Status, StoreError, TokenRef

logger = logging.getLogger("flask_tokenauth")


def identity_key(identity: Any) -> Optional[str]:
    """How an identity is named in the store (``1`` and ``"1"`` stay distinct)."""
    if identity is None:
        return None
    kind = type(identity)
    if kind is str:
        return "s:" + identity
    if kind is int:
        return "i:%d" % identity
    try:
        return "j:" + json.dumps(identity, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return "r:" + repr(identity)


def revoked_error(description: str = "Token has been revoked") -> JWTError:
    error = JWTError("Invalid token", description)
    error.oauth_error = "invalid_token"
    return error


def store_failed(exc: Exception) -> JWTError:
    logger.error("token store unreachable: %s", exc)
    return StoreUnavailable("The token store is unreachable; try again shortly")


def identity_of(state: AppState, claims: Dict[str, Any]) -> Any:
    """Who the claims name, as ``current_identity`` is without an identity
    handler and as revocations key it: the identity claim (``sub`` for an
    outside issuer's token). An app that trusts several issuers (several
    ``JWT_OIDC_ISSUER`` entries, or one beside keys of its own or
    ``JWT_JWKS_URL``) names an outside issuer's user ``(iss, sub)``, so that
    two issuers' users with one ``sub`` never meet."""
    value = claims.get(identity_claim_of(state.config.get, claims))
    issuer = claims.get("iss")
    if value is None or issuer is None or not state.config.get("JWT_OIDC_ISSUER"):
        return value  # no outside issuer picks tokens by iss: nothing to tell apart
    keyring = state.prepared_keyring()  # the one the claims were just verified with
    if issuer not in keyring.by_issuer:
        return value
    trusted = len(keyring.by_issuer) + bool(keyring.keys) + (keyring.remote is not None)
    return (issuer, value) if trusted > 1 else value


def token_ref(state: AppState, claims: Dict[str, Any]) -> TokenRef:
    """How the store names the token these claims belong to."""
    jti, family = claims.get("jti"), claims.get("fam")
    return TokenRef(
        None if jti is None else str(jti),
        None if family is None else str(family),
        identity_key(identity_of(state, claims)),
    )


def check_not_revoked(state: AppState, claims: Dict[str, Any]) -> None:
    """Raise 401 when ``claims`` belong to a revoked token, 503 when the store
    cannot say (unless ``JWT_TOKEN_STORE_FAIL_OPEN`` is set)."""
    try:
        status = state.store().lookup(token_ref(state, claims))
    except StoreError as exc:
        if config.store_fail_open:
            logger.warning("token store unreachable, letting the token through (fail open): %s", exc)
            return
        raise store_failed(exc) from exc
    if status.token_revoked or status.family_revoked or _before_cutoff(state, claims, status):
        raise revoked_error()


def _before_cutoff(state: AppState, claims: Dict[str, Any], status: Status) -> bool:
    """Issued before its identity's cut-off, or before the store's memory began."""
    cutoff, epoch = status.cutoff, status.epoch
    if cutoff is None and epoch is None:
        return False
    iat = claims.get("iat")
    if not isinstance(iat, (int, float)) or isinstance(iat, bool):
        # No issue time: refused under an identity cut-off, and while a token
        # issued before the epoch could still be alive.
        return cutoff is not None or time.time() < epoch + _horizon(state)  # type: ignore[operator]
    return (cutoff is not None and iat < cutoff) or (epoch is not None and iat < epoch)


def _horizon(state: AppState) -> float:
    """No token this app accepts lives longer than this many seconds."""
    return max(config.longest_lifetime, state.longest_issued + config.leeway)


def _remaining(until: Optional[float], now: float) -> float:
    """Seconds an entry must live to outlast a token expiring at ``until``."""
    if not isinstance(until, (int, float)):
        return _horizon(app_state())
    return max(1.0, until - now + config.leeway)


def family_end(claims: Dict[str, Any]) -> Optional[float]:
    """When the last token of the claims' family expires at the latest."""
    ends = [claims.get("exp")]
    auth_time = claims.get("auth_time")
    if isinstance(auth_time, (int, float)):
        ends.append(auth_time + config.session_max_age)
    numbers = [end for end in ends if isinstance(end, (int, float))]
    return max(numbers) if numbers else None


def revoke_claims(claims: Dict[str, Any], *, family: bool = True) -> None:
    """Revoke the token these verified claims belong to, and its family."""
    state = app_state()
    ref = token_ref(state, claims)
    now = time.time()
    try:
        if isinstance(claims.get("jti"), str):
            state.store().revoke_token(ref, _remaining(claims.get("exp"), now))
        if family and isinstance(claims.get("fam"), str):
            state.store().revoke_family(ref, _remaining(family_end(claims), now))
    except StoreError as exc:
        raise store_failed(exc) from exc
    signals.send(
        signals.token_revoked,
        jti=claims.get("jti"),
        family=claims.get("fam") if family else None,
        identity=claims.get(identity_claim_of(state.config.get, claims)),
    )


def revoke_family(claims: Dict[str, Any]) -> None:
    if not isinstance(claims.get("fam"), str):
        return
    state = app_state()
    try:
        state.store().revoke_family(token_ref(state, claims), _remaining(family_end(claims), time.time()))
    except StoreError as exc:
        raise store_failed(exc) from exc
    signals.send(
        signals.family_revoked,
        family=claims.get("fam"),
        identity=claims.get(identity_claim_of(state.config.get, claims)),
    )


def revoke_identity(identity_value: Any) -> None:
    """Refuse every token of this identity issued before now (all sessions)."""
    key = identity_key(identity_value)
    if key is None:
        raise ValueError("revoke_identity needs an identity, not None")
    try:
        state = app_state()
        state.store().revoke_identity(TokenRef(identity=key), time.time(), _horizon(state))
    except StoreError as exc:
        raise store_failed(exc) from exc
    signals.send(signals.identity_revoked, identity=identity_value)
