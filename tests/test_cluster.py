"""The store on a real Redis Cluster (3 masters, 3 replicas): one command on
one node per check, client objects and URL mistakes, and the cluster's own
faults under load (a master killed or frozen, slots moved, every master
flushed), with two app processes spoken to over HTTP.

Every cluster test shares one cluster (``redis_cluster``, started once per run);
``cluster`` hands it over healed and emptied. The apps use
``redis+cluster://`` with one seed node.
"""

from __future__ import annotations

import itertools
import threading
import time
from functools import partial
from typing import Dict, Iterator, List, Tuple

import pytest

from flask_tokenauth import ConfigurationError
from tests.cluster_support import (  # noqa: F401 - fixtures are used by name
    cluster_fixture,
    command_calls,
    group_stem,
    identity_slot,
)
from tests.conftest import auth_header, login, make_app
from tests.redis_cluster import LocalCluster
from tests.sessions_support import (  # noqa: F401 - fixtures are used by name
    REUSED,
    REVOKED,
    AppProcess,
    HTTPAnswer,
    close_app_store,
    redis_server_fixture,
    run_together,
    serving,
    wait_next_second,
    while_frozen,
)

STORE_TIMEOUT = 1.0
LIMIT = "3 per minute"
JOE, ANN = "i:1", "i:2"  # how the store names the tutorial's users


@pytest.fixture(scope="module", name="apps")
def apps_fixture(redis_cluster: LocalCluster) -> Iterator[Tuple[AppProcess, AppProcess]]:
    """Two app processes (A and B) on the cluster, logins throttled at 3 failures a minute."""
    with serving(redis_cluster.url, count=2, store_timeout=STORE_TIMEOUT, rate_limit=LIMIT) as (a, b):
        yield a, b


@pytest.fixture(name="ab")
def ab_fixture(apps, cluster) -> Tuple[AppProcess, AppProcess]:
    return apps


def assert_refused(answer: HTTPAnswer, body) -> None:
    assert answer.status == 401, answer
    assert answer.json == body


# --- what a request costs -------------------------------------------------------------------
#
# The session behaviours across two processes (logout, rotation and reuse, "log out
# everywhere", the refresh races, the shared throttle) run on this cluster in
# test_sessions_multiprocess.py, beside a single redis-server.


def test_a_protected_request_is_one_command_on_one_node_then_none(ab, cluster):
    a, b = ab
    access, _ = a.login()
    before = command_calls(cluster, "MGET")
    assert b.get("/protected", access).status == 200
    after = command_calls(cluster, "MGET")
    deltas = [later - earlier for earlier, later in zip(before, after)]
    assert sorted(deltas) == [0, 0, 1], deltas  # the first check: one MGET on one node
    time.sleep(0.3)  # the process' invalidation listeners have answered a heartbeat
    assert b.get("/protected", access).status == 200
    assert command_calls(cluster, "MGET") == after  # seen before: answered from the cache


# --- client objects and settings ----------------------------------------------------------


def test_a_redis_cluster_client_object_serves_revocation_and_a_shared_throttle(cluster):
    client = cluster.client(socket_timeout=30)
    config = {
        "JWT_TOKEN_STORE": client,
        "JWT_LOGOUT_URL_RULE": "/auth/logout",
        "JWT_LOGIN_RATE_LIMIT": "2 per minute",
    }
    apps = [make_app(config), make_app(config)]
    try:
        first, second = (app.test_client() for app in apps)
        token = login(first)
        assert second.get("/protected", headers=auth_header(token)).status_code == 200
        assert first.post("/auth/logout", headers=auth_header(token)).status_code == 200
        assert second.get("/protected", headers=auth_header(token)).get_json() == REVOKED
        # failed logins counted in the cluster, not per app: the second app sees the first's
        assert first.post("/auth", json={"username": "ann", "password": "x"}).status_code == 401
        assert second.post("/auth", json={"username": "ann", "password": "x"}).status_code == 401
        assert first.post("/auth", json={"username": "ann", "password": "x"}).status_code == 429
        store = apps[0].extensions["flask_tokenauth"].store()
        assert store.link.cluster and store.link.options["socket_timeout"] == 1.0  # the store's timeout
    finally:
        for app in apps:
            close_app_store(app)
        client.close()


