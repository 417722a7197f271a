"""What only the SQLite store does (the contract it shares with the others is
in test_store_contract.py): its URL forms, sibling OS processes on one file
(a revocation seen on the very next lookup, one winner of a refresh race),
forks, a file deleted or replaced, bounded growth, a locked or damaged file
as 503, a network filesystem refused, and an app's instance folder."""

from __future__ import annotations

import logging
import multiprocessing
import os
import sqlite3
import time
import warnings

import pytest

from flask_tokenauth import ConfigurationError
from flask_tokenauth.store import StateLost, TokenRef, open_store
from flask_tokenauth.store.sqlite import SQLiteStore, filesystem_of, path_of
from tests.conftest import auth_header, login, make_app
from tests.sessions_support import REVOKED, login_pair, refresh_with
from tests.sqlite_support import race_rotation, sibling

SPAWN = multiprocessing.get_context("spawn")
JOE = {"username": "joe", "password": "pass"}


def ref(jti: str = "j1", family: str = "f1", identity: str = "i:1") -> TokenRef:
    return TokenRef(jti, family, identity)


@pytest.fixture(name="path")
def path_fixture(tmp_path) -> str:
    return str(tmp_path / "store.sqlite3")


@pytest.fixture(name="store")
def store_fixture(path):
    made = SQLiteStore(path, timeout=0.5, cache_size=1000)
    made.prepare()
    try:
        yield made
    finally:
        made.close()


# --- URL forms ---------------------------------------------------------------------


def test_relative_paths_are_in_the_instance_folder_and_four_slashes_are_absolute(tmp_path):
    assert path_of("sqlite:///tokens.sqlite3", "/srv/app/instance") == "/srv/app/instance/tokens.sqlite3"
    assert path_of("sqlite:///data/t.db", "/srv/app/instance") == "/srv/app/instance/data/t.db"
    assert path_of("sqlite:////var/lib/app/t.db", "/srv/app/instance") == "/var/lib/app/t.db"
    store = open_store("sqlite:///t.sqlite3", instance_path=str(tmp_path / "inst"), cache_size=10)
    assert isinstance(store, SQLiteStore) and store.path == str(tmp_path / "inst" / "t.sqlite3")
    assert store.description == "sqlite:///" + store.path


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///", "sqlite://host/x.db", "sqlite:///x.db?mode=ro", "sqlite:///dir/"]
)
def test_urls_that_name_no_file_are_configuration_errors(url):
    with pytest.raises(ConfigurationError) as caught:
        open_store(url, instance_path="/tmp")
    assert "JWT_TOKEN_STORE" in str(caught.value)


def test_the_file_and_its_wal_are_readable_by_their_owner_only(store, path):
    store.revoke_token(ref(), 60)
    for suffix in ("", "-wal", "-shm"):
        assert os.stat(path + suffix).st_mode & 0o777 == 0o600, suffix


def test_init_app_opens_a_relative_file_under_the_instance_folder(tmp_path):
    from flask import Flask

    from flask_tokenauth import JWT

    app = Flask("served", instance_path=str(tmp_path / "instance"))
    app.config.update(SECRET_KEY="s" * 40, JWT_TOKEN_STORE="sqlite:///sessions.sqlite3")
    JWT(app, lambda u, p: None, lambda payload: None)
    assert os.path.exists(tmp_path / "instance" / "sessions.sqlite3")


# --- sibling processes --------------------------------------------------------------


def test_a_revocation_is_seen_by_a_sibling_process_on_its_very_next_lookup(store, path):
    commands, answers = SPAWN.Queue(), SPAWN.Queue()
    child = SPAWN.Process(target=sibling, args=(path, commands, answers))
    child.start()
    try:
        for round_ in range(5):
            jti = "tok-%d" % round_
            commands.put(("lookup", jti))
            assert answers.get(timeout=20) == (False, False, None)  # read, and cached by the sibling
            commands.put(("lookup", jti))
            assert answers.get(timeout=20) == (False, False, None)
            store.revoke_token(TokenRef(jti, "fam-" + jti, "i:1"), 60)  # then revoked here
            commands.put(("lookup", jti))
            assert answers.get(timeout=20) == (True, False, None)
        store.revoke_identity(TokenRef(identity="i:1"), 12.5, 60)
        commands.put(("lookup", "tok-x"))
        assert answers.get(timeout=20) == (False, False, 12.5)
    finally:
        commands.put(None)
        child.join(20)
    assert child.exitcode == 0


