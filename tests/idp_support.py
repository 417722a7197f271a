"""Local identity providers for the resource-server tests (a helper, not a test module).

``IdP("keycloak")`` runs an OpenID provider on 127.0.0.1 that looks, on the
wire, like the real one: the issuer URL shape (Auth0's ends with ``/``, the
others' do not), where the metadata and the JWK Set live, the members of the
JWKs (``use``, an ``x5c`` certificate chain and ``x5t`` for RSA keys, Entra's
``issuer`` member, an encryption key beside the signing keys) and the claims
and header of its access tokens.

Every token is signed by **joserfc**, never by PyJWT or by flask_tokenauth:
the provider is an independent JOSE peer, so a test that accepts its tokens
shows that the resource server interoperates, not that it agrees with itself.
The certificates are made with ``cryptography``.

The server is a :class:`http.server.ThreadingHTTPServer` in a daemon thread.
Tests steer it through attributes: :attr:`IdP.down` answers 503 to everything,
:meth:`IdP.stop` is a real outage (connection refused) and :meth:`IdP.start`
brings it back on the same port, :attr:`IdP.delay` slows the JWK Set answer,
:attr:`IdP.hits` counts the fetches, :attr:`IdP.metadata_override` and
:attr:`IdP.jwks_override` change what is served, :attr:`IdP.trickle` sends the
JWK Set a byte at a time and :attr:`IdP.jwks_redirect` answers it with a 302.

Two JOSE names for Ed25519: ``"EdDSA"`` (RFC 8037) and ``"Ed25519"`` (RFC 9864,
the fully specified name). joserfc signs both but warns (``SecurityWarning``)
on ``"EdDSA"``, which the suite's ``filterwarnings = error`` would turn into a
failure; :func:`sign_with` silences that one warning. PyJWT 2.x only knows
``"EdDSA"``.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from joserfc import jwk, jwt
from joserfc.errors import SecurityWarning
from joserfc.jws import JWSRegistry
from joserfc.registry import HeaderParameter

KINDS = ("auth0", "keycloak", "okta", "cognito", "entra", "generic")

#: The signing algorithms an IdP key can have, with the joserfc key each needs.
SIGNING_ALGORITHMS: Dict[str, Tuple[str, Union[int, str]]] = {
    "RS256": ("RSA", 2048),
    "RS384": ("RSA", 2048),
    "RS512": ("RSA", 2048),
    "PS256": ("RSA", 2048),
    "PS384": ("RSA", 2048),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),  # RFC 8037; joserfc warns that RFC 9864 deprecates it
    "Ed25519": ("OKP", "Ed25519"),  # RFC 9864; PyJWT does not know this name
}

#: Key-encryption algorithms of the ``use: "enc"`` keys a resource server must ignore.
ENCRYPTION_ALGORITHMS: Dict[str, Tuple[str, Union[int, str]]] = {
    "RSA-OAEP": ("RSA", 2048),
    "RSA-OAEP-256": ("RSA", 2048),
    "ECDH-ES": ("EC", "P-256"),
}

DEFAULT_AUDIENCE = "https://api.example.test"
DEFAULT_CLIENT_ID = "tokenauth-test-client"

#: The issuer path of each kind when none is given (Auth0's issuer is the bare host with ``/``).
DEFAULT_PATHS = {
    "auth0": "/",
    "keycloak": "/realms/demo",
    "okta": "/oauth2/default",
    "cognito": "/us-east-1_Example",
    "entra": "/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
    "generic": "",
}

#: The ``typ`` header of each kind's access tokens ("" for none: Okta and Cognito send none).
#: The generic IdP follows RFC 9068 (JWT access tokens), whose type is ``at+jwt``.
ACCESS_TOKEN_TYP = {
    "auth0": "JWT",  # or "at+jwt" with Auth0's RFC 9068 token profile
    "keycloak": "JWT",
    "okta": "",
    "cognito": "",
    "entra": "JWT",
    "generic": "at+jwt",
}

OIDC_WELL_KNOWN = "/.well-known/openid-configuration"
OAUTH_WELL_KNOWN = "/.well-known/oauth-authorization-server"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _algorithm_spec(alg: str, use: str) -> Tuple[str, Union[int, str]]:
    table = SIGNING_ALGORITHMS if use == "sig" else ENCRYPTION_ALGORITHMS
    if alg not in table:
        raise ValueError("no %r key with use=%r; known: %s" % (alg, use, ", ".join(table)))
    return table[alg]


def generate_key(alg: str, kid: Optional[str] = None, use: str = "sig") -> jwk.Key:
    """A fresh private joserfc key for ``alg`` (RSA 2048, EC P-256/384/521 or OKP Ed25519).

    Also what a test uses as an attacker's key: it is in no IdP's JWK Set.
    ``kid`` defaults to the RFC 7638 thumbprint.
    """
    key_type, size_or_curve = _algorithm_spec(alg, use)
    key = jwk.generate_key(key_type, size_or_curve, private=True)  # type: ignore[call-overload]
    parameters = {"kid": kid or key.thumbprint(), "use": use}
    return type(key).import_key(key.as_dict(private=True), parameters)


def _registry(alg: str, header: Mapping[str, Any]) -> JWSRegistry:
    """A joserfc registry that signs ``alg`` and lets any extra header member (even in ``crit``) through."""
    extra = {
        name: HeaderParameter("test header " + name, lambda value: None)
        for name in header
        if name not in JWSRegistry.default_header_registry
    }
    registry = JWSRegistry(header_registry=extra, algorithms=[alg], strict_check_header=False)
    registry.max_header_length = 16384  # room for an embedded "jwk" or "x5c" header
    return registry


def sign_with(
    key: Union[jwk.Key, Mapping[str, Any]], claims: Mapping[str, Any], header: Mapping[str, Any]
) -> str:
    """A compact JWS of ``claims``, signed by joserfc with the private ``key``.

    ``header`` must hold ``alg``; it is used as given (no ``typ`` is added, no
    ``kid`` taken from the key). ``key`` is a joserfc key or a private JWK dict.
    """
    if isinstance(key, Mapping):
        key = jwk.import_key(dict(key))
    header = dict(header)
    alg = header["alg"]
    with warnings.catch_warnings():
        # "EdDSA" is deprecated by RFC 9864, but IdPs and PyJWT still use it.
        warnings.simplefilter("ignore", SecurityWarning)
        return jwt.encode(header, dict(claims), key, registry=_registry(alg, header), default_type=None)


def forged_token(claims: Mapping[str, Any], header: Mapping[str, Any], secret: Optional[bytes] = None) -> str:
    """A token no library would sign, for attacks: ``alg: none`` or an HMAC over ``secret``.

    With ``header["alg"]`` ``"none"`` (any case) the signature is empty; with
    ``HS256``/``HS384``/``HS512`` it is an HMAC keyed by ``secret`` (for
    instance :meth:`IdP.pem_of`, the algorithm-confusion attack that joserfc
    refuses to perform). Made with the standard library.
    """
    segments = [
        b64url(json.dumps(dict(header), separators=(",", ":")).encode("utf-8")),
        b64url(json.dumps(dict(claims), separators=(",", ":")).encode("utf-8")),
    ]
    signing_input = ".".join(segments).encode("ascii")
    alg = str(header.get("alg", "none"))
    if alg.lower() == "none":
        signature = b""
    elif alg in ("HS256", "HS384", "HS512"):
        if secret is None:
            raise ValueError("an HMAC token needs a secret")
        signature = hmac.new(secret, signing_input, "sha" + alg[2:]).digest()
    else:
        raise ValueError("forged_token makes 'none' and HS* tokens only, not %r" % alg)
    return signing_input.decode("ascii") + "." + b64url(signature)


def unverified_parts(token: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The header and claims of a compact JWS, read without any check (for assertions)."""
    header, payload = token.split(".")[:2]
    return (
        json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))),
        json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))),
    )


