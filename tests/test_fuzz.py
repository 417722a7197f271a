"""Property-based tests (hypothesis): hostile tokens, headers, cookies and bodies.

On every generated input: never a 5xx; never 200 on a protected route unless
the token is exactly a valid token the app issued; every refusal is a JSON
body with exactly status_code/error/description, status_code equal to the
HTTP status; the authentication handler only ever receives two non-empty str.

Apps are built once per module for each algorithm family (HS256, RS256,
ES256, EdDSA, keys generated with cryptography) plus one with cookies,
refresh and logout on. Mutations are generated as data (an operation and its
arguments) and applied to the tokens of this run, so a falsifying example
reads as "what was done to the token".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import string
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from flask import Flask, jsonify
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from jwt.algorithms import get_default_algorithms
from werkzeug.http import parse_cookie, parse_options_header

from flask_tokenauth import JWT, current_identity, jwt_required
from tests.conftest import SECRET, authenticate, identity, make_app

# When a property fails, hypothesis' pytest plugin imports libcst (to suggest an
# @example patch), whose import emits a DeprecationWarning (mypy_extensions.TypedDict);
# under filterwarnings=error that becomes an INTERNALERROR that hides the failure.
# Import it now, with that warning ignored, so failures are reported normally.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:  # pragma: no cover - libcst not installed: nothing to import
        pass

FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),  # a slow machine must not fail a property run
)
FEW = settings(FUZZ, max_examples=80)

ERROR_KEYS = {"status_code", "error", "description"}
B64 = string.ascii_letters + string.digits + "-_"
COOKIE_SECRET = "another-secret-for-the-cookie-app-long-enough-for-hs256"
COOKIE_CONFIG: Dict[str, Any] = {
    "JWT_SECRET_KEY": COOKIE_SECRET,
    "JWT_TOKEN_LOCATION": ["headers", "cookies"],
    "JWT_COOKIE_SECURE": False,
    "JWT_REFRESH_URL_RULE": "/auth/refresh",
    "JWT_LOGOUT_URL_RULE": "/auth/logout",
}
ALGORITHMS = get_default_algorithms()
HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


# --- helpers --------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def latin1_safe(text: str) -> str:
    """What a WSGI server puts into the environ for ``text`` sent as UTF-8 bytes."""
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


def assert_refusal(response, status: Optional[int] = None) -> Dict[str, Any]:
    """A 4xx JSON body with exactly the three keys; status_code is the HTTP status."""
    assert response.status_code < 500, (response.status_code, response.get_data()[:300])
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data()[:300])
    if status is not None:
        assert response.status_code == status, (response.status_code, response.get_data()[:300])
    assert response.mimetype == "application/json", response.headers
    body = json.loads(response.get_data())
    assert isinstance(body, dict) and set(body) == ERROR_KEYS, body
    event("refused %s: %s" % (response.status_code, str(body.get("description"))[:40]))
    assert body["status_code"] == response.status_code, body
    assert isinstance(body["error"], str) and body["error"], body
    assert isinstance(body["description"], str) and body["description"], body
    return body


class Recorder:
    """An authentication handler that records every call, then defers to the tutorial's."""

    def __init__(self) -> None:
        self.calls: List[Tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> Any:
        self.calls.append(args)
        return authenticate(*args)


def assert_handler_contract(calls: Sequence[Tuple[Any, ...]]) -> None:
    for args in calls:
        assert len(args) == 2, args
        assert all(type(arg) is str and arg for arg in args), args
        assert all(len(arg) <= 4096 for arg in args), [len(arg) for arg in args]


# --- apps -------------------------------------------------------------------------------


class Family:
    """One app of an algorithm family, a valid access token of it, and its keys."""

    def __init__(self, name: str, config: Dict[str, Any], sign_key: Any, public_pem: Optional[str]):
        self.name = name
        self.app = make_app(config)
        self.client = self.app.test_client()
        self.sign_key = sign_key  # what "own key" forgeries sign with
        self.public_pem = public_pem
        response = self.client.post("/auth", json={"username": "joe", "password": "pass"})
        assert response.status_code == 200, response.get_json()
        self.token: str = response.get_json()["access_token"]
        assert self.get(self.token).status_code == 200

    def get(self, token: str, prefix: str = "JWT "):
        return self.client.get(
            "/protected", environ_overrides={"HTTP_AUTHORIZATION": latin1_safe(prefix + token)}
        )


def _pem_pair(key: Any) -> Tuple[str, str]:
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private, public


@pytest.fixture(scope="module", name="families")
def families_fixture() -> Dict[str, Family]:
    made: Dict[str, Family] = {"HS256": Family("HS256", {}, SECRET, None)}
    for name, key in (
        ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
        ("EdDSA", ed25519.Ed25519PrivateKey.generate()),
    ):
        private, public = _pem_pair(key)
        config = {"JWT_ALGORITHM": name, "JWT_PRIVATE_KEY": private, "JWT_PUBLIC_KEY": public}
        made[name] = Family(name, config, private, public)
    return made


def cookie_app(jwt: Optional[JWT] = None) -> Flask:
    """HS256 (its own secret), tokens in headers and cookies, refresh and logout on,
    ``GET /protected`` and ``POST /write``."""
    app = make_app(COOKIE_CONFIG, jwt=jwt)

    @app.route("/write", methods=["POST"])
    @jwt_required()
    def write():
        return jsonify(id=current_identity.id)

    return app


class Session:
    """A login's tokens on the cookie app."""

    def __init__(self, client) -> None:
        response = client.post("/auth", json={"username": "joe", "password": "pass"})
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert set(body) == {"access_token", "refresh_token", "csrf_token"}, body
        self.access: str = body["access_token"]
        self.refresh: str = body["refresh_token"]
        self.csrf: str = body["csrf_token"]


@pytest.fixture(scope="module", name="cookie_client")
def cookie_client_fixture():
    return cookie_app().test_client(use_cookies=False)


@pytest.fixture(scope="module", name="session")
def session_fixture(cookie_client) -> Session:
    return Session(cookie_client)


@pytest.fixture(scope="module", name="other_tokens")
def other_tokens_fixture(families, session) -> List[str]:
    """Valid tokens of every app, for splicing segments across issuers."""
    return [f.token for f in families.values()] + [session.access, session.refresh]


# --- token mutations ---------------------------------------------------------------------

ALG_VALUES = [
    "none", "None", "NONE", "nOnE", "", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
    "PS256", "PS512", "ES256", "ES384", "ES512", "ES256K", "EdDSA", "Ed25519", "hs256", "RS256 ",
    None, 0, ["HS256"],
]
SIGNERS = ["keep", "empty", "junk", "hmac-public", "hmac-secret", "own"]
HEADER_FIELDS = ["kid", "typ", "jku", "jwk", "x5u", "x5c", "crit", "b64", "cty", "zip"]
CLAIMS = ["identity", "exp", "iat", "nbf", "jti", "fam", "token_type", "fresh", "csrf", "auth_time"]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=16)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
token_chars = st.one_of(st.sampled_from(list(B64 + ".=+/ \t%")), st.characters(max_codepoint=0x3000))
positions = st.integers(min_value=0, max_value=5000)

