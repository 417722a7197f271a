"""The tutorial's API: Flask-RESTful resources that need a token."""

import os
from dataclasses import dataclass, field
from typing import List

from flask import Flask, request
from flask_restful import Api, Resource
from werkzeug.security import check_password_hash, generate_password_hash

from flask_tokenauth import JWT, current_identity, instance_secret, jwt_required


@dataclass
class User:
    id: int
    username: str
    password_hash: str
    permissions: List[str] = field(default_factory=list)


USERS = [
    User(1, "alice", generate_password_hash("wonderland"), ["predict"]),
    User(2, "bob", generate_password_hash("builder")),
]
USERS_BY_NAME = {user.username: user for user in USERS}
USERS_BY_ID = {user.id: user for user in USERS}
# Checked for unknown usernames too, so that the time an answer takes does not
# tell which usernames exist.
DUMMY_HASH = generate_password_hash("not a password of anyone")


def authenticate(username, password):
    """Called by POST /auth: the user, or None for wrong credentials."""
    user = USERS_BY_NAME.get(username)
    password_ok = check_password_hash(user.password_hash if user else DUMMY_HASH, password)
    return user if user and password_ok else None


def identity(payload):
    """Called on every protected request: the user the token names."""
    return USERS_BY_ID.get(payload["identity"])


app = Flask(__name__)
# Signs the tokens. Without SECRET_KEY in the environment, a key is made once
# and kept in the instance folder, so every worker process shares it.
app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY") or instance_secret(app)
app.config["JWT_REFRESH_URL_RULE"] = "/auth/refresh"
app.config["JWT_LOGOUT_URL_RULE"] = "/auth/logout"
jwt = JWT(app, authenticate, identity)
api = Api(app)


class Profile(Resource):
    method_decorators = [jwt_required()]

    def get(self):
        return {"id": current_identity.id, "username": current_identity.username}


class Prediction(Resource):
    method_decorators = [jwt_required(permissions=["predict"])]

    def post(self):
        features = (request.get_json(silent=True) or {}).get("features", [])
        return {"score": sum(features) / max(len(features), 1)}


api.add_resource(Profile, "/profile")
api.add_resource(Prediction, "/predict")

if __name__ == "__main__":
    app.run()
