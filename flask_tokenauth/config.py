"""Every configuration key, its default, and the one accessor that reads them.

Values are read from ``current_app.config`` when they are needed, never cached
at ``init_app``: Flask-JWT apps (and their tests) change ``app.config`` after
the extension is set up, and that has to keep working.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Tuple, Union

from flask import current_app

#: Flask-JWT 0.3.2's keys with its defaults, then the keys flask_tokenauth adds.
DEFAULTS: Dict[str, Any] = {
    # --- Flask-JWT 0.3.2 ---
    "JWT_DEFAULT_REALM": "Login Required",
    "JWT_AUTH_URL_RULE": "/auth",
    "JWT_AUTH_ENDPOINT": "jwt",
    "JWT_AUTH_URL_OPTIONS": {"methods": ["POST"]},
    "JWT_AUTH_USERNAME_KEY": "username",
    "JWT_AUTH_PASSWORD_KEY": "password",
    "JWT_ALGORITHM": "HS256",
    "JWT_LEEWAY": _dt.timedelta(seconds=10),
    "JWT_AUTH_HEADER_PREFIX": "JWT",
    "JWT_EXPIRATION_DELTA": _dt.timedelta(seconds=300),
    "JWT_NOT_BEFORE_DELTA": _dt.timedelta(seconds=0),
    "JWT_VERIFY_CLAIMS": ["signature", "exp", "nbf", "iat"],
    "JWT_REQUIRED_CLAIMS": ["exp", "iat", "nbf"],
    # JWT_SECRET_KEY is deliberately absent: it falls back to SECRET_KEY when
    # the token is made, so an app may set either after init_app.
    # --- flask_tokenauth ---
    "JWT_PRIVATE_KEY": None,
    "JWT_PUBLIC_KEY": None,
    "JWT_ISSUER": None,
    "JWT_AUDIENCE": None,
    "JWT_IDENTITY_CLAIM": "identity",
    "JWT_MAX_TOKEN_BYTES": 8192,
    "JWT_VERIFIED_TOKEN_CACHE_SIZE": 1024,
    "JWT_PERMISSIONS_CLAIM": "permissions",
    # --- several keys, published or fetched as JWK Sets ---
    "JWT_KEYS": None,
    "JWT_JWKS_URL_RULE": None,
    "JWT_JWKS_URL": None,
    "JWT_JWKS_TIMEOUT": 5.0,
    "JWT_JWKS_REFRESH_INTERVAL": 5.0,  # least time between fetches for an unknown kid
    "JWT_JWKS_CACHE_TTL": 300.0,  # key-set lifetime when the issuer sends no Cache-Control max-age
    "JWT_JWKS_STALE_IF_ERROR": 3600.0,  # known keys stay in use this long while the issuer is down
    # --- outside issuers: identity providers, other services ---
    "JWT_OIDC_ISSUER": None,  # an issuer URL, or a list of URLs / {"issuer", "audience", "jwks_url"}
    "JWT_ALGORITHMS": None,  # the algorithms outside keys may use (default: JWT_ALGORITHM when set)
    "JWT_ACCESS_TOKEN_TYPE": None,  # e.g. "at+jwt": outside tokens must have this typ (RFC 9068)
    # --- where tokens travel ---
    "JWT_TOKEN_LOCATION": ["headers"],
    "JWT_QUERY_STRING_NAME": "jwt",
    "JWT_ACCESS_COOKIE_NAME": "access_token",
    "JWT_REFRESH_COOKIE_NAME": "refresh_token",
    "JWT_CSRF_COOKIE_NAME": "csrf_token",
    "JWT_CSRF_HEADER_NAME": "X-CSRF-Token",
    "JWT_CSRF_METHODS": ["POST", "PUT", "PATCH", "DELETE"],
    "JWT_COOKIE_SECURE": True,
    "JWT_COOKIE_SAMESITE": "Lax",
    "JWT_COOKIE_DOMAIN": None,
    "JWT_COOKIE_PATH": None,  # None: where the app is mounted (request.script_root)
    "JWT_COOKIE_PREFIX": None,  # "__Host-" or "__Secure-": the browser then enforces Secure (and Path=/)
    # --- sessions: refresh, logout, revocation (all off until a rule is set) ---
    "JWT_REFRESH_URL_RULE": None,
    "JWT_REFRESH_EXPIRATION_DELTA": _dt.timedelta(days=30),
    "JWT_SESSION_MAX_AGE": None,  # None: the refresh lifetime
    "JWT_REFRESH_REUSE_GRACE": 0,
    "JWT_LOGOUT_URL_RULE": None,
    "JWT_TOKEN_STORE": "memory://",
    "JWT_TOKEN_STORE_PREFIX": "tokenauth:",
    "JWT_TOKEN_STORE_TIMEOUT": 1.0,
    "JWT_TOKEN_STORE_FAIL_OPEN": False,
    "JWT_TOKEN_STORE_MAX_CONNECTIONS": 50,  # per process, whatever the threads or greenlets
    "JWT_TOKEN_STORE_CACHE_SIZE": 50000,  # Redis values kept in memory, invalidated by Redis (0: off)
    # --- DPoP (RFC 9449): tokens bound to a key the client holds ---
    "JWT_DPOP": False,  # False, "allowed" (a login with a proof is bound) or "required"
    "JWT_DPOP_ALGORITHMS": None,  # None: ES256, ES384, RS256, PS256, EdDSA, Ed25519
    "JWT_DPOP_PROOF_MAX_AGE": 60.0,  # seconds a proof's iat may be old (JWT_LEEWAY for clocks ahead)
    "JWT_DPOP_NONCE": False,  # True: proofs must carry the server's current DPoP-Nonce
    # --- login throttling (off until a limit is set) ---
    "JWT_LOGIN_RATE_LIMIT": None,  # e.g. "5 per minute": failed logins per username and per address
    "JWT_LOGIN_RATE_LIMIT_STORAGE": None,  # a limits storage URI; None: the token store's Redis, or memory
}


#: The claim that tells access tokens from refresh tokens. Not ``type``:
#: Flask-JWT apps put their own ``type`` claims into tokens.
TYPE_CLAIM = "token_type"


def seconds(value: Union[int, float, _dt.timedelta]) -> float:
    """A config duration as seconds; ints and timedeltas are both accepted."""
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    return float(value)


class Config:
    """Typed, read-only view of the current app's ``JWT_*`` settings."""

    @staticmethod
    def get(key: str) -> Any:
        return current_app.config.get(key, DEFAULTS.get(key))

    @property
    def realm(self) -> str:
        return self.get("JWT_DEFAULT_REALM")

    @property
    def header_prefix(self) -> str:
        return self.get("JWT_AUTH_HEADER_PREFIX")

    @property
    def leeway(self) -> float:
        return seconds(self.get("JWT_LEEWAY"))

    @property
    def expiration_delta(self) -> float:
        return seconds(self.get("JWT_EXPIRATION_DELTA"))

    @property
    def not_before_delta(self) -> float:
        return seconds(self.get("JWT_NOT_BEFORE_DELTA"))

    @property
    def required_claims(self) -> List[str]:
        return list(self.get("JWT_REQUIRED_CLAIMS"))

    @property
    def issuer(self) -> Optional[str]:
        return self.get("JWT_ISSUER")

    @property
    def audience(self) -> Optional[Union[str, List[str]]]:
        return self.get("JWT_AUDIENCE")

    @property
    def identity_claim(self) -> str:
        return self.get("JWT_IDENTITY_CLAIM")

    @property
    def cache_size(self) -> int:
        return int(self.get("JWT_VERIFIED_TOKEN_CACHE_SIZE"))

    @property
    def token_locations(self) -> Tuple[str, ...]:
        value = self.get("JWT_TOKEN_LOCATION")
        if isinstance(value, str):
            return (value,)
        return tuple(value)

    @property
    def query_string_name(self) -> str:
        return self.get("JWT_QUERY_STRING_NAME")

    @property
    def cookie_prefix(self) -> str:
        return self.get("JWT_COOKIE_PREFIX") or ""

    @property
    def access_cookie_name(self) -> str:
        return cookie_name(self.get, "JWT_ACCESS_COOKIE_NAME")

    @property
    def refresh_cookie_name(self) -> str:
        return cookie_name(self.get, "JWT_REFRESH_COOKIE_NAME")

    @property
    def csrf_cookie_name(self) -> str:
        return cookie_name(self.get, "JWT_CSRF_COOKIE_NAME")

    @property
    def csrf_header_name(self) -> str:
        return self.get("JWT_CSRF_HEADER_NAME")

    @property
    def csrf_methods(self) -> FrozenSet[str]:
        return frozenset(m.upper() for m in self.get("JWT_CSRF_METHODS"))

    @property
    def uses_cookies(self) -> bool:
        return "cookies" in self.token_locations

    @property
    def refresh_url_rule(self) -> Optional[str]:
        return self.get("JWT_REFRESH_URL_RULE")

    @property
    def refresh_expiration_delta(self) -> float:
        return seconds(self.get("JWT_REFRESH_EXPIRATION_DELTA"))

    @property
    def session_max_age(self) -> float:
        value = self.get("JWT_SESSION_MAX_AGE")
        return self.refresh_expiration_delta if value is None else seconds(value)

    @property
    def refresh_reuse_grace(self) -> float:
        return seconds(self.get("JWT_REFRESH_REUSE_GRACE") or 0)

    @property
    def store_fail_open(self) -> bool:
        return bool(self.get("JWT_TOKEN_STORE_FAIL_OPEN"))

    @property
    def longest_lifetime(self) -> float:
        """No token outlives this many seconds after it was issued (plus leeway)."""
        return max(self.expiration_delta, self.refresh_expiration_delta, self.session_max_age) + self.leeway

    @property
    def username_key(self) -> str:
        return self.get("JWT_AUTH_USERNAME_KEY")

    @property
    def password_key(self) -> str:
        return self.get("JWT_AUTH_PASSWORD_KEY")

    @staticmethod
    def verification_settings(conf: Mapping[str, Any]) -> tuple:
        """Everything prepared keys and cached verifications depend on.

        Compared on every request: when any of it changes, prepared keys and
        cached verifications are thrown away.
        """
        get = conf.get
        return (
            get("JWT_ALGORITHM", "HS256"),
            get("JWT_SECRET_KEY"),
            get("SECRET_KEY"),
            get("JWT_PRIVATE_KEY"),
            get("JWT_PUBLIC_KEY"),
            get("JWT_ISSUER"),
            _hashable(get("JWT_AUDIENCE")),
            _hashable(get("JWT_VERIFY_CLAIMS", DEFAULTS["JWT_VERIFY_CLAIMS"])),
            _hashable(get("JWT_REQUIRED_CLAIMS", DEFAULTS["JWT_REQUIRED_CLAIMS"])),
            get("JWT_LEEWAY", DEFAULTS["JWT_LEEWAY"]),
            get("JWT_VERIFIED_TOKEN_CACHE_SIZE", DEFAULTS["JWT_VERIFIED_TOKEN_CACHE_SIZE"]),
            get("JWT_KEYS"),
            get("JWT_JWKS_URL"),
            get("JWT_JWKS_TIMEOUT"),
            get("JWT_JWKS_REFRESH_INTERVAL"),
            get("JWT_JWKS_CACHE_TTL"),
            get("JWT_JWKS_STALE_IF_ERROR"),
            get("JWT_OIDC_ISSUER"),
            _hashable(get("JWT_ALGORITHMS")),
        )


def identity_claim_of(get: Callable[[str], Any], claims: Mapping[str, Any]) -> str:
    """The claim that names the user of ``claims``: ``JWT_IDENTITY_CLAIM``, but
    ``sub`` for an outside issuer's token (they have no ``identity`` claim)
    unless the app chose another claim itself."""
    claim = get("JWT_IDENTITY_CLAIM") or DEFAULTS["JWT_IDENTITY_CLAIM"]
    if (
        claim == DEFAULTS["JWT_IDENTITY_CLAIM"]
        and claim not in claims
        and "sub" in claims
        and (get("JWT_OIDC_ISSUER") or get("JWT_JWKS_URL"))
    ):
        return "sub"
    return claim


def cookie_name(get: Callable[[str], Any], key: str) -> str:
    """The cookie name ``key`` sets, with ``JWT_COOKIE_PREFIX`` in front. The
    refresh cookie is path-scoped, which ``__Host-`` forbids: it gets
    ``__Secure-`` instead."""
    prefix = get("JWT_COOKIE_PREFIX") or ""
    if prefix == "__Host-" and key == "JWT_REFRESH_COOKIE_NAME":
        prefix = "__Secure-"
    return prefix + get(key)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, set)) else value


config = Config()