mutation = st.one_of(
    st.tuples(st.just("flip"), positions, token_chars),
    st.tuples(st.just("insert"), positions, st.text(token_chars, min_size=1, max_size=4)),
    st.tuples(st.just("delete"), positions, st.integers(min_value=1, max_value=4)),
    st.tuples(st.just("swapcase"), positions),
    st.tuples(st.just("truncate"), positions),
    st.tuples(st.just("segments"), st.lists(st.integers(0, 2), min_size=1, max_size=5)),
    st.tuples(st.just("splice"), st.integers(0, 2), st.integers(0, 20)),
    st.tuples(
        st.just("header"),
        st.sampled_from(ALG_VALUES),
        st.dictionaries(st.sampled_from(HEADER_FIELDS), json_values, max_size=2),
        st.sampled_from(SIGNERS),
    ),
    st.tuples(
        st.just("claims"),
        st.dictionaries(st.sampled_from(CLAIMS + ["admin", "type", "permissions"]), json_values, max_size=3),
        st.lists(st.sampled_from(CLAIMS), max_size=2),
    ),
    st.tuples(st.just("reserialize"), st.integers(0, 3)),
)
mutations = st.lists(mutation, min_size=1, max_size=3)


class Forger:
    """What a mutation may sign with: the app's own key (under another algorithm
    only), the conftest SECRET, the app's public key as an HMAC secret."""

    def __init__(self, family_alg: str, own_key: Any, public_pem: Optional[str]) -> None:
        self.family_alg = family_alg
        self.own_key = own_key
        self.public_pem = public_pem

    def signature(self, alg: Any, signer: str, signing_input: str, old: str) -> str:
        message = signing_input.encode("ascii", "replace")
        junk = b64url(hashlib.sha256(b"junk" + message).digest())
        if signer == "keep":
            return old
        if signer == "empty" or alg in ("none", None):
            return ""
        if not isinstance(alg, str) or signer == "junk":
            return junk
        if signer == "hmac-public":
            if alg in HASHES and self.public_pem:
                return b64url(hmac.new(self.public_pem.encode(), message, HASHES[alg]).digest())
            return junk
        if signer == "hmac-secret":
            if alg in HASHES and not (self.family_alg == "HS256" and alg == "HS256"):
                return b64url(hmac.new(SECRET.encode(), message, HASHES[alg]).digest())
            return junk
        # "own": the app's own key, never under the app's own algorithm (that is a genuine token)
        if alg == self.family_alg or alg not in ALGORITHMS:
            return junk
        try:
            if alg in HASHES:
                if not isinstance(self.own_key, str) or self.public_pem is not None:
                    return junk
                return b64url(hmac.new(self.own_key.encode(), message, HASHES[alg]).digest())
            impl = ALGORITHMS[alg]
            return b64url(impl.sign(message, impl.prepare_key(self.own_key)))
        except Exception:  # a key that does not fit the algorithm
            return junk


