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
  ``kid`` refetches, at most once per cooldown (``JWT_JWKS_REFRESH_INTERVAL``,
  counted from every try, failed ones included); an issuer that is down
  leaves the known keys in use for a bounded time (logged), and a token with
  an unknown ``kid`` gets 503 meanwhile (a new key cannot be told from a
  forged one).
- **Fetching**: one fetch per issuer at a time. While it runs, requests with
  known keys carry on, and requests that need its result wait for it rather
  than start another. ``JWT_JWKS_TIMEOUT`` bounds a whole fetch, however
  slowly the answer trickles in; at most 1 MiB, http(s) only, and redirects
  only within the URL's origin (never to another host, nor from https to
  http).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import jwt as _pyjwt

from .errors import JWTError
from .keys import ASYMMETRIC, Key

logger = logging.getLogger("flask_tokenauth")

_MAX_DOCUMENT_BYTES = 1024 * 1024
_MAX_TTL = 86400.0  # a day: an issuer that asks for more is not believed


def _origin(url: str) -> Tuple[str, str, int]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


class _SameOrigin(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only within the URL's own origin (scheme, host and
    port): keys found on another host, or over http after https, are not the
    issuer's."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if _origin(newurl) != _origin(req.full_url):
            raise urllib.error.HTTPError(
                req.full_url, code, "redirect to another origin refused", headers, fp
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _SameOrigin())


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
    """A JSON document and its ``Cache-Control`` max-age (``None`` when absent).

    ``timeout`` bounds the whole fetch, not each read: a server that trickles
    its answer is cut off at the deadline. Only http(s) URLs, at most 1 MiB,
    redirects only within the URL's origin."""
    deadline = time.monotonic() + timeout
    if _origin(url)[0] not in ("http", "https"):
        raise ValueError("%s: only http and https URLs are fetched" % url)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with _OPENER.open(request, timeout=timeout) as answer:
        control = answer.headers.get("Cache-Control") or ""
        declared = answer.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > _MAX_DOCUMENT_BYTES:
            raise ValueError("document larger than 1 MiB")
        sock = getattr(getattr(getattr(answer, "fp", None), "raw", None), "_sock", None)
        chunks: List[bytes] = []
        size = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no whole answer within %g s" % timeout)
            if sock is not None:  # each read waits at most until the deadline
                sock.settimeout(left)
            chunk = answer.read1(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > _MAX_DOCUMENT_BYTES:
                raise ValueError("document larger than 1 MiB")
    found = re.search(r"(?:^|[,\s])max-age=(\d+)", control)
    max_age = float(found.group(1)) if found and "no-store" not in control else None
    try:
        return json.loads(b"".join(chunks)), max_age
    except RecursionError:
        raise ValueError("document nested too deeply") from None


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
        #: When the last fetch started (monotonic), and whether it failed: the
        #: cooldown counts from every try, a failed one included.
        self._tried = float("-inf")
        self._failed = False

    def select(self, kid: Optional[str], alg: Any) -> Key:
        """The key that must have verified a token with this ``kid`` and ``alg``."""
        snapshot = self._usable()
        if kid is not None and kid not in snapshot.keys:
            # Perhaps a new key (the issuer rotated): fetch again, at most once
            # per cooldown, one fetch at a time.
            self._fetch_once()
            snapshot = self._snapshot or snapshot
            if kid not in snapshot.keys and self._failed:
                # While the issuer cannot be reached, a new key cannot be told from a forged kid.
                raise unavailable("The issuer's key set cannot be fetched; try again shortly")
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

    def _usable(self) -> _Snapshot:
        """Keys that may be used now. Current ones as they are; expired ones
        while a refresh is due (this request starts it unless another runs),
        for up to ``stale_for``; none: wait for a fetch, or 503."""
        snapshot = self._snapshot
        now = time.monotonic()
        if snapshot is not None and now < snapshot.expires:
            return snapshot
        if snapshot is not None and now < snapshot.expires + self.stale_for:
            self._fetch_once(wait=False)
            return self._snapshot or snapshot
        self._fetch_once()
        snapshot = self._snapshot
        if snapshot is None or time.monotonic() >= snapshot.expires + self.stale_for:
            raise unavailable("The issuer's key set cannot be fetched; try again shortly")
        return snapshot

    def _fetch_once(self, *, wait: bool = True) -> None:
        """Fetch, unless a try was made within the cooldown; while another
        request fetches, ``wait`` for its result (at most the fetch's own
        deadline) instead of starting a second fetch."""
        if self._fetching.acquire(blocking=False):
            try:
                if time.monotonic() - self._tried >= self.cooldown:
                    self._fetch()
            finally:
                self._fetching.release()
        elif wait and self._fetching.acquire(timeout=self.timeout + 1.0):
            self._fetching.release()

    def _fetch(self) -> None:
        """One fetch (the caller holds ``_fetching``); a failure is logged and
        kept in ``_failed``, never raised: the caller decides what it means."""
        started = self._tried = time.monotonic()
        try:
            document, max_age = fetch_json(self.url, self.timeout)
            keys = self._parse(document)
        except (OSError, ValueError, TypeError, urllib.error.URLError) as exc:
            self._failed = True
            if self._snapshot is None:
                logger.error("issuer key set %s unusable: %s", self.url, exc)
            else:
                logger.warning(
                    "issuer key set %s unusable (%s): using the keys fetched before",
                    self.url,
                    exc,
                )
            return
        self._failed = False
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
