"""Key material: one key from ``JWT_SECRET_KEY``/``JWT_PRIVATE_KEY``/
``JWT_PUBLIC_KEY``, several named keys from ``JWT_KEYS``, an outside
issuer's keys from ``JWT_JWKS_URL``, and the public JWK Set we publish.

Every key is prepared once (PEM parsing is slow) and checked against its
algorithm when the configuration is read, so a key that cannot work is a
:class:`ConfigurationError` naming the setting, never a 500 per request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

import jwt as _pyjwt
from jwt.algorithms import get_default_algorithms

from .errors import ConfigurationError, JWTError

logger = logging.getLogger("flask_tokenauth")

SYMMETRIC = ("HS256", "HS384", "HS512")
_HMAC_MINIMUM = {"HS256": 32, "HS384": 48, "HS512": 64}
ASYMMETRIC = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES256K", "ES384", "ES512", "EdDSA", "Ed25519",
)


class Key(NamedTuple):
    """A prepared key: ``signing`` is ``None`` for a verify-only key."""

    kid: Optional[str]
    algorithm: str
    signing: Any
    verifying: Any


def algorithm_impl(algorithm: Any, setting: str = "JWT_ALGORITHM") -> Any:
    if not isinstance(algorithm, str) or algorithm.lower() == "none":
        raise ConfigurationError(
            "%s %r is not allowed: name a signing algorithm such as HS256, RS256 or ES256"
            % (setting, algorithm)
        )
    algorithms = get_default_algorithms()
    if algorithm not in algorithms:
        hint = (
            " (asymmetric algorithms need the 'cryptography' package: "
            "pip install 'flask-tokenauth-jwt[crypto]')"
            if algorithm in ASYMMETRIC
            else ""
        )
        raise ConfigurationError("%s %r is not supported%s" % (setting, algorithm, hint))
    return algorithms[algorithm]


def _prepare(impl: Any, key: Any, algorithm: str, name: str) -> Any:
    try:
        return impl.prepare_key(key)
    except Exception as exc:  # PyJWT and cryptography raise several kinds here
        raise ConfigurationError("%s does not fit algorithm %s: %s" % (name, algorithm, exc)) from exc


def make_key(
    algorithm: str,
    *,
    kid: Optional[str] = None,
    secret: Any = None,
    private_key: Any = None,
    public_key: Any = None,
    where: str = "",
) -> Key:
    """Prepare one key for ``algorithm`` from a secret or PEM/JWK material."""
    impl = algorithm_impl(algorithm, "algorithm of %s" % where if where else "JWT_ALGORITHM")
    names: Tuple[str, ...] = ("JWT_SECRET_KEY (or SECRET_KEY)", "JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY")
    if where:
        names = tuple("%s of %s" % (part, where) for part in ("secret", "private_key", "public_key"))
    if algorithm in SYMMETRIC:
        if secret is None or secret == "" or secret == b"":
            return Key(kid, algorithm, None, None)
        if not isinstance(secret, (str, bytes)):
            raise ConfigurationError("%s must be a str or bytes" % names[0])
        prepared = _prepare(impl, secret, algorithm, names[0])
        minimum = _HMAC_MINIMUM[algorithm]
        if len(prepared) < minimum:  # RFC 7518 section 3.2: at least the hash size
            _warn_weak(names[0], len(prepared), algorithm, minimum)
        return Key(kid, algorithm, prepared, prepared)
    signing = None if private_key is None else _prepare(impl, private_key, algorithm, names[1])
    if signing is not None and not hasattr(signing, "public_key"):
        raise ConfigurationError(
            "%s holds a public key: %s needs the private key to sign" % (names[1], algorithm)
        )
    if public_key is not None:
        verifying = _prepare(impl, public_key, algorithm, names[2])
        if hasattr(verifying, "public_key"):
            verifying = verifying.public_key()
    elif signing is not None:
        verifying = signing.public_key()
    else:
        verifying = None
    _probe(impl, algorithm, signing, verifying, names)
    return Key(kid, algorithm, signing, verifying)


_warned_weak: set = set()


def _warn_weak(setting: str, size: int, algorithm: str, minimum: int) -> None:
    """Say once per process, in words that say what to do, that an HMAC secret
    is too short (PyJWT's own warnings about it are silenced, see weak())."""
    if (setting, size, algorithm) in _warned_weak:
        return
    _warned_weak.add((setting, size, algorithm))
    logger.warning(
        "%s is %d bytes; %s needs at least %d (RFC 7518 section 3.2), and a password is not "
        "a key: set it to a random value, for example the output of "
        '`python -c "import secrets; print(secrets.token_urlsafe(%d))"`',
        setting, size, algorithm, minimum, minimum,
    )


def weak(key: Key) -> bool:
    """An HMAC key shorter than its hash: warned about once, above."""
    if key.algorithm not in SYMMETRIC or key.signing is None:
        return False
    return len(key.signing) < _HMAC_MINIMUM[key.algorithm]


def _probe(impl: Any, algorithm: str, signing: Any, verifying: Any, names: Tuple[str, ...]) -> None:
    """Sign and verify once, so a key of the wrong type for the algorithm (an
    EC key for RS256, a P-384 key for ES256) or a mismatched pair is a
    configuration error now, whatever the PyJWT version checks itself."""
    probe = b"flask-tokenauth key check"
    try:
        signature = impl.sign(probe, signing) if signing is not None else None
        if verifying is not None:
            valid = impl.verify(probe, verifying, signature if signature is not None else b"\0" * 64)
    except Exception as exc:  # cryptography raises several kinds for a wrong key type
        which = names[1] if signing is not None else names[2]
        raise ConfigurationError("%s does not fit algorithm %s: %s" % (which, algorithm, exc)) from exc
    if signature is not None and verifying is not None and not valid:
        raise ConfigurationError("%s does not belong to %s" % (names[2], names[1]))


def keys_from_config(spec: Any, default_algorithm: str) -> List[Key]:
    """``JWT_KEYS``: a list of ``{"kid", "alg"?, "private_key"?, "public_key"?,
    "secret"?}`` entries, or a JWK Set (a dict with ``"keys"``, or its JSON).
    The first entry is the current key: it signs new tokens."""
    if isinstance(spec, (str, bytes)):
        try:
            spec = json.loads(spec)
        except ValueError as exc:
            raise ConfigurationError("JWT_KEYS is a string but not a JWK Set in JSON") from exc
    if isinstance(spec, Mapping) and "keys" in spec:
        found = [_from_jwk(jwk, default_algorithm, i) for i, jwk in enumerate(spec["keys"])]
    elif isinstance(spec, (list, tuple)):
        found = [_from_entry(entry, default_algorithm, i) for i, entry in enumerate(spec)]
    else:
        raise ConfigurationError("JWT_KEYS must be a list of key entries or a JWK Set")
    if not found:
        raise ConfigurationError("JWT_KEYS is empty")
    kids = [key.kid for key in found]
    if None in kids or "" in kids or len(set(kids)) != len(kids):
        raise ConfigurationError("every key in JWT_KEYS needs its own non-empty 'kid'")
    return found


def _from_entry(entry: Any, default_algorithm: str, index: int) -> Key:
    if not isinstance(entry, Mapping):
        raise ConfigurationError("JWT_KEYS[%d] must be a dict" % index)
    unknown = set(entry) - {"kid", "alg", "private_key", "public_key", "secret"}
    if unknown:
        raise ConfigurationError("JWT_KEYS[%d] has unknown fields: %s" % (index, ", ".join(sorted(unknown))))
    kid = entry.get("kid")
    algorithm = entry.get("alg") or default_algorithm
    where = "JWT_KEYS[%d] (kid %r)" % (index, kid)
    if algorithm in SYMMETRIC and not entry.get("secret"):
        raise ConfigurationError("%s: a %s key needs a 'secret'" % (where, algorithm))
    if algorithm not in SYMMETRIC and not (entry.get("private_key") or entry.get("public_key")):
        raise ConfigurationError("%s: a %s key needs a 'private_key' or 'public_key'" % (where, algorithm))
    if algorithm not in SYMMETRIC and entry.get("secret"):
        raise ConfigurationError("%s: 'secret' is for HS256/384/512 keys only" % where)
    return make_key(
        algorithm,
        kid=kid,
        secret=entry.get("secret"),
        private_key=entry.get("private_key"),
        public_key=entry.get("public_key"),
        where=where,
    )


def _from_jwk(jwk: Any, default_algorithm: str, index: int) -> Key:
    where = "JWT_KEYS JWK #%d" % index
    if not isinstance(jwk, Mapping):
        raise ConfigurationError("%s must be a JSON object" % where)
    algorithm = jwk.get("alg") or default_algorithm
    algorithm_impl(algorithm, "algorithm of %s" % where)
    try:
        key = _pyjwt.PyJWK(dict(jwk), algorithm=algorithm).key
    except Exception as exc:
        raise ConfigurationError("%s cannot be used: %s" % (where, exc)) from exc
    kid = jwk.get("kid")
    if algorithm in SYMMETRIC:
        return make_key(algorithm, kid=kid, secret=key, where=where)
    if hasattr(key, "public_key"):
        return make_key(algorithm, kid=kid, private_key=key, where=where)
    return make_key(algorithm, kid=kid, public_key=key, where=where)


_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k", "oth")
#: The members that identify a public key (RFC 7638, section 3.2).
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}


