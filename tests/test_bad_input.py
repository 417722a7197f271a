"""Hostile and malformed input: every one is a 4xx JSON error, never a 5xx, never access.

(a) bodies posted to /auth, (b) Authorization headers, (c) tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Dict, List, Optional, Tuple

import jwt as pyjwt
import pytest

from flask_tokenauth import JWT
from tests.conftest import SECRET, auth_header, authenticate, identity, login, make_app

ERROR_KEYS = {"status_code", "error", "description"}
INVALID_CREDENTIALS = (401, "Bad Request", "Invalid credentials")
NOT_JSON = (400, "Bad Request", "Request body is not valid JSON")
#: The same on every Python: 3.13 parses nesting that 3.9-3.12 refuse with RecursionError.
TOO_DEEP = (400, "Bad Request", "Request body is nested too deeply")
NOT_OBJECT = (400, "Bad Request", "Request body must be a JSON object")
TOO_LARGE = (413, "Request Entity Too Large", "Request body is too large")
UNSUPPORTED = (415, "Unsupported Media Type", "Send the body as JSON (Content-Type: application/json)")


def assert_error(response, status: int, error: Optional[str] = None, description: Optional[str] = None):
    """A 4xx JSON body with exactly the three keys; returns the body."""
    assert 400 <= response.status_code < 500, (response.status_code, response.data[:300])
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == ERROR_KEYS, body
    assert body["status_code"] == status
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["description"], str) and body["description"]
    if error is not None:
        assert body["error"] == error, body
    if description is not None:
        assert body["description"] == description, body
    return body


class Recorder:
    """An authentication handler that records every call, then defers to the tutorial's."""

    def __init__(self) -> None:
        self.calls: List[Tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> Any:
        self.calls.append(args)
        return authenticate(*args)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def rec_client(recorder):
    app = make_app(jwt=JWT(authentication_handler=recorder, identity_handler=identity))
    return app.test_client()


def _json_body(obj: Any) -> Dict[str, Any]:
    return {"data": json.dumps(obj), "content_type": "application/json"}


def _raw(data: Any, content_type: Optional[str] = "application/json") -> Dict[str, Any]:
    kwargs: Dict[str, Any] = {"data": data}
    if content_type is not None:
        kwargs["content_type"] = content_type
    return kwargs


BIG = "x" * 10_000

# (id, client.post kwargs, (status, error, description))
AUTH_BODIES = [
    ("no-body", {}, UNSUPPORTED),
    ("empty-body-json", _raw(b""), NOT_JSON),
    ("empty-body-no-type", _raw(b"", None), UNSUPPORTED),
    ("not-json", _raw(b"username=joe&password=pass"), NOT_JSON),
    ("truncated-json", _raw(b'{"username": "joe", "password": "pa'), NOT_JSON),
    ("single-quotes", _raw(b"{'username': 'joe', 'password': 'pass'}"), NOT_JSON),
    ("text-plain", _raw(json.dumps({"username": "joe", "password": "pass"}), "text/plain"), UNSUPPORTED),
    ("form-encoded", {"data": {"username": "joe", "password": "pass"}}, UNSUPPORTED),
    (
        "form-encoded-explicit",
        _raw(b"username=joe&password=pass", "application/x-www-form-urlencoded"),
        UNSUPPORTED,
    ),
    ("multipart", _raw({"username": "joe", "password": "pass"}, "multipart/form-data"), UNSUPPORTED),
    ("json-array", _json_body(["joe", "pass"]), NOT_OBJECT),
    ("json-array-of-object", _json_body([{"username": "joe", "password": "pass"}]), NOT_OBJECT),
    ("json-number", _json_body(42), NOT_OBJECT),
    ("json-float", _json_body(4.2), NOT_OBJECT),
    ("json-string", _json_body("joe:pass"), NOT_OBJECT),
    ("json-null", _json_body(None), NOT_OBJECT),
    ("json-true", _json_body(True), NOT_OBJECT),
    ("json-false", _json_body(False), NOT_OBJECT),
    ("empty-object", _json_body({}), INVALID_CREDENTIALS),
    ("missing-password", _json_body({"username": "joe"}), INVALID_CREDENTIALS),
    ("missing-username", _json_body({"password": "pass"}), INVALID_CREDENTIALS),
    ("wrong-key-names", _json_body({"user": "joe", "pass": "pass"}), INVALID_CREDENTIALS),
    ("extra-key", _json_body({"username": "joe", "password": "pass", "admin": True}), INVALID_CREDENTIALS),
    ("extra-key-null", _json_body({"username": "joe", "password": "pass", "x": None}), INVALID_CREDENTIALS),
    ("one-right-key-plus-other", _json_body({"username": "joe", "pw": "pass"}), INVALID_CREDENTIALS),
    ("username-int", _json_body({"username": 1, "password": "pass"}), INVALID_CREDENTIALS),
    ("password-int", _json_body({"username": "joe", "password": 1234}), INVALID_CREDENTIALS),
    ("password-float", _json_body({"username": "joe", "password": 1.5}), INVALID_CREDENTIALS),
    ("username-list", _json_body({"username": ["joe"], "password": "pass"}), INVALID_CREDENTIALS),
    ("password-list", _json_body({"username": "joe", "password": ["pass"]}), INVALID_CREDENTIALS),
    ("username-dict", _json_body({"username": {"$ne": None}, "password": "pass"}), INVALID_CREDENTIALS),
    ("password-dict", _json_body({"username": "joe", "password": {"$gt": ""}}), INVALID_CREDENTIALS),
    ("username-null", _json_body({"username": None, "password": "pass"}), INVALID_CREDENTIALS),
    ("password-null", _json_body({"username": "joe", "password": None}), INVALID_CREDENTIALS),
    ("username-true", _json_body({"username": True, "password": "pass"}), INVALID_CREDENTIALS),
    ("password-false", _json_body({"username": "joe", "password": False}), INVALID_CREDENTIALS),
    ("both-null", _json_body({"username": None, "password": None}), INVALID_CREDENTIALS),
    ("username-empty", _json_body({"username": "", "password": "pass"}), INVALID_CREDENTIALS),
    ("password-empty", _json_body({"username": "joe", "password": ""}), INVALID_CREDENTIALS),
    ("both-empty", _json_body({"username": "", "password": ""}), INVALID_CREDENTIALS),
    ("username-huge", _json_body({"username": BIG, "password": "pass"}), INVALID_CREDENTIALS),
    ("password-huge", _json_body({"username": "joe", "password": BIG}), INVALID_CREDENTIALS),
    ("password-nan", _raw(b'{"username": "joe", "password": NaN}'), INVALID_CREDENTIALS),
    ("password-infinity", _raw(b'{"username": "joe", "password": Infinity}'), INVALID_CREDENTIALS),
    ("password-1e999", _raw(b'{"username": "joe", "password": 1e999}'), INVALID_CREDENTIALS),
    (
        "username-int-5000-digits",
        _raw(('{"username": 1%s, "password": "pass"}' % ("0" * 5000)).encode()),
        NOT_JSON,
    ),
    (
        "body-over-64KiB",
        _json_body({"username": "joe", "password": "p" * (64 * 1024)}),
        TOO_LARGE,
    ),
    ("body-over-64KiB-not-json", _raw(b"x" * (70 * 1024)), TOO_LARGE),
    ("nested-100000", _raw(b"[" * 100_000), TOO_LARGE),
    ("nested-60000-arrays", _raw(b"[" * 60_000), TOO_DEEP),
    ("nested-balanced-arrays", _raw(b"[" * 30_000 + b"]" * 30_000), TOO_DEEP),
    ("nested-objects", _raw(b'{"a":' * 8_000 + b"1" + b"}" * 8_000), TOO_DEEP),
    ("nested-33-objects", _raw(b'{"a":' * 33 + b"1" + b"}" * 33), TOO_DEEP),
    ("invalid-utf8", _raw(b'{"username": "joe", "password": "\xff\xfe"}'), NOT_JSON),
    ("invalid-utf8-only", _raw(b"\xc3\x28\xa0\xa1"), NOT_JSON),
    ("nul-bytes", _raw(b"\x00\x00\x00\x00"), NOT_JSON),
]


@pytest.mark.parametrize(
    "kwargs, expected", [pytest.param(k, e, id=i) for i, k, e in AUTH_BODIES]
)
def test_auth_bad_body_is_4xx_json_and_never_reaches_handler(rec_client, recorder, kwargs, expected):
    status, error, description = expected
    response = rec_client.post("/auth", **kwargs)
    assert_error(response, status, error, description)
    assert "access_token" not in response.get_json()
    # None of these bodies carries two usable strings: the handler is never asked.
    assert recorder.calls == []


def test_auth_wrong_password_calls_handler_with_two_strings(rec_client, recorder):
    response = rec_client.post("/auth", json={"username": "joe", "password": "wrong"})
    assert_error(response, *INVALID_CREDENTIALS)
    assert recorder.calls == [("joe", "wrong")]


def test_auth_unknown_user_is_same_answer_as_wrong_password(rec_client, recorder):
    unknown = rec_client.post("/auth", json={"username": "nobody", "password": "pass"})
    wrong = rec_client.post("/auth", json={"username": "joe", "password": "nope"})
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.get_json() == wrong.get_json()
    assert recorder.calls == [("nobody", "pass"), ("joe", "nope")]


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/vnd.api+json"]
)
def test_auth_json_content_types_accepted(rec_client, recorder, content_type):
    response = rec_client.post(
        "/auth", data=json.dumps({"username": "joe", "password": "pass"}), content_type=content_type
    )
    assert response.status_code == 200, response.get_json()
    assert set(response.get_json()) == {"access_token"}
    assert recorder.calls == [("joe", "pass")]


