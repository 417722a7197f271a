"""Cookie mode in a real browser: Debian's Chromium, driven by Playwright.

The example app's page (``GET /``) is served over real HTTP on 127.0.0.1 and
used as a person would: the login form, the Refresh and Log out buttons.
What only a browser shows is checked here: which cookies scripts can read,
which cookies reach which path, what a cross-site form post (a page on
another loopback address, so another site) can do, logout after the access
cookie expired in the jar, and an app mounted under a prefix.

Chromium is launched from ``/usr/bin/chromium`` (``.ci/run`` installs it);
without it the tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import shutil
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

import example_app
from tests.redis_server import require_found

REVOKED = {"status_code": 401, "error": "Invalid token", "description": "Token has been revoked"}
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECRET = "browser-test-secret-long-enough-for-hs256-signing"


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return require_found(found, "Debian's chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    binary = chromium_binary()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the test extra installs it
        require_found(None, "playwright is not installed (pip install playwright)")
        raise
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=binary, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser) -> Iterator[Any]:
    made = browser.new_context()
    try:
        yield made
    finally:
        made.close()


class Served:
    """A WSGI app on a real loopback port, in a thread of this process."""

    def __init__(self, app: Any, host: str = "127.0.0.1") -> None:
        self.server = make_server(host, 0, app, threaded=True)
        self.url = "http://%s:%d" % (host, self.server.server_port)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def example(**config: Any) -> Flask:
    return example_app.create_app({"SECRET_KEY": SECRET, **config})


def log_in(page, base: str, username: str = "alice", password: str = "wonderland") -> None:
    from playwright.sync_api import expect

    page.goto(base + "/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("#who")).to_have_text(username)


def log_in_until_the_access_cookie_expires(page, base: str, context) -> Dict[str, Dict[str, Any]]:
    """Log in (with a 2-second access lifetime), wait until the browser has
    dropped the access cookie; the jar as it was right after the login."""
    log_in(page, base)
    held = jar(context)
    time.sleep(2.5)
    assert set(jar(context)) == {"refresh_token", "csrf_token"}  # the browser dropped it
    return held


def jar(context) -> Dict[str, Dict[str, Any]]:
    return {cookie["name"]: cookie for cookie in context.cookies()}


def fetch(page, path: str, csrf: bool, body: Any = None) -> Dict[str, Any]:
    """A POST from the page's own script, with or without the CSRF header."""
    return page.evaluate(
        """async ([path, csrf, body]) => {
            const headers = {"Content-Type": "application/json"};
            if (csrf) {
                const c = document.cookie.split("; ").find((x) => x.startsWith("csrf_token="));
                headers["X-CSRF-Token"] = c ? c.slice(11) : "";
            }
            const r = await fetch(path, {method: "POST", headers, body: JSON.stringify(body ?? {})});
            return {status: r.status, body: await r.json()};
        }""",
        [path, csrf, body],
    )


def test_the_example_page_logs_in_refreshes_and_logs_out(context):
    from playwright.sync_api import expect

    app = example()
    with Served(app) as served:
        page = context.new_page()
        log_in(page, served.url)

        # Scripts see the CSRF value and no token; the jar holds the HttpOnly tokens.
        visible = page.evaluate("document.cookie")
        assert visible.startswith("csrf_token=") and ";" not in visible, visible
        cookies = jar(context)
        assert set(cookies) == {"access_token", "refresh_token", "csrf_token"}
        assert cookies["access_token"]["httpOnly"] and cookies["refresh_token"]["httpOnly"]
        assert cookies["refresh_token"]["path"] == "/auth/"
        assert not cookies["csrf_token"]["httpOnly"]

        # A cookie-authenticated POST needs the CSRF header.
        refused = fetch(page, "predict", csrf=False, body={"features": [1, 2, 3]})
        assert refused["status"] == 401 and refused["body"]["error"] == "Invalid CSRF token"
        allowed = fetch(page, "predict", csrf=True, body={"features": [1, 2, 3]})
        assert allowed == {"status": 200, "body": {"prediction": 2.0, "model": "mean-v1", "user": "alice"}}

        # Refresh rotates both token cookies.
        page.click("#refresh")
        expect(page.locator("#status")).to_have_text("Refreshed.")
        rotated = jar(context)
        assert rotated["access_token"]["value"] != cookies["access_token"]["value"]
        assert rotated["refresh_token"]["value"] != cookies["refresh_token"]["value"]
        expect(page.locator("#who")).to_have_text("alice")

        # Log out empties the jar and revokes what it held.
        page.click("#logout")
        expect(page.locator("#status")).to_have_text("Logged out.")
        expect(page.locator("#login-form")).to_be_visible()
        assert jar(context) == {}
        api = app.test_client()
        token = rotated["access_token"]["value"]
        assert api.get("/whoami", headers={"Authorization": "JWT " + token}).get_json() == REVOKED


