"""A small token-protected API, in the shape of the Flask-JWT tutorial.

Run it::

    python example_app.py                 # serves on http://127.0.0.1:5000
    PORT=8000 SECRET_KEY=... python example_app.py
    gunicorn -w 4 -b 127.0.0.1:5000 example_app:app   # several workers, one host

Without SECRET_KEY in the environment, a signing key is made once and kept in
``instance/tokenauth-secret.key``; under several workers, logouts, refresh
reuse detection and the session state live in ``instance/tokenauth.sqlite3``
(see the Deploying guide), so every worker agrees.

Open http://127.0.0.1:5000/ in a browser for a small page that logs in and
out with cookies (HttpOnly token cookies, a CSRF header on every POST), or try
it with curl::

    # 1. log in: POST /auth with a JSON body, get {"access_token": "...", ...}
    curl -s -X POST http://127.0.0.1:5000/auth \\
         -H 'Content-Type: application/json' \\
         -d '{"username": "alice", "password": "wonderland"}'

    # 2. call a protected route with the header "Authorization: JWT <token>"
    TOKEN=...   # the access_token value from step 1
    curl -s http://127.0.0.1:5000/whoami -H "Authorization: JWT $TOKEN"

    # 3. a model prediction that needs the "predict" permission: alice has it,
    #    bob does not (he gets 403 Forbidden)
    curl -s -X POST http://127.0.0.1:5000/predict -H "Authorization: JWT $TOKEN" \\
         -H 'Content-Type: application/json' -d '{"features": [1.0, 2.0, 3.0]}'

Routes: GET / (the browser page), GET /public (anyone), GET /private and
GET /whoami (token needed), POST /predict (token with the "predict"
permission), all Flask-RESTful resources, and GET /hello, the same check on a
plain Flask view; POST /auth/refresh and POST /auth/logout end or renew a
session. Users: alice/wonderland (may predict) and bob/builder. Access tokens
live 5 minutes (JWT_EXPIRATION_DELTA), sessions 30 days.

Tokens are read from the ``Authorization`` header first, then from the
cookies the login sets (JWT_TOKEN_LOCATION = ["headers", "cookies"]), so the
curl commands and the page work side by side.
"""

from __future__ import annotations

import os
import secrets
from typing import Any, Dict, Optional, Tuple

from flask import Flask, Response, jsonify, request
from flask_restful import Api, Resource
from werkzeug.security import check_password_hash, generate_password_hash

from flask_tokenauth import JWT, current_identity, instance_secret, jwt_required


class User:
    def __init__(self, id: int, username: str, password: str, permissions: Tuple[str, ...] = ()) -> None:
        self.id = id  # what goes into the token's "identity" claim
        self.username = username
        # Put into the token at login; jwt_required(permissions=[...]) checks them.
        self.permissions = list(permissions)
        # Only a salted hash is kept, never the password itself.
        self.password_hash = generate_password_hash(password)


USERS = [User(1, "alice", "wonderland", ("predict",)), User(2, "bob", "builder")]
USERS_BY_NAME = {user.username: user for user in USERS}
USERS_BY_ID = {user.id: user for user in USERS}

# Checked when the username is unknown, so that a wrong username costs as
# much time as a wrong password: response times do not tell which names exist.
_DUMMY_HASH = generate_password_hash(secrets.token_hex(16))


def authenticate(username: str, password: str) -> Optional[User]:
    """Called by POST /auth with two non-empty strings: the user, or None (401)."""
    user = USERS_BY_NAME.get(username)
    # check_password_hash compares digests in constant time (hmac.compare_digest);
    # it runs whether or not the user exists.
    password_ok = check_password_hash(user.password_hash if user else _DUMMY_HASH, password)
    return user if user is not None and password_ok else None


def identity(payload: Dict[str, Any]) -> Optional[User]:
    """Called with a verified token's claims: the user, or None (401 "User does not exist")."""
    return USERS_BY_ID.get(payload["identity"])


class Public(Resource):
    def get(self):
        return {"message": "Anyone can read this."}


class Private(Resource):
    # Flask-RESTful applies these to every method of the resource.
    method_decorators = [jwt_required()]

    def get(self):
        return {"message": "Only logged-in users can read this."}


class WhoAmI(Resource):
    method_decorators = [jwt_required()]

    def get(self):
        # current_identity is what identity() returned for this request's token.
        return {"id": current_identity.id, "username": current_identity.username}