def test_auth_credential_length_limit_is_4096_chars(rec_client, recorder):
    at_limit = "u" * 4096
    over = "u" * 4097
    assert_error(rec_client.post("/auth", json={"username": at_limit, "password": "p"}), *INVALID_CREDENTIALS)
    assert_error(rec_client.post("/auth", json={"username": over, "password": "p"}), *INVALID_CREDENTIALS)
    assert_error(rec_client.post("/auth", json={"username": "u", "password": over}), *INVALID_CREDENTIALS)
    assert recorder.calls == [(at_limit, "p")]


def test_auth_handler_only_ever_sees_two_nonempty_strings(rec_client, recorder):
    """Run every body of the family plus odd-but-valid strings through one app."""
    for _, kwargs, _expected in AUTH_BODIES:
        response = rec_client.post("/auth", **kwargs)
        assert 400 <= response.status_code < 500
    odd = [
        {"username": "jo\x00e", "password": "pa\x00ss"},
        {"username": "joe\n", "password": "\t"},
        {"username": "\u202ejoe", "password": "p\u00e4ss"},
        {"username": "joe", "password": "pass"},
    ]
    for body in odd:
        rec_client.post("/auth", json=body)
    assert len(recorder.calls) == len(odd)
    for call in recorder.calls:
        assert len(call) == 2
        assert all(type(value) is str and value for value in call), call
    assert recorder.calls[-1] == ("joe", "pass")