#: Another site's page: it makes the browser post a form to /predict (into a
#: frame), then one to /auth/logout (the page itself navigates to its answer).
ATTACKER_PAGE = """<!doctype html><html><body>
<form id="act" method="POST" action="%(app)s/predict" target="frame"><input name="features" value="1"></form>
<form id="out" method="POST" action="%(app)s/auth/logout"><input name="x" value="1"></form>
<iframe name="frame"></iframe>
<script>
document.getElementById("act").submit();
setTimeout(() => document.getElementById("out").submit(), 300);
</script>
</body></html>"""


def page_app(html: str) -> Any:
    def serve(environ: Dict[str, Any], start_response: Any) -> Any:
        return Response(html, mimetype="text/html")(environ, start_response)

    return serve


def test_a_cross_site_form_post_cannot_log_out_or_act(context):
    """A page on another site makes the browser post forms to the app: under
    SameSite=Lax no cookie goes with them, and the answers clear nothing."""
    app = example()
    with Served(app) as served:
        page = context.new_page()
        log_in(page, served.url)
        before = jar(context)
        attacker_page = ATTACKER_PAGE % {"app": served.url}
        evil = Served(page_app(attacker_page), "127.0.0.2")
        with evil:
            attack = context.new_page()
            with attack.expect_navigation(url=served.url + "/auth/logout"):
                attack.goto(evil.url + "/")
            answer = attack.evaluate("document.body.innerText")
        assert "Logged out" not in answer and "401" in answer, answer
        after = jar(context)
        assert set(after) == set(before) and all(after[n]["value"] == before[n]["value"] for n in after)
        page.reload()  # the user is still logged in
        from playwright.sync_api import expect

        expect(page.locator("#who")).to_have_text("alice")


def test_log_out_after_the_access_cookie_expired_in_the_jar(context):
    from playwright.sync_api import expect

    app = example(JWT_EXPIRATION_DELTA=2, JWT_LEEWAY=0)
    with Served(app) as served:
        page = context.new_page()
        held = log_in_until_the_access_cookie_expires(page, served.url, context)
        page.click("#logout")
        expect(page.locator("#status")).to_have_text("Logged out.")
        assert jar(context) == {}
        # the refresh token the browser held is revoked, not merely forgotten
        api = app.test_client()
        api.set_cookie("refresh_token", held["refresh_token"]["value"], domain="localhost", path="/auth/")
        api.set_cookie("csrf_token", held["csrf_token"]["value"], domain="localhost")
        stolen = api.post("/auth/refresh", headers={"X-CSRF-Token": held["csrf_token"]["value"]})
        assert stolen.status_code == 401 and stolen.get_json() == REVOKED


def test_the_page_refreshes_when_its_access_cookie_has_expired(context):
    """The access cookie lives seconds here (minutes by default): a page opened
    after it expired refreshes once, silently, and shows the user; once the
    session is over it shows the login form and stops asking."""
    from playwright.sync_api import expect

    app = example(JWT_EXPIRATION_DELTA=2, JWT_LEEWAY=0)
    with Served(app) as served:
        page = context.new_page()
        held = log_in_until_the_access_cookie_expires(page, served.url, context)
        page.reload()
        expect(page.locator("#who")).to_have_text("alice")
        now = jar(context)
        assert set(now) == {"access_token", "refresh_token", "csrf_token"}
        assert now["refresh_token"]["value"] != held["refresh_token"]["value"]  # rotated
        page.click("#logout")
        expect(page.locator("#status")).to_have_text("Logged out.")
        page.reload()
        expect(page.locator("#login-form")).to_be_visible()
        assert jar(context) == {}


