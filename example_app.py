"""A small token-protected API, in the shape of the Flask-JWT tutorial.

Run it::

    python example_app.py                 # serves on http://127.0.0.1:5000
    PORT=8000 SECRET_KEY=... python example_app.py

Try it with curl::

    # 1. log in: POST /auth with a JSON body, get {"access_token": "..."}
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

Routes: GET /public (anyone), GET /private and GET /whoami (token needed),
POST /predict (token with the "predict" permission), all Flask-RESTful
resources, and GET /hello, the same check on a plain Flask view. Users:
alice/wonderland (may predict) and bob/builder. Tokens live 5 minutes
(JWT_EXPIRATION_DELTA).
"""

from __future__ import annotations

import os
import secrets
from typing import Any, Dict, Optional, Tuple

from flask import Flask, jsonify, request
from flask_restful import Api, Resource
from werkzeug.security import check_password_hash, generate_password_hash

from flask_tokenauth import JWT, current_identity, jwt_required


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


def create_app(config: Optional[Dict[str, Any]] = None) -> Flask:
    """Build the app; ``config`` overrides settings (tests use it)."""
    app = Flask(__name__)
    # Tokens are signed with SECRET_KEY (or JWT_SECRET_KEY if set). Without
    # SECRET_KEY in the environment a random key is made: tokens then die
    # with the process.
    app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY") or secrets.token_hex(32)
    app.config.update(config or {})

    JWT(app, authenticate, identity)  # adds POST /auth

    api = Api(app)
    api.add_resource(Public, "/public")
    api.add_resource(Private, "/private")
    api.add_resource(WhoAmI, "/whoami")
    api.add_resource(Predict, "/predict")

    # The same protection on a plain Flask view, for comparison.
    @app.route("/hello")
    @jwt_required()
    def hello():
        return jsonify(message="Hello, %s!" % current_identity.username)

    return app


app = create_app()


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "5000"))
    if not os.environ.get("SECRET_KEY"):
        print("Note: no SECRET_KEY set, using a random one: tokens die with this process.")
    login = """'{"username": "alice", "password": "wonderland"}'"""
    print(
        "Serving on http://127.0.0.1:%d - log in with: curl -X POST http://127.0.0.1:%d/auth "
        "-H 'Content-Type: application/json' -d %s" % (port, port, login),
        flush=True,
    )
    app.run(host="127.0.0.1", port=port, debug=False)
