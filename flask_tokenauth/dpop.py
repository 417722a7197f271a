"""DPoP (RFC 9449): tokens bound to a key the client holds and never sends.

A client signs a short *proof* (a JWS of type ``dpop+jwt`` carrying its public
key) for every request. Login and refresh put the key's RFC 7638 thumbprint
into the tokens as ``cnf: {"jkt": ...}``; a bound token is then accepted only
as ``Authorization: DPoP <token>`` beside a valid proof made with that key
and naming this request and this token. A copied token is worthless without
the key.

``JWT_DPOP``: ``False`` (off; bound tokens from outside issuers are still
checked), ``"allowed"`` (a login or refresh with a proof gets bound tokens) or
``"required"`` (every token must be bound). Proof ids (``jti``) are remembered
in the token store, so a proof replayed on any instance is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import quote, unquote, urlsplit

from flask import request
from jwt.algorithms import get_default_algorithms
from jwt.utils import base64url_decode, base64url_encode

from .config import config, seconds
from .errors import ConfigurationError, JWTError
from .keys import ASYMMETRIC, thumbprint
from .store import StoreError

#: Proof algorithms accepted unless ``JWT_DPOP_ALGORITHMS`` says otherwise
#: (RFC 9864's "Ed25519" is the name current clients send for EdDSA keys).
DEFAULT_ALGORITHMS = ("ES256", "ES384", "RS256", "PS256", "EdDSA", "Ed25519")
_PRIVATE_MEMBERS = frozenset(("d", "p", "q", "dp", "dq", "qi", "oth", "k"))
_MAX_PROOF_BYTES = 8192
_NONCE_WINDOW = 300.0  # seconds one server nonce stays current
_UNRESERVED = "-._~"
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


#: The key each proof algorithm needs: its ``kty`` and, for curves, its ``crv``
#: (RFC 7518 section 3.4, RFC 8037, RFC 9864).
_KEYS_OF: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    **{alg: ("RSA", ()) for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    "ES256": ("EC", ("P-256",)),
    "ES256K": ("EC", ("secp256k1",)),
    "ES384": ("EC", ("P-384",)),
    "ES512": ("EC", ("P-521",)),
    "EdDSA": ("OKP", ("Ed25519", "Ed448")),
    "Ed25519": ("OKP", ("Ed25519",)),
}


class _NotFinite(ValueError):
    """NaN or Infinity in a proof: Python's json reads them, JSON (RFC 8259) has none."""


def _refuse_constant(name: str) -> Any:
    raise _NotFinite(name)


def _json(raw: bytes) -> Any:
    return json.loads(raw, parse_constant=_refuse_constant)


#: PyJWT's algorithms; RFC 9864's "Ed25519" is verified as EdDSA (PyJWT knows that name only).
_ALGORITHMS = get_default_algorithms()
_HEADER_CACHE_SIZE = 512
_HEADERS: Dict[str, Tuple[str, Any, Any, str]] = {}


def algorithms() -> List[str]:
    allowed = config.get("JWT_DPOP_ALGORITHMS") or DEFAULT_ALGORITHMS
    return [alg for alg in allowed if alg in ASYMMETRIC]


def mode() -> Any:
    return config.get("JWT_DPOP") or False


def check_settings(conf: Mapping[str, Any]) -> None:
    """DPoP settings that cannot work, as a ConfigurationError at init_app."""
    value = conf.get("JWT_DPOP", False)
    if value not in (False, None, "allowed", "required"):
        raise ConfigurationError('JWT_DPOP %r: use False, "allowed" or "required"' % (value,))
    listed = conf.get("JWT_DPOP_ALGORITHMS")
    if listed is not None and (
        isinstance(listed, str) or not listed or any(alg not in ASYMMETRIC for alg in listed)
    ):
        raise ConfigurationError(
            "JWT_DPOP_ALGORITHMS must list asymmetric algorithms (ES256, EdDSA...)"
        )
    if conf.get("JWT_DPOP_NONCE") and not (conf.get("JWT_SECRET_KEY") or conf.get("SECRET_KEY")):
        raise ConfigurationError(
            "JWT_DPOP_NONCE needs JWT_SECRET_KEY or SECRET_KEY to derive nonces from"
        )


# --- errors -------------------------------------------------------------------------


def refused(description: str, *, token_endpoint: bool, error: str = "invalid_dpop_proof") -> JWTError:
    """A refusal: 400 at the login and refresh routes (RFC 9449 section 5),
    else 401 with a ``DPoP`` challenge naming the accepted algorithms."""
    headers: Dict[str, str] = {}
    if error == "use_dpop_nonce":
        headers["DPoP-Nonce"] = current_nonce()
    if token_endpoint:
        return JWTError(error, description, 400, headers)
    text = "".join(c if " " <= c <= "~" and c not in '"\\' else "'" for c in description)
    headers["WWW-Authenticate"] = 'DPoP algs="%s", error="%s", error_description="%s"' % (
        " ".join(algorithms()), error, text,
    )
    title = {"invalid_token": "Invalid token", "use_dpop_nonce": "Use DPoP nonce"}.get(
        error, "Invalid DPoP proof"
    )
    return JWTError(title, description, 401, headers)


