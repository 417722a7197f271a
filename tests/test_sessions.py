"""Sessions, in process with the test client: refresh rotation, reuse detection,
grace, session max age, fresh tokens, logout, revocation.

Tests whose outcome depends on the token store run on ``memory://`` and on a
real redis-server (``store_config`` is parametrised).
"""

from __future__ import annotations

import time
from typing import Any, Dict, Iterator

import jwt as pyjwt
import pytest

from flask_tokenauth.store.memory import MemoryStore
from tests.conftest import BY_ID, auth_header, login, make_app
from tests.sessions_support import (  # noqa: F401 - fixtures are used by name
    ONLY_ACCESS,
    ONLY_REFRESH,
    REUSED,
    REVOKED,
    TYPE_CLAIM,
    assert_every_key_has_ttl,
    close_app_store,
    get_protected,
    login_pair,
    new_jwt,
    redis_client_fixture,
    redis_server_fixture,
    reencode,
    refresh_with,
    refreshed_pair,
    session_app,
    unverified_claims,
    wait_next_second,
)


@pytest.fixture(params=["memory", "redis"], name="store_config")
def store_config_fixture(request) -> Iterator[Dict[str, Any]]:
    """JWT_TOKEN_STORE settings: memory://, then a real redis-server (emptied per test)."""
    if request.param == "memory":
        yield {"JWT_TOKEN_STORE": "memory://"}
        return
    client = request.getfixturevalue("redis_client")
    server = request.getfixturevalue("redis_server")
    yield {"JWT_TOKEN_STORE": server.url, "JWT_TOKEN_STORE_TIMEOUT": 1.0, "redis": client}
    assert_every_key_has_ttl(client)  # whatever the app wrote, nothing lives forever


@pytest.fixture(name="build")
def build_fixture(store_config):
    """``build(config=None, jwt=None)``: a session app on the parametrised store."""
    apps = []
    settings = {k: v for k, v in store_config.items() if k.startswith("JWT_")}

    def factory(config=None, jwt=None):
        app = session_app({**settings, **(config or {})}, jwt=jwt)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        close_app_store(app)


def jwt_of(app):
    return app.extensions["jwt"]


def assert_refused(response, body):
    assert response.status_code == 401, response.get_json()
    assert response.get_json() == body


# --- login ------------------------------------------------------------------------


def test_without_refresh_rule_login_answers_only_an_access_token():
    app = make_app()
    client = app.test_client()
    response = client.post("/auth", json={"username": "joe", "password": "pass"})
    assert response.status_code == 200
    assert set(response.get_json()) == {"access_token"}
    assert client.post("/auth/refresh", json={"refresh_token": "x"}).status_code == 404
    assert client.post("/auth/logout").status_code == 404


def test_only_logout_rule_set_still_answers_only_an_access_token():
    app = make_app({"JWT_LOGOUT_URL_RULE": "/auth/logout"})
    client = app.test_client()
    response = client.post("/auth", json={"username": "joe", "password": "pass"})
    assert set(response.get_json()) == {"access_token"}
    assert client.post("/auth/refresh").status_code == 404


