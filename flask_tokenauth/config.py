"""Every configuration key, its default, and the one accessor that reads them.

Values are read from ``current_app.config`` when they are needed, never cached
at ``init_app``: Flask-JWT apps (and their tests) change ``app.config`` after
the extension is set up, and that has to keep working.
"""

from __future__ import annotations

import datetime as _dt
import numbers
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, NamedTuple, Optional, Tuple, Union

from flask import current_app


class Setting(NamedTuple):
    """One configuration key: its default and what it does (reST, for the docs)."""

    key: str
    default: Any
    doc: str
    #: How the docs show the default when ``repr`` would mislead.
    shown: Optional[str] = None


#: The configuration reference, section by section. ``DEFAULTS`` is made from
#: it and the docs render it, so a key cannot be added without a description.
SECTIONS: Tuple[Tuple[str, Tuple[Setting, ...]], ...] = (
    (
        "Flask-JWT 0.3.2",
        (
            Setting(
                "JWT_DEFAULT_REALM",
                "Login Required",
                "The realm named in ``WWW-Authenticate`` when a request has no token. "
                "``jwt_required(realm=...)`` overrides it for one view.",
            ),
            Setting(
                "JWT_AUTH_URL_RULE",
                "/auth",
                "The login route. ``None`` removes it (tokens are then made in code with "
                "``jwt.create_access_token``).",
            ),
            Setting("JWT_AUTH_ENDPOINT", "jwt", "The endpoint name of the login route, for ``url_for``."),
            Setting(
                "JWT_AUTH_URL_OPTIONS",
                {"methods": ["POST"]},
                "Extra options for ``app.add_url_rule`` of the login route.",
            ),
            Setting("JWT_AUTH_USERNAME_KEY", "username", "The JSON key of the username in a login body."),
            Setting("JWT_AUTH_PASSWORD_KEY", "password", "The JSON key of the password in a login body."),
            Setting(
                "JWT_ALGORITHM",
                "HS256",
                "The one algorithm the app signs with and accepts. A token's own ``alg`` header "
                "never chooses it, and ``none`` is always refused.",
            ),
            Setting(
                "JWT_LEEWAY",
                _dt.timedelta(seconds=10),
                "Clock skew allowed when ``exp``, ``nbf`` and ``iat`` are checked. A "
                "``timedelta`` or seconds.",
                "10 s",
            ),
            Setting(
                "JWT_AUTH_HEADER_PREFIX",
                "JWT",
                "The ``Authorization`` scheme clients send: ``JWT <token>``. Set ``\"Bearer\"`` "
                "for OAuth-style clients.",
            ),
            Setting(
                "JWT_EXPIRATION_DELTA",
                _dt.timedelta(seconds=300),
                "How long an access token lives. A ``timedelta`` or seconds.",
                "300 s",
            ),
            Setting(
                "JWT_NOT_BEFORE_DELTA",
                _dt.timedelta(seconds=0),
                "Added to the issue time to make ``nbf``.",
                "0 s",
            ),
            Setting(
                "JWT_VERIFY_CLAIMS",
                ["signature", "exp", "nbf", "iat"],
                "Kept for Flask-JWT apps that set it. As in Flask-JWT on PyJWT 1, it cannot "
                "switch a check off: the signature, ``exp``, ``nbf`` and ``iat`` are always verified.",
            ),
            Setting(
                "JWT_REQUIRED_CLAIMS",
                ["exp", "iat", "nbf"],
                "Claims a token must carry. Tokens of outside issuers need only ``exp`` unless "
                "the app sets this key.",
            ),
            Setting(
                "JWT_SECRET_KEY",
                None,
                "The HMAC secret for HS256, HS384 and HS512. When unset, Flask's ``SECRET_KEY`` "
                "is used. Read when a token is made, so it may be set after ``init_app``. A secret "
                "shorter than the hash output is reported once as weak; make one with "
                "``python -c \"import secrets; print(secrets.token_urlsafe(32))\"``.",
                "``SECRET_KEY``",
            ),
        ),
    ),
    (
        "Keys and claims",
        (
            Setting(
                "JWT_PRIVATE_KEY",
                None,
                "A PEM signing key (or a ``cryptography`` key object) for RS*, PS*, ES* and "
                "EdDSA. A key that cannot work with :confval:`JWT_ALGORITHM` raises "
                "``ConfigurationError`` at ``init_app``.",
            ),
            Setting(
                "JWT_PUBLIC_KEY",
                None,
                "The PEM verifying key. Derived from :confval:`JWT_PRIVATE_KEY` when unset; an "
                "app given only this key verifies tokens and signs none.",
            ),
            Setting(
                "JWT_ISSUER",
                None,
                "Put in the ``iss`` claim of new tokens and required in every token of the app's "
                "own. With :confval:`JWT_JWKS_URL_RULE` it also serves "
                "``/.well-known/openid-configuration``.",
            ),
            Setting(
                "JWT_AUDIENCE",
                None,
                "Put in the ``aud`` claim of new tokens and required in every token; a string or "
                "a list. Required with :confval:`JWT_OIDC_ISSUER`, where it is what the API is "
                "called at the identity provider.",
            ),
            Setting(
                "JWT_IDENTITY_CLAIM",
                "identity",
                "The claim that holds the identity. ``\"sub\"`` stores it as a string, as RFC 7519 "
                "asks. Outside issuers' tokens use ``sub`` while this key is left at its default.",
            ),
            Setting(
                "JWT_MAX_TOKEN_BYTES",
                8192,
                "Larger tokens are refused (401) before any decoding is attempted.",
            ),
            Setting(
                "JWT_VERIFIED_TOKEN_CACHE_SIZE",
                1024,
                "How many verified tokens each app remembers, so that a token seen before skips "
                "the signature check. Expiry and revocation are still checked on every request. "
                "``0`` turns the cache off.",
            ),
            Setting(
                "JWT_PERMISSIONS_CLAIM",
                "permissions",
                "Where permissions travel: a claim name, a dotted path into nested claims "
                "(``\"realm_access.roles\"``) or a list of them. ``scope`` and ``scp`` may be "
                "space-separated strings.",
            ),
        ),
    ),
    (
        "Key sets (JWKS)",
        (
            Setting(
                "JWT_KEYS",
                None,
                "Several keys, each with a ``kid``: a list of ``{\"kid\", \"alg\", \"private_key\" "
                "| \"public_key\" | \"secret\"}`` dicts, or a JWK Set (a dict with ``\"keys\"``, or "
                "its JSON). The first key signs new tokens; the others only verify.",
            ),
            Setting(
                "JWT_JWKS_URL_RULE",
                None,
                "Publish the public halves of the app's keys at this route, e.g. "
                "``\"/.well-known/jwks.json\"``. Private parts and HMAC secrets are never published.",
            ),
            Setting(
                "JWT_JWKS_URL",
                None,
                "An outside key set whose keys verify tokens beside the app's own, found by "
                "``kid``. Needs :confval:`JWT_AUDIENCE`.",
            ),
            Setting(
                "JWT_JWKS_TIMEOUT",
                5.0,
                "Seconds a fetch of a key set or a discovery document may take.",
                "5 s",
            ),
            Setting(
                "JWT_JWKS_REFRESH_INTERVAL",
                5.0,
                "The least time between two fetches of a key set, so that tokens with unknown "
                "``kid`` values cannot make the app hammer the issuer.",
                "5 s",
            ),
            Setting(
                "JWT_JWKS_CACHE_TTL",
                300.0,
                "How long a key set is kept when the issuer sends no ``Cache-Control: max-age``.",
                "300 s",
            ),
            Setting(
                "JWT_JWKS_STALE_IF_ERROR",
                3600.0,
                "How long the keys already known stay in use while the issuer cannot be reached. "
                "After that, requests get 503.",
                "3600 s",
            ),
        ),
    ),
    (
        "Outside issuers",
        (
            Setting(
                "JWT_OIDC_ISSUER",
                None,
                "Identity providers whose tokens the app accepts: an issuer URL, or a list of URLs "
                "or of ``{\"issuer\", \"audience\", \"jwks_url\", \"audience_claim\"}`` dicts. Keys "
                "are found through OpenID Connect discovery.",
            ),
            Setting(
                "JWT_ALGORITHMS",
                None,
                "The algorithms outside keys may use when their JWK names none. Default: "
                ":confval:`JWT_ALGORITHM` when it is asymmetric, else what the issuer's metadata "
                "lists.",
            ),
            Setting(
                "JWT_ACCESS_TOKEN_TYPE",
                None,
                "A ``typ`` that outside tokens must have, e.g. ``\"at+jwt\"`` (RFC 9068), so that "
                "an ID token is never taken for an access token.",
            ),
        ),
    ),
    (
        "Where tokens travel",
        (
            Setting(
                "JWT_TOKEN_LOCATION",
                ["headers"],
                "Where requests may carry tokens: any of ``\"headers\"``, ``\"cookies\"`` and "
                "``\"query_string\"``.",
            ),
            Setting("JWT_QUERY_STRING_NAME", "jwt", "The query parameter that holds a token."),
            Setting("JWT_ACCESS_COOKIE_NAME", "access_token", "The access-token cookie (``HttpOnly``)."),
            Setting(
                "JWT_REFRESH_COOKIE_NAME",
                "refresh_token",
                "The refresh-token cookie (``HttpOnly``), sent only to the refresh and logout routes.",
            ),
            Setting(
                "JWT_CSRF_COOKIE_NAME",
                "csrf_token",
                "The cookie that lets the page's scripts read the CSRF value (not ``HttpOnly``).",
            ),
            Setting(
                "JWT_CSRF_HEADER_NAME",
                "X-CSRF-Token",
                "The header that must echo the CSRF value on cookie-authenticated requests.",
            ),
            Setting(
                "JWT_CSRF_METHODS",
                ["POST", "PUT", "PATCH", "DELETE"],
                "The methods that need the CSRF header when the token comes from a cookie.",
            ),
            Setting("JWT_COOKIE_SECURE", True, "Mark the cookies ``Secure``."),
            Setting(
                "JWT_COOKIE_SAMESITE",
                "Lax",
                "The ``SameSite`` attribute: ``\"Lax\"``, ``\"Strict\"`` or ``\"None\"`` (which "
                "needs ``Secure``).",
            ),
            Setting("JWT_COOKIE_DOMAIN", None, "The ``Domain`` attribute of the cookies."),
            Setting(
                "JWT_COOKIE_PATH",
                None,
                "The path the app is mounted at. ``None`` takes ``request.script_root``; set it "
                "behind a proxy that strips a prefix without telling the app.",
            ),
            Setting(
                "JWT_COOKIE_PREFIX",
                None,
                "``\"__Host-\"`` or ``\"__Secure-\"`` in front of the cookie names, so that the "
                "browser enforces ``Secure`` (and, for ``__Host-``, ``Path=/`` and no domain).",
            ),
        ),
    ),
    (
        "Sessions: refresh, logout, revocation",
        (
            Setting(
                "JWT_REFRESH_URL_RULE",
                None,
                "The refresh route, e.g. ``\"/auth/refresh\"``. Setting it makes ``/auth`` answer "
                "a refresh token too.",
            ),
            Setting(
                "JWT_REFRESH_EXPIRATION_DELTA",
                _dt.timedelta(days=30),
                "How long a refresh token lives.",
                "30 days",
            ),
            Setting(
                "JWT_SESSION_MAX_AGE",
                None,
                "No session outlives its login by more than this, however often it refreshes. "
                "``None``: :confval:`JWT_REFRESH_EXPIRATION_DELTA`.",
            ),
            Setting(
                "JWT_REFRESH_REUSE_GRACE",
                0,
                "Seconds during which a just-spent refresh token gets the same successor again "
                "(for a client that lost the answer) instead of revoking the session.",
                "0 s",
            ),
            Setting("JWT_LOGOUT_URL_RULE", None, "The logout route, e.g. ``\"/auth/logout\"``."),
            Setting(
                "JWT_TOKEN_STORE",
                None,
                "Where revocations, refresh-token families, DPoP proof ids and login counters "
                "live: ``memory://`` (one process), ``sqlite:///name`` (a file in the instance "
                "folder, or ``sqlite:////absolute/path``: every process of one host), "
                "``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://``, a ``redis.Redis`` "
                "or ``RedisCluster`` client, or a ``TokenStore`` instance. ``None``: memory in one "
                "process, and ``sqlite:///tokenauth.sqlite3`` once several processes serve an app "
                "that needs shared state (:doc:`guides/deploying`). ``memory://`` set explicitly "
                "answers 503 to every write when several processes serve the app.",
            ),
            Setting(
                "JWT_TOKEN_STORE_PREFIX",
                "tokenauth:",
                "The prefix of the store's Redis keys. Every instance must use the same one; "
                "braces are refused.",
            ),
            Setting(
                "JWT_TOKEN_STORE_TIMEOUT",
                1.0,
                "The most one store operation may take, retries included. Past it the request "
                "gets 503.",
                "1 s",
            ),
            Setting(
                "JWT_TOKEN_STORE_FAIL_OPEN",
                False,
                "Let tokens through (and logins unthrottled) while the store is down, with a "
                "warning for each failure, instead of answering 503.",
            ),
            Setting(
                "JWT_TOKEN_STORE_MAX_CONNECTIONS",
                50,
                "Connections per process to a Redis server (to each node of a cluster), whatever "
                "the number of threads or greenlets.",
            ),
            Setting(
                "JWT_TOKEN_STORE_CACHE_SIZE",
                50000,
                "Redis values each process keeps in memory, invalidated by Redis itself "
                "(``CLIENT TRACKING``). ``0`` sends every check to Redis.",
            ),
        ),
    ),
    (
        "DPoP (RFC 9449)",
        (
            Setting(
                "JWT_DPOP",
                False,
                "``\"allowed\"``: a login with a ``DPoP`` proof gets tokens bound to the client's "
                "key. ``\"required\"``: every token must be bound. ``False``: off (bound tokens "
                "of outside issuers are still checked).",
            ),
            Setting(
                "JWT_DPOP_ALGORITHMS",
                None,
                "The algorithms proofs may use. ``None``: ES256, ES384, RS256, PS256, EdDSA and "
                "Ed25519.",
            ),
            Setting(
                "JWT_DPOP_PROOF_MAX_AGE",
                60.0,
                "How old a proof's ``iat`` may be, in seconds (clocks ahead get "
                ":confval:`JWT_LEEWAY`).",
                "60 s",
            ),
            Setting(
                "JWT_DPOP_NONCE",
                False,
                "Proofs must carry the server's current ``DPoP-Nonce`` (stateless, the same on "
                "every instance).",
            ),
        ),
    ),
    (
        "Login throttling",
        (
            Setting(
                "JWT_LOGIN_RATE_LIMIT",
                None,
                "Failed logins allowed per username and per client address, in the ``limits`` "
                "notation, e.g. ``\"5 per minute\"``. Past it, ``/auth`` answers 429.",
            ),
            Setting(
                "JWT_LOGIN_RATE_LIMIT_STORAGE",
                None,
                "A ``limits`` storage URI for the counters. ``None``: the token store's Redis "
                "when it is Redis, else memory.",
            ),
        ),
    ),
)

