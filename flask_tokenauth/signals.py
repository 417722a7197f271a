"""Signals: what happened, for logs, metrics and alerts (blinker, as Flask's own).

Connect a receiver to any of them; each is sent with the app as sender and
keyword arguments that name what happened, never a token, a secret or a
password::

    from flask_tokenauth.signals import refresh_reuse_detected

    @refresh_reuse_detected.connect
    def alert(app, family, identity, **extra):
        app.logger.error("stolen refresh token? session %s of %r revoked", family, identity)

Receivers run in the request that caused the event: keep them quick.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, has_app_context
from flask.signals import Namespace

_signals = Namespace()

#: A token was signed: ``identity``, ``token_type`` ("access" or "refresh"),
#: ``jti``, ``family`` (``None`` outside a session), ``dpop_jkt`` when bound.
token_issued = _signals.signal("token-issued")
#: ``POST /auth`` refused a username/password pair: ``username``, ``address``.
login_failed = _signals.signal("login-failed")
#: ``POST /auth`` refused by the login throttle: ``username``, ``address``, ``retry_after``.
login_throttled = _signals.signal("login-throttled")
#: A refresh token was spent for a new pair: ``identity``, ``family``.
token_refreshed = _signals.signal("token-refreshed")
#: A spent refresh token came back (a copy?): its ``family`` was revoked; ``identity``.
refresh_reuse_detected = _signals.signal("refresh-reuse-detected")
#: A token was revoked (logout, ``jwt.revoke``): ``jti``, ``family``, ``identity``.
token_revoked = _signals.signal("token-revoked")
#: A whole session was revoked: ``family``, ``identity``.
family_revoked = _signals.signal("family-revoked")
#: Every token of an identity issued until now was revoked: ``identity``.
identity_revoked = _signals.signal("identity-revoked")
#: A request's token was refused: ``status`` (401, 403, 503...), ``error``,
#: ``reason`` (the description the client gets).
token_refused = _signals.signal("token-refused")


def send(signal: Any, **details: Any) -> None:
    """Send ``signal`` from the current app, if any receiver listens."""
    if signal.receivers and has_app_context():
        signal.send(current_app._get_current_object(), **details)  # type: ignore[attr-defined]


__all__ = [
    "family_revoked",
    "identity_revoked",
    "login_failed",
    "login_throttled",
    "refresh_reuse_detected",
    "token_issued",
    "token_refreshed",
    "token_refused",
    "token_revoked",
]