def test_auth_lone_surrogate_password_is_4xx_not_5xx(recorder):
    app = make_app(jwt=JWT(authentication_handler=recorder, identity_handler=identity))
    client = app.test_client()
    response = client.post(
        "/auth", data=b'{"username": "joe", "password": "\\ud800"}', content_type="application/json"
    )
    assert 400 <= response.status_code < 500, response.status_code
    for call in recorder.calls:
        for value in call:
            value.encode("utf-8")  # the handler only gets text that is valid Unicode


def test_auth_get_is_not_allowed(client):
    assert client.get("/auth").status_code == 405


# --------------------------------------------------------------------------
# (b) Authorization headers
# --------------------------------------------------------------------------

NO_TOKEN = ("Authorization Required", "Request does not contain an access token")
REALM = 'JWT realm="Login Required"'


@pytest.fixture(scope="module")
def tutorial():
    app = make_app()
    client = app.test_client()
    return client, login(client)


@pytest.mark.parametrize("value", ["", " ", "   ", "\t", " \t "], ids=repr)
def test_blank_authorization_header_is_no_token(tutorial, value):
    client, _ = tutorial
    response = client.get("/protected", headers={"Authorization": value})
    assert_error(response, 401, *NO_TOKEN)
    assert response.headers["WWW-Authenticate"] == REALM


