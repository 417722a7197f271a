"""An outside issuer's key set, fetched from its JWKS URL and kept current.

A :class:`KeySet` is what :mod:`flask_tokenauth.issuers` (``JWT_OIDC_ISSUER``)
and ``JWT_JWKS_URL`` verify outside tokens with:

- **Algorithms** come from the JWK's ``alg`` when it has one, else from what
  the app allows for that key type (``JWT_ALGORITHMS``/``JWT_ALGORITHM`` when
  set), else from the issuer's metadata, else the one that OpenID Connect or
  the key type implies (RS256 for RSA, the curve's for EC, EdDSA for
  Ed25519). Never from the token: its ``alg`` must be one of those.
  Symmetric and encryption keys of an outside issuer are never used.
- **Caching** follows ``Cache-Control: max-age`` within bounds; an unknown
  ``kid`` refetches after a short cooldown; an issuer that is down leaves the
  known keys in use for a bounded time (logged). One fetch per issuer at a
  time: while it runs, requests with known keys carry on.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import jwt as _pyjwt

from .errors import JWTError
from .keys import ASYMMETRIC, Key

logger = logging.getLogger("flask_tokenauth")

_MAX_DOCUMENT_BYTES = 1024 * 1024
_MAX_TTL = 86400.0  # a day: an issuer that asks for more is not believed
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

#: Algorithms each key type can verify, and the one it implies without any hint.
_FAMILIES: Dict[Tuple[str, Optional[str]], Tuple[Tuple[str, ...], str]] = {
    ("RSA", None): (("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"), "RS256"),
    ("EC", "P-256"): (("ES256",), "ES256"),
    ("EC", "P-384"): (("ES384",), "ES384"),
    ("EC", "P-521"): (("ES512",), "ES512"),
    ("EC", "secp256k1"): (("ES256K",), "ES256K"),
    ("OKP", "Ed25519"): (("EdDSA", "Ed25519"), "EdDSA"),
}


def unavailable(description: str) -> JWTError:
    """The issuer's side is broken (down, or answering garbage): 503, never 401."""
    return JWTError("Service Unavailable", description, 503, {"Retry-After": "5"})