class Predict(Resource):
    # A valid token without the "predict" permission gets 403, not 401.
    method_decorators = [jwt_required(permissions=["predict"])]

    def post(self):
        body = request.get_json(silent=True)
        features = body.get("features") if isinstance(body, dict) else None
        if not isinstance(features, list) or not all(isinstance(x, (int, float)) for x in features):
            return {"message": 'Send {"features": [numbers]}'}, 400
        # A stand-in for a real model: the mean of the features.
        score = sum(features) / len(features) if features else 0.0
        return {"prediction": score, "model": "mean-v1", "user": current_identity.username}


# The browser page: plain HTML and JavaScript, no build step. It never sees a
# token (they are HttpOnly cookies); it reads the CSRF cookie and echoes it in
# the X-CSRF-Token header of every POST. Paths are relative, so the page also
# works when the app is mounted under a prefix.
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>flask-tokenauth example</title>
<style>
  body { font-family: sans-serif; max-width: 30em; margin: 2em auto; }
  label { display: block; margin: .5em 0; }
</style>
</head>
<body>
<h1>flask-tokenauth example</h1>
<form id="login-form">
  <label>Username <input name="username" autocomplete="username" required></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Log in</button>
</form>
<section id="session" hidden>
  <p>Logged in as <strong id="who"></strong></p>
  <button id="refresh" type="button">Refresh</button>
  <button id="logout" type="button">Log out</button>
</section>
<p id="status" role="status"></p>
<script>
"use strict";
const $ = (id) => document.getElementById(id);

function csrfToken() {
  const found = document.cookie.split("; ").find((c) => c.startsWith("csrf_token="));
  return found ? decodeURIComponent(found.slice("csrf_token=".length)) : "";
}

async function post(path, body) {
  const headers = { "X-CSRF-Token": csrfToken() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return fetch(path, {
    method: "POST", headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function say(response, done) {
  if (response.ok) { $("status").textContent = done; return; }
  const error = await response.json().catch(() => ({}));
  $("status").textContent = error.description || "Error " + response.status;
}

// A request made with the session's cookies. On 401, while a session may
// still be alive (the CSRF cookie is there), refresh once and try again: the
// access cookie lives minutes, the refresh cookie days.
async function withRefresh(request) {
  const response = await request();
  if (response.status !== 401 || !csrfToken()) return response;
  const refreshed = await post("auth/refresh");
  return refreshed.ok ? request() : response;
}

async function show() {
  const response = await withRefresh(() => fetch("whoami", { credentials: "same-origin" }));
  const me = response.ok ? await response.json() : null;
  $("who").textContent = me ? me.username : "";
  $("session").hidden = !me;
  $("login-form").hidden = !!me;
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const response = await post("auth", { username: form.get("username"), password: form.get("password") });
  event.target.reset();
  await say(response, "Logged in.");
  await show();
});
$("refresh").addEventListener("click", async () => {
  await say(await post("auth/refresh"), "Refreshed.");
  await show();
});
$("logout").addEventListener("click", async () => {
  await say(await post("auth/logout"), "Logged out.");
  await show();
});
show();
</script>
</body>
</html>
"""


def create_app(config: Optional[Dict[str, Any]] = None) -> Flask:
    """Build the app; ``config`` overrides settings (tests use it)."""
    app = Flask(__name__)
    app.config.update(
        # The header for API clients (curl), cookies with CSRF for the browser page.
        JWT_TOKEN_LOCATION=["headers", "cookies"],
        JWT_REFRESH_URL_RULE="/auth/refresh",
        JWT_LOGOUT_URL_RULE="/auth/logout",
    )
    app.config.update(config or {})
    if not app.config.get("SECRET_KEY"):
        # Tokens are signed with SECRET_KEY (or JWT_SECRET_KEY if set). Without
        # SECRET_KEY in the environment, a key is made once and kept in the
        # instance folder: every worker of this host signs with it.
        app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY") or instance_secret(app)

    JWT(app, authenticate, identity)  # adds POST /auth

    api = Api(app)
    api.add_resource(Public, "/public")
    api.add_resource(Private, "/private")
    api.add_resource(WhoAmI, "/whoami")
    api.add_resource(Predict, "/predict")

    @app.route("/")
    def page() -> Response:
        return Response(PAGE, mimetype="text/html")

    # The same protection on a plain Flask view, for comparison.
    @app.route("/hello")
    @jwt_required()
    def hello():
        return jsonify(message="Hello, %s!" % current_identity.username)

    return app


app = create_app()


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "5000"))
    login = """'{"username": "alice", "password": "wonderland"}'"""
    print(
        "Serving on http://127.0.0.1:%d - log in with: curl -X POST http://127.0.0.1:%d/auth "
        "-H 'Content-Type: application/json' -d %s" % (port, port, login),
        flush=True,
    )
    app.run(host="127.0.0.1", port=port, debug=False)