@pytest.mark.parametrize(
    "value, description, challenge",
    [
        ("JWT", "Token missing", REALM + ', error="invalid_request", error_description="Token missing"'),
        ("jwt", "Token missing", REALM + ', error="invalid_request", error_description="Token missing"'),
        ("JWT   ", "Token missing", REALM + ', error="invalid_request", error_description="Token missing"'),
        ("  JWT\t", "Token missing", REALM + ', error="invalid_request", error_description="Token missing"'),
        (
            "JWT a b",
            "Token contains spaces",
            REALM + ', error="invalid_request", error_description="Token contains spaces"',
        ),
        (
            "JWT a.b.c d.e.f g",
            "Token contains spaces",
            REALM + ', error="invalid_request", error_description="Token contains spaces"',
        ),
        ("Basic dXNlcjpwYXNz", "Unsupported authorization type", REALM),
        ("Bearer", "Token missing", REALM + ', error="invalid_request", error_description="Token missing"'),
        ("JWTX abc.def.ghi", "Unsupported authorization type", REALM),
        ("JW abc.def.ghi", "Unsupported authorization type", REALM),
        ("Digest username=joe", "Unsupported authorization type", REALM),
        ("abc.def.ghi", "Unsupported authorization type", REALM),
    ],
)
def test_malformed_authorization_header(tutorial, value, description, challenge):
    client, _ = tutorial
    response = client.get("/protected", headers={"Authorization": value})
    assert_error(response, 401, "Invalid JWT header", description)
    assert response.headers["WWW-Authenticate"] == challenge


@pytest.mark.parametrize("scheme", ["Basic", "Token", "JWT:", "Bearer:"])
def test_valid_token_under_another_scheme_is_refused(tutorial, scheme):
    client, token = tutorial
    response = client.get("/protected", headers={"Authorization": "%s %s" % (scheme, token)})
    assert_error(response, 401, "Invalid JWT header", "Unsupported authorization type")


@pytest.mark.parametrize("prefix", ["jwt", "Jwt", "jWT", "Bearer", "bearer", "BEARER"])
def test_prefix_is_case_insensitive(tutorial, prefix):
    client, token = tutorial
    response = client.get("/protected", headers=auth_header(token, prefix))
    assert response.status_code == 200
    assert response.get_json() == {"id": 1, "username": "joe"}


def test_extra_ascii_spaces_around_token_accepted(tutorial):
    client, token = tutorial
    response = client.get("/protected", headers={"Authorization": "  JWT   %s  " % token})
    assert response.status_code == 200


def _latin1(text: str) -> str:
    """What a WSGI server puts in the environ for the UTF-8 bytes of ``text``."""
    return text.encode("utf-8").decode("latin-1")


@pytest.mark.parametrize(
    "make_value, error",
    [
        (lambda t: "JWT " + _latin1("t\u00f6k\u00e9n"), "Invalid token"),
        (lambda t: "JWT " + "\u00e9\u00e8\u00ff", "Invalid token"),
        (lambda t: "JWT " + t + _latin1("\u00e9"), "Invalid token"),
        (lambda t: "JWT " + t[:10] + "\u00ff" + t[11:], "Invalid token"),
        (lambda t: _latin1("J\u00c9T ") + t, "Invalid JWT header"),
        (lambda t: _latin1("\U0001f510 ") + t, "Invalid JWT header"),
    ],
    ids=[
        "utf8-token", "latin1-token", "valid+nonascii", "nonascii-inside", "nonascii-prefix", "emoji-prefix",
    ],
)
def test_non_ascii_authorization_header_is_401(tutorial, make_value, error):
    client, token = tutorial
    response = client.get("/protected", environ_overrides={"HTTP_AUTHORIZATION": make_value(token)})
    assert_error(response, 401, error)


@pytest.mark.parametrize(
    "make_value",
    [
        lambda t: "JWT a\x00b",
        lambda t: "JWT " + t + "\x00",
        lambda t: "JWT \x00" + t,
        lambda t: "JWT " + t[:20] + "\x07" + t[20:],
        lambda t: "JWT " + t + "\x7f",
        lambda t: "JWT \x1b[31m" + t,
    ],
    ids=["nul-inside", "valid+nul", "nul+valid", "bell-inside", "valid+del", "ansi-escape"],
)
def test_control_chars_in_header_are_401(tutorial, make_value):
    client, token = tutorial
    response = client.get("/protected", environ_overrides={"HTTP_AUTHORIZATION": make_value(token)})
    assert_error(response, 401, "Invalid token")


@pytest.mark.parametrize(
    "make_value",
    [
        lambda t: "JWT\xa0" + t,
        lambda t: "JWT\x1f" + t,
        lambda t: "JWT\x1c" + t,
        lambda t: "JWT " + t + "\x85",
        lambda t: "JWT " + t + "\xa0",
    ],
    ids=["nbsp-separator", "unit-separator", "file-separator", "trailing-nel", "trailing-nbsp"],
)
def test_non_ascii_or_control_separator_with_valid_token_is_401(tutorial, make_value):
    client, token = tutorial
    response = client.get("/protected", environ_overrides={"HTTP_AUTHORIZATION": make_value(token)})
    assert response.status_code == 401, response.get_json()


