"""The only module that talks to PyJWT: keys, signing and signature checks.

Keys are prepared once per configuration (parsing a PEM per request would cost
more than the signature check), the accepted algorithm always comes from the
configuration, and a key that does not fit the algorithm is refused when the
keys are prepared, with a message naming the mistake.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence

import jwt as _pyjwt
from jwt.algorithms import get_default_algorithms

from .errors import ConfigurationError

logger = logging.getLogger("flask_tokenauth")

#: Raised by PyJWT (and by custom decode handlers) for a token that must be refused.
InvalidTokenError = _pyjwt.InvalidTokenError

_SYMMETRIC = ("HS256", "HS384", "HS512")
_ASYMMETRIC = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES256K", "ES384", "ES512", "EdDSA", "Ed25519",
)


class Keyring:
    """The prepared signing and verifying keys for one algorithm."""

    def __init__(
        self,
        algorithm: str,
        secret: Any = None,
        private_key: Any = None,
        public_key: Any = None,
    ) -> None:
        if not isinstance(algorithm, str) or algorithm.lower() == "none":
            raise ConfigurationError(
                "JWT_ALGORITHM %r is not allowed: name a signing algorithm such as "
                "HS256, RS256 or ES256" % (algorithm,)
            )
        algorithms = get_default_algorithms()
        if algorithm not in algorithms:
            hint = (
                " (asymmetric algorithms need the 'cryptography' package: "
                "pip install flask-tokenauth[crypto])"
                if algorithm in _ASYMMETRIC
                else ""
            )
            raise ConfigurationError("JWT_ALGORITHM %r is not supported%s" % (algorithm, hint))
        self.algorithm = algorithm
        self.algorithms: List[str] = [algorithm]
        impl = algorithms[algorithm]
        if algorithm in _SYMMETRIC:
            if secret is None or secret == "" or secret == b"":
                self.signing_key = self.verifying_key = None
                return
            if not isinstance(secret, (str, bytes)):
                raise ConfigurationError("JWT_SECRET_KEY (or SECRET_KEY) must be a str or bytes")
            key = _prepare(impl, secret, algorithm, "JWT_SECRET_KEY (or SECRET_KEY)")
            message = impl.check_key_length(key)
            if message:
                logger.warning("weak JWT_SECRET_KEY: %s", message)
            self.signing_key = self.verifying_key = key
        else:
            self.signing_key = (
                None if private_key is None
                else _prepare(impl, private_key, algorithm, "JWT_PRIVATE_KEY")
            )
            if self.signing_key is not None and not hasattr(self.signing_key, "public_key"):
                raise ConfigurationError(
                    "JWT_PRIVATE_KEY holds a public key: %s needs the private key to sign" % algorithm
                )
            if public_key is not None:
                self.verifying_key = _prepare(impl, public_key, algorithm, "JWT_PUBLIC_KEY")
            elif self.signing_key is not None:
                self.verifying_key = self.signing_key.public_key()
            else:
                self.verifying_key = None
            if self.signing_key is not None and public_key is not None:
                probe = b"flask-tokenauth key pair check"
                if not impl.verify(probe, self.verifying_key, impl.sign(probe, self.signing_key)):
                    raise ConfigurationError(
                        "JWT_PUBLIC_KEY does not belong to JWT_PRIVATE_KEY"
                    )

    def require(self, which: str) -> Any:
        """The signing or verifying key, or a clear error when none is configured."""
        key = self.signing_key if which == "sign" else self.verifying_key
        if key is None:
            if self.algorithm in _SYMMETRIC:
                raise ConfigurationError(
                    "No secret for %s tokens: set JWT_SECRET_KEY or SECRET_KEY" % self.algorithm
                )
            raise ConfigurationError(
                "No %s key for %s tokens: set %s (PEM)"
                % (
                    "private" if which == "sign" else "public",
                    self.algorithm,
                    "JWT_PRIVATE_KEY" if which == "sign" else "JWT_PUBLIC_KEY or JWT_PRIVATE_KEY",
                )
            )
        return key

    def encode(self, payload: Mapping[str, Any], headers: Optional[Dict[str, Any]] = None) -> str:
        if headers:
            # The algorithm is the configuration's, whatever a headers handler says.
            headers = {k: v for k, v in headers.items() if k != "alg"}
        return _pyjwt.encode(
            dict(payload), self.require("sign"), algorithm=self.algorithm, headers=headers or None
        )

    def decode(
        self,
        token: str,
        *,
        required_claims: Sequence[str],
        leeway: float,
        issuer: Optional[str],
        audience: Any,
    ) -> Dict[str, Any]:
        # Flask-JWT only ever switched PyJWT checks on, and PyJWT checks the
        # signature, exp, nbf and iat by default: JWT_VERIFY_CLAIMS never turned
        # a check off, and here it cannot either.
        options: Dict[str, Any] = {
            "verify_signature": True,
            "verify_exp": True,
            "verify_nbf": True,
            "verify_iat": True,
            "verify_aud": audience is not None,
            "verify_iss": issuer is not None,
        }
        options["require"] = list(required_claims)
        return _pyjwt.decode(
            token,
            self.require("verify"),
            algorithms=self.algorithms,
            options=options,  # type: ignore[arg-type]
            leeway=leeway,
            issuer=issuer,
            audience=audience,
        )


def _prepare(impl: Any, key: Any, algorithm: str, name: str) -> Any:
    try:
        return impl.prepare_key(key)
    except Exception as exc:  # PyJWT and cryptography raise several kinds here
        raise ConfigurationError(
            "%s does not fit JWT_ALGORITHM %s: %s" % (name, algorithm, exc)
        ) from exc


def unverified_header(token: str) -> Dict[str, Any]:
    """The token's header, for diagnostics only (never to choose a key)."""
    return _pyjwt.get_unverified_header(token)
