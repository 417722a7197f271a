"""Log lines: one logger name, and never a token, a secret or a password in them,
whatever happens (logins, failures, throttling, refresh, reuse, logout, refusals,
a weak secret)."""

from __future__ import annotations

import logging

import jwt as pyjwt

from flask_tokenauth import keys
from tests.conftest import auth_header
from tests.sessions_support import session_app

WEAK_SECRET = "weak-secret-17byt"  # 17 bytes: reported as weak for HS256
PASSWORD = "pass"  # the conftest users' password: too common a word to search logs for
WRONG_PASSWORD = "wrong-password-2f9c"


def test_log_lines_name_what_happened_and_never_carry_credentials(caplog, monkeypatch):
    monkeypatch.setattr(keys, "_warned_weak", set())  # the weak-secret line is said once per process
    caplog.set_level(logging.DEBUG)
    app = session_app({"SECRET_KEY": WEAK_SECRET, "JWT_LOGIN_RATE_LIMIT": "2 per minute"})
    client = app.test_client()

    first = client.post("/auth", json={"username": "joe", "password": PASSWORD}).get_json()
    refreshed = client.post("/auth/refresh", headers=auth_header(first["refresh_token"])).get_json()
    reused = client.post("/auth/refresh", headers=auth_header(first["refresh_token"]))
    assert reused.status_code == 401
    forged = pyjwt.encode(pyjwt.decode(refreshed["access_token"], options={"verify_signature": False}),
                          "another-secret-that-is-long-enough-for-hs256", algorithm="HS256")
    assert client.get("/protected", headers=auth_header(forged)).status_code == 401
    assert client.get("/protected", headers=auth_header(first["access_token"])).status_code == 401  # revoked
    second = client.post("/auth", json={"username": "joe", "password": PASSWORD}).get_json()
    assert client.post("/auth/logout", headers=auth_header(second["access_token"])).status_code == 200
    wrong = {"username": "joe", "password": WRONG_PASSWORD}
    statuses = [client.post("/auth", json=wrong).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]

    ours = [record for record in caplog.records if record.name.startswith("flask_tokenauth")]
    assert {record.name for record in ours} == {"flask_tokenauth"}
    text = "\n".join(record.getMessage() for record in ours)
    said_what = (
        "17 bytes; HS256 needs at least 32",
        "reuse detected",
        "Signature verification failed",
        "Token has been revoked",
        "logout",
        "login refused",
        "login throttled",
    )
    for said in said_what:
        assert said in text, said
    credentials = [WEAK_SECRET, WRONG_PASSWORD, forged]
    credentials += [first[k] for k in ("access_token", "refresh_token")]
    credentials += [refreshed[k] for k in ("access_token", "refresh_token")]
    credentials += [second[k] for k in ("access_token", "refresh_token")]
    for credential in credentials:
        assert credential not in text
    for token in credentials[2:]:  # not even a token's signature part
        assert token.rsplit(".", 1)[1] not in text