@pytest.mark.parametrize("size", [8193, 20_000, 200_000])
def test_very_long_header_is_token_too_large(tutorial, size):
    client, _ = tutorial
    response = client.get("/protected", headers={"Authorization": "JWT " + "a" * size})
    assert_error(response, 401, "Invalid token", "Token is too large")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


GARBAGE = [
    "a.b.c",
    "...",
    "..",
    ".",
    "e30.e30.",
    "e30.e30.e30",
    "e30..",
    _b64(b"x" * 90),
    _b64(b'{"alg":"HS256"}') + "." + _b64(b'{"identity":1}') + "." + _b64(b"junk signature bytes here!"),
    "!!!.@@@.###",
    "%%%.^^^.&&&",
    "not-base64-at-all",
    "====.====.====",
    "a" * 8192,
    "null",
    "{}",
]


@pytest.mark.parametrize("garbage", GARBAGE, ids=[g[:20] for g in GARBAGE])
def test_garbage_token_is_invalid_token(tutorial, garbage):
    client, _ = tutorial
    response = client.get("/protected", headers=auth_header(garbage))
    assert_error(response, 401, "Invalid token")
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith(REALM + ', error="invalid_token", error_description="')


@pytest.mark.parametrize(
    "mangle, description",
    [
        (lambda t: ".".join(t.split(".")[:2]), "Not enough segments"),
        (lambda t: t.split(".")[0], "Not enough segments"),
        (lambda t: t + ".e30", None),
        (lambda t: t + "." + t.split(".")[2], None),
        (lambda t: t.split(".")[0] + "." + t.split(".")[1] + ".." + t.split(".")[2], None),
    ],
    ids=["2-segments", "1-segment", "4-segments", "4-segments-repeat-sig", "empty-middle"],
)
def test_token_with_wrong_segment_count_is_refused(tutorial, mangle, description):
    client, token = tutorial
    response = client.get("/protected", headers=auth_header(mangle(token)))
    assert_error(response, 401, "Invalid token", description)


# --------------------------------------------------------------------------
# (c) tokens
# --------------------------------------------------------------------------


def _claims(**changes: Any) -> Dict[str, Any]:
    now = int(time.time())
    claims: Dict[str, Any] = {"exp": now + 300, "iat": now, "nbf": now, "identity": 1, "jti": "x" * 32}
    for key, value in changes.items():
        if value is _DROP:
            claims.pop(key)
        else:
            claims[key] = value
    return claims


_DROP = object()


def _hs256(claims: Any, key: str = SECRET) -> str:
    return pyjwt.encode(claims, key, algorithm="HS256")


def _signed_raw(header: bytes, payload: bytes, key: bytes = SECRET.encode()) -> str:
    """A token with arbitrary header/payload bytes, correctly HS256-signed."""
    signing_input = _b64(header) + "." + _b64(payload)
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64(signature)