def _claims_of(segment: str) -> Optional[Dict[str, Any]]:
    try:
        claims = json.loads(b64url_decode(segment))
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def mutate(token: str, ops: Sequence[Tuple[Any, ...]], others: Sequence[str], forger: Forger) -> str:
    for op in ops:
        token = apply(token, op, others, forger)
    return token


def apply(token: str, op: Tuple[Any, ...], others: Sequence[str], forger: Forger) -> str:
    kind = op[0]
    size = max(len(token), 1)
    if kind == "flip":
        i = op[1] % size
        return token[:i] + op[2] + token[i + 1:]
    if kind == "insert":
        i = op[1] % (len(token) + 1)
        return token[:i] + op[2] + token[i:]
    if kind == "delete":
        i = op[1] % size
        return token[:i] + token[i + op[2]:]
    if kind == "swapcase":
        i = op[1] % size
        return token[:i] + token[i:i + 1].swapcase() + token[i + 1:]
    if kind == "truncate":
        return token[: op[1] % size]
    parts = token.split(".")
    if kind == "segments":
        return ".".join(parts[i] if i < len(parts) else "" for i in op[1])
    if kind == "splice":
        donor = others[op[2] % len(others)].split(".")
        index = op[1] % len(parts)
        parts[index] = donor[op[1] % len(donor)]
        return ".".join(parts)
    if kind == "header":
        _, alg, extra, signer = op
        header: Dict[str, Any] = {"typ": "JWT", **extra}
        if alg is not None:
            header["alg"] = alg
        payload = parts[1] if len(parts) > 1 else ""
        signing_input = b64url(json.dumps(header).encode()) + "." + payload
        old = parts[2] if len(parts) > 2 else ""
        return signing_input + "." + forger.signature(alg, signer, signing_input, old)
    if kind in ("claims", "reserialize") and len(parts) == 3:
        claims = _claims_of(parts[1])
        if claims is None:
            return token
        if kind == "claims":
            claims.update(op[1])
            for name in op[2]:
                claims.pop(name, None)
            encoded = json.dumps(claims, separators=(",", ":"))
        else:
            encoded = json.dumps(dict(reversed(list(claims.items()))), indent=op[1] or None)
        parts[1] = b64url(encoded.encode())
        return ".".join(parts)
    return token


def forger_for(family: Family) -> Forger:
    return Forger(family.name, family.sign_key, family.public_pem)


# --- tokens at a protected route, per algorithm family -----------------------------------------


