"""Helpers and fixtures for the tests on the shared Redis Cluster (not a test module).

The session-wide cluster itself is ``redis_cluster`` in ``conftest.py``; the
``cluster`` fixture here hands it to a test healed (every node running and
thawed, all slots served, replicas linked) and holding nothing but the
store's generation markers, whatever the test before it did to it.
"""

from __future__ import annotations

import zlib
from typing import Iterator, List

import pytest
import redis

from flask_tokenauth.store.redis import GROUPS
from tests.redis_cluster import LocalCluster, slot_of
from tests.sessions_support import is_marker

PREFIX = "tokenauth:"


def heal(cluster: LocalCluster) -> None:
    """Every node running and thawed, the cluster healthy."""
    for port in cluster.ports:
        cluster.thaw(port)
        if port not in cluster.live_ports():
            cluster.restart(port)
    cluster.wait_healthy()
    wait_replicas_acknowledge(cluster)


def wait_replicas_acknowledge(cluster: LocalCluster, timeout_ms: int = 5000) -> None:
    """Every master's replica acknowledges a write (``WAIT 1``). Right after a
    restart or a failover a replica can be "up" and still take most of a
    second to send its first acknowledgement; a test that starts then would
    see the store's documented 503 for an unacknowledged revocation."""
    for port in cluster.masters():
        slot = min(cluster.slots_of(port))
        key = next(name for name in ("ack-probe:%d" % n for n in range(100000)) if slot_of(name) == slot)
        node = cluster.node_client(port)
        try:
            node.set(key, b"1")
            acked = node.execute_command("WAIT", 1, timeout_ms)
            node.delete(key)
        finally:
            node.close()
        if int(acked) < 1:
            raise TimeoutError("no replica of master %d acknowledged within %d ms" % (port, timeout_ms))


def empty_cluster_revocations(cluster: LocalCluster) -> None:
    """Delete every key but the generation markers, on every master."""
    for port in cluster.masters():
        node = cluster.node_client(port)
        try:
            doomed = [key for key in node.scan_iter(count=1000) if not is_marker(key)]
            for key in doomed:  # one by one: keys of other slots cannot go in one DEL
                node.delete(key)
        finally:
            node.close()


@pytest.fixture(name="cluster")
def cluster_fixture(redis_cluster: LocalCluster) -> Iterator[LocalCluster]:
    heal(redis_cluster)
    empty_cluster_revocations(redis_cluster)
    yield redis_cluster


def group_stem(identity_key: str, prefix: str = PREFIX) -> str:
    """The key stem of the group an identity's entries live in (as the store names it)."""
    group = zlib.crc32(("i" + identity_key).encode("utf-8")) % GROUPS
    return "%s{%d}:" % (prefix, group)


def identity_slot(identity_key: str, prefix: str = PREFIX) -> int:
    return slot_of(group_stem(identity_key, prefix) + "gen")


def command_calls(cluster: LocalCluster, command: str) -> List[int]:
    """How many times each master (in ``masters()`` order) has run ``command``."""
    calls = []
    for port in cluster.masters():
        node = cluster.node_client(port)
        try:
            stats = node.info("commandstats")
        finally:
            node.close()
        calls.append(int(stats.get("cmdstat_" + command.lower(), {}).get("calls", 0)))
    return calls


def connections_named(client: redis.Redis, name: str) -> int:
    """How many connections to this server carry the client name ``name``."""
    return sum(1 for entry in client.client_list() if entry.get("name") == name)