#: Every setting by key.
SETTINGS: Dict[str, Setting] = {setting.key: setting for _, group in SECTIONS for setting in group}

#: Every key's default. ``JWT_SECRET_KEY`` is deliberately absent: it falls
#: back to ``SECRET_KEY`` when a token is made, so an app may set either
#: after ``init_app``.
DEFAULTS: Dict[str, Any] = {
    key: setting.default for key, setting in SETTINGS.items() if key != "JWT_SECRET_KEY"
}


def shown_default(setting: Setting) -> str:
    """The default of ``setting`` as the configuration reference shows it."""
    if setting.shown is not None:
        return setting.shown
    text = repr(setting.default)
    if '"' not in text:
        text = text.replace("'", '"')  # as the value is written in JSON and most config files
    return "``%s``" % text


#: The claim that tells access tokens from refresh tokens. Not ``type``:
#: Flask-JWT apps put their own ``type`` claims into tokens.
TYPE_CLAIM = "token_type"


def seconds(value: Union[int, float, _dt.timedelta]) -> float:
    """A duration as seconds; ints, floats and timedeltas are accepted.

    ``True`` and ``False`` are refused: ``False`` is not "never expires"
    (every token has an ``exp``), and it would otherwise read as 0 seconds.
    """
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError("a duration must be a number of seconds or a timedelta, not %r" % (value,))
    return float(value)