@pytest.mark.parametrize("family_name", ["HS256", "RS256", "ES256", "EdDSA"])
@FUZZ
@given(ops=st.lists(mutation, max_size=3), base=st.integers(0, 20))
@example(ops=[], base=1)  # the token itself: accepted
@example(ops=[], base=0)  # another issuer's valid token
@example(ops=[("segments", [0, 2, 1])], base=1)
@example(ops=[("claims", {"identity": 2}, [])], base=1)
@example(ops=[("reserialize", 2)], base=1)
def test_mutated_tokens_are_refused(families, other_tokens, family_name, ops, base):
    family = families[family_name]
    # Mostly the app's own token; sometimes another issuer's (its own key, another family).
    start = family.token if base % 3 else other_tokens[base % len(other_tokens)]
    token = mutate(start, ops, other_tokens, forger_for(family))
    response = family.get(token)
    # Accepted only when the header carries exactly the issued token (ASCII spaces a
    # mutation put at either end are separators, as in "JWT  <token> ").
    if accepted_header("JWT " + token, family.token):
        assert response.status_code == 200, response.get_json()
        assert response.get_json() == {"id": 1, "username": "joe"}
        event("accepted")
    else:
        assert_refusal(response, 401)


@pytest.mark.parametrize("family_name", ["HS256", "RS256", "ES256", "EdDSA"])
@FEW
@given(
    alg=st.sampled_from(ALG_VALUES),
    extra=st.dictionaries(st.sampled_from(HEADER_FIELDS), json_values, max_size=2),
    signer=st.sampled_from(SIGNERS),
    claims=st.dictionaries(st.sampled_from(CLAIMS), json_scalars, max_size=2),
)
@example(alg="none", extra={}, signer="empty", claims={})
@example(alg="none", extra={}, signer="keep", claims={"identity": 2})
@example(alg="HS256", extra={}, signer="hmac-public", claims={})
@example(alg="HS256", extra={}, signer="hmac-secret", claims={"identity": 2})
@example(alg="HS512", extra={}, signer="own", claims={})
@example(alg="PS256", extra={}, signer="own", claims={})
@example(alg="ES384", extra={}, signer="own", claims={})
def test_forged_headers_and_claims_are_refused(families, family_name, alg, extra, signer, claims):
    """Algorithm confusion: the app's token re-signed under another alg (incl. "none",
    HS* with the public key or SECRET as secret, the app's own key under another alg),
    with claims changed or not."""
    family = families[family_name]
    ops: List[Tuple[Any, ...]] = [("claims", claims, [])] if claims else []
    ops.append(("header", alg, extra, signer))
    token = mutate(family.token, ops, [family.token], forger_for(family))
    assert token != family.token
    assert_refusal(family.get(token), 401)


# --- Authorization headers ---------------------------------------------------------------------

prefixes = st.one_of(
    st.just("JWT"),
    st.sampled_from(["JWT", "jwt", "Jwt", "jWT", "Bearer", "JWT:", "JWT\x00", "\u0408WT", "JW\u0422", ""]),
    st.text(max_size=6),
)
separators = st.one_of(
    st.just(" "),
    st.sampled_from([" ", "  ", "\t", " \t ", "\xa0", "\u2003", "\x0b", "\x0c", "\n", "\r\n", "\x00",
                     "", "\u3000", "\x85", "\u2028", ","]),
    st.text(max_size=3),
)
blanks = st.one_of(st.just(""), st.text(alphabet=" \t\xa0\x0b\x0c\n\r\x85\u2028\x00", max_size=3))


def accepted_header(value: str, token: str) -> bool:
    """The oracle: ``Authorization: JWT <token>`` or ``Bearer <token>`` (scheme
    any case, only ASCII space/tab around and between, exactly two parts) with
    the issued token."""
    parts = [part for part in value.replace("\t", " ").split(" ") if part]
    return len(parts) == 2 and parts[0].lower() in ("jwt", "bearer") and parts[1] == token