# --- nonces (RFC 9449 section 8): stateless, the same on every instance ------------


def _nonce(window: int) -> str:
    secret = config.get("JWT_SECRET_KEY") or config.get("SECRET_KEY") or ""
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    digest = hmac.new(key, b"flask-tokenauth dpop nonce %d" % window, hashlib.sha256).digest()
    return base64url_encode(digest[:18]).decode("ascii")


def current_nonce() -> str:
    return _nonce(int(time.time() // _NONCE_WINDOW))


def _nonce_ok(value: Any) -> bool:
    window = int(time.time() // _NONCE_WINDOW)
    return isinstance(value, str) and any(
        hmac.compare_digest(value, _nonce(w)) for w in (window, window - 1)
    )


# --- the proof ------------------------------------------------------------------------


def _normal_url(url: Any) -> Optional[tuple]:
    """A URL compared after RFC 3986 normalisation: case of scheme and host,
    default ports, percent-encoding. A proof's ``htu`` has no query or
    fragment (RFC 9449 section 4.2): one that has them matches nothing."""
    if not isinstance(url, str) or "?" in url or "#" in url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    port = port or (443 if scheme == "https" else 80)
    path = quote(unquote(parts.path or "/"), safe="/:@!$&'()*+,;=" + _UNRESERVED)
    return scheme, parts.hostname.lower(), port, path


def ath_of(token: str) -> str:
    """The ``ath`` a proof must carry for ``token``: base64url(SHA-256(token))."""
    return base64url_encode(hashlib.sha256(token.encode("ascii", "replace")).digest()).decode("ascii")


def check_proof(*, access_token: Optional[str], token_endpoint: bool) -> str:
    """Check the request's DPoP proof (RFC 9449 section 4.3); the thumbprint of
    its key. ``access_token``: the token it must name (``ath``)."""

    def fail(description: str, error: str = "invalid_dpop_proof") -> JWTError:
        return refused(description, token_endpoint=token_endpoint, error=error)

    # WSGI joins repeated headers with commas, which a compact JWS never holds.
    proofs = [part for value in request.headers.getlist("DPoP") for part in value.split(",")]
    if not proofs:
        raise fail("A DPoP proof is required (the DPoP header)")
    if len(proofs) != 1:
        raise fail("Exactly one DPoP header is allowed")
    proof = proofs[0]
    if len(proof) > _MAX_PROOF_BYTES or not _COMPACT.fullmatch(proof):
        raise fail("The DPoP proof is not a compact JWS")
    # PyJWT's algorithms and base64url do the JOSE work; the header is read
    # once here (PyJWS would parse the proof twice: for the key, then to verify).
    head, body, signature = proof.split(".")
    alg, verifier, key, jkt = _header(head, fail)
    try:
        if not verifier.verify((head + "." + body).encode("ascii"), key, base64url_decode(signature)):
            raise fail("The DPoP proof's signature is invalid")
    except JWTError:
        raise
    except Exception:  # a broken segment
        raise fail("The DPoP proof's signature is invalid") from None
    try:
        claims = _json(base64url_decode(body))
    except _NotFinite:
        raise fail("The DPoP proof holds NaN or Infinity, which JSON does not allow") from None
    except (ValueError, TypeError, RecursionError):
        claims = None
    if not isinstance(claims, dict):
        raise fail("The DPoP proof's payload is not a JSON object")
    _check_claims(claims, access_token, fail)
    _check_fresh(claims, jkt, token_endpoint)
    return jkt


def _header(head: str, fail: Any) -> Tuple[str, Any, Any, str]:
    """The proof header's algorithm, verifier, public key and thumbprint. A
    client sends the same header with every proof, so the parsed key is kept
    (a few hundred headers), keyed by the header's exact text."""
    found = _HEADERS.get(head)
    if found is not None:
        if found[0] not in algorithms():  # the app's settings may differ from the one that parsed it
            raise fail("The DPoP proof's alg must be one of %s" % ", ".join(algorithms()))
        return found
    try:
        header = _json(base64url_decode(head))
    except _NotFinite:
        raise fail("The DPoP proof holds NaN or Infinity, which JSON does not allow") from None
    except (ValueError, TypeError, RecursionError):  # RecursionError: nesting thousands deep
        raise fail("The DPoP proof is not a compact JWS") from None
    if not isinstance(header, dict) or header.get("typ") != "dpop+jwt":
        raise fail("The DPoP proof's typ must be dpop+jwt")
    alg = header.get("alg")
    if alg not in algorithms():
        raise fail("The DPoP proof's alg must be one of %s" % ", ".join(algorithms()))
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise fail("The DPoP proof's header has no jwk")
    if _PRIVATE_MEMBERS & set(jwk):
        raise fail("The DPoP proof's jwk holds a private key")
    kty, curves = _KEYS_OF[alg]
    if jwk.get("kty") != kty or (curves and jwk.get("crv") not in curves):
        # RFC 7518 section 3.4: ES384 is P-384 with SHA-384, never P-256 with SHA-384.
        raise fail("The DPoP proof's jwk is not a usable public key for %s" % alg)
    verifier = _ALGORITHMS.get("EdDSA" if alg == "Ed25519" else alg)
    if verifier is None:  # allowed, but this PyJWT (or its cryptography) lacks it
        raise fail("The DPoP proof's alg must be one of %s" % ", ".join(algorithms()))
    try:
        found = (alg, verifier, verifier.from_jwk(jwk), thumbprint(jwk))
    except Exception:  # any member PyJWT or cryptography cannot use
        raise fail("The DPoP proof's jwk is not a usable public key for %s" % alg) from None
    while len(_HEADERS) >= _HEADER_CACHE_SIZE:
        try:
            del _HEADERS[next(iter(_HEADERS))]
        except (KeyError, RuntimeError, StopIteration):
            break
    _HEADERS[head] = found
    return found


def _check_claims(claims: Dict[str, Any], access_token: Optional[str], fail: Any) -> None:
    if claims.get("htm") != request.method:
        raise fail("The DPoP proof's htm is not this request's method")
    # The URL the client used (ProxyFix corrects scheme and host behind a proxy),
    # built from its parts: request.base_url costs an IRI round trip.
    wanted = _normal_url("%s://%s%s%s" % (request.scheme, request.host, request.script_root, request.path))
    if _normal_url(claims.get("htu")) != wanted:
        raise fail("The DPoP proof's htu is not this request's URL")
    iat, now, leeway = claims.get("iat"), time.time(), config.leeway
    max_age = seconds(config.get("JWT_DPOP_PROOF_MAX_AGE"))
    if not isinstance(iat, (int, float)) or isinstance(iat, bool) or not math.isfinite(iat):
        raise fail("The DPoP proof has no iat")
    if iat > now + leeway:
        raise fail("The DPoP proof's iat is in the future")
    if iat < now - max_age - leeway:
        raise fail("The DPoP proof is too old")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= 256:
        raise fail("The DPoP proof has no jti")
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str) or not hmac.compare_digest(ath, ath_of(access_token)):
            raise fail("The DPoP proof's ath does not match the token")
    if config.get("JWT_DPOP_NONCE") and not _nonce_ok(claims.get("nonce")):
        raise fail("The DPoP proof needs the server's current nonce", "use_dpop_nonce")


def _check_fresh(claims: Dict[str, Any], jkt: str, token_endpoint: bool) -> None:
    """A proof is good once, on every instance: its jti goes into the store."""
    from .revocation import store_failed
    from .state import app_state

    name = hashlib.sha256(("%s.%s" % (jkt, claims["jti"])).encode("utf-8")).hexdigest()[:40]
    ttl = seconds(config.get("JWT_DPOP_PROOF_MAX_AGE")) + 2 * config.leeway
    try:
        first = app_state().store().first_use("dpop:" + name, ttl)
    except StoreError as exc:
        raise store_failed(exc) from exc
    if not first:
        raise refused("The DPoP proof was used before", token_endpoint=token_endpoint)


# --- binding ---------------------------------------------------------------------------


def bound_key(claims: Mapping[str, Any]) -> Optional[str]:
    """The thumbprint a token is bound to (``cnf.jkt``), if any."""
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, Mapping) else None
    return jkt if isinstance(jkt, str) else None


def binding_for_login() -> Optional[str]:
    """At ``/auth``: the thumbprint to bind the new tokens to, from the request's
    proof; ``None`` without one (refused when ``JWT_DPOP`` is ``"required"``)."""
    current = mode()
    if not current or (current == "allowed" and "DPoP" not in request.headers):
        return None
    return check_proof(access_token=None, token_endpoint=True)


def check_refresh(claims: Mapping[str, Any]) -> None:
    """At the refresh route: a bound session needs a proof made with its key."""
    jkt = bound_key(claims)
    if jkt is None:
        if mode() == "required":
            raise refused(
                "This session is not bound to a DPoP key: log in again", token_endpoint=True
            )
        return
    if check_proof(access_token=None, token_endpoint=True) != jkt:
        raise refused("The DPoP proof's key is not the session's key", token_endpoint=True)


def check_request(claims: Mapping[str, Any], token: str, scheme: Optional[str], required: bool) -> None:
    """On a protected route: a bound token comes as ``DPoP <token>`` with a proof
    of its key; an unbound one is refused where a bound one is required."""
    jkt = bound_key(claims)
    if jkt is None:
        if scheme == "dpop":
            raise refused(
                "The token is not bound to a DPoP key", token_endpoint=False, error="invalid_token"
            )
        if required or mode() == "required":
            raise refused(
                "A DPoP-bound token is required", token_endpoint=False, error="invalid_token"
            )
        return
    if scheme != "dpop":
        raise refused(
            "A DPoP-bound token must be sent as Authorization: DPoP <token> with a proof",
            token_endpoint=False,
            error="invalid_token",
        )
    if check_proof(access_token=token, token_endpoint=False) != jkt:
        raise refused("The DPoP proof's key is not the token's key", token_endpoint=False)
