"""Where revocation lives: logout, "log out everywhere", and the per-request check.

A token is refused when its ``jti`` was revoked, when its family (``fam``, one
login and every token refreshed from it) was revoked, or when it was issued
before its identity's cut-off. Entries are keyed on those claims, never on the
token string, so a re-encoded copy of a revoked token is refused too.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Dict, Optional

from .config import config
from .errors import JWTError, StoreUnavailable
from .state import AppState, app_state
from .store import StoreError

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


def check_not_revoked(state: AppState, claims: Dict[str, Any]) -> None:
    """Raise 401 when ``claims`` belong to a revoked token, 503 when the store
    cannot say (unless ``JWT_TOKEN_STORE_FAIL_OPEN`` is set)."""
    try:
        claim = state.config.get("JWT_IDENTITY_CLAIM") or config.identity_claim
        token_dead, family_dead, cutoff = state.store().lookup(
            claims.get("jti"), claims.get("fam"), identity_key(claims.get(claim))
        )
    except StoreError as exc:
        if config.store_fail_open:
            logger.warning("token store unreachable, letting the token through (fail open): %s", exc)
            return
        raise store_failed(exc) from exc
    if token_dead or family_dead:
        raise revoked_error()
    if cutoff is not None:
        iat = claims.get("iat")
        if not isinstance(iat, (int, float)) or iat < cutoff:
            raise revoked_error()


def _remaining(until: Optional[float], now: float) -> float:
    """Seconds an entry must live to outlast a token expiring at ``until``."""
    fallback = max(config.longest_lifetime, app_state().longest_issued + config.leeway)
    if not isinstance(until, (int, float)):
        return fallback
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
    store = app_state().store()
    now = time.time()
    try:
        jti = claims.get("jti")
        if isinstance(jti, str):
            store.revoke_token(jti, _remaining(claims.get("exp"), now))
        fam = claims.get("fam")
        if family and isinstance(fam, str):
            store.revoke_family(fam, _remaining(family_end(claims), now))
    except StoreError as exc:
        raise store_failed(exc) from exc


def revoke_family(claims: Dict[str, Any]) -> None:
    fam = claims.get("fam")
    if not isinstance(fam, str):
        return
    try:
        app_state().store().revoke_family(fam, _remaining(family_end(claims), time.time()))
    except StoreError as exc:
        raise store_failed(exc) from exc


def revoke_identity(identity_value: Any) -> None:
    """Refuse every token of this identity issued before now (all sessions)."""
    key = identity_key(identity_value)
    if key is None:
        raise ValueError("revoke_identity needs an identity, not None")
    try:
        state = app_state()
        horizon = max(config.longest_lifetime, state.longest_issued + config.leeway)
        state.store().revoke_identity(key, time.time(), horizon)
    except StoreError as exc:
        raise store_failed(exc) from exc