def _tamper_payload(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["identity"] = 2
    return ".".join([header, _b64(json.dumps(claims).encode()), signature])


def _tamper_signature(token: str) -> str:
    header, payload, signature = token.split(".")
    first = "B" if signature[0] != "B" else "C"
    return ".".join([header, payload, first + signature[1:]])


NOW = int(time.time())
INVALID = "Invalid token"
NO_USER = "Invalid JWT"
SIG_FAILED = "Signature verification failed"
LACKS = "Token lacks the claims needed to identify its user"
OTHER_SECRET = "another-secret-that-is-long-enough-for-hs256!!"
TOKEN_CASES = [
    ("tampered-payload", lambda good: _tamper_payload(good), INVALID, SIG_FAILED),
    ("tampered-signature", lambda good: _tamper_signature(good), INVALID, SIG_FAILED),
    ("signature-stripped", lambda good: good.rsplit(".", 1)[0] + ".", INVALID, SIG_FAILED),
    (
        "signature-of-other-token",
        lambda good: _hs256(_claims(identity=2)).rsplit(".", 1)[0] + "." + good.rsplit(".", 1)[1],
        INVALID,
        SIG_FAILED,
    ),
    ("wrong-secret", lambda good: _hs256(_claims(), OTHER_SECRET), INVALID, SIG_FAILED),
    (
        "expired",
        lambda good: _hs256(_claims(exp=NOW - 100, iat=NOW - 400, nbf=NOW - 400)),
        INVALID,
        "Signature has expired",
    ),
    ("nbf-in-future", lambda g: _hs256(_claims(nbf=NOW + 3600)), INVALID, "The token is not yet valid (nbf)"),
    ("iat-in-future", lambda g: _hs256(_claims(iat=NOW + 3600)), INVALID, "The token is not yet valid (iat)"),
    ("missing-exp", lambda good: _hs256(_claims(exp=_DROP)), INVALID, 'Token is missing the "exp" claim'),
    ("missing-iat", lambda good: _hs256(_claims(iat=_DROP)), INVALID, 'Token is missing the "iat" claim'),
    ("missing-nbf", lambda good: _hs256(_claims(nbf=_DROP)), INVALID, 'Token is missing the "nbf" claim'),
    ("exp-null", lambda good: _hs256(_claims(exp=None)), INVALID, 'Token is missing the "exp" claim'),
    (
        "exp-string",
        lambda good: _hs256(_claims(exp="tomorrow")),
        INVALID,
        "Expiration Time claim (exp) must be an integer.",
    ),
    (
        "exp-list",
        lambda good: _hs256(_claims(exp=[NOW + 300])),
        INVALID,
        "Expiration Time claim (exp) must be an integer.",
    ),
    ("identity-missing", lambda good: _hs256(_claims(identity=_DROP)), NO_USER, LACKS),
    ("identity-list", lambda good: _hs256(_claims(identity=[1])), NO_USER, LACKS),
    ("identity-dict", lambda good: _hs256(_claims(identity={"id": 1})), NO_USER, LACKS),
    ("identity-unknown-user", lambda good: _hs256(_claims(identity=999)), NO_USER, "User does not exist"),
    ("identity-null", lambda good: _hs256(_claims(identity=None)), NO_USER, "User does not exist"),
    ("identity-as-string", lambda good: _hs256(_claims(identity="1")), NO_USER, "User does not exist"),
    (
        "payload-json-array",
        lambda good: _signed_raw(b'{"alg":"HS256","typ":"JWT"}', json.dumps([_claims()]).encode()),
        "Invalid token",
        "Invalid payload string: must be a json object",
    ),
    (
        "payload-not-json",
        lambda good: _signed_raw(b'{"alg":"HS256","typ":"JWT"}', b"identity=1"),
        "Invalid token",
        None,
    ),
    (
        "payload-invalid-utf8",
        lambda good: _signed_raw(b'{"alg":"HS256","typ":"JWT"}', b'{"identity":"\xff"}'),
        "Invalid token",
        None,
    ),
    (
        "header-not-json",
        lambda good: _signed_raw(b"alg=HS256", json.dumps(_claims()).encode()),
        "Invalid token",
        "Invalid header string: Expecting value: line 1 column 1 (char 0)",
    ),
    (
        "header-json-array",
        lambda good: _signed_raw(b'["HS256"]', json.dumps(_claims()).encode()),
        "Invalid token",
        "Invalid header string: must be a json object",
    ),
    (
        "header-without-alg",
        lambda good: _signed_raw(b'{"typ":"JWT"}', json.dumps(_claims()).encode()),
        "Invalid token",
        None,
    ),
    (
        "header-alg-not-string",
        lambda good: _signed_raw(b'{"alg":["HS256"]}', json.dumps(_claims()).encode()),
        "Invalid token",
        None,
    ),
]


@pytest.mark.parametrize(
    "make_token, error, description",
    [pytest.param(m, e, d, id=i) for i, m, e, d in TOKEN_CASES],
)
def test_bad_token_is_refused(tutorial, make_token, error, description):
    client, good = tutorial
    bad = make_token(good)
    assert bad != good
    response = client.get("/protected", headers=auth_header(bad))
    body = assert_error(response, 401, error, description)
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith(REALM + ', error="invalid_token", error_description="')
    assert body["description"].replace('"', "'") in challenge
    # the good token still works afterwards: nothing was poisoned
    assert client.get("/protected", headers=auth_header(good)).status_code == 200


def test_expired_within_leeway_is_accepted_control_case(tutorial):
    client, _ = tutorial
    token = _hs256(_claims(exp=int(time.time()) - 3, iat=NOW - 400, nbf=NOW - 400))
    assert client.get("/protected", headers=auth_header(token)).status_code == 200
