"""Connections stay bounded whatever serves the requests.

An app process served by werkzeug's threaded server (a new thread for every
request) or by gevent (a new greenlet for every request) answers a thousand
requests, on a single Redis and on the Redis Cluster, while the test watches
``CLIENT LIST`` on every Redis node: the store's connections (they name
themselves ``flask_tokenauth``) never outnumber ``JWT_TOKEN_STORE_MAX_CONNECTIONS``,
and every answer is right.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List

import pytest
import redis

from flask_tokenauth.store.redis_connection import CLIENT_NAME
from tests.cluster_support import cluster_fixture, connections_named  # noqa: F401 - fixtures
from tests.redis_server import RedisServer
from tests.sessions_support import REVOKED, redis_client_fixture, redis_server_fixture, serving  # noqa: F401

REQUESTS = 1000
CLIENT_THREADS = 16
MAX_CONNECTIONS = 4


class Watch:
    """Samples, every 20 ms, how many ``flask_tokenauth`` connections each node holds."""

    def __init__(self, nodes: List[redis.Redis]) -> None:
        self.nodes = nodes
        self.peak: Dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for n, node in enumerate(self.nodes):
                self.peak[n] = max(self.peak.get(n, 0), connections_named(node, CLIENT_NAME))
            time.sleep(0.02)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for node in self.nodes:
            node.close()


def hammer(app, valid: str, revoked: str) -> List[int]:
    """REQUESTS protected requests, each on a new connection (so a new server
    thread or greenlet), from CLIENT_THREADS client threads; their statuses in order."""

    def one(i: int) -> int:
        token = revoked if i % 5 == 0 else valid
        answer = app.get("/protected", token)
        if token is revoked:
            return answer.status if answer.json == REVOKED else -answer.status
        return answer.status

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        return list(pool.map(one, range(REQUESTS)))


def run_bounded(url: str, nodes: Callable[[], List[redis.Redis]], gevent: bool) -> Dict[int, int]:
    with serving(url, max_connections=MAX_CONNECTIONS, gevent=gevent) as (app,):
        valid, _ = app.login()
        revoked, _ = app.login("ann", "secret")
        assert app.post("/auth/logout", revoked).status == 200
        with Watch(nodes()) as watch:
            statuses = hammer(app, valid, revoked)
        expected = [401 if i % 5 == 0 else 200 for i in range(REQUESTS)]
        wrong = [(i, got) for i, (got, want) in enumerate(zip(statuses, expected)) if got != want]
        assert not wrong, wrong[:10]
        assert app.get("/protected", valid).status == 200  # and it still serves
        return watch.peak


SERVERS = [pytest.param(False, id="threaded"), pytest.param(True, id="gevent")]


@pytest.mark.parametrize("gevent", SERVERS)
def test_a_thousand_requests_on_one_redis_keep_connections_bounded(
    gevent, redis_server: RedisServer, redis_client
):
    peak = run_bounded(redis_server.url, lambda: [redis.Redis.from_url(redis_server.url)], gevent)
    assert 1 <= peak[0] <= MAX_CONNECTIONS, peak


@pytest.mark.parametrize("gevent", SERVERS)
def test_a_thousand_requests_on_the_cluster_keep_connections_bounded(gevent, cluster):
    peak = run_bounded(cluster.url, lambda: [cluster.node_client(port) for port in cluster.masters()], gevent)
    assert max(peak.values()) >= 1, peak
    # per node: the bound, plus the one short-lived connection of a topology refresh
    assert all(count <= MAX_CONNECTIONS + 1 for count in peak.values()), peak