def test_of_eight_processes_spending_one_refresh_token_exactly_one_wins(store, path):
    start, results = SPAWN.Event(), SPAWN.Queue()
    children = [SPAWN.Process(target=race_rotation, args=(path, i, start, results)) for i in range(8)]
    for child in children:
        child.start()
    time.sleep(1.0)  # every child has opened its store
    start.set()
    outcomes = dict(results.get(timeout=30) for _ in children)
    for child in children:
        child.join(20)
        assert child.exitcode == 0
    winners = [i for i, outcome in outcomes.items() if outcome is None]
    assert len(winners) == 1, outcomes
    assert set(outcomes.values()) - {None} == {"record-%d" % winners[0]}


def test_a_forked_child_opens_its_own_connections_and_the_parent_keeps_working(store):
    store.revoke_token(ref("before"), 60)
    assert store.lookup(ref("before")).token_revoked
    parent_reader = store._reader
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: this child only uses SQLite
        pid = os.fork()
    if pid == 0:  # the child: its own connection, the parent's writes visible, its own write lands
        code = 1
        try:
            ok = store.lookup(ref("before")).token_revoked and store._reader is not parent_reader
            store.revoke_token(ref("from-child"), 60)
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert store._reader is parent_reader
    assert store.lookup(ref("from-child")).token_revoked  # the child's write, seen here at once


# --- the file ------------------------------------------------------------------------


def test_a_deleted_file_is_noticed_on_the_next_lookup_and_older_tokens_are_refused(store, path, caplog):
    caplog.set_level(logging.WARNING, "flask_tokenauth")
    first = store.lookup(ref()).epoch
    store.revoke_token(ref("gone"), 60)
    time.sleep(1.1)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    status = store.lookup(ref("gone"))
    assert not status.token_revoked and status.epoch > first  # a new file, a later epoch
    assert any("the file was deleted or replaced" in record.getMessage() for record in caplog.records)
    other = SQLiteStore(path)
    other.prepare()
    assert other.lookup(ref()).epoch == status.epoch  # every process agrees on the new file
    other.close()


def test_the_default_file_refuses_nothing_older_until_a_process_loses_it(tmp_path):
    # The file an app moves to (JWT_TOKEN_STORE unset) starts with no epoch; a
    # process that had it open and finds it deleted moves the epoch to now,
    # even when another process made the new file first.
    path = str(tmp_path / "tokenauth.sqlite3")
    first = SQLiteStore(path, fresh_start=True)
    first.prepare()
    assert first.lookup(ref()).epoch == 0.0
    time.sleep(1.1)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    second = SQLiteStore(path, fresh_start=True)  # a worker started after the deletion
    second.prepare()
    assert second.lookup(ref()).epoch == 0.0
    lost = first.lookup(ref()).epoch
    assert lost > time.time() - 5  # the process that lost its file knows
    assert second.lookup(ref()).epoch == lost  # and tells every other one
    first.close()
    second.close()


def test_a_refresh_racing_a_replaced_file_is_state_lost(store, path):
    assert store.rotate(ref(), "r0", "r1", "rec", 60) is None
    time.sleep(1.1)
    os.replace(path, path + ".old")
    with pytest.raises(StateLost):
        store.rotate(ref(), "r1", "r2", "rec2", 60)


def test_expired_rows_are_swept_in_bounded_batches(store, path):
    for n in range(300):
        store.revoke_token(ref("short-%d" % n), 0.2)
    store.revoke_token(ref("long"), 60)
    assert len(store) == 301
    time.sleep(0.3)
    assert not store.lookup(ref("short-1")).token_revoked  # expired: ignored at once
    store.sweep()
    assert len(store) == 1
    assert store.lookup(ref("long")).token_revoked


def test_writes_sweep_as_they_come(store):
    for n in range(300):
        store.first_use("proof-%d" % n, 0.1)
    time.sleep(0.2)
    for n in range(300):  # the 256th write of this process sweeps
        store.first_use("later-%d" % n, 60)
    assert len(store) < 500


def test_a_write_lock_held_past_the_timeout_is_a_store_error_and_the_app_answers_503(tmp_path):
    path = str(tmp_path / "locked.sqlite3")
    app = make_app(
        {
            "JWT_REFRESH_URL_RULE": "/auth/refresh",
            "JWT_LOGOUT_URL_RULE": "/auth/logout",
            "JWT_TOKEN_STORE": "sqlite:///" + path,
            "JWT_TOKEN_STORE_TIMEOUT": 0.3,
        }
    )
    client = app.test_client()
    access, refresh = login_pair(client)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        started = time.monotonic()
        writes = [client.post("/auth/logout", headers=auth_header(access)), refresh_with(client, refresh)]
        for answer in writes:
            assert answer.status_code == 503
            assert answer.get_json() == {
                "status_code": 503,
                "error": "Service Unavailable",
                "description": "The token store is unreachable; try again shortly",
            }
        assert time.monotonic() - started < 3.0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert client.post("/auth/logout", headers=auth_header(access)).status_code == 200
    assert client.get("/protected", headers=auth_header(access)).get_json() == REVOKED


