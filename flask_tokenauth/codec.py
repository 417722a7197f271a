"""Signing and verifying tokens with PyJWT, and choosing the key for each.

The accepted algorithm always comes from the configured key, never from the
token; with several keys (``JWT_KEYS``, ``JWT_JWKS_URL``) the token's ``kid``
only selects among configured keys. ``jku``, ``x5u``, ``jwk`` and ``x5c``
headers are never used to find a key.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

import jwt as _pyjwt
from jwt.warnings import InsecureKeyLengthWarning

from .errors import ConfigurationError
from .issuers import OutsideIssuer
from .keys import SYMMETRIC, Key, keys_from_config, make_key, public_jwks, weak, with_kid

#: Raised by PyJWT (and by custom decode handlers) for a token that must be refused.
InvalidTokenError = _pyjwt.InvalidTokenError
#: A token whose signature does not match the key that must have made it.
InvalidSignatureError = _pyjwt.InvalidSignatureError


class Keyring:
    """The prepared keys of one configuration: which signs, which verify."""

    def __init__(
        self,
        algorithm: str,
        secret: Any = None,
        private_key: Any = None,
        public_key: Any = None,
        *,
        keys: Any = None,
        remote: Optional[OutsideIssuer] = None,
        outside: Sequence[OutsideIssuer] = (),
    ) -> None:
        self.algorithm = algorithm
        if keys is not None:
            self.keys: List[Key] = keys_from_config(keys, algorithm)
        else:
            single = with_kid(
                make_key(algorithm, secret=secret, private_key=private_key, public_key=public_key)
            )
            verify_only = remote is not None or bool(outside)
            self.keys = [single] if (single.signing or single.verifying or not verify_only) else []
        self.current: Optional[Key] = self.keys[0] if self.keys else None
        self.by_kid: Dict[str, Key] = {k.kid: k for k in self.keys if k.kid}
        #: JWT_JWKS_URL: keys found by kid beside the app's own.
        self.remote = remote
        #: JWT_OIDC_ISSUER: the token's iss picks the issuer.
        self.by_issuer: Dict[str, OutsideIssuer] = {i.issuer: i for i in outside if i.issuer}
        # The one key of JWT_SECRET_KEY / JWT_PRIVATE_KEY and no key set: the
        # token's header need not be read (as in Flask-JWT). With JWT_KEYS the
        # kid always selects, so a removed key's tokens say "Unknown key id".
        self.only = self.keys[0] if keys is None and len(self.keys) == 1 and not self.remote else None

    def _missing(self, which: str) -> ConfigurationError:
        if self.algorithm in SYMMETRIC:
            return ConfigurationError(
                "No secret for %s tokens: set JWT_SECRET_KEY or SECRET_KEY" % self.algorithm
            )
        return ConfigurationError(
            "No %s key for %s tokens: set %s (PEM)"
            % (
                "private" if which == "sign" else "public",
                self.algorithm,
                "JWT_PRIVATE_KEY" if which == "sign" else "JWT_PUBLIC_KEY or JWT_PRIVATE_KEY",
            )
        )

    def require(self, which: str) -> Any:
        """The signing or verifying key, or a clear error when none is configured."""
        key = self.current
        found = None if key is None else (key.signing if which == "sign" else key.verifying)
        if found is None:
            raise self._missing(which)
        return found

    def jwks(self) -> Dict[str, Any]:
        """The public JWK Set of the configured keys (private parts never included)."""
        return public_jwks(self.keys)

    def verifier(self, token: str) -> Key:
        """The configured key that must have signed ``token``."""
        if self.only is not None:
            if self.only.verifying is None:
                raise self._missing("verify")
            return self.only
        if not self.keys and self.remote is None:  # only outside issuers, and none matched
            raise _pyjwt.InvalidIssuerError("Invalid issuer")
        header = _pyjwt.get_unverified_header(token)
        kid = header.get("kid")
        if kid is None:
            if len(self.keys) == 1:  # our own single key signs without a kid
                return self.keys[0]
            if not self.keys and self.remote is not None:  # one key of the set may fit
                return self.remote.keyset().select(None, header.get("alg"))
            raise InvalidTokenError("Token has no key id (kid)")
        if not isinstance(kid, str):
            raise InvalidTokenError("Key ID header parameter must be a string")
        key = self.by_kid.get(kid)
        if key is None and self.remote is not None:
            key = self.remote.keyset().select(kid, header.get("alg"))
        if key is None or key.verifying is None:
            raise InvalidTokenError("Unknown key id")
        return key

    def encode(self, payload: Mapping[str, Any], headers: Optional[Dict[str, Any]] = None) -> str:
        signing = self.require("sign")
        key = self.current
        assert key is not None
        # The algorithm is the key's, whatever a headers handler says.
        headers = {k: v for k, v in (headers or {}).items() if k != "alg"}
        if key.kid:
            headers["kid"] = key.kid
        with _quiet(key):
            return _pyjwt.encode(dict(payload), signing, algorithm=key.algorithm, headers=headers or None)

    def decode(
        self,
        token: str,
        *,
        required_claims: Sequence[str],
        leeway: float,
        issuer: Optional[str],
        audience: Any,
        verify_exp: bool = True,
        outside_claims: Sequence[str] = ("exp",),
        token_type: Optional[str] = None,
    ) -> Dict[str, Any]:
        # Flask-JWT only ever switched PyJWT checks on, and PyJWT checks the
        # signature, exp, nbf and iat by default: JWT_VERIFY_CLAIMS never turned
        # a check off, and here it cannot either. Only logout passes
        # verify_exp=False: an expired token still names the session to end.
        options: Dict[str, Any] = {
            "verify_signature": True,
            "verify_exp": verify_exp,
            "verify_nbf": True,
            "verify_iat": True,
            "verify_aud": audience is not None,
            "verify_iss": issuer is not None,
        }
        options["require"] = list(required_claims)
        outside = self.outside_issuer_of(token) if self.by_issuer else None
        if outside is not None:
            header = _pyjwt.get_unverified_header(token)
            key = outside.keyset().select(header.get("kid"), header.get("alg"))
            issuer, audience = outside.issuer, outside.audience
            options.update(verify_iss=True, verify_aud=True, require=list(outside_claims))
            if outside.audience_claim != "aud":
                options["verify_aud"], audience = False, None
                claims = self._verify(token, key, options, leeway, issuer, None)
                check_audience(claims, outside.audience_claim, outside.audience)
                if token_type:
                    check_type(token, token_type)
                return claims
        else:
            key = self.verifier(token)
            if key not in self.keys:  # a JWT_JWKS_URL token
                options["require"] = list(outside_claims)
        if token_type and key not in self.keys:
            check_type(token, token_type)
        return self._verify(token, key, options, leeway, issuer, audience)

    @staticmethod
    def _verify(
        token: str, key: Key, options: Dict[str, Any], leeway: float, issuer: Any, audience: Any
    ) -> Dict[str, Any]:
        with _quiet(key):
            return _pyjwt.decode(
                token,
                key.verifying,
                algorithms=[key.algorithm],
                options=options,  # type: ignore[arg-type]
                leeway=leeway,
                issuer=issuer,
                audience=audience,
            )

    def outside_issuer_of(self, token: str) -> Optional[OutsideIssuer]:
        """The JWT_OIDC_ISSUER entry a token claims to come from (by its
        unverified ``iss``: only that issuer's keys may then verify it)."""
        iss = _pyjwt.decode(token, options={"verify_signature": False}).get("iss")
        return self.by_issuer.get(iss) if isinstance(iss, str) else None

    def issuer_of(self, token: str) -> Optional[OutsideIssuer]:
        """The outside issuer whose keys verify ``token`` (JWT_OIDC_ISSUER by
        its ``iss``, JWT_JWKS_URL by a ``kid`` the app's own keys lack), or
        ``None`` for a token of the app's own."""
        outside = self.outside_issuer_of(token) if self.by_issuer else None
        if outside is None and self.remote is not None and self.only is None:
            if _pyjwt.get_unverified_header(token).get("kid") not in self.by_kid:
                outside = self.remote
        return outside

    def from_outside(self, token: str) -> bool:
        """``token`` is verified by an outside issuer's keys, not by the app's own."""
        return self.issuer_of(token) is not None

    def horizon(self, token: str) -> float:
        """Until when a verification of ``token`` may be remembered: the end of
        its issuer's key-set cache for an outside token (a removed key must stop
        verifying), else for ever."""
        outside = self.issuer_of(token)
        return float("inf") if outside is None else outside.keyset().horizon()


def _quiet(key: Key) -> Any:
    """PyJWT warns about a short HMAC key on every call; this library has said
    so once, with what to do. Only weak keys pay for catch_warnings."""
    return _silenced() if weak(key) else contextlib.nullcontext()


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        yield


def _media_type(value: Any) -> str:
    text = str(value or "").lower()
    return text[len("application/"):] if text.startswith("application/") else text


def check_type(token: str, wanted: str) -> None:
    """RFC 9068 section 4: the header's ``typ`` must be the access-token type
    (``at+jwt`` and ``application/at+jwt`` are the same), so that an ID token
    presented as an access token is refused even when its audience fits."""
    if _media_type(_pyjwt.get_unverified_header(token).get("typ")) != _media_type(wanted):
        raise InvalidTokenError("Token type (typ) is not %s" % wanted)


def check_audience(claims: Mapping[str, Any], claim: str, wanted: Any) -> None:
    """The audience named in ``claim`` (an issuer without ``aud``) is one of ``wanted``."""
    accepted = [wanted] if isinstance(wanted, str) else list(wanted)
    if claim not in claims:
        raise _pyjwt.MissingRequiredClaimError(claim)
    if claims[claim] not in accepted:
        raise _pyjwt.InvalidAudienceError("Audience doesn't match")
