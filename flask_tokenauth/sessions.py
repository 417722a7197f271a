"""Refresh-token rotation with reuse detection (RFC 9700, section 4.14.2),
and the end of a session (logout).

Each refresh spends the presented refresh token and issues its successor in
the same family. Presenting a spent one again means it was copied: the whole
family is revoked. ``JWT_REFRESH_REUSE_GRACE`` lets a client that lost the
answer re-present the just-spent token for a few seconds and get the same
successor back.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Dict, List, Optional

from . import dpop, signals
from .config import TYPE_CLAIM, config
from .cookies import check_csrf
from .errors import JWTError
from .issuing import FRESH_CLAIMS, Login, as_token, base_claims, refresh_claims, sign
from .reader import session_tokens
from .revocation import (
    check_not_revoked,
    revoke_claims,
    revoke_family,
    revoked_error,
    store_failed,
    token_ref,
)
from .state import app_state
from .store import StateLost, StoreError
from .verifying import identify, invalid, verify_token

logger = logging.getLogger("flask_tokenauth")


def rotate(refresh_token: str) -> Login:
    """Spend ``refresh_token``; a new (non-fresh) access token and its successor."""
    state = app_state()
    claims = verify_token(state, refresh_token)
    if claims.get(TYPE_CLAIM) != "refresh":
        raise invalid("Invalid token", "Only refresh tokens are accepted here")
    if state.keyring().from_outside(refresh_token):
        # Another service's session: only its issuer sees its reuse and its logout.
        raise invalid("Invalid token", "Only refresh tokens issued by this service are accepted here")
    check_csrf(claims)
    check_not_revoked(state, claims)
    dpop.check_refresh(claims)  # a bound session: a proof made with its key
    identify(state, claims)  # the user must still exist

    now = time.time()
    carried = {k: v for k, v in claims.items() if k not in FRESH_CLAIMS}
    found = claims.get("auth_time")
    auth_time = found if isinstance(found, (int, float)) else int(now)
    session = {"fam": claims.get("fam"), "auth_time": auth_time}
    end = auth_time + config.session_max_age
    if now >= end:
        raise invalid("Invalid token", "The session has reached JWT_SESSION_MAX_AGE; log in again")
    headers = state.jwt.jwt_headers_callback(claims.get(config.identity_claim))
    access_claims: Dict[str, Any] = dict(carried)
    access_claims.update(base_claims(None, now=now, lifetime_cap=end))
    access_claims[config.identity_claim] = carried.get(config.identity_claim)
    access_claims.update({TYPE_CLAIM: "access", "fresh": False})
    access = sign(access_claims, headers)
    successor_claims = refresh_claims(carried, session, now)
    successor = sign(successor_claims, headers)

    grace = config.refresh_reuse_grace
    presented = str(claims.get("jti"))
    record: Dict[str, Any] = {"spent": presented, "at": now}
    if grace > 0:
        record.update(access=str(access), refresh=str(successor))
    ref = token_ref(state, claims)._replace(family=str(session["fam"] or presented))
    ttl = max(1.0, end - now + config.leeway)
    try:
        current = state.store().rotate(
            ref, presented, successor_claims["jti"], json.dumps(record), ttl
        )
    except StateLost:
        raise revoked_error() from None
    except StoreError as exc:
        raise store_failed(exc) from exc
    if current is None:
        signals.send(
            signals.token_refreshed, identity=claims.get(config.identity_claim), family=session["fam"]
        )
        return Login(access, successor, claims.get("csrf"), dpop.bound_key(claims))
    return _reused(claims, presented, current, now, grace)


def _reused(claims: Dict[str, Any], presented: str, current: str, now: float, grace: float) -> Login:
    try:
        last = json.loads(current) if current else {}
    except ValueError:
        last = {}
    if (
        grace > 0
        and last.get("spent") == presented
        and "access" in last
        and now - float(last.get("at", 0)) <= grace
    ):
        return Login(
            as_token(last["access"]), as_token(last["refresh"]), claims.get("csrf"), dpop.bound_key(claims)
        )
    revoke_family(claims)
    logger.warning("refresh token reuse detected: family revoked")
    signals.send(
        signals.refresh_reuse_detected,
        family=claims.get("fam"),
        identity=claims.get(config.identity_claim),
    )
    raise revoked_error("Refresh token was already used; the session has been revoked")



def end_session(body_refresh_token: Optional[str] = None) -> List[Dict[str, Any]]:
    """Logout: revoke every token the request still holds, with its family.

    Tokens are found in the header, the cookies, the query string (as
    configured) and ``body_refresh_token``. An expired one still counts (its
    signature and other claims must be good): a tab left idle past the access
    lifetime must still be able to log out. A cookie-borne token needs the
    CSRF header (else 401, and nothing is revoked). Returns the claims of the
    tokens revoked; when there are none, raises the first reason a token was
    refused, or "no token" (the caller decides whether that is an error).
    """
    state = app_state()
    held = session_tokens()
    if body_refresh_token and all(body_refresh_token != token for token, _ in held):
        held.append((body_refresh_token, False))
    valid: List[Dict[str, Any]] = []
    refusals: List[JWTError] = []
    for token, from_cookie in held:
        try:
            claims = verify_token(state, token, expired_ok=True)
        except JWTError as error:
            refusals.append(error)
            continue
        check_csrf(claims, from_cookie=from_cookie)  # a refusal here ends the logout
        try:
            check_not_revoked(state, claims)
        except JWTError as error:
            if error.status_code != 401:
                raise  # the store is down: 503, never "logged out"
            refusals.append(error)
            continue
        valid.append(claims)
    for claims in valid:
        revoke_claims(claims)
    if valid:
        logger.info("logout: %d token(s) and their session revoked", len(valid))
        return valid
    if refusals:
        raise refusals[0]
    raise JWTError("Authorization Required", "Request does not contain an access token")