#: Settings that are durations; ``None`` is allowed for the optional ones.
DURATIONS = (
    "JWT_LEEWAY",
    "JWT_EXPIRATION_DELTA",
    "JWT_NOT_BEFORE_DELTA",
    "JWT_REFRESH_EXPIRATION_DELTA",
    "JWT_SESSION_MAX_AGE",
    "JWT_REFRESH_REUSE_GRACE",
    "JWT_JWKS_TIMEOUT",
    "JWT_JWKS_REFRESH_INTERVAL",
    "JWT_JWKS_CACHE_TTL",
    "JWT_JWKS_STALE_IF_ERROR",
    "JWT_TOKEN_STORE_TIMEOUT",
    "JWT_DPOP_PROOF_MAX_AGE",
)
_OPTIONAL_DURATIONS = ("JWT_SESSION_MAX_AGE", "JWT_REFRESH_REUSE_GRACE")
TOKEN_LOCATIONS = ("headers", "cookies", "query_string")


def locations_of(value: Any) -> Tuple[str, ...]:
    """``JWT_TOKEN_LOCATION`` as a tuple: one name may be given as a string."""
    return (value,) if isinstance(value, str) else tuple(value)


def check_settings(conf: Mapping[str, Any]) -> None:
    """Refuse at ``init_app`` durations and token locations that cannot work,
    rather than with a 500 on the first login."""
    from .errors import ConfigurationError

    for key in DURATIONS:
        value = conf.get(key, DEFAULTS.get(key))
        if value is None and key in _OPTIONAL_DURATIONS:
            continue
        try:
            if seconds(value) < 0:
                raise ConfigurationError("%s must not be negative, not %r" % (key, value))
        except TypeError as exc:
            raise ConfigurationError("%s: %s" % (key, exc)) from exc
    locations = locations_of(conf.get("JWT_TOKEN_LOCATION", DEFAULTS["JWT_TOKEN_LOCATION"]) or ())
    unknown = [where for where in locations if where not in TOKEN_LOCATIONS]
    if unknown or not locations:
        raise ConfigurationError(
            "JWT_TOKEN_LOCATION %r: use one or more of %s" % (list(locations), ", ".join(TOKEN_LOCATIONS))
        )


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
        return locations_of(self.get("JWT_TOKEN_LOCATION"))

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
            get("JWT_ACCESS_TOKEN_TYPE"),
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