#: Characters str.split() (and other "white space" rules) would split on, but RFC 9110 does not.
ODD_SPACES = ["\xa0", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\n", "\r", "\x00", "\u2003"]


@pytest.mark.parametrize("family_name", ["HS256", "RS256"])
@FUZZ
@given(
    shape=st.sampled_from(
        ["text", "prefixed-text", "token", "spaced-token", "odd-space-token", "mutated-token"]
    ),
    raw=st.booleans(),
    text=st.text(max_size=60),
    lead=blanks,
    prefix=prefixes,
    sep=separators,
    trail=blanks,
    spacing=st.tuples(*[st.text(alphabet=" \t", min_size=n, max_size=3) for n in (0, 1, 0)]),
    odd=st.lists(st.sampled_from(ODD_SPACES), min_size=1, max_size=2),
    case=st.sampled_from(["JWT", "jwt", "Jwt", "jwT"]),
    ops=mutations,
)
@example(  # U+00A0 sent as the single byte 0xA0 between scheme and token: not a separator
    shape="odd-space-token", raw=True, text="", lead="", prefix="JWT", sep=" ", trail="",
    spacing=("", " ", ""), odd=["\xa0"], case="JWT", ops=[("truncate", 0)],
)
def test_arbitrary_authorization_headers(families, other_tokens, family_name, shape, raw, text, lead, prefix,
                                         sep, trail, spacing, odd, case, ops):
    family = families[family_name]
    if shape == "text":
        value = text
    elif shape == "prefixed-text":
        value = lead + prefix + sep + text + trail
    elif shape == "token":
        value = lead + prefix + sep + family.token + trail
    elif shape == "spaced-token":  # accepted: only ASCII space and tab around the two parts
        value = spacing[0] + case + spacing[1] + family.token + spacing[2]
    elif shape == "odd-space-token":
        value = spacing[0] + case + "".join(odd) + family.token + spacing[2]
    else:
        value = lead + prefix + sep + mutate(family.token, ops, other_tokens, forger_for(family)) + trail
    # What the app receives: the value sent as UTF-8, or (raw) its latin-1 bytes as they are.
    environ_value = value if raw and all(ord(c) < 256 for c in value) else latin1_safe(value)
    response = family.client.get("/protected", environ_overrides={"HTTP_AUTHORIZATION": environ_value})
    if accepted_header(environ_value, family.token):
        assert response.status_code == 200, (response.status_code, response.get_json())
        event("accepted")
    else:
        assert_refusal(response, 401)


# --- cookies -----------------------------------------------------------------------------------

cookie_values = st.one_of(
    st.tuples(st.just("access"), st.just(())),
    st.tuples(st.just("refresh"), st.just(())),
    st.tuples(st.just("access"), mutations),
    st.tuples(st.just("refresh"), mutations),
    st.tuples(st.just("text"), st.text(max_size=40)),
)


def _pick(session: Session, choice: Tuple[str, Any], others: Sequence[str]) -> str:
    kind, arg = choice
    if kind == "text":
        return arg
    start = session.access if kind == "access" else session.refresh
    return mutate(start, arg, others, Forger("HS256", COOKIE_SECRET, None))


@FUZZ
@given(
    choice=cookie_values,
    before=st.sampled_from(["", "theme=dark; ", "access_token=; ", "csrf_token=abc; "]),
    after=st.sampled_from(["", "; theme=dark", "; access_token=x", ";"]),
    csrf=st.one_of(st.none(), st.just("correct"), st.text(max_size=40), mutations),
    post=st.booleans(),
)
@example(choice=("access", ()), before="", after="", csrf=None, post=False)
@example(choice=("access", ()), before="", after="", csrf="correct", post=True)
@example(choice=("access", ()), before="", after="", csrf=None, post=True)
@example(choice=("access", ()), before="", after="", csrf="wrong", post=True)
@example(choice=("refresh", ()), before="", after="", csrf="correct", post=False)
def test_generated_access_cookies(cookie_client, session, other_tokens, choice, before, after, csrf, post):
    value = _pick(session, choice, other_tokens)
    cookie_header = latin1_safe(before + "access_token=" + value + after)
    environ: Dict[str, str] = {"HTTP_COOKIE": cookie_header}
    if csrf == "correct":
        environ["HTTP_X_CSRF_TOKEN"] = session.csrf
    elif isinstance(csrf, str):
        environ["HTTP_X_CSRF_TOKEN"] = latin1_safe(csrf)
    elif csrf is not None:
        mutated = mutate(session.csrf, csrf, other_tokens, Forger("", "", None))
        environ["HTTP_X_CSRF_TOKEN"] = latin1_safe(mutated)
    if post:
        response = cookie_client.post("/write", environ_overrides=environ)
    else:
        response = cookie_client.get("/protected", environ_overrides=environ)
    seen = parse_cookie(cookie_header).get("access_token")  # what the app reads
    csrf_ok = environ.get("HTTP_X_CSRF_TOKEN") == session.csrf
    if seen == session.access and (csrf_ok or not post):
        assert response.status_code == 200, (response.status_code, response.get_json())
        event("accepted")
    else:
        assert_refusal(response, 401)


# --- /auth bodies --------------------------------------------------------------------------------

credential_values = st.one_of(
    st.sampled_from(["joe", "pass", "ann", "secret", "JOE", "", " ", "pass\x00", "joe "]),
    st.text(max_size=12),
    json_values,
)
exact_credentials = st.sampled_from(
    [
        ("joe", "pass"), ("ann", "secret"), ("joe", "secret"),
        ("JOE", "pass"), ("joe\x00", "pass"), ("joe", "pass "),
    ]
).map(lambda pair: {"username": pair[0], "password": pair[1]})
credential_objects = st.one_of(
    exact_credentials,
    st.builds(
        lambda creds, extra: {**extra, **creds},
        st.fixed_dictionaries({}, optional={"username": credential_values, "password": credential_values}),
        st.one_of(st.just({}), st.dictionaries(st.text(max_size=8), json_values, max_size=2)),
    ),
)
content_types = st.one_of(
    st.just("application/json"),
    st.sampled_from([
        "application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "application/vnd.api+json",
        "application/json-patch+json", "text/json", "text/plain", "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x", "", "application/json; charset=latin-1", "application/jsonx",
    ]),
    st.text(max_size=30),
)
bodies = st.one_of(
    st.tuples(st.just("json"), exact_credentials),
    st.tuples(st.just("json"), credential_objects),
    st.tuples(st.just("json"), json_values),
    st.tuples(st.just("encoded"), credential_objects, st.sampled_from(["utf-16", "utf-32", "utf-8-sig"])),
    st.tuples(st.just("bytes"), st.binary(max_size=200)),
    st.tuples(st.just("deep"), st.integers(min_value=500, max_value=70_000)),
)


def _body_bytes(body: Tuple[Any, ...]) -> bytes:
    kind = body[0]
    if kind == "json":
        return json.dumps(body[1]).encode()
    if kind == "encoded":
        return json.dumps(body[1]).encode(body[2])
    if kind == "bytes":
        return body[1]
    return b"[" * body[1]


def expected_credentials(content_type: str, raw: bytes) -> Optional[Tuple[str, str]]:
    """The oracle: the credentials the handler must receive, or None when it must not run."""
    mimetype = parse_options_header(content_type)[0].lower()
    is_json = mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )
    if not is_json:
        return None
    if len(raw) > 64 * 1024:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or set(data) != {"username", "password"}:
        return None
    username, password = data["username"], data["password"]
    for value in (username, password):
        if not isinstance(value, str) or not value or len(value) > 4096:
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return None
    return username, password