def not_found(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not here"]


def test_an_app_under_a_prefix_refreshes_and_logs_out(context):
    from playwright.sync_api import expect

    app = example()
    with Served(DispatcherMiddleware(not_found, {"/app": app})) as served:
        page = context.new_page()
        log_in(page, served.url + "/app")
        cookies = jar(context)
        assert cookies["access_token"]["path"] == "/app"
        assert cookies["refresh_token"]["path"] == "/app/auth/"
        page.click("#refresh")
        expect(page.locator("#status")).to_have_text("Refreshed.")
        page.click("#logout")
        expect(page.locator("#status")).to_have_text("Logged out.")
        assert jar(context) == {}


# --- DPoP with a key the page cannot give away ---------------------------------------------

#: A page that makes a non-extractable ECDSA key with WebCrypto, logs in with a
#: DPoP proof, and calls a protected route with the bound token.
DPOP_PAGE = """<!doctype html><html><body><script>
"use strict";
const enc = new TextEncoder();
const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
  .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
const part = (object) => b64url(enc.encode(JSON.stringify(object)));
let keys, jwk;

async function setUp() {
  keys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
  const full = await crypto.subtle.exportKey("jwk", keys.publicKey);
  jwk = { kty: full.kty, crv: full.crv, x: full.x, y: full.y };
}

async function proof(method, url, token) {
  const claims = { htm: method, htu: url, iat: Math.floor(Date.now() / 1000), jti: crypto.randomUUID() };
  if (token) claims.ath = b64url(await crypto.subtle.digest("SHA-256", enc.encode(token)));
  const input = part({ typ: "dpop+jwt", alg: "ES256", jwk }) + "." + part(claims);
  const algorithm = { name: "ECDSA", hash: "SHA-256" };
  const signature = await crypto.subtle.sign(algorithm, keys.privateKey, enc.encode(input));
  return input + "." + b64url(signature);
}

window.run = async () => {
  await setUp();
  const login = await fetch("auth", {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      DPoP: await proof("POST", new URL("auth", location).href),
    },
    body: JSON.stringify({ username: "alice", password: "wonderland" }),
  });
  const body = await login.json();
  window.stolen = body.access_token;  // what an XSS bug could copy out of the page
  const url = new URL("whoami", location).href;
  const me = await fetch("whoami", {
    headers: { Authorization: "DPoP " + body.access_token, DPoP: await proof("GET", url, body.access_token) },
  });
  return { login: login.status, tokenType: body.token_type, me: me.status, who: (await me.json()).username,
           extractable: keys.privateKey.extractable };
};
</script></body></html>"""


def test_a_browser_key_binds_the_token_and_a_copied_token_is_worthless(context):
    from tests.dpop_support import Client

    app = example(JWT_DPOP="allowed")
    app.add_url_rule("/dpop-page", "dpop_page", lambda: Response(DPOP_PAGE, mimetype="text/html"))
    with Served(app) as served:
        page = context.new_page()
        page.goto(served.url + "/dpop-page")
        result = page.evaluate("window.run()")
        assert result == {
            "login": 200, "tokenType": "DPoP", "me": 200, "who": "alice", "extractable": False
        }, result
        stolen = page.evaluate("window.stolen")

        api = app.test_client()
        url = served.url + "/whoami"
        for headers in (
            {"Authorization": "Bearer " + stolen},
            {"Authorization": "JWT " + stolen},
            {"Authorization": "DPoP " + stolen},
            {"Authorization": "DPoP " + stolen, "DPoP": Client().proof("GET", url, stolen)},
        ):
            answer = api.get("/whoami", headers=headers, base_url=served.url)
            assert answer.status_code == 401, (headers.keys(), answer.get_json())


def test_the_example_page_under_gunicorn_with_four_workers(context):
    """As deployed: gunicorn -w 4 example_app:app, no SECRET_KEY and no store
    setting. Every request of the page may reach another worker: the key in
    the instance folder and the shared SQLite store make them one app."""
    from playwright.sync_api import expect

    from tests.served_support import Served as ServedProcess
    from tests.served_support import app_folder
    from tests.sessions_support import http

    with open(example_app.__file__, encoding="utf-8") as source:
        folder = app_folder({"example_app.py": source.read()})
    served = ServedProcess(folder, "example_app:app", workers=4, env={"SECRET_KEY": None})
    served.READY_PATH = "/public"
    try:
        served.start()
        page = context.new_page()
        log_in(page, served.url)
        for _ in range(3):
            page.click("#refresh")
            expect(page.locator("#status")).to_have_text("Refreshed.")
        for _ in range(5):
            page.reload()
            expect(page.locator("#who")).to_have_text("alice")
        held = jar(context)["refresh_token"]["value"]
        page.click("#logout")
        expect(page.locator("#status")).to_have_text("Logged out.")
        expect(page.locator("#login-form")).to_be_visible()
        for _ in range(12):  # whichever worker takes it
            answer = http("POST", served.url + "/auth/refresh", json_body={"refresh_token": held})
            assert answer.status == 401 and answer.json["description"] == "Token has been revoked", answer
        log = served.log(None)
        assert log.count("made a secret key") == 1 and "JWT_TOKEN_STORE is unset: using sqlite" in log
        assert "Traceback" not in log
    finally:
        served.close()
        shutil.rmtree(folder, ignore_errors=True)
