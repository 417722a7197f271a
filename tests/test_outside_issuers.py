"""A resource server for outside issuers (JWT_OIDC_ISSUER): tokens from local
identity providers shaped as Auth0, Keycloak, Okta, Cognito and Entra ID mint
them, signed by joserfc (one by jwcrypto), with discovery documents and key
sets served over HTTP; then two of our own services, one trusting the other.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from flask import Flask, jsonify
from werkzeug.serving import make_server

from flask_tokenauth import JWT, ConfigurationError, current_identity, current_token, jwt_required
from tests.idp_support import KINDS, IdP, forged_token, generate_key, sign_with

ALGORITHMS = ["RS256", "PS256", "ES256", "ES384", "EdDSA"]


def resource_server(issuer: Any, audience: Any = None, **config: Any) -> Flask:
    """The two-line configuration, plus routes that show what was verified."""
    app = Flask(__name__)
    app.config.update(JWT_OIDC_ISSUER=issuer, **config)
    if audience is not None:
        app.config["JWT_AUDIENCE"] = audience
    JWT(app)

    @app.route("/me")
    @jwt_required()
    def me():
        return jsonify(identity=current_identity._get_current_object(), iss=current_token["iss"])

    @app.route("/write", methods=["POST"])
    @jwt_required(permissions=["write"])
    def write():
        return jsonify(written=True)

    return app


def for_idp(idp: IdP, **config: Any) -> Flask:
    if idp.kind == "cognito":  # no aud in its access tokens: the app client id instead
        entry = {"issuer": idp.issuer, "audience": idp.client_id, "audience_claim": "client_id"}
        return resource_server(entry, **config)
    return resource_server(idp.issuer, idp.audience, **config)


def bearer(token: str, scheme: str = "Bearer") -> Dict[str, str]:
    return {"Authorization": "%s %s" % (scheme, token)}


def refusal(response) -> str:
    assert response.status_code == 401, (response.status_code, response.get_json())
    body = response.get_json()
    assert set(body) == {"status_code", "error", "description"}
    return body["description"]


@pytest.fixture
def idp():
    with IdP("generic") as started:
        yield started


# --- every provider, minimal configuration ----------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("alg", ALGORITHMS)
def test_each_providers_tokens_are_accepted_with_two_settings(kind, alg):
    with IdP(kind, algorithms=[alg]) as provider:
        provider.add_key("RSA-OAEP", use="enc")  # an encryption key beside: never used
        client = for_idp(provider).test_client()
        for headers in (bearer(provider.mint()), bearer(provider.mint(), "JWT")):
            answer = client.get("/me", headers=headers)
            assert answer.status_code == 200, answer.get_json()
            assert answer.get_json() == {"identity": provider.subject, "iss": provider.issuer}
        kidless = client.get("/me", headers=bearer(provider.mint(include_kid=False)))
        assert kidless.status_code == 200, kidless.get_json()  # the set holds one signing key
        assert provider.hits["discovery"] == 1 and provider.hits["jwks"] == 1


def test_no_auth_route_for_a_pure_resource_server(idp):
    app = resource_server(idp.issuer, idp.audience)
    assert app.test_client().post("/auth", json={"username": "a", "password": "b"}).status_code == 404


def test_an_outside_issuer_without_an_audience_fails_at_init_app(idp):
    with pytest.raises(ConfigurationError) as caught:
        resource_server(idp.issuer)
    assert "JWT_AUDIENCE" in str(caught.value)


def test_rfc_8414_metadata_is_the_fallback():
    with IdP("keycloak", metadata="oauth") as provider:
        answer = for_idp(provider).test_client().get("/me", headers=bearer(provider.mint()))
        assert answer.status_code == 200, answer.get_json()


def test_a_token_signed_by_jwcrypto_is_accepted_too(idp):
    from jwcrypto import jwk as jw_jwk
    from jwcrypto import jwt as jw_jwt

    key = jw_jwk.JWK.generate(kty="EC", crv="P-256", kid="jwcrypto-key")
    idp.jwks_override = {"keys": [json.loads(key.export_public())]}
    now = int(time.time())
    claims = {"iss": idp.issuer, "aud": idp.audience, "sub": "carol", "iat": now, "exp": now + 60}
    token = jw_jwt.JWT(header={"alg": "ES256", "kid": "jwcrypto-key"}, claims=claims)
    token.make_signed_token(key)
    answer = for_idp(idp).test_client().get("/me", headers=bearer(token.serialize()))
    assert answer.status_code == 200 and answer.get_json()["identity"] == "carol"


# --- refusals -------------------------------------------------------------------------------------


def test_an_issuer_whose_discovery_names_another_issuer_is_a_503(idp):
    idp.metadata_override = {"issuer": "https://evil.example/"}
    answer = for_idp(idp).test_client().get("/me", headers=bearer(idp.mint()))
    assert answer.status_code == 503, answer.get_json()


@pytest.mark.parametrize(
    "case",
    ["wrong-aud", "no-aud", "wrong-iss", "expired", "alg-none", "hs256-with-public-pem", "unknown-key",
     "id-token-as-access-token"],
)
def test_refusals(idp, case):
    client = for_idp(idp, JWT_ACCESS_TOKEN_TYPE="at+jwt").test_client()
    kid = idp.kids[0]
    if case == "wrong-aud":
        token = idp.mint({"aud": "https://another-api.example"})
    elif case == "no-aud":
        token = idp.mint({"aud": None})
    elif case == "wrong-iss":
        token = idp.mint({"iss": idp.issuer + "/other"})
    elif case == "expired":
        token = idp.mint(lifetime=-120)
    elif case == "alg-none":
        token = forged_token(
            {"iss": idp.issuer, "aud": idp.audience, "sub": "x", "exp": 2**31}, {"alg": "none"}
        )
    elif case == "hs256-with-public-pem":
        token = forged_token(
            {"iss": idp.issuer, "aud": idp.audience, "sub": "x", "exp": 2**31},
            {"alg": "HS256", "kid": kid},
            secret=idp.pem_of(kid),
        )
    elif case == "unknown-key":
        outsider = generate_key("RS256", kid=kid)  # the IdP's kid, an attacker's key
        token = sign_with(outsider, {"iss": idp.issuer, "aud": idp.audience, "sub": "x", "exp": 2**31},
                          {"alg": "RS256", "kid": kid, "typ": "at+jwt"})
    else:
        token = idp.mint_id_token({"aud": idp.audience})  # audience fits, typ is not at+jwt
    refusal(client.get("/me", headers=bearer(token)))


def test_application_at_jwt_is_the_same_type(idp):
    client = for_idp(idp, JWT_ACCESS_TOKEN_TYPE="at+jwt").test_client()
    for typ in ("at+jwt", "application/at+jwt", "AT+JWT"):
        assert client.get("/me", headers=bearer(idp.mint(typ=typ))).status_code == 200, typ
    assert refusal(client.get("/me", headers=bearer(idp.mint(typ="JWT")))) == "Token type (typ) is not at+jwt"


def test_jwt_algorithm_pins_the_algorithm_of_keys_without_alg():
    """An ES256 key is not accepted when the app says RS256 (the JWK has no alg)."""
    with IdP("generic", algorithms=["ES256", "RS256"]) as provider:
        client = for_idp(provider, JWT_ALGORITHM="RS256").test_client()
        assert client.get("/me", headers=bearer(provider.mint(alg="RS256"))).status_code == 200
        refusal(client.get("/me", headers=bearer(provider.mint(alg="ES256"))))


def test_a_ps256_issuer_without_alg_in_its_keys_works_with_jwt_algorithms():
    with IdP("generic", algorithms=["PS256"]) as provider:
        provider.metadata_override = {"id_token_signing_alg_values_supported": None}
        client = for_idp(provider, JWT_ALGORITHMS=["PS256"]).test_client()
        assert client.get("/me", headers=bearer(provider.mint())).status_code == 200
        # without any hint, an RSA key means RS256 (OpenID Connect's default): PS256 is refused
        plain = for_idp(provider).test_client()
        refusal(plain.get("/me", headers=bearer(provider.mint())))


def test_a_kidless_token_is_refused_when_two_keys_fit():
    with IdP("generic", algorithms=["RS256", "RS256"]) as provider:
        assert "kid" in refusal(
            for_idp(provider).test_client().get("/me", headers=bearer(provider.mint(include_kid=False)))
        )


# --- several issuers --------------------------------------------------------------------------


def test_the_tokens_iss_picks_the_issuer_and_only_its_keys_verify():
    with IdP("keycloak") as first, IdP("okta") as second:
        app = resource_server(
            [first.issuer, {"issuer": second.issuer, "audience": second.audience}], first.audience
        )
        client = app.test_client()
        assert client.get("/me", headers=bearer(first.mint())).get_json()["iss"] == first.issuer
        assert client.get("/me", headers=bearer(second.mint())).get_json()["iss"] == second.issuer
        # second's key, second's kid, but a token that says it comes from first
        forged = second.mint({"iss": first.issuer, "aud": first.audience})
        refusal(client.get("/me", headers=bearer(forged)))
        # the same kid at both issuers does not help either
        shared = second.key(second.kids[0])
        first.jwks_override = {"keys": [first.public_jwk(first.kids[0]) | {"kid": shared.kid}]}
        refusal(client.get("/me", headers=bearer(forged)))


def test_two_issuers_users_with_one_sub_never_meet():
    with IdP("generic") as first, IdP("generic") as second:
        issuers = [first.issuer, {"issuer": second.issuer, "audience": first.audience}]
        app = resource_server(issuers, first.audience)
        jwt = app.extensions["jwt"]

        @app.route("/log-out-everywhere", methods=["POST"])
        @jwt_required()
        def everywhere():
            jwt.revoke_identity(current_identity._get_current_object())
            return jsonify(done=True)

        client = app.test_client()
        same = {"sub": "alice"}
        mine, theirs = first.mint(same), second.mint(same)
        me = client.get("/me", headers=bearer(mine)).get_json()["identity"]
        them = client.get("/me", headers=bearer(theirs)).get_json()["identity"]
        assert me == [first.issuer, "alice"] and them == [second.issuer, "alice"]  # (iss, sub)
        assert client.post("/log-out-everywhere", headers=bearer(theirs)).status_code == 200
        assert refusal(client.get("/me", headers=bearer(theirs))) == "Token has been revoked"
        assert client.get("/me", headers=bearer(mine)).status_code == 200  # the other alice is untouched


def test_with_one_issuer_the_identity_is_its_sub(idp):
    app = resource_server(idp.issuer, idp.audience)
    answer = app.test_client().get("/me", headers=bearer(idp.mint({"sub": "alice"})))
    assert answer.get_json()["identity"] == "alice"


# --- permissions from IdP claims ------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, claim, granted",
    [
        ("auth0", ["permissions", "scope"], {"permissions": ["write"]}),
        ("keycloak", "realm_access.roles", {"realm_access": {"roles": ["write", "other"]}}),
        ("okta", "scp", {"scp": ["read", "write"]}),
        ("entra", ["scp", "roles"], {"scp": "read write"}),
        ("cognito", "scope", {"scope": "aws.cognito.signin.user.admin write"}),
    ],
)
def test_permissions_from_each_providers_claims(kind, claim, granted):
    with IdP(kind) as provider:
        client = for_idp(provider, JWT_PERMISSIONS_CLAIM=claim).test_client()
        answer = client.post("/write", headers=bearer(provider.mint(granted)))
        assert answer.status_code == 200, answer.get_json()
        denied = {key: without_write(value) for key, value in granted.items()}
        answer = client.post("/write", headers=bearer(provider.mint(denied)))
        assert answer.status_code == 403
        assert 'error="insufficient_scope"' in answer.headers["WWW-Authenticate"]


def without_write(value: Any) -> Any:
    if isinstance(value, list):
        return [item for item in value if item != "write"]
    if isinstance(value, dict):
        return {key: without_write(item) for key, item in value.items()}
    return " ".join(part for part in value.split() if part != "write")


# --- the key-set cache ----------------------------------------------------------------------


def cached_app(idp: IdP, **config: Any) -> Flask:
    return for_idp(idp, JWT_JWKS_REFRESH_INTERVAL=0.3, JWT_JWKS_CACHE_TTL=1, **config)


def test_a_new_key_is_picked_up_at_once_and_a_removed_one_stops_after_the_cache(idp):
    client = cached_app(idp).test_client()
    old = idp.kids[0]
    assert client.get("/me", headers=bearer(idp.mint())).status_code == 200
    new = idp.add_key("RS256")
    time.sleep(0.35)  # past the refetch cooldown
    assert client.get("/me", headers=bearer(idp.mint(kid=new))).status_code == 200
    assert idp.hits["jwks"] == 2
    old_token = idp.mint(kid=old)
    assert client.get("/me", headers=bearer(old_token)).status_code == 200  # now in the verified cache
    idp.remove_key(old)
    time.sleep(1.1)  # the key set's cache (and so the verified-token cache) has expired
    assert client.get("/me", headers=bearer(idp.mint(kid=new))).status_code == 200  # refetched
    assert refusal(client.get("/me", headers=bearer(old_token))) == "Unknown key id"


def test_cache_control_max_age_is_honoured():
    with IdP("generic", max_age=1) as provider:
        client = for_idp(provider, JWT_JWKS_REFRESH_INTERVAL=0.2).test_client()
        for _ in range(5):
            assert client.get("/me", headers=bearer(provider.mint())).status_code == 200
        assert provider.hits["jwks"] == 1
        time.sleep(1.1)
        assert client.get("/me", headers=bearer(provider.mint())).status_code == 200
        assert provider.hits["jwks"] == 2


def test_known_keys_stay_in_use_while_the_issuer_is_down_then_503(idp, caplog):
    client = cached_app(idp, JWT_JWKS_STALE_IF_ERROR=1.5).test_client()
    assert client.get("/me", headers=bearer(idp.mint())).status_code == 200
    idp.stop()  # connection refused
    time.sleep(1.1)  # the cache expired: stale keys serve
    assert client.get("/me", headers=bearer(idp.mint())).status_code == 200
    assert "using the keys fetched before" in caplog.text
    time.sleep(1.6)  # past the stale window
    answer = client.get("/me", headers=bearer(idp.mint()))
    assert answer.status_code == 503 and answer.get_json()["error"] == "Service Unavailable"
    idp.start()
    time.sleep(0.35)
    assert client.get("/me", headers=bearer(idp.mint())).status_code == 200


def test_a_burst_of_new_kids_causes_one_fetch(idp):
    client_app = cached_app(idp)
    assert client_app.test_client().get("/me", headers=bearer(idp.mint())).status_code == 200
    new = idp.add_key("ES256")
    time.sleep(0.35)
    idp.delay = 0.4
    token = idp.mint(kid=new)
    statuses: List[int] = []
    barrier = threading.Barrier(20)

    def call() -> None:
        barrier.wait(5)
        statuses.append(client_app.test_client().get("/me", headers=bearer(token)).status_code)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert statuses == [200] * 20
    assert idp.hits["jwks"] == 2  # the first fetch, and one for the new kid


# --- fetching key sets: deadlines, cooldowns, one fetch at a time, redirects --------------


def jwks_app(url: str, **config: Any) -> Flask:
    """A resource server on one key set URL (JWT_JWKS_URL), with its audience."""
    return resource_server(None, "https://api.example.test", JWT_JWKS_URL=url, **config)


def test_while_the_issuer_is_down_an_unknown_kid_is_503_and_one_fetch_per_cooldown(idp):
    client = for_idp(idp, JWT_JWKS_REFRESH_INTERVAL=2, JWT_JWKS_CACHE_TTL=1).test_client()
    assert client.get("/me", headers=bearer(idp.mint())).status_code == 200
    new = idp.add_key("ES256")
    idp.down = True
    time.sleep(2.1)  # past the cooldown of the last (successful) fetch
    idp.reset_hits()
    started = time.monotonic()
    answers = [client.get("/me", headers=bearer(idp.mint(kid=new))) for _ in range(20)]
    assert time.monotonic() - started < 2  # answered at once, not each after a fetch
    assert {answer.status_code for answer in answers} == {503}
    assert answers[0].get_json()["error"] == "Service Unavailable"
    assert idp.hits["jwks"] == 1  # the cooldown counts from the failed try
    assert client.get("/me", headers=bearer(idp.mint())).status_code == 200  # known keys still verify
    idp.down = False
    time.sleep(2.1)
    assert client.get("/me", headers=bearer(idp.mint(kid=new))).status_code == 200


def test_a_key_set_down_from_the_start_is_not_fetched_on_every_request(idp):
    idp.down = True
    client = jwks_app(idp.jwks_uri, JWT_JWKS_REFRESH_INTERVAL=5).test_client()
    answers = [client.get("/me", headers=bearer(idp.mint())) for _ in range(10)]
    assert {answer.status_code for answer in answers} == {503}
    assert idp.hits["jwks"] == 1


def test_a_slow_issuer_is_asked_once_and_every_waiting_request_is_answered_by_its_deadline(idp):
    app = cached_app(idp, JWT_JWKS_TIMEOUT=0.8)
    client = app.test_client()
    assert client.get("/me", headers=bearer(idp.mint())).status_code == 200
    new = idp.add_key("ES256")
    time.sleep(0.35)
    idp.delay = 3.0  # each answer takes 3 s: past the timeout
    idp.reset_hits()
    token, known = idp.mint(kid=new), idp.mint()
    timings: List[float] = []
    statuses: List[int] = []

    def call(headers: Dict[str, str]) -> None:
        started = time.monotonic()
        statuses.append(app.test_client().get("/me", headers=headers).status_code)
        timings.append(time.monotonic() - started)

    threads = [threading.Thread(target=call, args=(bearer(token),)) for _ in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert client.get("/me", headers=bearer(known)).status_code == 200  # known keys stay fast
    assert time.monotonic() - started < 0.5
    for thread in threads:
        thread.join(10)
    assert statuses == [503] * 6
    assert max(timings) < 0.8 + 1.0 + 0.5  # one fetch's deadline, not six in a row
    assert idp.hits["jwks"] == 1


def test_the_timeout_bounds_the_whole_fetch_of_a_trickling_answer(idp):
    idp.trickle = 0.05  # a byte every 50 ms: each read is quick, the answer endless
    client = jwks_app(idp.jwks_uri, JWT_JWKS_TIMEOUT=0.5).test_client()
    started = time.monotonic()
    answer = client.get("/me", headers=bearer(idp.mint()))
    assert answer.status_code == 503
    assert time.monotonic() - started < 1.5


def test_redirects_are_followed_only_within_the_origin():
    with IdP("generic") as issuer, IdP("generic") as attacker:
        issuer.jwks_redirect = issuer.jwks_uri + "?moved"  # the same origin: followed
        same = jwks_app(issuer.jwks_uri).test_client()
        assert same.get("/me", headers=bearer(issuer.mint())).status_code == 200
        # Another host (localhost is not 127.0.0.1), serving keys of its own: refused.
        issuer.jwks_redirect = attacker.jwks_uri.replace("127.0.0.1", "localhost")
        other = jwks_app(issuer.jwks_uri).test_client()
        answer = other.get("/me", headers=bearer(attacker.mint()))
        assert answer.status_code == 503
        assert attacker.hits["jwks"] == 0
        # And from https to http, on the same host and port.
        issuer.jwks_redirect = issuer.jwks_uri + "?moved"
        from flask_tokenauth.keysets import _origin

        assert _origin("https://h:443/x") != _origin("http://h:443/x")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/jwks.json", "data:,{}"])
def test_a_key_set_url_that_is_not_http_is_never_fetched(url, idp, caplog):
    client = jwks_app(url).test_client()
    answer = client.get("/me", headers=bearer(idp.mint()))
    assert answer.status_code == 503
    assert "only http and https" in caplog.text


# --- our own services as issuers ----------------------------------------------------------


@contextlib.contextmanager
def first_service(**config: Any) -> Iterator[Tuple[Flask, str]]:
    """A service of ours that issues tokens (ES256, a JWK Set and discovery),
    served over HTTP on loopback: the app and its URL, its JWT_ISSUER."""
    from tests.conftest import authenticate, identity

    first = Flask("first")
    server = make_server("127.0.0.1", 0, first, threaded=True)
    url = "http://127.0.0.1:%d" % server.server_port
    pem = generate_key("ES256").as_pem(private=True)
    first.config.update(
        JWT_KEYS=[{"kid": "svc-1", "alg": "ES256", "private_key": pem}],
        JWT_ISSUER=url,
        JWT_AUDIENCE="https://orders.internal",
        JWT_JWKS_URL_RULE="/.well-known/jwks.json",
        **config,
    )
    JWT(first, authenticate, identity)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield first, url
    finally:
        server.shutdown()
        server.server_close()


def test_a_second_service_verifies_the_first_ones_tokens_by_discovery():
    with first_service() as (first, url):
        token = first.test_client().post("/auth", json={"username": "joe", "password": "pass"}).get_json()
        document = first.test_client().get("/.well-known/openid-configuration", base_url=url).get_json()
        assert document["issuer"] == url and document["jwks_uri"] == url + "/.well-known/jwks.json"
        second = resource_server(url, "https://orders.internal")
        answer = second.test_client().get("/me", headers=bearer(token["access_token"]))
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json() == {"identity": 1, "iss": url}


def test_a_refresh_token_is_redeemed_only_by_the_service_that_issued_it():
    """Service B trusts service A as an issuer: A's access tokens open B, but A's
    refresh token must not become a session of B's (A's reuse detection and
    logout would never see it)."""
    with first_service(JWT_REFRESH_URL_RULE="/auth/refresh") as (first, url):
        login = first.test_client().post("/auth", json={"username": "joe", "password": "pass"}).get_json()
        second = resource_server(
            url,
            "https://orders.internal",
            SECRET_KEY="b-service-own-secret-that-is-long-enough-for-hs256",
            JWT_SECRET_KEY="b-service-own-secret-that-is-long-enough-for-hs256",
            JWT_REFRESH_URL_RULE="/auth/refresh",
        )
        client = second.test_client()
        assert client.get("/me", headers=bearer(login["access_token"])).status_code == 200
        answer = client.post("/auth/refresh", headers=bearer(login["refresh_token"]))
        assert answer.status_code == 401
        assert answer.get_json()["description"] == (
            "Only refresh tokens issued by this service are accepted here"
        )
        renewed = first.test_client().post("/auth/refresh", headers=bearer(login["refresh_token"]))
        assert renewed.status_code == 200  # A refreshes its own session


def test_flasks_secret_key_opens_nothing_on_a_resource_server(idp):
    # The review's forgery: HS256 with SECRET_KEY, a made-up user, an admin permission.
    app = resource_server(idp.issuer, idp.audience, SECRET_KEY="flask-session-secret-that-is-long-enough!")

    @app.route("/admin")
    @jwt_required(permissions=["admin"])
    def admin():
        return jsonify(ok=True)

    now = int(time.time())
    claims = {"sub": "mallory", "iss": "nobody", "aud": idp.audience, "exp": now + 60, "iat": now,
              "nbf": now, "permissions": ["admin"]}
    secret = b"flask-session-secret-that-is-long-enough!"
    forged = forged_token(claims, {"alg": "HS256", "typ": "JWT"}, secret=secret)
    client = app.test_client()
    assert refusal(client.get("/admin", headers=bearer(forged)))
    assert client.post("/auth", json={"username": "a", "password": "b"}).status_code == 404
    assert client.get("/me", headers=bearer(idp.mint())).status_code == 200


def test_setting_the_access_token_type_later_applies_to_tokens_already_verified(idp):
    app = for_idp(idp)
    client = app.test_client()
    plain = idp.mint(typ="JWT")  # what an ID token's header says
    assert client.get("/me", headers=bearer(plain)).status_code == 200  # verified, and cached
    app.config["JWT_ACCESS_TOKEN_TYPE"] = "at+jwt"
    assert refusal(client.get("/me", headers=bearer(plain))) == "Token type (typ) is not at+jwt"
    assert client.get("/me", headers=bearer(idp.mint(typ="at+jwt"))).status_code == 200
