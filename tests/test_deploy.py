"""The tutorial's app deployed as users deploy it: real gunicorn with four
workers (with and without ``--preload``), werkzeug forking a child per
request, waitress's threads, over real sockets, with no store setting, with
``sqlite:///`` and with Redis.

For each, what a user sees: 40 of 40 requests with a logged-out token are
refused (any worker may take each), 10 of 10 replayed refresh tokens are
caught, and exactly 5 wrong passwords a minute reach the password check.
An app that chose ``memory://`` itself is refused writes (503) rather than
split; a Flask-JWT app as it was sees no difference, until it revokes a
token in code, which then holds in every worker.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pytest

from tests.served_support import FLASK_JWT_APP, Served, app_folder, tutorial_folder
from tests.sessions_support import (  # noqa: F401 - fixtures are used by name
    REUSED,
    REVOKED,
    redis_client_fixture,
    redis_server_fixture,
)

LIMIT = "5 per minute"
BAD_CREDENTIALS = {"status_code": 401, "error": "Bad Request", "description": "Invalid credentials"}


@pytest.fixture(name="folder")
def folder_fixture() -> Iterator[str]:
    folder = tutorial_folder()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def serve(folder: str, target: str = "served:app", **options) -> Served:
    # No SECRET_KEY from the environment: the tutorial must make its own key.
    env = {"SECRET_KEY": None, "TEST_JWT_LOGIN_RATE_LIMIT": LIMIT, **options.pop("env", {})}
    return Served(folder, target, env=env, **options).start()


def login(served: Served, username: str = "alice", password: str = "wonderland"):
    answer = served.call("POST", "/auth", body={"username": username, "password": password})
    assert answer.status == 200, (answer, served.log(None)[-3000:])
    return answer.json["access_token"], answer.json["refresh_token"]


def the_table(served: Served):
    """The issue's three columns: refused after logout (of 40), reuses caught
    (of 10), wrong passwords checked (limit 5). Each column's requests are
    sent 8 at a time, so that several workers take them."""
    access, _ = login(served)
    assert served.call("GET", "/profile", access).status == 200
    assert served.call("POST", "/auth/logout", access).status == 200
    with ThreadPoolExecutor(8) as pool:
        after = list(pool.map(lambda _: served.call("GET", "/profile", access), range(40)))
        refused = sum(1 for answer in after if answer.status == 401 and answer.json == REVOKED)

        # Logins one at a time: more than 5 at once from one address would
        # each be counted against the limit before their password is checked.
        sessions = [login(served)[1] for _ in range(10)]

        def replay(refresh: str) -> bool:
            assert served.call("POST", "/auth/refresh", refresh).status == 200
            again = served.call("POST", "/auth/refresh", refresh)
            return again.status == 401 and again.json == REUSED

        caught = sum(pool.map(replay, sessions))
        guesses = [{"username": "bob", "password": "guess%d" % n} for n in range(20)]
        wrong = list(pool.map(lambda guess: served.call("POST", "/auth", body=guess), guesses))
    checked = sum(1 for answer in wrong if answer.status == 401 and answer.json == BAD_CREDENTIALS)
    throttled = sum(1 for answer in wrong if answer.status == 429)
    assert checked + throttled == 20, [answer.status for answer in wrong]
    workers = {answer.headers.get("X-Worker") for answer in after + wrong}
    return (refused, caught, checked), len(workers)


@pytest.mark.parametrize(
    "server, workers, preload",
    [("gunicorn", 4, False), ("gunicorn", 4, True), ("werkzeug", 3, False), ("waitress", 1, False)],
    ids=["gunicorn -w 4", "gunicorn -w 4 --preload", "werkzeug processes=3", "waitress threads"],
)
def test_the_tutorial_with_no_store_setting_holds_in_every_worker(folder, server, workers, preload):
    served = serve(folder, server=server, workers=workers, preload=preload)
    try:
        table, answered_by = the_table(served)
        assert table == (40, 10, 5), served.log(None)[-3000:]
        assert answered_by >= (2 if server != "waitress" else 1)  # several processes really answered
        log = served.log(None)
        if server == "waitress":  # one process: memory, as before
            assert "JWT_TOKEN_STORE is unset: using sqlite" not in log
            assert not os.path.exists(os.path.join(folder, "instance", "tokenauth.sqlite3"))
        else:
            assert "JWT_TOKEN_STORE is unset: using sqlite:///%s" % os.path.join(
                folder, "instance", "tokenauth.sqlite3"
            ) in log
        # One key for every worker, made once in the instance folder.
        assert log.count("made a secret key for this app in %s" % os.path.join(
            folder, "instance", "tokenauth-secret.key")) == 1
        assert "Signature verification failed" not in log
        assert "Traceback" not in log
    finally:
        served.close()


def test_an_explicit_sqlite_store_and_a_restart_of_every_worker(folder):
    env = {"TEST_JWT_TOKEN_STORE": "sqlite:///tokens.sqlite3"}
    served = serve(folder, env=env)
    try:
        access, refresh = login(served)
        assert served.call("POST", "/auth/logout", access).status == 200
        assert the_table(served)[0] == (40, 10, 5)
        assert os.path.exists(os.path.join(folder, "instance", "tokens.sqlite3"))
        assert "JWT_TOKEN_STORE is unset" not in served.log(None)
    finally:
        served.close()
    again = serve(folder, env=env)  # every worker restarted: the logout holds
    try:
        answers = [again.call("GET", "/profile", access) for _ in range(10)]
        assert [answer.json for answer in answers] == [REVOKED] * 10
        assert again.call("POST", "/auth/refresh", refresh).json == REVOKED
    finally:
        again.close()


def test_the_tutorial_on_redis(folder, redis_server, redis_client):
    served = serve(folder, env={"TEST_JWT_TOKEN_STORE": redis_server.url})
    try:
        assert the_table(served)[0] == (40, 10, 5)
        assert not os.path.exists(os.path.join(folder, "instance", "tokenauth.sqlite3"))
    finally:
        served.close()


def _with_line(folder: str, line: str) -> None:
    """Add ``line`` to the tutorial's settings, before ``JWT(app, ...)``."""
    path = os.path.join(folder, "tutorial.py")
    with open(path, encoding="utf-8") as source:
        text = source.read()
    marker = "jwt = JWT(app, authenticate, identity)"
    assert marker in text
    with open(path, "w", encoding="utf-8") as out:
        out.write(text.replace(marker, line + "\n" + marker))


