"""A DPoP client for the tests (a helper, not a test module).

Proofs are made by **jwcrypto**, an independent JOSE implementation, never by
PyJWT or flask_tokenauth: a proof the server accepts shows interoperability.
Every part of a proof can be bent, to make the hostile ones.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any, Dict, Optional

from jwcrypto import jwk, jws

#: The key a client of each algorithm makes.
KEY_TYPES = {
    "ES256": {"kty": "EC", "crv": "P-256"},
    "ES384": {"kty": "EC", "crv": "P-384"},
    "RS256": {"kty": "RSA", "size": 2048},
    "PS256": {"kty": "RSA", "size": 2048},
    "EdDSA": {"kty": "OKP", "crv": "Ed25519"},
    "Ed25519": {"kty": "OKP", "crv": "Ed25519"},
}


def ath(token: str) -> str:
    """base64url(SHA-256(token)), as RFC 9449 section 4.2 defines it."""
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode("ascii")).digest()).rstrip(b"=").decode()


class Client:
    """A client holding one private key; :meth:`proof` signs DPoP proofs with it."""

    def __init__(self, alg: str = "ES256") -> None:
        self.alg = alg
        self.key = jwk.JWK.generate(**KEY_TYPES[alg])

    @property
    def jkt(self) -> str:
        """The RFC 7638 SHA-256 thumbprint of the public key (what ``cnf.jkt`` holds)."""
        return self.key.thumbprint()

    def public_jwk(self) -> Dict[str, Any]:
        return self.key.export_public(as_dict=True)

    def proof(
        self,
        method: str,
        url: str,
        token: Optional[str] = None,
        *,
        jti: Optional[str] = None,
        iat: Optional[float] = None,
        nonce: Optional[str] = None,
        header: Optional[Dict[str, Any]] = None,
        claims: Optional[Dict[str, Any]] = None,
        private_jwk: bool = False,
        raw_payload: Optional[str] = None,
    ) -> str:
        """A proof for ``method`` on ``url`` (naming ``token`` with ``ath``);
        ``header`` and ``claims`` override members (``None`` removes one);
        ``raw_payload`` is signed instead of the claims, as it is."""
        protected: Dict[str, Any] = {
            "typ": "dpop+jwt",
            "alg": self.alg,
            "jwk": self.key.export(private_key=True, as_dict=True) if private_jwk else self.public_jwk(),
        }
        payload: Dict[str, Any] = {
            "htm": method,
            "htu": url,
            "iat": int(time.time() if iat is None else iat),
            "jti": jti or uuid.uuid4().hex,
        }
        if token is not None:
            payload["ath"] = ath(token)
        if nonce is not None:
            payload["nonce"] = nonce
        for target, changes in ((protected, header), (payload, claims)):
            for name, value in (changes or {}).items():
                if value is None:
                    target.pop(name, None)
                else:
                    target[name] = value
        signed = jws.JWS(json.dumps(payload) if raw_payload is None else raw_payload)
        signed.add_signature(self.key, alg=None, protected=json.dumps(protected))
        return signed.serialize(compact=True)