def test_a_damaged_file_is_refused_at_init_app_and_never_a_500_while_serving(tmp_path):
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"this is not an SQLite database" * 200)
    with pytest.raises(ConfigurationError) as caught:
        make_app({"JWT_TOKEN_STORE": "sqlite:///" + str(bad)})
    assert "cannot be opened" in str(caught.value)

    good = str(tmp_path / "good.sqlite3")
    app = make_app({"JWT_TOKEN_STORE": "sqlite:///" + good})
    client = app.test_client()
    token = login(client)
    assert client.get("/protected", headers=auth_header(token)).status_code == 200
    with open(good, "r+b") as damaged:  # damaged under the running app
        damaged.write(b"garbage" * 600)
    answers = [client.get("/protected", headers=auth_header(token)), client.post("/auth", json=JOE)]
    answers.append(client.post("/auth/logout", headers=auth_header(token)))
    for answer in answers:  # what SQLite still holds in memory, or a 503: never a 500
        assert answer.status_code in (200, 404, 503), answer
        assert answer.status_code != 503 or answer.get_json()["status_code"] == 503


def test_a_folder_that_cannot_hold_the_file_is_a_configuration_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ConfigurationError) as caught:
        make_app({"JWT_TOKEN_STORE": "sqlite:///" + str(blocker / "store.sqlite3")})
    assert "cannot be opened" in str(caught.value)


# --- one host only ----------------------------------------------------------------


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:40 / /mnt/share rw,relatime shared:2 - nfs4 server:/export rw,vers=4.2
31 30 0:41 / /mnt/share/local rw shared:3 - tmpfs tmpfs rw
32 22 0:42 / /mnt/with\\040space rw - cifs //srv/x rw
"""


def test_the_filesystem_of_a_path_is_read_from_mountinfo(tmp_path):
    table = tmp_path / "mountinfo"
    table.write_text(MOUNTINFO)
    assert filesystem_of("/mnt/share/app/t.db", str(table)) == "nfs4"
    assert filesystem_of("/mnt/share/local/t.db", str(table)) == "tmpfs"  # the deepest mount wins
    assert filesystem_of("/mnt/with space/t.db", str(table)) == "cifs"
    assert filesystem_of("/srv/t.db", str(table)) == "ext4"
    assert filesystem_of("/srv/t.db", str(tmp_path / "missing")) is None  # not Linux: cannot tell
    assert filesystem_of(str(tmp_path)) not in (None, "nfs", "nfs4", "cifs")  # this machine's own


def test_a_file_on_a_network_filesystem_is_refused(tmp_path, monkeypatch):
    import flask_tokenauth.store.sqlite as sqlite_store

    table = tmp_path / "mountinfo"
    table.write_text(MOUNTINFO.replace("/mnt/share", str(tmp_path / "share")))
    (tmp_path / "share").mkdir()
    real = sqlite_store.filesystem_of
    monkeypatch.setattr(sqlite_store, "filesystem_of", lambda path: real(path, str(table)))
    store = SQLiteStore(str(tmp_path / "share" / "t.sqlite3"))
    with pytest.raises(ConfigurationError) as caught:
        store.prepare()
    assert "network filesystem (nfs4)" in str(caught.value) and "redis://" in str(caught.value)
    assert not os.path.exists(tmp_path / "share" / "t.sqlite3")


# --- the app's counters ---------------------------------------------------------------


def test_login_counters_live_in_the_file(tmp_path):
    path = str(tmp_path / "throttle.sqlite3")
    app = make_app({"JWT_TOKEN_STORE": "sqlite:///" + path, "JWT_LOGIN_RATE_LIMIT": "2 per minute"})
    client = app.test_client()
    for _ in range(2):
        assert client.post("/auth", json={"username": "joe", "password": "no"}).status_code == 401
    assert client.post("/auth", json={"username": "joe", "password": "no"}).status_code == 429
    again = make_app({"JWT_TOKEN_STORE": "sqlite:///" + path, "JWT_LOGIN_RATE_LIMIT": "2 per minute"})
    # Another app process on the file: the same counters.
    answer = again.test_client().post("/auth", json={"username": "joe", "password": "pass"})
    assert answer.status_code == 429
    with sqlite3.connect(path) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM counters")]
    assert names and all("joe" not in name for name in names)  # usernames are hashed