def fetch_json(url: str, timeout: float) -> Tuple[Any, Optional[float]]:
    """A JSON document and its ``Cache-Control`` max-age (``None`` when absent)."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with _OPENER.open(request, timeout=timeout) as answer:
        raw = answer.read(_MAX_DOCUMENT_BYTES + 1)
        control = answer.headers.get("Cache-Control") or ""
    if len(raw) > _MAX_DOCUMENT_BYTES:
        raise ValueError("document larger than 1 MiB")
    found = re.search(r"(?:^|[,\s])max-age=(\d+)", control)
    max_age = float(found.group(1)) if found and "no-store" not in control else None
    return json.loads(raw), max_age


def algorithms_for(
    jwk: Mapping[str, Any], allowed: Optional[Sequence[str]], advertised: Sequence[str]
) -> List[str]:
    """What a fetched JWK may verify (empty: the key is not used)."""
    if jwk.get("use") not in (None, "sig") or jwk.get("kty") == "oct":
        return []
    kty, crv = str(jwk.get("kty")), jwk.get("crv")
    family = _FAMILIES.get((kty, None if kty == "RSA" else str(crv)))
    if family is None:
        return []
    possible, implied = family
    alg = jwk.get("alg")
    if alg is not None:
        found = [alg] if alg in possible else []
    elif allowed:
        found = [a for a in allowed if a in possible]
    else:
        found = [a for a in advertised if a in possible] or [implied]
    if allowed:
        found = [a for a in found if a in allowed]
    return [a for a in found if a in ASYMMETRIC]


class KeySettings(NamedTuple):
    """How key sets are fetched and kept (from the ``JWT_JWKS_*`` settings)."""

    timeout: float
    cooldown: float
    default_ttl: float
    stale_for: float
    allowed: Optional[Tuple[str, ...]]


class _Snapshot(NamedTuple):
    keys: Dict[Optional[str], List[Key]]
    fetched: float  # monotonic
    expires: float  # monotonic


class KeySet:
    """One issuer's JWK Set, fetched and cached (see the module docstring)."""

    def __init__(self, url: str, settings: KeySettings, advertised: Sequence[str] = ()) -> None:
        self.url = url
        self.timeout = settings.timeout
        self.cooldown = settings.cooldown
        self.default_ttl = settings.default_ttl
        self.stale_for = settings.stale_for
        self.allowed = settings.allowed
        self.advertised = tuple(advertised)
        self._snapshot: Optional[_Snapshot] = None
        self._fetching = threading.Lock()
        self._retry_after = float("-inf")

    def select(self, kid: Optional[str], alg: Any) -> Key:
        """The key that must have verified a token with this ``kid`` and ``alg``."""
        snapshot = self._fresh()
        if kid is not None and kid not in snapshot.keys:
            snapshot = self._refetch_for(kid, snapshot)
        if kid is None:
            fits = [k for keys in snapshot.keys.values() for k in keys if k.algorithm == alg]
            if len(fits) != 1:
                raise _pyjwt.InvalidTokenError("Token has no key id (kid)")
            return fits[0]
        keys = snapshot.keys.get(kid)
        if not keys:
            raise _pyjwt.InvalidTokenError("Unknown key id")
        for key in keys:
            if key.algorithm == alg:
                return key
        raise _pyjwt.InvalidAlgorithmError("The specified alg value is not allowed")

    def horizon(self) -> float:
        """Wall-clock time until which the keys in use are known to be current."""
        snapshot = self._snapshot
        if snapshot is None:
            return time.time()
        return time.time() + max(0.0, snapshot.expires - time.monotonic())

    # --- fetching ----------------------------------------------------------------

    def _fresh(self) -> _Snapshot:
        snapshot = self._snapshot
        now = time.monotonic()
        if snapshot is not None and now < snapshot.expires:
            return snapshot
        if snapshot is None:  # nothing to go on yet: wait for the one fetch
            with self._fetching:
                if self._snapshot is None:
                    self._fetch(fail_hard=True)
                assert self._snapshot is not None
                return self._snapshot
        # Expired: this request refreshes unless another one already does, in
        # which case it carries on with the keys it has.
        if now >= self._retry_after and self._fetching.acquire(blocking=False):
            try:
                self._fetch(fail_hard=now >= snapshot.expires + self.stale_for)
            finally:
                self._fetching.release()
        elif now >= snapshot.expires + self.stale_for:
            raise unavailable("The issuer's key set cannot be fetched; try again shortly")
        return self._snapshot or snapshot

    def _refetch_for(self, kid: str, snapshot: _Snapshot) -> _Snapshot:
        """An unknown kid: fetch again (the issuer may have rotated), at most once
        per cooldown, and never two fetches at a time."""
        with self._fetching:
            current = self._snapshot or snapshot
            if kid in current.keys or time.monotonic() - current.fetched < self.cooldown:
                return current
            self._fetch(fail_hard=False)
            return self._snapshot or current

    def _fetch(self, *, fail_hard: bool) -> None:
        started = time.monotonic()
        try:
            document, max_age = fetch_json(self.url, self.timeout)
            keys = self._parse(document)
        except (OSError, ValueError, TypeError, urllib.error.URLError) as exc:
            self._retry_after = time.monotonic() + self.cooldown
            if fail_hard or self._snapshot is None:
                logger.error("issuer key set %s unusable: %s", self.url, exc)
                raise unavailable("The issuer's key set cannot be fetched; try again shortly") from exc
            logger.warning("issuer key set %s unusable (%s): using the keys fetched before", self.url, exc)
            return
        # At least the refetch cooldown: an issuer saying max-age=0 gets no fetch per request.
        ttl = self.default_ttl if max_age is None else min(max(max_age, self.cooldown), _MAX_TTL)
        self._snapshot = _Snapshot(keys, started, started + ttl)

    def _parse(self, document: Any) -> Dict[Optional[str], List[Key]]:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("not a JWK Set")
        keys: Dict[Optional[str], List[Key]] = {}
        for jwk in document["keys"]:
            if not isinstance(jwk, dict):
                continue
            kid = jwk.get("kid")
            if kid is not None and not isinstance(kid, str):
                continue
            for alg in algorithms_for(jwk, self.allowed, self.advertised):
                try:
                    verifying = _pyjwt.PyJWK(
                        {k: v for k, v in jwk.items() if k not in ("x5c", "x5u")}, algorithm=alg
                    ).key
                except Exception:  # a key this PyJWT cannot use: skip it, not the set
                    continue
                keys.setdefault(kid, []).append(Key(kid, alg, None, verifying))
        if not keys:
            raise ValueError("no usable signing key in the set")
        return keys