def self_signed_certificate(key: jwk.Key, common_name: str) -> x509.Certificate:
    """A self-signed X.509 certificate for an RSA key (what goes in a JWK's ``x5c``)."""
    private = key.private_key
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )


class SigningKey:
    """One key of an IdP: the private joserfc key and what its JWK Set entry says."""

    def __init__(self, key: jwk.Key, alg: str, use: str, certificate: Optional[x509.Certificate]) -> None:
        self.key = key
        self.alg = alg
        self.use = use
        self.certificate = certificate
        self.published = True

    @property
    def kid(self) -> str:
        return str(self.key.kid)

    @property
    def certificate_der(self) -> Optional[bytes]:
        if self.certificate is None:
            return None
        return self.certificate.public_bytes(serialization.Encoding.DER)


class Request(NamedTuple):
    """One request the IdP received (``hits`` counts them, this keeps the details)."""

    method: str
    path: str
    headers: Dict[str, str]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a thundering herd must queue, not be refused
    idp: IdP

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up during a delay: nothing to report


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.0: one request per connection, so stop() really cuts every client off.
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self.server.idp._answer(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class IdP:
    """A local OpenID provider of one ``kind``, with its keys, metadata and tokens.

    ``kind`` is ``"auth0"``, ``"keycloak"``, ``"okta"``, ``"cognito"``,
    ``"entra"`` or ``"generic"``; ``path`` is the issuer's path (defaults in
    :data:`DEFAULT_PATHS`: ``"/realms/demo"``, ``"/oauth2/default"``,
    ``"/us-east-1_Example"``, ``"/<tenant-id>/v2.0"``, ``"/"`` for Auth0).
    The issuer is ``http://127.0.0.1:<port>`` plus the path, with a trailing
    ``/`` for Auth0 only (``trailing_slash`` overrides the kind's convention).

    ``algorithms`` are the signing keys made at once, one key each (default
    ``["RS256"]``); the first is the one :meth:`mint` uses by default.
    ``jwk_alg`` puts ``alg`` in the served JWKs. Entra leaves it out; Auth0 (a
    tenant setting, on by default), Okta, Keycloak and Cognito publish it. A
    resource server must not depend on it, so it is off unless asked for.
    ``max_age`` is the JWK Set's ``Cache-Control: public, max-age=N`` (``None``:
    no header). ``metadata`` is ``"oidc"`` (``/.well-known/openid-configuration``
    under the issuer), ``"oauth"`` (RFC 8414 only: ``/.well-known/oauth-authorization-server``
    inserted between the host and the issuer path) or ``"both"``.

    Cognito access tokens have **no ``aud``**: they carry the app client in
    ``client_id`` (their ID tokens have ``aud``). Okta's ``scp`` is a JSON list,
    Entra's ``scp`` a space-separated string, the others' ``scope`` a string.
    """

    def __init__(
        self,
        kind: str = "generic",
        path: Optional[str] = None,
        *,
        algorithms: Sequence[str] = ("RS256",),
        jwk_alg: bool = False,
        max_age: Optional[int] = None,
        metadata: str = "oidc",
        audience: str = DEFAULT_AUDIENCE,
        client_id: str = DEFAULT_CLIENT_ID,
        trailing_slash: Optional[bool] = None,
        port: int = 0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError("kind must be one of %s, not %r" % (", ".join(KINDS), kind))
        if metadata not in ("oidc", "oauth", "both"):
            raise ValueError("metadata must be 'oidc', 'oauth' or 'both', not %r" % metadata)
        self.kind = kind
        path = DEFAULT_PATHS[kind] if path is None else path
        if path and not path.startswith("/"):
            path = "/" + path
        #: The issuer's path without a trailing slash ("" for a bare host).
        self.path = path.rstrip("/")
        self.trailing_slash = (kind == "auth0") if trailing_slash is None else trailing_slash
        self.jwk_alg = jwk_alg
        self.max_age = max_age
        self.metadata = metadata
        self.audience = audience
        self.client_id = client_id
        self.port = port

        #: Patched into the served metadata document; a ``None`` value deletes the member.
        self.metadata_override: Dict[str, Any] = {}
        #: Served instead of the JWK Set when not ``None``: a dict/list as JSON, bytes or str as is.
        self.jwks_override: Optional[Union[Dict[str, Any], List[Any], bytes, str]] = None
        #: Extra response headers of the JWK Set (``ETag``, ``Cache-Control: no-store``...).
        self.jwks_headers: Dict[str, str] = {}
        #: When true, every request is answered ``down_status`` (an IdP having a bad day).
        self.down = False
        self.down_status = 503
        #: Seconds the JWK Set answer waits (for thundering-herd tests).
        self.delay = 0.0
        #: Seconds between the bytes of the JWK Set answer (a server that trickles).
        self.trickle = 0.0
        #: When set, the JWK Set (asked for without a query) is answered with a 302 to this URL.
        self.jwks_redirect: Optional[str] = None

        #: Requests received per route: "jwks", "discovery" (either metadata document), "other".
        #: Requests answered 503 because of ``down`` are counted too: they were fetch attempts.
        self.hits: Dict[str, int] = {"jwks": 0, "discovery": 0, "other": 0}
        self.requests: List[Request] = []

        self._keys: List[SigningKey] = []
        self._lock = threading.Lock()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

        # The people and tenants in the tokens: stable for one IdP.
        self.tenant_id = self.path.split("/")[1] if kind == "entra" and self.path.count("/") >= 1 else ""
        self.subject = {
            "auth0": "auth0|abc123",
            "keycloak": str(uuid.uuid4()),
            "okta": "alice@example.test",
            "cognito": str(uuid.uuid4()),
            "entra": b64url(secrets.token_bytes(32)),
            "generic": "alice",
        }[kind]
        self.object_id = str(uuid.uuid4())  # Entra's oid
        self.okta_uid = "00u" + secrets.token_hex(8)[:17]

        for alg in algorithms:
            self.add_key(alg)

    # -- URLs -------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (the port is known once started)."""
        return "http://127.0.0.1:%d" % self.port

    @property
    def issuer(self) -> str:
        """The exact ``iss`` of the tokens and ``issuer`` of the metadata."""
        return self.url + self.path + ("/" if self.trailing_slash else "")

    @property
    def openid_configuration_url(self) -> str:
        return self.url + self.path + OIDC_WELL_KNOWN

    @property
    def oauth_metadata_url(self) -> str:
        """RFC 8414 section 3.1: the well-known suffix goes between the host and the issuer path."""
        return self.url + OAUTH_WELL_KNOWN + self.path

    @property
    def discovery_url(self) -> str:
        """Where the metadata is: the OpenID configuration, or RFC 8414's when only that is served."""
        return self.oauth_metadata_url if self.metadata == "oauth" else self.openid_configuration_url

    @property
    def jwks_path(self) -> str:
        return {
            "auth0": self.path + "/.well-known/jwks.json",
            "keycloak": self.path + "/protocol/openid-connect/certs",
            "okta": self.path + "/v1/keys",
            "cognito": self.path + "/.well-known/jwks.json",
            "entra": "/%s/discovery/v2.0/keys" % self.tenant_id,
            "generic": self.path + "/.well-known/jwks.json",
        }[self.kind]

    @property
    def jwks_uri(self) -> str:
        return self.url + self.jwks_path

    def _endpoints(self) -> Dict[str, str]:
        base = self.url + self.path
        if self.kind == "auth0":
            return {"authorization_endpoint": base + "/authorize", "token_endpoint": base + "/oauth/token",
                    "userinfo_endpoint": base + "/userinfo"}
        if self.kind == "keycloak":
            base += "/protocol/openid-connect"
            return {"authorization_endpoint": base + "/auth", "token_endpoint": base + "/token",
                    "userinfo_endpoint": base + "/userinfo"}
        if self.kind == "okta":
            return {"authorization_endpoint": base + "/v1/authorize", "token_endpoint": base + "/v1/token",
                    "userinfo_endpoint": base + "/v1/userinfo"}
        if self.kind == "entra":
            base = "%s/%s/oauth2/v2.0" % (self.url, self.tenant_id)
            return {"authorization_endpoint": base + "/authorize", "token_endpoint": base + "/token",
                    "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo"}
        if self.kind == "cognito":  # really on the user pool's hosted-UI domain
            base = self.url + "/oauth2"
            return {"authorization_endpoint": base + "/authorize", "token_endpoint": base + "/token",
                    "userinfo_endpoint": base + "/userInfo"}
        return {"authorization_endpoint": base + "/authorize", "token_endpoint": base + "/token",
                "userinfo_endpoint": base + "/userinfo"}

    # -- server -----------------------------------------------------------

    def start(self) -> IdP:
        """Serve on 127.0.0.1; a restart after :meth:`stop` keeps the port (and so the issuer)."""
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.idp = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="idp-" + self.kind, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """A real outage: the port is closed (connection refused) until :meth:`start`."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> IdP:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def reset_hits(self) -> None:
        with self._lock:
            for name in self.hits:
                self.hits[name] = 0
            self.requests.clear()

    def _route(self, path: str) -> str:
        path = path.split("?", 1)[0]
        if path == self.jwks_path:
            return "jwks"
        if path == self.path + OIDC_WELL_KNOWN and self.metadata in ("oidc", "both"):
            return "discovery"
        if path == OAUTH_WELL_KNOWN + self.path and self.metadata in ("oauth", "both"):
            return "discovery"
        return "other"

    def _answer(self, handler: _Handler) -> None:
        route = self._route(handler.path)
        with self._lock:
            self.hits[route] += 1
            self.requests.append(Request(handler.command, handler.path, dict(handler.headers.items())))
        headers: Dict[str, str] = {}
        if self.down:
            status, body = self.down_status, b'{"error":"temporarily_unavailable"}'
            headers["Retry-After"] = "1"
        elif route == "jwks" and self.jwks_redirect is not None and "?" not in handler.path:
            status, body = 302, b""
            headers["Location"] = self.jwks_redirect
        elif route == "jwks":
            if self.delay:
                time.sleep(self.delay)
            status, body = 200, self._jwks_body()
            if self.max_age is not None:
                headers["Cache-Control"] = "public, max-age=%d" % self.max_age
            headers.update(self.jwks_headers)
        elif route == "discovery":
            status, body = 200, json.dumps(self.metadata_document()).encode("utf-8")
        else:
            status, body = 404, b'{"error":"not_found"}'
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            if self.trickle and route == "jwks":
                for index in range(len(body)):
                    handler.wfile.write(body[index:index + 1])
                    handler.wfile.flush()
                    time.sleep(self.trickle)
            else:
                handler.wfile.write(body)
        except (TimeoutError, ConnectionError):
            pass  # the client gave up (a timeout shorter than the delay)

    def _jwks_body(self) -> bytes:
        override = self.jwks_override
        if override is None:
            return json.dumps(self.jwks()).encode("utf-8")
        if isinstance(override, bytes):
            return override
        if isinstance(override, str):
            return override.encode("utf-8")
        return json.dumps(override).encode("utf-8")

    # -- metadata and keys ------------------------------------------------

    def metadata_document(self) -> Dict[str, Any]:
        """The discovery document as served (with :attr:`metadata_override` applied)."""
        algorithms = list(dict.fromkeys(k.alg for k in self._published() if k.use == "sig")) or ["RS256"]
        document: Dict[str, Any] = {
            "issuer": self.issuer,
            **self._endpoints(),
            "jwks_uri": self.jwks_uri,
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algorithms,
            "scopes_supported": ["openid", "profile", "email"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "claims_supported": ["aud", "exp", "iat", "iss", "sub"],
        }
        if self.kind == "entra":
            document["tenant_region_scope"] = "EU"
            document["cloud_instance_name"] = "microsoftonline.com"
        for name, value in self.metadata_override.items():
            if value is None:
                document.pop(name, None)
            else:
                document[name] = value
        return document

    def _default_kid(self, key: jwk.Key, certificate: Optional[x509.Certificate]) -> str:
        if self.kind == "entra" and certificate is not None:  # Entra's kid is the x5t
            return b64url(hashlib.sha1(certificate.public_bytes(serialization.Encoding.DER)).digest())
        if self.kind == "cognito":  # standard base64, with '+', '/' and '='
            return base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        if self.kind == "auth0":
            return secrets.token_urlsafe(16)
        return key.thumbprint()

    def add_key(self, alg: str, kid: Optional[str] = None, use: str = "sig", publish: bool = True) -> str:
        """Make a joserfc key for ``alg`` and (unless ``publish=False``) serve it; its kid.

        ``use="enc"`` with ``"RSA-OAEP"`` adds an encryption key, which is served
        (as Keycloak does) but never signs. An unpublished key signs tokens
        whose kid the JWK Set does not have yet (key rotation, see :meth:`publish`).
        """
        key = generate_key(alg, use=use)
        certificate = None
        if key.key_type == "RSA":
            certificate = self_signed_certificate(key, "%s test IdP %s" % (self.kind, self.path or "/"))
        kid = kid or self._default_kid(key, certificate)
        key = type(key).import_key(key.as_dict(private=True), {"kid": kid, "use": use})
        entry = SigningKey(key, alg, use, certificate)
        entry.published = publish
        with self._lock:
            if any(existing.kid == kid for existing in self._keys):
                raise ValueError("this IdP already has a key %r" % kid)
            self._keys.append(entry)
        return kid

    def key(self, kid: str) -> SigningKey:
        for entry in self._keys:
            if entry.kid == kid:
                return entry
        raise KeyError("no key %r in this IdP" % kid)

    def remove_key(self, kid: str) -> None:
        """Take the key out of the JWK Set; it can still sign (a token of a retired key)."""
        self.key(kid).published = False

    def publish(self, kid: str) -> None:
        """Serve a key added with ``publish=False`` or removed (the IdP rotated its keys)."""
        self.key(kid).published = True

    def forget_key(self, kid: str) -> None:
        """Remove the key entirely (it can no longer sign)."""
        with self._lock:
            self._keys = [entry for entry in self._keys if entry.kid != kid]

    def _published(self) -> List[SigningKey]:
        return [entry for entry in self._keys if entry.published]

    @property
    def kids(self) -> List[str]:
        """The kids of the served keys, in JWK Set order."""
        return [entry.kid for entry in self._published()]

    @property
    def keys(self) -> List[Dict[str, Any]]:
        """The served JWKs (public members only)."""
        return [self.public_jwk(entry.kid) for entry in self._published()]

    def jwks(self) -> Dict[str, Any]:
        """The JWK Set document as served (without :attr:`jwks_override`)."""
        return {"keys": self.keys}

    def public_jwk(self, kid: str) -> Dict[str, Any]:
        """The JWK Set entry of a key: public members plus what this kind of IdP adds."""
        entry = self.key(kid)
        public = entry.key.as_dict(private=False)
        document: Dict[str, Any] = {"kty": public["kty"], "use": entry.use, "kid": entry.kid}
        if self.jwk_alg:
            document["alg"] = entry.alg
        for member in ("n", "e", "crv", "x", "y"):
            if member in public:
                document[member] = public[member]
        der = entry.certificate_der
        if der is not None:
            document["x5c"] = [base64.b64encode(der).decode("ascii")]
            document["x5t"] = b64url(hashlib.sha1(der).digest())
            if self.kind == "keycloak":
                document["x5t#S256"] = b64url(hashlib.sha256(der).digest())
        if self.kind == "entra":
            document["cloud_instance_name"] = "microsoftonline.com"
            document["issuer"] = self.issuer
        return document

    def pem_of(self, kid: Optional[str] = None) -> bytes:
        """The SubjectPublicKeyInfo PEM of a key (default: the default signing key)."""
        entry = self.key(kid) if kid else self._signing_key(None, None)
        return entry.key.as_pem(private=False)

    def _signing_key(self, kid: Optional[str], alg: Optional[str]) -> SigningKey:
        if kid is not None:
            entry = self.key(kid)
            if entry.use != "sig":
                raise ValueError("key %r is an encryption key" % kid)
            return entry
        candidates = [entry for entry in self._keys if entry.use == "sig" and alg in (None, entry.alg)]
        candidates.sort(key=lambda entry: not entry.published)  # served keys first
        if not candidates:
            raise LookupError("no signing key%s: add one with add_key()" % (" for " + alg if alg else ""))
        return candidates[0]

    # -- tokens -----------------------------------------------------------

    def _sign(
        self,
        claims: Dict[str, Any],
        overrides: Optional[Mapping[str, Any]],
        kid: Optional[str],
        alg: Optional[str],
        typ: str,
        header_extra: Optional[Mapping[str, Any]],
        include_kid: bool,
    ) -> str:
        entry = self._signing_key(kid, alg)
        for name, value in (overrides or {}).items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        header: Dict[str, Any] = {"alg": entry.alg}
        if include_kid:
            header["kid"] = entry.kid
        if typ:
            header["typ"] = typ
        for name, value in (header_extra or {}).items():
            if value is None:
                header.pop(name, None)
            else:
                header[name] = value
        return sign_with(entry.key, claims, header)

    def access_claims(self, now: int, lifetime: int) -> Dict[str, Any]:
        """The claims of this kind's access tokens, before the test's own."""
        exp = now + lifetime
        if self.kind == "auth0":
            return {
                "iss": self.issuer, "sub": self.subject,
                "aud": [self.audience, self.url + self.path + "/userinfo"],
                "iat": now, "exp": exp, "azp": self.client_id,
                "scope": "read:items write:items", "permissions": ["read:items"],
            }
        if self.kind == "keycloak":
            realm = self.path.rsplit("/", 1)[-1] or "master"
            return {
                "exp": exp, "iat": now, "jti": str(uuid.uuid4()), "iss": self.issuer,
                "aud": [self.audience, "account"], "sub": self.subject, "typ": "Bearer",
                "azp": self.client_id, "sid": str(uuid.uuid4()), "acr": "1",
                "allowed-origins": ["http://localhost:3000"],
                "realm_access": {
                    "roles": ["default-roles-" + realm, "offline_access", "uma_authorization", "reader"]
                },
                "resource_access": {
                    self.client_id: {"roles": ["items-reader"]},
                    "account": {"roles": ["manage-account", "manage-account-links", "view-profile"]},
                },
                "scope": "openid profile email", "email_verified": True, "name": "Alice Example",
                "preferred_username": "alice", "given_name": "Alice", "family_name": "Example",
                "email": "alice@example.test",
            }
        if self.kind == "okta":
            return {
                "ver": 1, "jti": "AT." + secrets.token_urlsafe(32), "iss": self.issuer, "aud": self.audience,
                "iat": now, "exp": exp, "cid": self.client_id, "uid": self.okta_uid,
                "scp": ["read", "write"], "auth_time": now, "sub": self.subject,
            }
        if self.kind == "cognito":  # no "aud": Cognito access tokens name the app in client_id
            return {
                "sub": self.subject, "cognito:groups": ["readers"], "iss": self.issuer, "version": 2,
                "client_id": self.client_id, "origin_jti": str(uuid.uuid4()), "event_id": str(uuid.uuid4()),
                "token_use": "access", "scope": "aws.cognito.signin.user.admin read", "auth_time": now,
                "exp": exp, "iat": now, "jti": str(uuid.uuid4()), "username": "alice",
            }
        if self.kind == "entra":
            return {
                "aud": self.audience, "iss": self.issuer, "iat": now, "nbf": now, "exp": exp,
                "aio": b64url(secrets.token_bytes(48)), "azp": self.client_id, "azpacr": "0",
                "name": "Alice Example", "oid": self.object_id, "preferred_username": "alice@example.test",
                "rh": "0." + b64url(secrets.token_bytes(40)) + ".", "roles": ["Items.Read"],
                "scp": "read write", "sub": self.subject, "tid": self.tenant_id,
                "uti": b64url(secrets.token_bytes(16)), "ver": "2.0",
            }
        return {  # RFC 9068
            "iss": self.issuer, "sub": self.subject, "aud": self.audience, "iat": now, "exp": exp,
            "client_id": self.client_id, "jti": str(uuid.uuid4()), "scope": "read write",
        }

    def mint(
        self,
        claims: Optional[Mapping[str, Any]] = None,
        *,
        kid: Optional[str] = None,
        alg: Optional[str] = None,
        typ: Optional[str] = None,
        header_extra: Optional[Mapping[str, Any]] = None,
        lifetime: int = 300,
        include_kid: bool = True,
        now: Optional[float] = None,
    ) -> str:
        """An access token shaped like this kind's, signed by joserfc with one of the IdP's keys.

        ``claims`` are merged over the kind's (a ``None`` value removes a claim,
        e.g. ``{"aud": None}``). ``kid`` picks the key (also a removed one),
        ``alg`` the first signing key of that algorithm; the default is the
        first served signing key. ``typ`` is the header's type (default: the
        kind's, see :data:`ACCESS_TOKEN_TYP`; ``""`` sends none).
        ``header_extra`` is merged into the header last (``None`` removes a
        member). A negative ``lifetime`` makes an expired token; ``now`` moves
        ``iat`` (epoch seconds).
        """
        issued = int(time.time() if now is None else now)
        typ = ACCESS_TOKEN_TYP[self.kind] if typ is None else typ
        return self._sign(
            self.access_claims(issued, lifetime), claims, kid, alg, typ, header_extra, include_kid
        )

    def id_claims(self, now: int, lifetime: int, nonce: Optional[str]) -> Dict[str, Any]:
        """The claims of this kind's ID tokens: ``aud`` is the client, not the API."""
        claims: Dict[str, Any] = {
            "iss": self.issuer, "sub": self.subject, "aud": self.client_id, "iat": now, "exp": now + lifetime,
            "auth_time": now, "azp": self.client_id, "at_hash": b64url(secrets.token_bytes(16)),
            "name": "Alice Example", "email": "alice@example.test",
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if self.kind == "keycloak":
            claims.update({"typ": "ID", "sid": str(uuid.uuid4()), "acr": "1", "preferred_username": "alice"})
        elif self.kind == "okta":
            claims.update({"ver": 1, "jti": "ID." + secrets.token_urlsafe(32), "amr": ["pwd"],
                           "idp": "00o" + secrets.token_hex(8)})
        elif self.kind == "cognito":
            claims.update({"token_use": "id", "cognito:username": "alice", "email_verified": True,
                           "origin_jti": str(uuid.uuid4()), "event_id": str(uuid.uuid4()),
                           "jti": str(uuid.uuid4())})
            del claims["azp"]
        elif self.kind == "entra":
            claims.update({"nbf": now, "oid": self.object_id, "tid": self.tenant_id, "ver": "2.0",
                           "preferred_username": "alice@example.test",
                           "uti": b64url(secrets.token_bytes(16))})
            del claims["azp"], claims["auth_time"]
        elif self.kind == "auth0":
            claims.update({"nickname": "alice", "sid": secrets.token_urlsafe(24),
                           "updated_at": "2024-01-01T00:00:00.000Z"})
        return claims

    def mint_id_token(
        self,
        claims: Optional[Mapping[str, Any]] = None,
        *,
        nonce: Optional[str] = "n-0S6_WzA2Mj",
        kid: Optional[str] = None,
        alg: Optional[str] = None,
        typ: Optional[str] = None,
        header_extra: Optional[Mapping[str, Any]] = None,
        lifetime: int = 300,
        include_kid: bool = True,
        now: Optional[float] = None,
    ) -> str:
        """An OpenID Connect ID token of this IdP (``aud`` = the client id, ``nonce``...).

        Signed by the same keys as the access tokens: only a type check (the
        ``typ`` header, Keycloak's ``typ`` claim, Cognito's ``token_use``) or
        the audience tells it from an access token. ``typ`` defaults to
        ``"JWT"`` (``""`` for Okta and Cognito, which send none).
        """
        issued = int(time.time() if now is None else now)
        if typ is None:
            typ = "" if self.kind in ("okta", "cognito") else "JWT"
        return self._sign(
            self.id_claims(issued, lifetime, nonce), claims, kid, alg, typ, header_extra, include_kid
        )

    def __repr__(self) -> str:
        return "<IdP %s %s%s>" % (self.kind, self.issuer, "" if self.running else " (stopped)")