def test_a_redis_url_naming_a_cluster_node_fails_at_init_app(cluster):
    with pytest.raises(ConfigurationError) as caught:
        make_app({"JWT_TOKEN_STORE": "redis://127.0.0.1:%d/0" % cluster.masters()[0]})
    assert "redis+cluster://" in str(caught.value)


def test_a_cluster_url_naming_a_plain_redis_fails_at_init_app(redis_server):
    with pytest.raises(ConfigurationError) as caught:
        make_app({"JWT_TOKEN_STORE": "redis+cluster://127.0.0.1:%d" % redis_server.port})
    assert "cluster" in str(caught.value).lower()


def test_a_frozen_master_is_a_503_within_the_timeout(cluster):
    app = make_app({"JWT_TOKEN_STORE": cluster.url, "JWT_TOKEN_STORE_TIMEOUT": 0.5})
    try:
        client = app.test_client()
        token = login(client)  # not checked yet: no cache holds it
        owner = cluster.slot_owner(identity_slot(JOE))
        answer, elapsed = while_frozen(
            partial(cluster.freeze, owner),
            partial(cluster.thaw, owner),
            lambda: client.get("/protected", headers=auth_header(token)),
        )
        assert answer.status_code == 503, answer.get_json()
        assert answer.get_json()["error"] == "Service Unavailable"
        assert elapsed < 0.5 + 0.5, elapsed  # the timeout, never redis-py's retries on top
        deadline = time.monotonic() + 10
        while client.get("/protected", headers=auth_header(token)).status_code != 200:
            assert time.monotonic() < deadline, "no recovery after the thaw"
            time.sleep(0.1)
    finally:
        close_app_store(app)


# --- faults under load ---------------------------------------------------------------------


class Background:
    """Threads running ``_run(n)`` from ``with`` to its end, recording answers."""

    def __init__(self, apps: Tuple[AppProcess, AppProcess], threads: int) -> None:
        self.apps = apps
        self.answers: List[Tuple[str, int, Dict]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def _run(self, n: int) -> None:
        raise NotImplementedError

    def __enter__(self) -> Background:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)


class Load(Background):
    """Threads that keep asking both apps about valid and revoked tokens, and
    record every answer as (expected, status)."""

    def __init__(self, apps: Tuple[AppProcess, AppProcess], valid: List[str], revoked: List[str]) -> None:
        super().__init__(apps, 4)
        self.cases = [("valid", t) for t in valid] + [("revoked", t) for t in revoked]

    def _run(self, n: int) -> None:
        for i in itertools.count(n):
            if self._stop.is_set():
                return
            kind, token = self.cases[i % len(self.cases)]
            answer = self.apps[i % 2].get("/protected", token)
            self.answers.append((kind, answer.status, answer.json))

    def statuses(self, kind: str) -> List[int]:
        return [status for seen, status, _ in self.answers if seen == kind]


def tokens_for_load(a: AppProcess, b: AppProcess) -> Tuple[List[str], List[str]]:
    """Valid and revoked access tokens of both users (their groups on two masters or more)."""
    valid = [a.login()[0], b.login("ann", "secret")[0]]
    revoked = []
    for app, user in ((a, ("joe", "pass")), (b, ("ann", "secret"))):
        access, _ = app.login(*user)
        answer = app.post("/auth/logout", access)
        assert answer.status == 200, (answer.json, app.log()[-1500:])
        revoked.append(access)
    return valid, revoked