def public_jwk(key: Key) -> Optional[Dict[str, Any]]:
    """The public JWK of an asymmetric key (``None`` for an HMAC secret)."""
    if key.algorithm in SYMMETRIC or key.verifying is None:
        return None
    jwk = get_default_algorithms()[key.algorithm].to_jwk(key.verifying, as_dict=True)
    return {k: v for k, v in jwk.items() if k not in _PRIVATE_MEMBERS}


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 thumbprint of a public JWK: a stable kid for a key without one."""
    members = _THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def fingerprint(key: Key) -> Optional[str]:
    """A name of the key that signs, the same in every process that has it and
    telling nothing of a secret (an HMAC of a fixed text under it, or the
    public key's thumbprint): how processes sharing a store tell whether
    they sign alike. ``None`` for a key that does not sign."""
    if key.signing is None:
        return None
    if key.algorithm in SYMMETRIC:
        digest = hmac.new(bytes(key.signing), b"flask-tokenauth signer", hashlib.sha256).digest()
        return "h:" + base64.urlsafe_b64encode(digest[:18]).decode("ascii")
    jwk = public_jwk(key)
    return None if jwk is None else "k:" + thumbprint(jwk)


def with_kid(key: Key) -> Key:
    """An asymmetric key without a kid gets its thumbprint, so JWKS consumers
    can match our tokens to the published key."""
    if key.kid:
        return key
    jwk = public_jwk(key)
    return key if jwk is None else key._replace(kid=thumbprint(jwk))


def public_jwks(keys: List[Key]) -> Dict[str, Any]:
    """The JWK Set of the asymmetric keys' public halves (no secret ever)."""
    out = []
    for key in keys:
        jwk = public_jwk(key)
        if jwk is not None:
            jwk.pop("key_ops", None)  # "use" says it: not both (RFC 7517 section 4.3)
            jwk.update(kid=key.kid, alg=key.algorithm, use="sig")
            out.append(jwk)
    return {"keys": out}


class RemoteKeys:
    """An outside issuer's keys from its JWKS URL: fetched with a timeout,
    cached, and fetched again for an unknown ``kid`` at most once per interval."""

    def __init__(self, url: str, *, algorithm: str, timeout: float, interval: float) -> None:
        self.client = _pyjwt.PyJWKClient(
            url, cache_jwk_set=True, lifespan=max(interval, 1.0), timeout=timeout
        )
        self.algorithm = algorithm
        self.interval = interval
        self._keys: Dict[str, Key] = {}
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()

    def get(self, kid: str) -> Optional[Key]:
        key = self._keys.get(kid)
        if key is not None:
            return key
        with self._lock:
            if kid not in self._keys and time.monotonic() - self._fetched_at >= self.interval:
                self._fetch()
            return self._keys.get(kid)

    def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            jwks = self.client.get_signing_keys(refresh=True)
        except (_pyjwt.PyJWKClientError, _pyjwt.PyJWKSetError, ValueError, OSError) as exc:
            # Unreachable (OSError: socket.timeout is no TimeoutError before 3.10),
            # or answering something that is not a usable key set: the issuer's
            # fault, never the client's, so 503 rather than 401.
            logger.error("JWKS URL unusable: %s", exc)
            raise JWTError(
                "Service Unavailable", "The issuer's key set cannot be fetched; try again shortly",
                503, {"Retry-After": "5"},
            ) from exc
        keys: Dict[str, Key] = {}
        for jwk in jwks:
            algorithm = jwk.algorithm_name or self.algorithm
            if algorithm in SYMMETRIC or algorithm not in get_default_algorithms():
                continue  # an outside issuer's symmetric key is never trusted
            if jwk.key_id:
                keys[jwk.key_id] = Key(jwk.key_id, algorithm, None, jwk.key)
        self._keys = keys


def generate(algorithm: str) -> Tuple[str, str, Optional[str]]:
    """A new key for ``algorithm``: ``(kid, private PEM or secret, public PEM)``."""
    import secrets

    algorithm_impl(algorithm, "--alg")
    kid = "%s-%s" % (time.strftime("%Y%m%d"), uuid.uuid4().hex[:8])
    if algorithm in SYMMETRIC:
        return kid, secrets.token_urlsafe(64), None
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if algorithm.startswith(("RS", "PS")):
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    elif algorithm in ("EdDSA", "Ed25519"):
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        curves: Dict[str, Any] = {
            "ES256": ec.SECP256R1, "ES256K": ec.SECP256K1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1,
        }
        private = ec.generate_private_key(curves[algorithm]())
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
    return kid, private_pem, public_pem