def test_memory_chosen_explicitly_refuses_writes_rather_than_split(folder):
    _with_line(folder, 'app.config["JWT_TOKEN_STORE"] = "memory://"')
    served = serve(folder, env={"TEST_JWT_LOGIN_RATE_LIMIT": ""})
    try:
        access, refresh = login(served)  # no limit: nothing is written
        assert served.call("GET", "/profile", access).status == 200
        writes = [served.call("POST", "/auth/logout", access), served.call("POST", "/auth/refresh", refresh)]
        for answer in writes:
            assert answer.status == 503, answer
            assert answer.json == {
                "status_code": 503,
                "error": "Service Unavailable",
                "description": "The token store is unreachable; try again shortly",
            }
        answers = [served.call("GET", "/profile", access) for _ in range(20)]
        assert {answer.status for answer in answers} == {200}  # nothing was revoked anywhere
        assert "JWT_TOKEN_STORE is memory://, which each process keeps for itself" in served.log(None)
        assert not os.path.exists(os.path.join(folder, "instance", "tokenauth.sqlite3"))
    finally:
        served.close()
    limited = serve(folder)  # and a login limit counted in each worker's memory
    try:
        answer = limited.call("POST", "/auth", body={"username": "alice", "password": "wonderland"})
        assert answer.status == 503 and answer.json["status_code"] == 503
        assert "login throttle" in limited.log(None)
    finally:
        limited.close()


@pytest.fixture(name="flask_jwt_folder")
def flask_jwt_folder_fixture() -> Iterator[str]:
    folder = app_folder({"plain.py": FLASK_JWT_APP})
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_flask_jwt_app_sees_no_difference_until_it_revokes_in_code(flask_jwt_folder):
    env = {"SECRET_KEY": "s" * 40, "TEST_JWT_LOGIN_RATE_LIMIT": ""}
    served = serve(flask_jwt_folder, "plain:app", env=env)
    store = os.path.join(flask_jwt_folder, "instance", "tokenauth.sqlite3")
    try:
        tokens = [_plain_login(served) for _ in range(3)]
        for token in tokens:
            assert {served.call("GET", "/protected", token).status for _ in range(8)} == {200}
        assert not os.path.exists(store)  # memory, as before: nothing on disk
        assert "JWT_TOKEN_STORE is unset" not in served.log(None)

        assert served.call("POST", "/my-logout", tokens[0]).status == 200
        assert os.path.exists(store)
        answers = [served.call("GET", "/protected", tokens[0]) for _ in range(40)]
        assert [answer.json for answer in answers] == [REVOKED] * 40
        assert {served.call("GET", "/protected", tokens[1]).status for _ in range(8)} == {200}
    finally:
        served.close()


def _plain_login(served: Served) -> str:
    answer = served.call("POST", "/auth", body={"username": "joe", "password": "pass"})
    assert answer.status == 200, answer
    assert set(answer.json) == {"access_token"}  # Flask-JWT's answer, unchanged
    return answer.json["access_token"]


def test_processes_signing_with_different_keys_are_named_in_the_log(folder):
    # The mistake the tutorial used to make: a key made by each process.
    path = os.path.join(folder, "tutorial.py")
    with open(path, encoding="utf-8") as source:
        text = source.read()
    made_here = "__import__('secrets').token_hex(32)"
    text = text.replace('os.environ.get("SECRET_KEY") or instance_secret(app)', made_here)
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)
    served = serve(folder)
    try:
        statuses = set()
        for _ in range(12):  # logins on several workers, each signing with its own key
            access, _ = login(served)
            statuses |= {served.call("GET", "/profile", access).status for _ in range(4)}
        assert 401 in statuses  # the split the warning explains
        assert "processes of this app sign tokens with different keys" in served.log(None)
    finally:
        served.close()