@pytest.fixture(scope="module", name="auth_apps")
def auth_apps_fixture() -> Dict[str, Tuple[Any, Recorder]]:
    apps = {}
    for name in ("plain", "cookies"):
        recorder = Recorder()
        jwt = JWT(None, recorder, identity)
        app = make_app(jwt=jwt) if name == "plain" else cookie_app(jwt=jwt)
        apps[name] = (app.test_client(use_cookies=False), recorder)
    return apps


@pytest.mark.parametrize("app_name", ["plain", "cookies"])
@FUZZ
@given(body=bodies, content_type=content_types)
@example(body=("json", {"username": "joe", "password": "pass"}), content_type="application/json")
@example(body=("json", {"username": "joe", "password": "pass"}), content_type="application/vnd.api+json")
@example(body=("json", {"username": "joe", "password": "pass", "x": 1}), content_type="application/json")
@example(body=("json", {"username": "joe", "password": "\ud800"}), content_type="application/json")
@example(body=("json", {"username": "joe", "password": "p" * 4097}), content_type="application/json")
@example(body=("json", {"username": ["joe"], "password": "pass"}), content_type="application/json")
@example(body=("deep", 70_000), content_type="application/json")
@example(body=("json", {"username": "joe", "password": "pass"}), content_type="text/plain")
def test_generated_auth_bodies(auth_apps, app_name, body, content_type):
    client, recorder = auth_apps[app_name]
    raw = _body_bytes(body)
    environ_type = latin1_safe(content_type)
    before = len(recorder.calls)
    response = client.post("/auth", data=raw, environ_overrides={"CONTENT_TYPE": environ_type})
    calls = recorder.calls[before:]
    assert_handler_contract(calls)
    expected = expected_credentials(environ_type, raw)
    assert calls == ([] if expected is None else [expected]), (calls, expected)
    if expected is not None and authenticate(*expected) is not None:
        assert response.status_code == 200, (response.status_code, response.get_json())
        event("accepted")
        assert "access_token" in response.get_json()
    else:
        assert_refusal(response)