def assert_load_answers(load: Load, allow_503: bool) -> None:
    allowed = {200, 503} if allow_503 else {200}
    valid, revoked = load.statuses("valid"), load.statuses("revoked")
    assert valid and revoked
    assert set(valid) <= allowed, sorted(set(valid))
    assert set(revoked) <= ({401, 503} if allow_503 else {401}), sorted(set(revoked))
    for _, status, body in load.answers:
        if status == 401:
            assert body == REVOKED
        if status == 503:
            assert body["error"] == "Service Unavailable"


def test_a_master_killed_under_load_gives_only_200_401_503_and_service_resumes(ab, cluster):
    a, b = ab
    valid, revoked = tokens_for_load(a, b)
    victim = cluster.slot_owner(identity_slot(JOE))
    with Load((a, b), valid, revoked) as load:
        time.sleep(0.3)
        cluster.kill(victim)
        cluster.wait_failover(victim)
        time.sleep(0.5)
    assert_load_answers(load, allow_503=True)
    # resumed without an app restart: same answers as before the fault
    for app in (a, b):
        assert [app.get("/protected", t).status for t in valid] == [200, 200]
        assert [app.get("/protected", t).status for t in revoked] == [401, 401]
    access, refresh = b.login()
    assert a.refresh(refresh).status == 200
    cluster.restart(victim)  # it rejoins as a replica
    cluster.wait_healthy()


HOLD = 0.5  # a slot stays half-moved longer than redis-py's own TRYAGAIN retries last (~0.4 s)


def move_slot_slowly(cluster: LocalCluster, slot: int, target: int) -> int:
    """Reshard one slot the standard way, holding it in migration for HOLD seconds
    (while it is, multi-key commands on it get TRYAGAIN); its former owner."""
    source = cluster.begin_slot_migration(slot, target)
    time.sleep(HOLD)
    cluster.finish_slot_migration(slot)
    return source


def test_slots_moved_under_load_give_no_5xx_and_no_wrong_answer(ab, cluster):
    a, b = ab
    valid, revoked = tokens_for_load(a, b)
    slots = sorted({identity_slot(JOE), identity_slot(ANN)})
    owners = {slot: cluster.slot_owner(slot) for slot in slots}
    with Load((a, b), valid, revoked) as load:
        time.sleep(0.2)
        for slot in slots:
            target = [port for port in cluster.masters() if port != owners[slot]][0]
            move_slot_slowly(cluster, slot, target)
        for slot in slots:
            move_slot_slowly(cluster, slot, owners[slot])
        time.sleep(0.2)
    assert [cluster.slot_owner(slot) for slot in slots] == [owners[slot] for slot in slots]
    assert_load_answers(load, allow_503=False)


def test_flushall_on_every_master_refuses_every_older_token_then_logins_work(ab, cluster):
    a, b = ab
    out_access, out_refresh = a.login()
    assert a.post("/auth/logout", out_access).status == 200
    kept_access, kept_refresh = b.login("ann", "secret")
    cluster.flushall()  # the logout's entries are gone
    for app in (b, a):
        assert_refused(app.get("/protected", out_access), REVOKED)
        assert_refused(app.get("/protected", kept_access), REVOKED)  # older than the loss: refused once
    assert_refused(a.refresh(out_refresh), REVOKED)
    assert_refused(b.refresh(kept_refresh), REVOKED)
    wait_next_second()
    access, refresh = b.login()
    assert a.get("/protected", access).status == 200
    assert a.refresh(refresh).status == 200
    client = cluster.client()
    try:
        stem = group_stem(JOE)
        assert client.get(stem + "gen") is not None  # the group has its new epoch
    finally:
        client.close()


