"""The ``JWT`` extension object: setup, the hooks an app can replace, and the
modern token API. It wires the stages together and holds no per-app data
(that is in :mod:`flask_tokenauth.state`), so one object serves many apps.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, TypeVar, Union

from flask import Flask
from werkzeug.wrappers import Response

from . import dpop, issuing, revocation, verifying, views
from .cli import cli
from .config import DEFAULTS, check_settings
from .cookies import check_cookie_settings, clear_session_cookies
from .errors import JWTError, default_error_handler, render_error
from .reader import default_request_handler
from .state import EXTENSION_KEY, AppState, app_state
from .throttle import normalize_username

C = TypeVar("C", bound=Callable[..., Any])

#: ``authenticate(username, password) -> user or None``
AuthenticationHandler = Callable[[str, str], Any]
#: ``identity(payload) -> user or None``
IdentityHandler = Callable[[Dict[str, Any]], Any]


class JWT:
    """Token authentication for a Flask app, Flask-JWT compatible.

    ``JWT(app, authenticate, identity)`` or, with an app factory,
    ``jwt = JWT(); jwt.init_app(app)``. One object may serve several apps.

    ``authentication_handler(username, password)`` returns the user or
    ``None``; ``identity_handler(payload)`` returns the user a verified token
    names. Both may also be set later with the decorators of the same name.
    """

    def __init__(
        self,
        app: Optional[Flask] = None,
        authentication_handler: Optional[AuthenticationHandler] = None,
        identity_handler: Optional[IdentityHandler] = None,
    ) -> None:
        self.authentication_callback = authentication_handler
        self.identity_callback = identity_handler
        self.auth_response_callback: Callable[..., Any] = views.default_auth_response_handler
        self.auth_request_callback: Callable[..., Any] = views.default_auth_request_handler
        self.jwt_encode_callback: Callable[..., Any] = issuing.default_encode_handler
        self.jwt_decode_callback: Callable[..., Any] = verifying.default_decode_handler
        self.jwt_headers_callback: Callable[..., Any] = issuing.default_headers_handler
        self.jwt_payload_callback: Callable[..., Any] = issuing.default_payload_handler
        self.jwt_error_callback: Callable[..., Any] = default_error_handler
        self.request_callback: Callable[..., Any] = default_request_handler
        self.permissions_callback: Optional[Callable[..., Any]] = None
        self.login_username_callback: Callable[[str], str] = normalize_username
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the extension on ``app``.

        Sets the configuration defaults, adds the login route (and the
        refresh, logout and JWKS routes when their rules are set), the error
        rendering and the ``flask tokenauth`` commands, and checks every
        setting that can be checked now: a setting that cannot work raises
        :class:`~flask_tokenauth.ConfigurationError` here rather than on the
        first request.
        """
        explicit = [key for key in (*DEFAULTS, "JWT_SECRET_KEY") if key in app.config]
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, copy.deepcopy(value))
        # As Flask-JWT did (apps read it back); None still means "use SECRET_KEY".
        app.config.setdefault("JWT_SECRET_KEY", app.config.get("SECRET_KEY"))
        check_settings(app.config)  # durations and token locations that cannot work
        state = AppState(self, app.config, explicit, app.instance_path)
        state.keyring(app.config)  # a key that does not fit the algorithm fails here
        state.open_store()  # so does a store setting that cannot work
        check_cookie_settings(app.config)  # and cookies a browser would drop
        dpop.check_settings(app.config)  # and DPoP settings that cannot work
        state.login_throttle()  # and a login limit that cannot be parsed
        app.extensions["jwt"] = self
        app.extensions[EXTENSION_KEY] = state

        rule = app.config.get("JWT_AUTH_URL_RULE")
        outside = app.config.get("JWT_OIDC_ISSUER") or app.config.get("JWT_JWKS_URL")
        if rule and outside and not self._signs_own_tokens(state):
            rule = None  # a resource server for an identity provider issues nothing
        if rule:
            options = dict(app.config.get("JWT_AUTH_URL_OPTIONS") or {"methods": ["POST"]})
            options.setdefault("view_func", views.login_view)
            options.setdefault("endpoint", app.config.get("JWT_AUTH_ENDPOINT") or "jwt")
            app.add_url_rule(rule, **options)

        for key, view, endpoint, method in (
            ("JWT_REFRESH_URL_RULE", views.refresh_view, "jwt_refresh", "POST"),
            ("JWT_LOGOUT_URL_RULE", views.logout_view, "jwt_logout", "POST"),
            ("JWT_JWKS_URL_RULE", views.jwks_view, "jwt_jwks", "GET"),
        ):
            if app.config.get(key):
                app.add_url_rule(app.config[key], endpoint, view, methods=[method])
        if app.config.get("JWT_JWKS_URL_RULE") and app.config.get("JWT_ISSUER"):
            # Another service can then trust this one with JWT_OIDC_ISSUER = JWT_ISSUER.
            app.add_url_rule(
                views.DISCOVERY_PATH, "jwt_discovery", views.discovery_view, methods=["GET"]
            )

        app.register_error_handler(JWTError, render_error)
        app.cli.add_command(cli)

    def _signs_own_tokens(self, state: AppState) -> bool:
        """The app has a signing key of its own (not only Flask's SECRET_KEY)
        and a handler to log users in with."""
        current = state.keyring().current
        return state.chose_own_keys() and current is not None and current.signing is not None

    # --- Flask-JWT's handler decorators -----------------------------------

    def authentication_handler(self, callback: C) -> C:
        """``callback(username, password)`` returns the user, or a falsy value."""
        self.authentication_callback = callback
        return callback

    def identity_handler(self, callback: C) -> C:
        """``callback(payload)`` returns the user of a verified token, or ``None``."""
        self.identity_callback = callback
        return callback

    def jwt_error_handler(self, callback: C) -> C:
        """``callback(error)`` turns a :class:`JWTError` into a response."""
        self.jwt_error_callback = callback
        return callback

    def auth_response_handler(self, callback: C) -> C:
        """``callback(access_token, identity)`` builds the login answer."""
        self.auth_response_callback = callback
        return callback

    def auth_request_handler(self, callback: C) -> C:
        """Replace the whole login view (deprecated, as in Flask-JWT)."""
        warnings.warn(
            "auth_request_handler is deprecated: set JWT_AUTH_URL_RULE = None and "
            "register your own login route instead",
            DeprecationWarning,
            stacklevel=2,
        )
        self.auth_request_callback = callback
        return callback

    def request_handler(self, callback: C) -> C:
        """``callback()`` returns the request's token, ``None``, or raises JWTError."""
        self.request_callback = callback
        return callback

    def jwt_encode_handler(self, callback: C) -> C:
        """``callback(identity)`` returns a signed token."""
        self.jwt_encode_callback = callback
        return callback

    def jwt_decode_handler(self, callback: C) -> C:
        """``callback(token)`` returns the verified payload or raises InvalidTokenError."""
        self.jwt_decode_callback = callback
        return callback

    def jwt_payload_handler(self, callback: C) -> C:
        """``callback(identity)`` returns the claims of a new token."""
        self.jwt_payload_callback = callback
        return callback

    def jwt_headers_handler(self, callback: C) -> C:
        """``callback(identity)`` returns extra JOSE headers, or ``None``."""
        self.jwt_headers_callback = callback
        return callback

    # --- flask_tokenauth's own hooks -----------------------------------------

    def permissions_handler(self, callback: C) -> C:
        """``callback(identity)`` returns the permissions to put into its tokens
        at login (else the identity's ``permissions`` attribute or key is used)."""
        self.permissions_callback = callback
        return callback

    def login_username_loader(self, callback: C) -> C:
        """``callback(username)`` returns the form of a login's username that
        :confval:`JWT_LOGIN_RATE_LIMIT` counts failures under. The default,
        :func:`~flask_tokenauth.throttle.normalize_username`, folds case and
        Unicode compatibility forms and strips surrounding white space: give
        the rule your own user lookup follows, so that no variant of one
        username gets a limit of its own."""
        self.login_username_callback = callback
        return callback

    # --- the modern API ----------------------------------------------------

    def create_access_token(
        self,
        identity: Any,
        *,
        expires_delta: Any = None,
        claims: Optional[Dict[str, Any]] = None,
        fresh: bool = False,
        permissions: Optional[Iterable[str]] = None,
        dpop_jkt: Optional[str] = None,
    ) -> str:
        """A signed access token for ``identity``, made in code (needs an app context).

        ``identity`` is a user object (its ``id`` is taken, as at login) or
        the identity value itself. ``expires_delta`` (seconds or a
        ``timedelta``) replaces ``JWT_EXPIRATION_DELTA``; ``claims`` are added
        to the token; ``fresh`` marks it as from a login (for
        ``jwt_required(fresh=True)``); ``permissions`` are put in
        ``JWT_PERMISSIONS_CLAIM``; ``dpop_jkt`` binds it to a client key
        (an RFC 7638 thumbprint, RFC 9449).
        """
        return issuing.create_access_token(
            identity,
            expires_delta=expires_delta,
            claims=claims,
            fresh=fresh,
            permissions=permissions,
            dpop_jkt=dpop_jkt,
        )

    def create_refresh_token(
        self,
        identity: Any,
        *,
        expires_delta: Any = None,
        claims: Optional[Dict[str, Any]] = None,
        permissions: Optional[Iterable[str]] = None,
    ) -> str:
        """A refresh token for ``identity`` that starts a new session, as a login would.

        Needs the refresh route (``JWT_REFRESH_URL_RULE``) to be of use. The
        arguments are those of :meth:`create_access_token`; the lifetime
        defaults to ``JWT_REFRESH_EXPIRATION_DELTA``.
        """
        return issuing.create_refresh_token(
            identity, expires_delta=expires_delta, claims=claims, permissions=permissions
        )

    def login_response(self, identity: Any, body: Optional[Mapping[str, Any]] = None) -> Response:
        """The login route's answer for ``identity``, for a login view of your own.

        Call it once your view has checked the user (in a request): it makes
        one session's tokens, a fresh access token and, when the refresh route
        is on, a refresh token of the same session (so the logout route ends
        both), and returns them as the login route does: in the JSON body,
        in cookies with the CSRF value when ``JWT_TOKEN_LOCATION`` has
        ``"cookies"``, bound to the client's key when the request carries a
        DPoP proof. ``body`` adds fields to the JSON answer. Login throttling
        (``JWT_LOGIN_RATE_LIMIT``) guards the login route only: a view of your
        own that checks passwords needs limits of its own.
        """
        return views.login_answer(identity, body)

    def clear_cookies(self, response: Response) -> Response:
        """Expire the access, refresh and CSRF cookies on ``response`` (for a
        logout view of your own; revoke the session with :meth:`revoke`)."""
        return clear_session_cookies(response)

    def decode_token(self, token: str) -> Dict[str, Any]:
        """The verified claims of ``token``, revocation included.

        Raises :class:`~flask_tokenauth.JWTError` (401) when the token is
        refused, as a protected request would be.
        """
        return verifying.decode_token(token)

    def revoke(self, token: Union[str, Mapping[str, Any]]) -> None:
        """Revoke a token and every token of its session, in the token store.

        ``token`` is the token string (verified first) or its verified claims.
        Raises :class:`~flask_tokenauth.StoreUnavailable` (503) when the store
        cannot record it.
        """
        if isinstance(token, str):
            token = verifying.verify_token(app_state(), token)
        revocation.revoke_claims(dict(token))

    def revoke_identity(self, identity: Any) -> None:
        """Refuse every token of ``identity`` issued until now ("log out everywhere").

        For a password change or a compromised account. ``iat`` counts whole
        seconds, so a token issued in the same second is refused too.
        """
        revocation.revoke_identity(issuing.identity_claim_value(identity))
