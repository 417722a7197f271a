"""Outside issuers: an identity provider's (or another service's) tokens.

``JWT_OIDC_ISSUER`` names the issuers the app trusts. OpenID Connect
discovery (RFC 8414 metadata as a fallback) finds each one's key set on first
use, and a token's ``iss`` picks the issuer whose keys alone may verify it
(:mod:`flask_tokenauth.keysets` keeps the keys). Every issuer's tokens must
name the app's audience (RFC 9068).
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
from typing import Any, List, Mapping, Optional, Tuple

from .config import seconds
from .errors import ConfigurationError
from .keys import ASYMMETRIC
from .keysets import KeySet, KeySettings, fetch_json, unavailable

logger = logging.getLogger("flask_tokenauth")


def discover(issuer: str, timeout: float) -> Tuple[str, Tuple[str, ...]]:
    """The issuer's ``jwks_uri`` and advertised signing algorithms, from its
    OpenID Connect discovery document, else its RFC 8414 metadata. The
    document's ``issuer`` must equal ``issuer`` exactly (OpenID Connect
    Discovery section 4.3, RFC 8414 section 3.3)."""
    base = issuer.rstrip("/")
    scheme, _, rest = base.partition("://")
    host, slash, path = rest.partition("/")
    places = [
        base + "/.well-known/openid-configuration",
        "%s://%s/.well-known/oauth-authorization-server%s" % (scheme, host, slash + path if path else ""),
    ]
    problems = []
    for url in places:
        try:
            document, _ = fetch_json(url, timeout)
        except (OSError, ValueError, urllib.error.URLError) as exc:
            problems.append("%s: %s" % (url, exc))
            continue
        if not isinstance(document, dict) or document.get("issuer") != issuer:
            found = document.get("issuer") if isinstance(document, dict) else None
            problems.append("%s names issuer %r, not %r" % (url, found, issuer))
            continue
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            problems.append("%s has no jwks_uri" % url)
            continue
        advertised = document.get("id_token_signing_alg_values_supported") or ()
        return jwks_uri, tuple(a for a in advertised if isinstance(a, str))
    raise ValueError("; ".join(problems))


class OutsideIssuer:
    """One issuer the app trusts: the ``iss`` it puts in tokens (``None``: any,
    for ``JWT_JWKS_URL``), the audience its tokens must name, and its key set,
    found by discovery on first use unless ``jwks_url`` is given."""

    def __init__(
        self,
        issuer: Optional[str],
        audience: Any,
        jwks_url: Optional[str],
        settings: KeySettings,
        audience_claim: str = "aud",
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        #: Where its tokens name their audience: ``aud``, or ``client_id`` for
        #: issuers that put none there (Amazon Cognito's access tokens).
        self.audience_claim = audience_claim
        self.jwks_url = jwks_url
        self.settings = settings
        self._keyset: Optional[KeySet] = None
        self._lock = threading.Lock()
        self._failed_at = float("-inf")

    def keyset(self) -> KeySet:
        keyset = self._keyset
        if keyset is not None:
            return keyset
        with self._lock:
            if self._keyset is None:
                url, advertised = self._locate()
                self._keyset = KeySet(url, self.settings, advertised)
            return self._keyset

    def _locate(self) -> Tuple[str, Tuple[str, ...]]:
        """The key set's URL (given, or discovered) and the advertised algorithms."""
        if self.jwks_url is not None:
            return self.jwks_url, ()
        assert self.issuer is not None
        if time.monotonic() - self._failed_at < self.settings.cooldown:
            raise unavailable("The issuer's metadata cannot be fetched; try again shortly")
        try:
            return discover(self.issuer, self.settings.timeout)
        except ValueError as exc:
            self._failed_at = time.monotonic()
            logger.error("issuer %s: discovery failed: %s", self.issuer, exc)
            raise unavailable("The issuer's metadata cannot be fetched; try again shortly") from exc


def issuers_from_config(spec: Any, audience: Any, settings: KeySettings) -> List[OutsideIssuer]:
    """``JWT_OIDC_ISSUER``: a URL, or a list of URLs and of ``{"issuer",
    "audience"?, "jwks_url"?}`` entries. Every issuer needs an audience (its
    own, or ``JWT_AUDIENCE``), as RFC 9068 asks of a resource server."""
    if spec is None:
        return []
    entries = [spec] if isinstance(spec, (str, Mapping)) else list(spec)
    found = []
    for index, entry in enumerate(entries):
        where = "JWT_OIDC_ISSUER[%d]" % index if not isinstance(spec, (str, Mapping)) else "JWT_OIDC_ISSUER"
        if isinstance(entry, str):
            entry = {"issuer": entry}
        if not isinstance(entry, Mapping) or not isinstance(entry.get("issuer"), str):
            raise ConfigurationError("%s must be an issuer URL or a dict with an 'issuer' URL" % where)
        unknown = set(entry) - {"issuer", "audience", "jwks_url", "audience_claim"}
        if unknown:
            raise ConfigurationError("%s has unknown fields: %s" % (where, ", ".join(sorted(unknown))))
        if not entry["issuer"].startswith(("https://", "http://")):
            raise ConfigurationError("%s %r is not an http(s) URL" % (where, entry["issuer"]))
        wanted = entry.get("audience", audience)
        if not wanted:
            raise ConfigurationError(
                "%s: set JWT_AUDIENCE (or the entry's 'audience'): a resource server must check "
                "that tokens are meant for it (RFC 9068 section 4)" % where
            )
        claim = entry.get("audience_claim", "aud")
        if claim not in ("aud", "client_id", "azp"):
            raise ConfigurationError("%s: audience_claim must be 'aud', 'client_id' or 'azp'" % where)
        found.append(OutsideIssuer(entry["issuer"], wanted, entry.get("jwks_url"), settings, claim))
    names = [issuer.issuer for issuer in found]
    if len(set(names)) != len(names):
        raise ConfigurationError("JWT_OIDC_ISSUER names an issuer twice")
    return found


def outside_from_config(
    get: Any, algorithm_explicit: bool
) -> Tuple[Optional[OutsideIssuer], List[OutsideIssuer]]:
    """The ``JWT_JWKS_URL`` key set (found by kid beside the app's own keys) and
    the ``JWT_OIDC_ISSUER`` issuers (found by the token's ``iss``)."""
    listed = get("JWT_ALGORITHMS")
    if isinstance(listed, str):
        listed = [listed]
    if not listed and algorithm_explicit:
        listed = [get("JWT_ALGORITHM")]
    # An HMAC algorithm says nothing about an outside issuer's keys.
    allowed = tuple(a for a in listed or () if a in ASYMMETRIC) or None
    settings = KeySettings(
        timeout=seconds(get("JWT_JWKS_TIMEOUT")),
        cooldown=seconds(get("JWT_JWKS_REFRESH_INTERVAL")),
        default_ttl=seconds(get("JWT_JWKS_CACHE_TTL")),
        stale_for=seconds(get("JWT_JWKS_STALE_IF_ERROR")),
        allowed=allowed,
    )
    url = get("JWT_JWKS_URL")
    if url and not get("JWT_AUDIENCE"):
        raise ConfigurationError(
            "JWT_JWKS_URL: set JWT_AUDIENCE, what this API is called at the issuer: without it, "
            "tokens the issuer made for any other API would be accepted (RFC 9068 section 4)"
        )
    remote = OutsideIssuer(None, None, url, settings) if url else None
    return remote, issuers_from_config(get("JWT_OIDC_ISSUER"), get("JWT_AUDIENCE"), settings)