# --- refresh and logout routes ---------------------------------------------------------------------

deliveries = st.sampled_from(["header", "json", "cookie", "cookie+csrf"])
refresh_candidates = st.one_of(
    st.tuples(st.just("refresh"), st.just(())),
    st.tuples(st.just("access"), st.just(())),
    st.tuples(st.just("refresh"), mutations),
    st.tuples(st.just("access"), mutations),
    st.tuples(st.just("text"), st.text(max_size=40)),
)


def _deliver(client, path: str, token: str, how: str, csrf: str, cookie_name: str):
    """POST ``token`` to ``path`` as ``how`` says; the response, and the token string
    the app reads from that request (the oracle's view)."""
    if how == "header":
        value = latin1_safe("JWT " + token)
        parts = [part for part in value.replace("\t", " ").split(" ") if part]
        seen = parts[1] if len(parts) == 2 and parts[0].lower() == "jwt" else None
        return client.post(path, environ_overrides={"HTTP_AUTHORIZATION": value}), seen
    if how == "json":
        return client.post(path, json={"refresh_token": token}), token
    cookie = latin1_safe("%s=%s" % (cookie_name, token))
    environ = {"HTTP_COOKIE": cookie}
    if how == "cookie+csrf":
        environ["HTTP_X_CSRF_TOKEN"] = csrf
    return client.post(path, environ_overrides=environ), parse_cookie(cookie).get(cookie_name)


@FEW
@given(candidate=refresh_candidates, how=deliveries)
@example(candidate=("refresh", ()), how="header")
@example(candidate=("refresh", ()), how="json")
@example(candidate=("refresh", ()), how="cookie+csrf")
@example(candidate=("refresh", ()), how="cookie")
@example(candidate=("access", ()), how="header")
@example(candidate=("refresh", [("claims", {"identity": 2}, [])]), how="json")
def test_refresh_route_with_generated_tokens(cookie_client, other_tokens, candidate, how):
    session = Session(cookie_client)  # a fresh, unspent pair for each example
    token = _pick(session, candidate, other_tokens)
    response, seen = _deliver(cookie_client, "/auth/refresh", token, how, session.csrf, "refresh_token")
    if seen == session.refresh and how != "cookie":
        assert response.status_code == 200, (response.status_code, response.get_json())
        event("accepted")
        assert set(response.get_json()) == {"access_token", "refresh_token", "csrf_token"}
    else:
        assert_refusal(response, 401)


@FEW
@given(
    body=st.one_of(
        st.tuples(st.just("json"), json_values),
        st.tuples(st.just("bytes"), st.binary(max_size=100)),
        st.tuples(st.just("json"), st.dictionaries(st.sampled_from(["refresh_token", "token"]), json_values)),
    ),
    content_type=content_types,
)
def test_refresh_route_with_generated_bodies(cookie_client, body, content_type):
    response = cookie_client.post(
        "/auth/refresh", data=_body_bytes(body), environ_overrides={"CONTENT_TYPE": latin1_safe(content_type)}
    )
    assert_refusal(response)


@FEW
@given(candidate=refresh_candidates, how=st.sampled_from(["header", "cookie", "cookie+csrf"]))
@example(candidate=("access", ()), how="header")
@example(candidate=("access", ()), how="cookie")
@example(candidate=("access", ()), how="cookie+csrf")
@example(candidate=("refresh", ()), how="header")
@example(candidate=("refresh", ()), how="cookie+csrf")
def test_logout_route_with_generated_tokens(cookie_client, other_tokens, candidate, how):
    session = Session(cookie_client)
    token = _pick(session, candidate, other_tokens)
    response, seen = _deliver(cookie_client, "/auth/logout", token, how, session.csrf, "access_token")
    ends = seen in (session.access, session.refresh) and how != "cookie"  # a cookie needs the CSRF header
    own_page = how == "cookie+csrf"  # the CSRF header: the app's own page, whatever the token
    if ends or own_page:
        assert response.status_code == 200, (response.status_code, response.get_json())
        event("ended" if ends else "cleared only")
        assert response.get_json() == {"message": "Logged out"}
    else:
        assert_refusal(response, 401)
    after = cookie_client.get("/protected", headers={"Authorization": "JWT " + session.access})
    if ends:
        assert_refusal(after, 401)
    else:  # the session was not touched: its access token still works
        assert after.status_code == 200, after.get_json()