def test_login_with_refresh_rule_answers_both_tokens(build):
    client = build().test_client()
    response = client.post("/auth", json={"username": "joe", "password": "pass"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) == {"access_token", "refresh_token"}
    access, refresh = unverified_claims(body["access_token"]), unverified_claims(body["refresh_token"])
    assert access[TYPE_CLAIM] == "access" and access["fresh"] is True
    assert refresh[TYPE_CLAIM] == "refresh"
    assert access["fam"] == refresh["fam"] and access["auth_time"] == refresh["auth_time"]
    assert access["identity"] == refresh["identity"] == 1
    assert access["jti"] != refresh["jti"]
    assert abs(access["auth_time"] - time.time()) < 5
    other = login_pair(client)
    assert unverified_claims(other[0])["fam"] != access["fam"]  # one family per login


# --- refresh ----------------------------------------------------------------------


@pytest.mark.parametrize("via", ["header", "json"])
def test_refresh_answers_a_new_pair(build, via):
    client = build().test_client()
    access0, refresh0 = login_pair(client)
    response = refresh_with(client, refresh0, via)
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body = response.get_json()
    assert set(body) == {"access_token", "refresh_token"}
    access1, refresh1 = body["access_token"], body["refresh_token"]
    assert refresh1 != refresh0 and access1 != access0
    c0, a1, r1 = unverified_claims(refresh0), unverified_claims(access1), unverified_claims(refresh1)
    assert a1[TYPE_CLAIM] == "access" and a1["fresh"] is False
    assert r1[TYPE_CLAIM] == "refresh" and r1.get("fresh") is not True
    assert a1["fam"] == r1["fam"] == c0["fam"]
    assert a1["auth_time"] == r1["auth_time"] == c0["auth_time"]
    assert len({c0["jti"], a1["jti"], r1["jti"]}) == 3
    ok = get_protected(client, access1)
    assert ok.status_code == 200 and ok.get_json() == {"id": 1, "username": "joe"}
    assert refresh_with(client, refresh1, via).status_code == 200  # the successor refreshes in turn


def test_refresh_without_a_token_is_401(build):
    client = build().test_client()
    response = client.post("/auth/refresh")
    assert response.status_code == 401
    assert response.get_json()["status_code"] == 401
    assert client.post("/auth/refresh", json={}).status_code == 401
    assert client.post("/auth/refresh", json={"refresh_token": 5}).status_code == 401


def test_refresh_token_is_refused_at_a_protected_route(build):
    client = build().test_client()
    _, refresh = login_pair(client)
    response = get_protected(client, refresh)
    assert_refused(response, ONLY_ACCESS)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("via", ["header", "json"])
def test_access_token_is_refused_at_the_refresh_route(build, via):
    client = build().test_client()
    access, _ = login_pair(client)
    assert_refused(refresh_with(client, access, via), ONLY_REFRESH)
    refreshed_access, _ = refreshed_pair(client, login_pair(client)[1])
    assert_refused(refresh_with(client, refreshed_access, via), ONLY_REFRESH)


def test_reuse_of_a_spent_refresh_token_revokes_the_family(build):
    client = build().test_client()
    access0, refresh0 = login_pair(client)
    other_access, other_refresh = login_pair(client)  # the same user, another login
    access1, refresh1 = refreshed_pair(client, refresh0)

    assert_refused(refresh_with(client, refresh0), REUSED)

    assert_refused(refresh_with(client, refresh1), REVOKED)
    assert_refused(get_protected(client, access1), REVOKED)
    assert_refused(get_protected(client, access0), REVOKED)
    assert_refused(refresh_with(client, refresh0), REVOKED)  # now refused as revoked

    assert get_protected(client, other_access).status_code == 200
    assert refresh_with(client, other_refresh).status_code == 200


def test_reuse_is_detected_deep_in_the_chain(build):
    client = build().test_client()
    _, refresh0 = login_pair(client)
    _, refresh1 = refreshed_pair(client, refresh0)
    access2, refresh2 = refreshed_pair(client, refresh1)
    assert_refused(refresh_with(client, refresh1, "json"), REUSED)
    assert_refused(get_protected(client, access2), REVOKED)
    assert_refused(refresh_with(client, refresh2), REVOKED)


def test_grace_window_answers_the_identical_successors(build):
    client = build({"JWT_REFRESH_REUSE_GRACE": 5}).test_client()
    _, refresh0 = login_pair(client)
    first = refresh_with(client, refresh0).get_json()
    again = refresh_with(client, refresh0)
    assert again.status_code == 200, again.get_json()
    assert again.headers["Cache-Control"] == "no-store"
    assert again.get_json() == first  # identical strings
    third = refresh_with(client, refresh0, "json")
    assert third.status_code == 200 and third.get_json() == first
    assert get_protected(client, first["access_token"]).status_code == 200
    assert refresh_with(client, first["refresh_token"]).status_code == 200  # family not revoked


def test_reuse_after_the_grace_window_revokes_the_family(build):
    client = build({"JWT_REFRESH_REUSE_GRACE": 0.3}).test_client()
    access0, refresh0 = login_pair(client)
    access1, refresh1 = refreshed_pair(client, refresh0)
    time.sleep(0.5)
    assert_refused(refresh_with(client, refresh0), REUSED)
    assert_refused(refresh_with(client, refresh1), REVOKED)
    assert_refused(get_protected(client, access1), REVOKED)
    assert_refused(get_protected(client, access0), REVOKED)


# --- session max age and claims ----------------------------------------------------


def test_session_max_age_caps_refresh_tokens_and_refresh_past_it_is_refused():
    client = session_app({"JWT_SESSION_MAX_AGE": 1, "JWT_LEEWAY": 0}).test_client()
    wait_next_second()  # a whole second of session ahead
    _, refresh0 = login_pair(client)
    claims0 = unverified_claims(refresh0)
    end = claims0["auth_time"] + 1
    assert claims0["exp"] == end  # 30-day refresh lifetime, capped
    access1, refresh1 = refreshed_pair(client, refresh0)
    claims1 = unverified_claims(refresh1)
    assert claims1["exp"] <= end and claims1["auth_time"] == claims0["auth_time"]
    assert unverified_claims(access1)["exp"] <= end
    time.sleep(max(0.0, end - time.time()) + 0.05)
    response = refresh_with(client, refresh1)
    assert response.status_code == 401
    assert response.get_json()["description"] == "Signature has expired"


def test_create_refresh_token_with_expires_delta_is_capped_by_session_max_age():
    app = session_app({"JWT_SESSION_MAX_AGE": 60})
    with app.app_context():
        token = jwt_of(app).create_refresh_token(1, expires_delta=3600)
    claims = unverified_claims(token)
    assert claims["exp"] <= claims["auth_time"] + 60


def test_refresh_past_session_max_age_is_refused_for_long_lived_refresh_tokens():
    app = session_app({"JWT_SESSION_MAX_AGE": 1, "JWT_LEEWAY": 0})
    client = app.test_client()
    with app.app_context():
        token = jwt_of(app).create_refresh_token(1, expires_delta=3600)
    end = unverified_claims(token)["auth_time"] + 1
    time.sleep(max(0.0, end - time.time()) + 0.05)
    response = refresh_with(client, token)
    assert response.status_code == 401, {
        k: unverified_claims(v)["exp"] - time.time() for k, v in response.get_json().items()
    }


def test_claims_never_widen_on_refresh():
    jwt = new_jwt()
    granted = ["read"]

    @jwt.jwt_payload_handler
    def payload(user):
        now = int(time.time())
        return {
            "identity": user.id, "exp": now + 300, "iat": now, "nbf": now,
            "permissions": list(granted), "type": "staff",  # an app's own "type" claim is kept
        }

    client = session_app(jwt=jwt).test_client()
    access0, refresh0 = login_pair(client)
    assert unverified_claims(access0)["permissions"] == ["read"]
    assert unverified_claims(refresh0)["permissions"] == ["read"]
    granted[:] = ["read", "write", "admin"]  # the handler now grants more
    access1, refresh1 = refreshed_pair(client, refresh0)
    access2, refresh2 = refreshed_pair(client, refresh1)
    for token in (access1, refresh1, access2, refresh2):
        assert unverified_claims(token)["permissions"] == ["read"]
        assert unverified_claims(token)["type"] == "staff"
    seen = client.get("/claims", headers=auth_header(access2)).get_json()
    assert seen["permissions"] == ["read"] and seen["fresh"] is False
    assert unverified_claims(login_pair(client)[0])["permissions"] == ["read", "write", "admin"]


def test_fresh_required_accepts_login_tokens_only():
    app = session_app()
    client = app.test_client()
    access0, refresh0 = login_pair(client)
    assert client.get("/sensitive", headers=auth_header(access0)).status_code == 200
    access1, _ = refreshed_pair(client, refresh0)
    response = client.get("/sensitive", headers=auth_header(access1))
    assert response.status_code == 401
    assert response.get_json()["error"] == "Fresh token required"
    assert get_protected(client, access1).status_code == 200  # fine where freshness is not needed
    with app.app_context():
        fresh = jwt_of(app).create_access_token(1, fresh=True)
        stale = jwt_of(app).create_access_token(1)
    assert client.get("/sensitive", headers=auth_header(fresh)).status_code == 200
    assert client.get("/sensitive", headers=auth_header(stale)).get_json()["error"] == "Fresh token required"


# --- logout and revocation ---------------------------------------------------------


def test_logout_revokes_the_token_and_its_family(build):
    client = build().test_client()
    access0, refresh0 = login_pair(client)
    other_access, other_refresh = login_pair(client)
    access1, _ = refreshed_pair(client, refresh0)
    _, refresh1 = refreshed_pair(client, login_pair(client)[1])  # a third login, refreshed

    response = client.post("/auth/logout", headers=auth_header(access0))
    assert response.status_code == 200
    assert response.get_json() == {"message": "Logged out"}

    assert_refused(get_protected(client, access0), REVOKED)
    assert_refused(get_protected(client, access1), REVOKED)
    assert_refused(refresh_with(client, refresh0), REVOKED)
    assert_refused(client.post("/auth/logout", headers=auth_header(access0)), REVOKED)
    assert get_protected(client, other_access).status_code == 200
    assert refresh_with(client, other_refresh).status_code == 200
    assert refresh_with(client, refresh1).status_code == 200


def test_logout_with_a_refreshed_access_token_revokes_the_login_too(build):
    client = build().test_client()
    access0, refresh0 = login_pair(client)
    access1, refresh1 = refreshed_pair(client, refresh0)
    assert client.post("/auth/logout", headers=auth_header(access1)).status_code == 200
    assert_refused(get_protected(client, access0), REVOKED)
    assert_refused(refresh_with(client, refresh1), REVOKED)


def test_logout_without_a_token_is_401(build):
    client = build().test_client()
    response = client.post("/auth/logout")
    assert response.status_code == 401
    assert response.get_json() == {
        "status_code": 401,
        "error": "Authorization Required",
        "description": "Request does not contain an access token",
    }


def test_logout_with_the_refresh_token_alone_ends_the_session(build):
    client = build().test_client()
    access, refresh = login_pair(client)
    assert client.post("/auth/logout", headers=auth_header(refresh)).get_json() == {"message": "Logged out"}
    assert_refused(get_protected(client, access), REVOKED)
    assert_refused(refresh_with(client, refresh), REVOKED)


def test_logout_with_an_expired_access_token_and_the_refresh_token_in_the_body(build):
    client = build({"JWT_EXPIRATION_DELTA": 1, "JWT_LEEWAY": 0}).test_client()
    _, refresh0 = login_pair(client)
    access1, refresh1 = refreshed_pair(client, refresh0)
    other_access, other_refresh = login_pair(client)  # another session, which must survive
    time.sleep(2.1)
    assert "expired" in get_protected(client, access1).get_json()["description"]
    response = client.post("/auth/logout", headers=auth_header(access1), json={"refresh_token": refresh1})
    assert response.status_code == 200, response.get_json()
    assert_refused(refresh_with(client, refresh1), REVOKED)  # unexpired, and refused
    assert refresh_with(client, other_refresh).status_code == 200


def test_logout_with_an_expired_access_token_alone_ends_its_session(build):
    client = build({"JWT_EXPIRATION_DELTA": 1, "JWT_LEEWAY": 0}).test_client()
    access, refresh = login_pair(client)
    time.sleep(2.1)
    assert client.post("/auth/logout", headers=auth_header(access)).status_code == 200
    assert_refused(refresh_with(client, refresh), REVOKED)


def test_logout_with_a_forged_expired_token_is_refused_and_ends_nothing(build):
    client = build().test_client()
    access, refresh = login_pair(client)
    claims = unverified_claims(access)
    claims["exp"] = int(time.time()) - 100
    forged = pyjwt.encode(claims, "not-the-secret-but-long-enough-for-hs256-xxxx", algorithm="HS256")
    response = client.post("/auth/logout", headers=auth_header(forged))
    assert response.status_code == 401 and response.get_json()["error"] == "Invalid token"
    assert refresh_with(client, refresh).status_code == 200


def test_revoke_by_token_string(build):
    app = build()
    client = app.test_client()
    access0, refresh0 = login_pair(client)
    other_access, _ = login_pair(client)
    with app.app_context():
        jwt_of(app).revoke(access0)
    assert_refused(get_protected(client, access0), REVOKED)
    assert_refused(refresh_with(client, refresh0), REVOKED)
    assert get_protected(client, other_access).status_code == 200


def test_revoke_by_claims(build):
    app = build()
    client = app.test_client()
    access0, refresh0 = login_pair(client)
    other_access, _ = login_pair(client)
    with app.app_context():
        claims = jwt_of(app).decode_token(access0)
        jwt_of(app).revoke(claims)
    assert_refused(get_protected(client, access0), REVOKED)
    assert_refused(refresh_with(client, refresh0), REVOKED)
    assert get_protected(client, other_access).status_code == 200


def test_revoke_a_refresh_token_revokes_its_family(build):
    app = build()
    client = app.test_client()
    access0, refresh0 = login_pair(client)
    with app.app_context():
        jwt_of(app).revoke(refresh0)
    assert_refused(refresh_with(client, refresh0), REVOKED)
    assert_refused(get_protected(client, access0), REVOKED)


@pytest.mark.parametrize("who", ["id", "user object"])
def test_revoke_identity_cuts_off_every_session_of_that_user(build, store_config, who):
    app = build()
    client = app.test_client()
    joe_sessions = [login_pair(client) for _ in range(2)]
    joe_refreshed = refreshed_pair(client, login_pair(client)[1])
    ann_access, ann_refresh = login_pair(client, "ann", "secret")

    with app.app_context():
        jwt_of(app).revoke_identity(1 if who == "id" else BY_ID[1])

    for access, refresh in joe_sessions:
        assert_refused(get_protected(client, access), REVOKED)
        assert_refused(refresh_with(client, refresh), REVOKED)
    assert_refused(get_protected(client, joe_refreshed[0]), REVOKED)
    assert_refused(refresh_with(client, joe_refreshed[1]), REVOKED)
    assert get_protected(client, ann_access).status_code == 200
    assert refresh_with(client, ann_refresh).status_code == 200

    if "redis" in store_config:
        assert store_config["redis"].keys("tokenauth:{*}:idn:i:1")

    wait_next_second()
    access, refresh = login_pair(client)
    assert get_protected(client, access).status_code == 200
    assert refresh_with(client, refresh).status_code == 200


@pytest.mark.parametrize("who", [1, "1", "user object"])
def test_revoke_identity_with_sub_as_the_identity_claim(build, who):
    jwt = new_jwt()
    jwt.identity_handler(lambda payload: BY_ID.get(int(payload["sub"])))
    app = build({"JWT_IDENTITY_CLAIM": "sub"}, jwt=jwt)
    client = app.test_client()
    access, refresh = login_pair(client)
    assert unverified_claims(access)["sub"] == "1"
    ann_access, _ = login_pair(client, "ann", "secret")
    with app.app_context():
        jwt_of(app).revoke_identity(BY_ID[1] if who == "user object" else who)
    assert_refused(get_protected(client, access), REVOKED)
    assert_refused(refresh_with(client, refresh), REVOKED)
    assert get_protected(client, ann_access).status_code == 200


def test_a_reencoded_copy_of_a_revoked_token_is_refused(build):
    client = build().test_client()
    access0, _ = login_pair(client)
    copy = reencode(access0)
    assert get_protected(client, copy).status_code == 200  # a valid token in its own right
    assert client.post("/auth/logout", headers=auth_header(access0)).status_code == 200
    assert_refused(get_protected(client, copy), REVOKED)
    assert_refused(get_protected(client, reencode(access0)), REVOKED)


def test_revoking_a_reencoded_copy_revokes_the_original(build):
    app = build()
    client = app.test_client()
    access0, _ = login_pair(client)
    with app.app_context():
        jwt_of(app).revoke(reencode(access0))
    assert_refused(get_protected(client, access0), REVOKED)


def test_a_reencoded_copy_of_a_spent_refresh_token_is_reuse(build):
    client = build().test_client()
    _, refresh0 = login_pair(client)
    access1, _ = refreshed_pair(client, refresh0)
    assert_refused(refresh_with(client, reencode(refresh0)), REUSED)
    assert_refused(get_protected(client, access1), REVOKED)


# --- store entries do not outlive (nor underlive) their tokens ---------------------------


def test_memory_store_entries_disappear_after_their_tokens_expire():
    store = MemoryStore()
    app = session_app(
        {
            "JWT_TOKEN_STORE": store,
            "JWT_EXPIRATION_DELTA": 1,
            "JWT_REFRESH_EXPIRATION_DELTA": 1,
            "JWT_LEEWAY": 0,
        }
    )
    client = app.test_client()
    access0, refresh0 = login_pair(client)
    access1, _ = refreshed_pair(client, refresh0)  # a rotation record
    assert client.post("/auth/logout", headers=auth_header(access1)).status_code == 200  # jti + family
    with app.app_context():
        jwt_of(app).revoke_identity(2)  # an identity cut-off
    assert len(store) == 4
    store.sweep()
    assert len(store) == 4  # nothing expired yet
    assert_refused(get_protected(client, access0), REVOKED)
    time.sleep(1.15)
    store.sweep()
    assert len(store) == 0
    assert get_protected(client, access0).get_json()["description"] == "Signature has expired"


def test_family_revocation_lasts_as_long_as_the_login_access_token():
    app = session_app({"JWT_SESSION_MAX_AGE": 1, "JWT_EXPIRATION_DELTA": 300, "JWT_LEEWAY": 0})
    client = app.test_client()
    access0, refresh0 = login_pair(client)
    access1, _ = refreshed_pair(client, refresh0)
    assert client.post("/auth/logout", headers=auth_header(access1)).status_code == 200
    assert_refused(get_protected(client, access0), REVOKED)
    time.sleep(1.3)
    response = get_protected(client, access0)
    assert response.status_code == 401, response.get_json()


def test_identity_cutoff_lasts_as_long_as_long_lived_tokens():
    app = session_app({"JWT_EXPIRATION_DELTA": 1, "JWT_REFRESH_EXPIRATION_DELTA": 1, "JWT_LEEWAY": 0})
    client = app.test_client()
    with app.app_context():
        token = jwt_of(app).create_access_token(1, expires_delta=3600)
    assert get_protected(client, token).status_code == 200
    with app.app_context():
        jwt_of(app).revoke_identity(1)
    assert_refused(get_protected(client, token), REVOKED)
    time.sleep(1.2)
    response = get_protected(client, token)
    assert response.status_code == 401, response.get_json()


def test_login_helper_from_conftest_still_works_with_sessions_on():
    client = session_app().test_client()
    token = login(client)
    assert get_protected(client, token).status_code == 200


# --- lifetimes of revocation entries (each test kills a change an outside review
# --- applied by hand that the earlier tests let pass) ------------------------------


def test_a_logout_with_the_access_token_alone_keeps_the_refresh_token_refused_for_its_life():
    # The family's entry must outlive the session (auth_time + max age), not the
    # access token it was revoked with.
    app = session_app({"JWT_EXPIRATION_DELTA": 1, "JWT_REFRESH_EXPIRATION_DELTA": 60, "JWT_LEEWAY": 0})
    client = app.test_client()
    access, refresh = login_pair(client)
    assert client.post("/auth/logout", headers=auth_header(access)).status_code == 200
    time.sleep(2.2)  # the access token and anything that lived as long are gone
    assert_refused(refresh_with(client, refresh), REVOKED)


def test_a_revoked_token_stays_refused_through_its_leeway():
    # Accepted until exp + leeway, so its entry must live that long, not exp - leeway.
    app = session_app({"JWT_EXPIRATION_DELTA": 1, "JWT_LEEWAY": 2})
    client = app.test_client()
    wait_next_second()  # iat is in whole seconds: the token lives 1 s from now, plus 2 s of leeway
    with app.app_context():  # made in code: no session, so only its own entry refuses it
        access = jwt_of(app).create_access_token(1)
        jwt_of(app).revoke(access)
    time.sleep(2.0)  # expired, but inside the leeway: the signature and exp still pass
    assert_refused(get_protected(client, access), REVOKED)


def test_an_identity_cutoff_outlives_the_refresh_tokens_it_cuts_off():
    app = session_app({"JWT_EXPIRATION_DELTA": 1, "JWT_REFRESH_EXPIRATION_DELTA": 60, "JWT_LEEWAY": 0})
    client = app.test_client()
    _, refresh = login_pair(client)
    wait_next_second()
    with app.app_context():
        jwt_of(app).revoke_identity(1)
    time.sleep(1.5)  # past every access token's life
    assert_refused(refresh_with(client, refresh), REVOKED)


def test_a_refresh_near_the_session_max_age_never_outlives_it():
    app = session_app({"JWT_SESSION_MAX_AGE": 3, "JWT_EXPIRATION_DELTA": 60, "JWT_LEEWAY": 0})
    client = app.test_client()
    access0, refresh0 = login_pair(client)
    login_time = unverified_claims(access0)["auth_time"]
    time.sleep(1.2)
    access1, refresh1 = refreshed_pair(client, refresh0)
    for token in (access1, refresh1):
        assert unverified_claims(token)["exp"] <= login_time + 3
        assert unverified_claims(token)["auth_time"] == login_time


# --- what mutation testing found unchecked ----------------------------------------------


def test_logout_ends_the_session_of_the_token_an_apps_own_request_handler_finds():
    jwt = new_jwt()

    @jwt.request_handler
    def from_x_token():
        from flask import request

        return request.headers.get("X-Token")

    app = session_app(jwt=jwt)
    client = app.test_client()
    access, refresh = login_pair(client)
    assert client.get("/protected", headers={"X-Token": access}).status_code == 200
    assert client.post("/auth/logout", headers={"X-Token": access}).get_json() == {"message": "Logged out"}
    assert_refused(client.get("/protected", headers={"X-Token": access}), REVOKED)
    assert_refused(refresh_with(client, refresh, via="json"), REVOKED)


def test_logout_ends_the_session_of_a_query_string_token():
    app = session_app({"JWT_TOKEN_LOCATION": ["headers", "query_string"]})
    client = app.test_client()
    access, refresh = login_pair(client)
    assert client.post("/auth/logout?jwt=%s" % access).get_json() == {"message": "Logged out"}
    assert_refused(get_protected(client, access), REVOKED)
    assert_refused(refresh_with(client, refresh), REVOKED)


def test_a_token_without_iat_is_refused_under_a_cut_off():
    app = session_app({"JWT_REQUIRED_CLAIMS": ["exp"]})
    client = app.test_client()
    now = int(time.time())
    claims = {"identity": 1, "exp": now + 60, "jti": "no-iat"}
    no_iat = pyjwt.encode(claims, app.config["SECRET_KEY"], "HS256")
    assert get_protected(client, no_iat).status_code == 200
    with app.app_context():
        jwt_of(app).revoke_identity(2)  # someone else's cut-off
    assert get_protected(client, no_iat).status_code == 200
    with app.app_context():
        jwt_of(app).revoke_identity(1)
    assert_refused(get_protected(client, no_iat), REVOKED)


def test_identities_of_different_types_are_revoked_apart():
    from flask_tokenauth import JWT
    from tests.conftest import authenticate

    jwt = JWT(authentication_handler=authenticate)  # current_identity: the claim itself
    app = session_app(jwt=jwt)
    client = app.test_client()
    with app.app_context():
        as_int = jwt.create_access_token(7)
        as_str = jwt.create_access_token("7")
        as_list = jwt.create_access_token(["a", 7])
        jwt.revoke_identity("7")

    def status(token: str) -> int:
        return client.get("/claims", headers=auth_header(token)).status_code

    assert status(as_int) == 200  # 7 is not "7"
    assert status(as_str) == 401
    assert status(as_list) == 200
    with app.app_context():
        jwt.revoke_identity(["a", 7])
    assert status(as_list) == 401 and status(as_int) == 200
