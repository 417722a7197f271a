"""Apps served as users deploy them: real gunicorn (several workers, with and
without ``--preload``), werkzeug forking a process per request, waitress
(threads), spoken to over real sockets (a helper, not a test module).

``Served(app_dir, "module:app", server="gunicorn", workers=4)`` starts the
server in ``app_dir`` on a free loopback port and waits until it answers;
``log()`` is what it printed, ``stop()`` ends it. The apps are copies in a
temporary folder, so their instance folders (secret key, SQLite store) are
made there, never in the repository.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional

import pytest

from tests.redis_server import free_port, in_ci
from tests.sessions_support import REPO_ROOT, HTTPAnswer, ServerProcess, http

TUTORIAL = os.path.join(REPO_ROOT, "docs", "examples", "tutorial.py")

#: Added beside the tutorial: the same app, with settings a test chooses from
#: the environment (after ``JWT(app, ...)``, as an app may change them), and
#: the answering process's id in ``X-Worker`` and at ``/pid``.
SERVED_TUTORIAL = '''
import os
import time

from tutorial import app

for key in ("JWT_LOGIN_RATE_LIMIT", "JWT_TOKEN_STORE"):
    if os.environ.get("TEST_" + key):
        app.config[key] = os.environ["TEST_" + key]


@app.before_request
def a_moment():
    # Each answer takes 20 ms, so that requests sent 8 at a time are taken by
    # several workers (one fast worker would otherwise take them all).
    time.sleep(0.02)


@app.after_request
def worker(response):
    response.headers["X-Worker"] = str(os.getpid())
    return response


@app.route("/pid")
def pid():
    return {"pid": os.getpid()}
'''

#: A Flask-JWT app as it was (no refresh, logout, limit or DPoP), with a
#: logout view of its own that revokes the token in code.
FLASK_JWT_APP = '''
import os

from flask import Flask, jsonify, request

from flask_tokenauth import JWT, current_identity, jwt_required

USERS = {"joe": (1, "pass")}


def authenticate(username, password):
    found = USERS.get(username)
    return {"id": found[0]} if found and found[1] == password else None


def identity(payload):
    return {"id": payload["identity"]}


app = Flask(__name__)
app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
jwt = JWT(app, authenticate, identity)


@app.route("/protected")
@jwt_required()
def protected():
    return jsonify(id=current_identity["id"])


@app.route("/my-logout", methods=["POST"])
@jwt_required()
def my_logout():
    jwt.revoke(request.headers["Authorization"].split(" ", 1)[1])
    return jsonify(message="bye")


@app.route("/pid")
def pid():
    return {"pid": os.getpid()}
'''

#: werkzeug's development server with ``processes=N``: one forked child per request.
WERKZEUG_FORKING = '''
import importlib
import sys

from werkzeug.serving import run_simple

module, name = sys.argv[2].split(":")
run_simple("127.0.0.1", int(sys.argv[1]), getattr(importlib.import_module(module), name),
           processes=int(sys.argv[3]), threaded=False)
'''


def gunicorn_binary() -> str:
    found = shutil.which("gunicorn") or os.path.join(os.path.dirname(sys.executable), "gunicorn")
    if not os.access(found, os.X_OK):
        if in_ci():
            pytest.fail("gunicorn is not installed (pip install gunicorn): required under CI=true")
        pytest.skip("gunicorn is not installed")
    return found


def app_folder(files: Dict[str, str]) -> str:
    """A new temporary folder holding ``files`` (name -> text); the caller removes it."""
    folder = tempfile.mkdtemp(prefix="tokenauth-served-")
    for name, text in files.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as out:
            out.write(text)
    return folder


def tutorial_folder() -> str:
    """The tutorial's ``tutorial.py`` as written, beside ``served.py``."""
    with open(TUTORIAL, encoding="utf-8") as source:
        return app_folder({"tutorial.py": source.read(), "served.py": SERVED_TUTORIAL})


class Served(ServerProcess):
    """A real server process for the app ``target`` (``module:app``) in ``folder``."""

    START_TIMEOUT = 20.0
    READY_PATH = "/pid"

    def __init__(
        self,
        folder: str,
        target: str,
        *,
        server: str = "gunicorn",
        workers: int = 4,
        preload: bool = False,
        env: Optional[Dict[str, Optional[str]]] = None,
    ) -> None:
        super().__init__()
        self.folder = folder
        self.target = target
        self.server = server
        self.workers = workers
        self.preload = preload
        self.env = dict(env or {})

    def command(self) -> List[str]:
        if self.server == "gunicorn":
            return [
                gunicorn_binary(), "-w", str(self.workers), "-b", "127.0.0.1:%d" % self.port,
                "--graceful-timeout", "2", *(["--preload"] if self.preload else []), self.target,
            ]
        if self.server == "werkzeug":
            script = os.path.join(self.folder, "werkzeug_forking.py")
            with open(script, "w", encoding="utf-8") as out:
                out.write(WERKZEUG_FORKING)
            return [sys.executable, script, str(self.port), self.target, str(self.workers)]
        if self.server == "waitress":
            return [
                sys.executable, "-m", "waitress", "--listen=127.0.0.1:%d" % self.port,
                "--threads=8", self.target,
            ]
        raise ValueError(self.server)

    def start(self) -> Served:
        for _ in range(3):  # a port taken between free_port() and bind: try another
            self.port = free_port()
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([self.folder, REPO_ROOT]), **self.env)
            env = {name: value for name, value in env.items() if value is not None}  # None: unset
            self.spawn(self.command(), self.folder, env)
            if self.wait_ready() and self._wait_workers():
                return self
            log = self.log(None)
            self.stop()
            if "Address already in use" not in log:
                raise RuntimeError("%s did not start:\n%s" % (self.server, log))
        raise RuntimeError("%s did not start: no free port" % self.server)

    def _wait_workers(self) -> bool:
        """gunicorn: until every worker has booted (the first answers before the others)."""
        if self.server != "gunicorn":
            return True
        deadline = time.monotonic() + self.START_TIMEOUT
        while self.log(None).count("Booting worker with pid") < self.workers:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def close(self) -> None:
        self.stop()

    # requests, each on a new connection (so that any worker may take it)
    def call(self, method: str, path: str, token: Optional[str] = None, body: Any = None) -> HTTPAnswer:
        return http(method, self.url + path, token=token, json_body=body)

    def pids(self, count: int = 40) -> set:
        """The processes that answered ``count`` requests sent 8 at a time."""
        with ThreadPoolExecutor(8) as pool:
            return set(pool.map(lambda _: self.call("GET", "/pid").json["pid"], range(count)))