def test_a_logout_survives_the_failover_of_its_master(cluster):
    app = make_app(
        {
            "JWT_TOKEN_STORE": cluster.url,
            "JWT_TOKEN_STORE_TIMEOUT": 0.4,
            "JWT_LOGOUT_URL_RULE": "/auth/logout",
        }
    )
    try:
        client = app.test_client()
        lagging, token = login(client), login(client)
        master = cluster.slot_owner(identity_slot(JOE))
        (replica,) = cluster.replicas_of(master)
        answer, _ = while_frozen(  # the replica stops acknowledging writes
            partial(cluster.freeze, replica),
            partial(cluster.thaw, replica),
            lambda: client.post("/auth/logout", headers=auth_header(lagging)),
        )
        assert answer.status_code == 503, answer.get_json()  # the master alone has it: no 200
        assert client.post("/auth/logout", headers=auth_header(token)).status_code == 200
        cluster.kill(master)  # at once: the replica must already have the revocation
        cluster.wait_failover(master)
        deadline = time.monotonic() + 10
        while True:
            answer = client.get("/protected", headers=auth_header(token))
            if answer.status_code != 503:
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert answer.get_json() == REVOKED
    finally:
        close_app_store(app)


def test_the_revocation_cache_never_listens_to_a_replica(cluster):
    """A node that is a replica (a failover the client's map missed makes an
    old master one) never sees its master's writes as its own: a cache that
    listened to it would miss revocations. Such a listener is refused and the
    cache stays off; the same cache on a master starts."""
    import redis

    from flask_tokenauth.store.redis_tracking import Tracker

    def tracker(port: int) -> Tracker:
        connect = lambda: [redis.Connection(host="127.0.0.1", port=port, protocol=2)]  # noqa: E731
        return Tracker(connect, "t:{", 100, retry=0.1)

    on_replica, on_master = tracker(cluster.replicas()[0]), tracker(cluster.masters()[0])
    try:
        on_replica.start()
        on_master.start()
        deadline = time.monotonic() + 5
        while not on_master.healthy and time.monotonic() < deadline:
            time.sleep(0.05)
        assert on_master.healthy
        time.sleep(0.5)  # several reconnection attempts on the replica
        on_replica.start()
        assert not on_replica.healthy
        assert on_replica.get(["t:{1}:gen"]) is None  # every lookup goes to Redis
    finally:
        on_replica.close()
        on_master.close()


class Churn(Background):
    """Threads that log in, refresh, check and log out on both apps, in turn,
    and record every answer (step, status, body)."""

    def __init__(self, apps: Tuple[AppProcess, AppProcess], threads: int = 2) -> None:
        super().__init__(apps, threads)

    def _run(self, n: int) -> None:
        user = (("joe", "pass"), ("ann", "secret"))[n % 2]
        for i in itertools.count(n):
            if self._stop.is_set():
                return
            a, b = self.apps[i % 2], self.apps[(i + 1) % 2]
            login = a.post("/auth", json_body={"username": user[0], "password": user[1]})
            self.answers.append(("login", login.status, login.json))
            if login.status != 200:
                continue
            access, refresh = login.json["access_token"], login.json["refresh_token"]
            for step, answer in (
                ("refresh", b.refresh(refresh)),
                ("check", a.get("/protected", access)),
                ("logout", b.post("/auth/logout", access)),
                ("check after logout", a.get("/protected", access)),
            ):
                self.answers.append((step, answer.status, answer.json))


def test_a_reshard_of_many_slots_under_load_costs_no_503(ab, cluster):
    """redis-cli --cluster reshard, as an operator runs it: 2000 slots to another
    master and back, while both apps log in, refresh, check and log out, and
    valid and revoked tokens are checked. A slot move is routine maintenance."""
    a, b = ab
    valid, revoked = tokens_for_load(a, b)
    source, target = cluster.masters()[:2]
    with Load((a, b), valid, revoked) as load, Churn((a, b)) as churn:
        time.sleep(0.3)
        cluster.reshard(source, target, 2000)
        cluster.reshard(target, source, 2000)
        time.sleep(0.3)
    assert_load_answers(load, allow_503=False)
    expected = {"login": 200, "refresh": 200, "check": 200, "logout": 200, "check after logout": 401}
    wrong = [(step, status, body) for step, status, body in churn.answers if status != expected[step]]
    assert not wrong, wrong[:10]
    print("answers: %d checks, %d churn steps" % (len(load.answers), len(churn.answers)))
    assert len(churn.answers) > 50
    assert len(load.answers) > 200
