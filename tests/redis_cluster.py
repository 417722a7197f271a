"""A throwaway local Redis Cluster for tests (a helper, not a test module).

``LocalCluster(masters=3, replicas=1).start()`` runs ``masters * (1 + replicas)``
Debian ``redis-server`` processes on free loopback ports, in memory only (no
RDB, no AOF), each in cluster mode, inside a private temporary folder that
holds their ``nodes-<port>.conf`` files and logs. ``redis-cli --cluster
create`` then joins them and assigns the 16384 hash slots, and ``start()``
returns only once the cluster is healthy (see :meth:`LocalCluster.wait_healthy`).

Failures are real ones: :meth:`~LocalCluster.kill` (SIGKILL),
:meth:`~LocalCluster.stop` (SIGTERM), :meth:`~LocalCluster.freeze` (SIGSTOP)
and :meth:`~LocalCluster.restart`, which starts a node again with the same
port and ``nodes.conf`` so that it rejoins the cluster (an old master comes
back as a replica of the node that replaced it). The node timeout is small
(1 s) so that a failover completes in a few seconds. :meth:`~LocalCluster.migrate_slots`
reshards the standard way so that a test can move slots under load.

``kill_all()`` (alias ``close()``) is safe to call any number of times and is
what finalizers use; an ``atexit`` guard kills any cluster a finalizer missed.
Where ``redis-server`` or ``redis-cli`` is missing the test is skipped, except
under ``CI=true``, where it fails (as in :mod:`tests.redis_server`).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
from typing import IO, Any, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

import redis
import redis.backoff
import redis.cluster
import redis.retry
from redis.crc import key_slot

from tests.redis_server import debian_binary, free_port, ping, require_found, require_redis_server

SLOTS = 16384
NODE_TIMEOUT_MS = 1000
START_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0
CREATE_TIMEOUT = 30.0
HEALTHY_TIMEOUT = 20.0
ADMIN_TIMEOUT = 0.5  # socket timeout of the helper's own admin connections

_LIVE: Set[LocalCluster] = set()


@atexit.register
def _kill_leftovers() -> None:  # a last resort when a finalizer never ran
    for cluster in list(_LIVE):
        cluster.kill_all()


def require_redis_cli() -> str:
    """The ``redis-cli`` path; skip (fail under ``CI=true``) when it is missing."""
    return require_found(
        debian_binary("redis-cli"),
        "redis-cli is not installed (apt-get install redis-tools); "
        "the Redis Cluster tests need it to create the cluster",
    )


def slot_of(key: Any) -> int:
    """The hash slot of ``key`` (str or bytes), honouring ``{hash tags}``."""
    if isinstance(key, str):
        key = key.encode("utf-8")
    return key_slot(key)


class _Node:
    """One cluster node: its client port, its cluster bus port and its process."""

    def __init__(self, port: int, bus_port: int) -> None:
        self.port = port
        self.bus_port = bus_port
        self.process: Optional[subprocess.Popen] = None
        self.log: Optional[IO[bytes]] = None
        self.frozen = False

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class _NodeInfo:
    """One line of ``CLUSTER NODES``."""

    __slots__ = ("node_id", "port", "flags", "master_id", "link", "slots", "pending")

    def __init__(self, line: str) -> None:
        fields = line.split()
        self.node_id = fields[0]
        address = fields[1].split(",")[0].split("@")[0]  # ip:port@cport[,hostname]
        self.port = int(address.rsplit(":", 1)[1] or 0)
        self.flags: FrozenSet[str] = frozenset(fields[2].split(","))
        self.master_id: Optional[str] = None if fields[3] == "-" else fields[3]
        self.link = fields[7]
        slots: Set[int] = set()
        pending: List[str] = []
        for item in fields[8:]:
            if item.startswith("["):  # [slot->-id] migrating, [slot-<-id] importing
                pending.append(item)
            elif "-" in item:
                low, high = item.split("-")
                slots.update(range(int(low), int(high) + 1))
            else:
                slots.add(int(item))
        self.slots: FrozenSet[int] = frozenset(slots)
        self.pending = pending

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    def shape(self) -> Tuple[str, int, str, Optional[str], FrozenSet[int]]:
        """What every node must agree on: who it is, its role, its master, its slots."""
        role = "master" if self.is_master else "replica"
        return (self.node_id, self.port, role, self.master_id, self.slots)


class LocalCluster:
    """A Redis Cluster of ``masters`` masters with ``replicas`` replicas each, on 127.0.0.1."""

    def __init__(self, masters: int = 3, replicas: int = 1, node_timeout_ms: int = NODE_TIMEOUT_MS) -> None:
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self.server_binary = require_redis_server()
        self.cli_binary = require_redis_cli()
        self.n_masters = masters
        self.n_replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.directory: Optional[str] = None
        self._nodes: Dict[int, _Node] = {}
        self._order: List[int] = []  # ports in creation order
        self._slots_before: Dict[int, FrozenSet[int]] = {}  # slots a node owned when it was taken down
        self._migrations: Dict[int, Tuple[int, int]] = {}  # slot -> (source port, target port)
        #: Seconds ``start()`` took: processes up, ``redis-cli --cluster create``, healthy.
        self.create_seconds: Optional[float] = None

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> LocalCluster:
        if self.directory is not None:
            return self
        if self._nodes:
            raise RuntimeError("this LocalCluster was closed; create a new one")
        began = time.monotonic()
        self.directory = tempfile.mkdtemp(prefix="redis-cluster-")
        _LIVE.add(self)
        try:
            self._launch_all(self.n_masters * (1 + self.n_replicas))
            self._create()
            self.wait_healthy(HEALTHY_TIMEOUT)
        except BaseException:
            self.kill_all()
            raise
        self.create_seconds = time.monotonic() - began
        return self

    def _allocate(self) -> Tuple[int, int]:
        """A free client port and a free cluster bus port (``--cluster-port``), both new here.

        The bus port is chosen explicitly: the default (port + 10000) is often above 65535
        for ports from the ephemeral range, and nobody checked it was free.
        """
        taken = {p for node in self._nodes.values() for p in (node.port, node.bus_port)}
        while True:
            port, bus_port = free_port(), free_port()
            if port != bus_port and not taken & {port, bus_port}:
                return port, bus_port

    def _command(self, node: _Node) -> List[str]:
        return [
            self.server_binary,
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes-%d.conf" % node.port,
            "--cluster-port", str(node.bus_port),
            "--cluster-node-timeout", str(self.node_timeout_ms),
            # Any replica may take over, however long it was cut off from its master.
            "--cluster-replica-validity-factor", "0",
            "--save", "",
            "--appendonly", "no",
            "--dbfilename", "dump-%d.rdb" % node.port,  # the nodes share one folder
            # A replica syncs at once (the default waits 5 s for more replicas to come).
            "--repl-diskless-sync", "yes",
            "--repl-diskless-sync-delay", "0",
            "--bind", "127.0.0.1",
            "--port", str(node.port),
            "--daemonize", "no",
        ]

    def _spawn(self, node: _Node) -> None:
        assert self.directory is not None
        if node.log is None:
            # The log goes to a file, never to a pipe nobody reads (a full pipe blocks redis).
            node.log = open(os.path.join(self.directory, "redis-%d.log" % node.port), "ab")
        node.frozen = False
        node.process = subprocess.Popen(
            self._command(node),
            stdin=subprocess.DEVNULL,
            stdout=node.log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )

    def _await_ping(self, nodes: Iterable[_Node]) -> List[_Node]:
        """Wait until each node answers PING; the nodes that exited or never answered."""
        waiting = list(nodes)
        deadline = time.monotonic() + START_TIMEOUT
        while waiting and time.monotonic() < deadline:
            for node in list(waiting):
                if not node.running():  # exited: port in use, bad option...
                    continue
                if ping(node.port, timeout=0.2):
                    waiting.remove(node)
            if waiting and all(not node.running() for node in waiting):
                break
            if waiting:
                time.sleep(0.02)
        for node in waiting:
            self._reap(node)
        return waiting

    def _launch_all(self, count: int) -> None:
        """Start ``count`` nodes at once; a node whose port was taken meanwhile gets new ports."""
        pending: List[_Node] = []
        for _ in range(count):
            node = _Node(*self._allocate())
            self._nodes[node.port] = node
            pending.append(node)
        for attempt in range(3):
            for node in pending:
                self._spawn(node)
            failed = self._await_ping(pending)
            if not failed:
                break
            if attempt == 2:
                raise RuntimeError(
                    "redis-server did not answer PING on port(s) %s within %.0f s: %s"
                    % (", ".join(str(n.port) for n in failed), START_TIMEOUT, self._log_tail(failed[0].port))
                )
            pending = []
            for node in failed:
                del self._nodes[node.port]
                if node.log is not None:
                    node.log.close()
                fresh = _Node(*self._allocate())
                self._nodes[fresh.port] = fresh
                pending.append(fresh)
        self._order = list(self._nodes)

    def _create(self) -> None:
        assert self.directory is not None
        command = [self.cli_binary, "--cluster", "create"]
        command += ["127.0.0.1:%d" % port for port in self._order]
        command += ["--cluster-replicas", str(self.n_replicas), "--cluster-yes"]
        with open(os.path.join(self.directory, "cluster-create.log"), "w+b") as log:
            try:
                result = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.directory,
                    timeout=CREATE_TIMEOUT,
                )
                failed = result.returncode != 0
            except subprocess.TimeoutExpired:
                failed = True
            if failed:
                log.seek(0)
                raise RuntimeError(
                    "redis-cli --cluster create failed: %s" % log.read()[-2000:].decode("utf-8", "replace")
                )

    def _reap(self, node: _Node) -> None:
        process, node.process = node.process, None
        node.frozen = False
        if process is None:
            return
        if process.poll() is None:
            try:
                process.send_signal(signal.SIGCONT)
            except ProcessLookupError:  # pragma: no cover
                pass
            process.kill()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck process
            pass

    def kill_all(self) -> None:
        """Finalizer: SIGKILL every node (frozen ones too) and remove the folder. Idempotent."""
        for node in self._nodes.values():
            self._reap(node)
            if node.log is not None:
                node.log.close()
                node.log = None
        _LIVE.discard(self)
        directory, self.directory = self.directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    close = kill_all

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill_all()

    # -- addresses and clients ----------------------------------------------------------------

    @property
    def url(self) -> str:
        return "redis+cluster://127.0.0.1:%d" % self._order[0]

    @property
    def ports(self) -> List[int]:
        """Every node's port, in creation order, whether the node is up or not."""
        return list(self._order)

    def live_ports(self) -> List[int]:
        """The ports of the nodes that run and are not frozen."""
        return [port for port in self._order if self._nodes[port].running() and not self._nodes[port].frozen]

    def client(self, **kwargs: Any) -> redis.cluster.RedisCluster:
        """A ``RedisCluster`` seeded with a live node; the caller closes it."""
        return redis.cluster.RedisCluster(host="127.0.0.1", port=self._any_live_port(), **kwargs)

    def node_client(self, port: int, **kwargs: Any) -> redis.Redis:
        """A plain ``redis.Redis`` on one node (no cluster redirections); the caller closes it."""
        return redis.Redis(host="127.0.0.1", port=port, **kwargs)

    def _admin(self, port: int, decode: bool = True) -> redis.Redis:
        # No retries: a dead or frozen node must cost one short timeout, not several.
        return redis.Redis(
            host="127.0.0.1",
            port=port,
            socket_timeout=ADMIN_TIMEOUT,
            socket_connect_timeout=ADMIN_TIMEOUT,
            retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
            decode_responses=decode,
        )

    def _call(self, port: int, *args: Any) -> Any:
        admin = self._admin(port)
        try:
            return admin.execute_command(*args)
        finally:
            admin.close()

    def _any_live_port(self) -> int:
        live = self.live_ports()
        if not live:
            raise RuntimeError("no cluster node is running")
        return live[0]

    # -- topology -----------------------------------------------------------------------------

    def _view(self, port: Optional[int] = None) -> List[_NodeInfo]:
        """``CLUSTER NODES`` as seen by ``port`` (default: the first live node)."""
        text = self._call(port or self._any_live_port(), "CLUSTER", "NODES")
        return [_NodeInfo(line) for line in text.splitlines() if line.strip()]

    def node_id(self, port: int) -> str:
        for info in self._view():
            if info.port == port:
                return info.node_id
        raise KeyError("no cluster node on port %d" % port)

    def masters(self) -> List[int]:
        """Ports of the running nodes that are masters (per ``CLUSTER NODES`` of a live node)."""
        live = set(self.live_ports())
        return sorted(i.port for i in self._view() if i.is_master and i.port in live)

    def replicas(self) -> List[int]:
        """Ports of the running nodes that are replicas."""
        live = set(self.live_ports())
        return sorted(i.port for i in self._view() if not i.is_master and i.port in live)

    def replicas_of(self, master_port: int) -> List[int]:
        """Ports of the nodes (running or not) that replicate ``master_port``."""
        view = self._view()
        ids = [i.node_id for i in view if i.port == master_port]
        return sorted(i.port for i in view if ids and i.master_id == ids[0])

    def slot_owner(self, slot: int) -> int:
        """The port of the master that serves ``slot``."""
        for info in self._view():
            if info.is_master and slot in info.slots:
                return info.port
        raise KeyError("slot %d is not assigned" % slot)

    def slots_of(self, port: int) -> FrozenSet[int]:
        """The slots ``port`` serves now (empty for a replica)."""
        for info in self._view():
            if info.port == port:
                return info.slots if info.is_master else frozenset()
        return frozenset()

    # -- health -------------------------------------------------------------------------------

    def health_problems(self) -> List[str]:
        """Why the cluster is not healthy yet; an empty list when it is.

        Healthy: every live node says ``cluster_state:ok``; every node's ``CLUSTER NODES``
        agrees on every node's id, port, role, master and slots; all 16384 slots are
        served by running masters that nobody flags as failing; no slot is half migrated;
        every running replica has ``master_link_status:up`` to its running master.
        """
        live = self.live_ports()
        if not live:
            return ["no node is running"]
        problems: List[str] = []
        views: Dict[int, List[_NodeInfo]] = {}
        for port in live:
            try:
                info = self._call(port, "CLUSTER", "INFO")
                if "cluster_state:ok" not in info:
                    problems.append("%d: cluster_state is not ok" % port)
                views[port] = self._view(port)
            except redis.RedisError as error:
                problems.append("%d: %r" % (port, error))
        if problems:
            return problems
        shapes = {port: sorted(i.shape() for i in view) for port, view in views.items()}
        reference_port = live[0]
        reference = shapes[reference_port]
        for port, shape in shapes.items():
            if shape != reference:
                problems.append("%d and %d disagree on the cluster layout" % (port, reference_port))
        live_set = set(live)
        for port, view in views.items():
            for info in view:
                if info.port == 0 or info.flags & {"handshake", "noaddr"}:
                    problems.append("%d sees a node in handshake: %s" % (port, info.node_id))
                elif info.port in live_set and info.flags & {"fail", "fail?"}:
                    problems.append("%d flags live node %d as %s" % (port, info.port, ",".join(info.flags)))
                elif info.port in live_set and "myself" not in info.flags and info.link != "connected":
                    problems.append("%d has no link to live node %d" % (port, info.port))
                if info.pending:
                    problems.append("%d: slots in migration %s" % (info.port, " ".join(info.pending)))
        by_id = {i.node_id: i for i in views[reference_port]}
        covered = 0
        for info in views[reference_port]:
            if info.is_master and info.slots:
                covered += len(info.slots)
                if info.port not in live_set:
                    problems.append("%d serves %d slots but is down" % (info.port, len(info.slots)))
        if covered != SLOTS:
            problems.append("%d of %d slots are assigned" % (covered, SLOTS))
        for info in views[reference_port]:
            if info.is_master or info.port not in live_set:
                continue
            master = by_id.get(info.master_id or "")
            if master is None or master.port not in live_set:
                problems.append("replica %d has no running master" % info.port)
                continue
            try:
                replication = self._call(info.port, "INFO", "replication")
            except redis.RedisError as error:
                problems.append("%d: %r" % (info.port, error))
                continue
            if replication.get("master_link_status") != "up":
                problems.append("replica %d: master_link_status is not up" % info.port)
            elif replication.get("master_port") != master.port:
                problems.append("replica %d replicates %s" % (info.port, replication.get("master_port")))
        return problems

    def wait_healthy(self, timeout: float = HEALTHY_TIMEOUT) -> float:
        """Wait until :meth:`health_problems` is empty; the seconds it took."""
        began = time.monotonic()
        deadline = began + timeout
        while True:
            problems = self.health_problems()
            if not problems:
                return time.monotonic() - began
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    "cluster not healthy after %.1f s: %s" % (timeout, "; ".join(sorted(set(problems))[:10]))
                )
            time.sleep(0.05)

    def wait_failover(self, old_master_port: int, timeout: float = HEALTHY_TIMEOUT) -> List[int]:
        """Wait until other masters serve the slots ``old_master_port`` had and the cluster is healthy.

        For a master taken down by :meth:`kill`, :meth:`stop` or :meth:`freeze`; returns the
        ports of the masters that now serve its former slots (its promoted replica).
        """
        former = self._slots_before.get(old_master_port)
        if former is None:
            former = self.slots_of(old_master_port)
        if not former:
            raise ValueError("port %d served no slots" % old_master_port)
        began = time.monotonic()
        deadline = began + timeout
        while True:
            problems = self.health_problems()
            owners: Set[int] = set()
            if not problems:
                for info in self._view():
                    if info.is_master and info.slots & former:
                        owners.add(info.port)
                if old_master_port in owners:
                    problems.append("%d still serves its slots" % old_master_port)
            if not problems:
                return sorted(owners)
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    "no failover of %d after %.1f s: %s"
                    % (old_master_port, timeout, "; ".join(sorted(set(problems))[:10]))
                )
            time.sleep(0.05)

    # -- failures -----------------------------------------------------------------------------

    def _remember_slots(self, port: int) -> None:
        try:
            slots = self.slots_of(port)
        except (RuntimeError, redis.RedisError):  # nobody to ask
            return
        if slots:
            self._slots_before[port] = slots

    def kill(self, port: int) -> None:
        """SIGKILL one node: its data is gone, its ``nodes.conf`` stays for :meth:`restart`."""
        self._remember_slots(port)
        self._reap(self._nodes[port])

    def stop(self, port: int) -> None:
        """SIGTERM one node and wait until it is gone."""
        node = self._nodes[port]
        self._remember_slots(port)
        process = node.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)  # in case it was frozen
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        self._reap(node)

    def restart(self, port: int) -> None:
        """Start the node again (stopping it first if needed) with the same port and ``nodes.conf``.

        Returns once it answers PING; it then rejoins the cluster on its own (an old
        master whose slots were failed over becomes a replica): use :meth:`wait_healthy`.
        A master restarted before its failover comes back empty (no persistence) and stays
        master: its replica then resyncs the empty data set.
        """
        node = self._nodes[port]
        if node.running():
            self.stop(port)
        for _ in range(3):
            self._spawn(node)
            if not self._await_ping([node]):
                return
            time.sleep(0.2)
        raise RuntimeError("redis-server on port %d did not restart: %s" % (port, self._log_tail(port)))

    def freeze(self, port: int) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers.

        A frozen master is failed over after about twice the node timeout; once thawed it
        becomes a replica.
        """
        node = self._nodes[port]
        assert node.process is not None and node.process.poll() is None
        self._remember_slots(port)
        node.process.send_signal(signal.SIGSTOP)
        node.frozen = True

    def thaw(self, port: int) -> None:
        node = self._nodes[port]
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGCONT)
        node.frozen = False

    def _log_tail(self, port: int) -> str:
        if self.directory is None:
            return ""
        try:
            with open(os.path.join(self.directory, "redis-%d.log" % port), "rb") as log:
                return log.read()[-2000:].decode("utf-8", "replace").strip()
        except OSError:
            return ""

    # -- data ---------------------------------------------------------------------------------

    def flushall(self) -> None:
        """FLUSHALL on every running master, and wait for their replicas to apply it."""
        view = self._view()
        live = set(self.live_ports())
        for info in view:
            if info.is_master and info.port in live:
                linked = [r for r in view if r.master_id == info.node_id and r.port in live]
                self._call(info.port, "FLUSHALL")
                if linked:
                    self._call(info.port, "WAIT", len(linked), 1000)

    # -- resharding ---------------------------------------------------------------------------

    def begin_slot_migration(self, slot: int, to_port: int) -> int:
        """Mark ``slot`` IMPORTING on ``to_port`` and MIGRATING on its owner; the owner's port.

        From here the owner answers ASK for keys it no longer has and TRYAGAIN for a
        multi-key command whose keys are split between the two nodes.
        """
        source = self.slot_owner(slot)
        if source == to_port:
            raise ValueError("slot %d is already served by %d" % (slot, to_port))
        self._call(to_port, "CLUSTER", "SETSLOT", slot, "IMPORTING", self.node_id(source))
        self._call(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", self.node_id(to_port))
        self._migrations[slot] = (source, to_port)
        return source

    def move_keys(self, slot: int, keys: Optional[Iterable[Any]] = None, batch: int = 100) -> int:
        """MIGRATE keys of a slot in migration: ``keys`` if given, else one batch of up to ``batch``."""
        source, target = self._migrations[slot]
        admin = self._admin(source, decode=False)
        try:
            if keys is None:
                keys = admin.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch)
            keys = list(keys)
            if keys:
                admin.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "REPLACE", "KEYS", *keys)
        finally:
            admin.close()
        return len(keys)

    def finish_slot_migration(self, slot: int, batch: int = 100) -> None:
        """Move the slot's remaining keys, then CLUSTER SETSLOT NODE on target, source, other masters."""
        source, target = self._migrations[slot]
        while self.move_keys(slot, batch=batch):
            pass
        target_id = self.node_id(target)
        self._call(target, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
        self._call(source, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
        live = set(self.live_ports())
        for info in self._view():
            if info.is_master and info.port in live and info.port not in (source, target):
                self._call(info.port, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
        del self._migrations[slot]

    def migrate_slots(
        self, slots: Iterable[int], to_port: int, batch: int = 100, pause: float = 0.0
    ) -> Dict[int, int]:
        """Move ``slots`` with their keys to master ``to_port``; ``{slot: former owner port}``.

        ``pause`` sleeps after each MIGRATE batch, while the slot is half moved, to give
        a concurrent load time to meet ASK and TRYAGAIN. Slots ``to_port`` already serves
        are skipped. Undo with :meth:`migrate_back`.
        """
        moved: Dict[int, int] = {}
        for slot in sorted(set(slots)):
            if self.slot_owner(slot) == to_port:
                continue
            moved[slot] = self.begin_slot_migration(slot, to_port)
            while self.move_keys(slot, batch=batch):
                if pause:
                    time.sleep(pause)
            self.finish_slot_migration(slot, batch=batch)
        return moved

    def reshard(self, from_port: int, to_port: int, slots: int, pipeline: int = 10) -> str:
        """Move ``slots`` slots (and their keys) with ``redis-cli --cluster reshard``,
        the way an operator does (once every node agrees on the layout, as it
        insists); what it printed."""
        deadline = time.monotonic() + 20
        while True:
            check = subprocess.run(
                [require_redis_cli(), "--cluster", "check", "127.0.0.1:%d" % from_port],
                capture_output=True, text=True, timeout=60,
            )
            if "don't agree" not in check.stdout and "[ERR]" not in check.stdout:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster's nodes never agreed:\n%s" % check.stdout[-2000:])
            time.sleep(0.2)
        done = subprocess.run(
            [
                require_redis_cli(), "--cluster", "reshard", "127.0.0.1:%d" % from_port,
                "--cluster-from", self.node_id(from_port), "--cluster-to", self.node_id(to_port),
                "--cluster-slots", str(slots), "--cluster-pipeline", str(pipeline), "--cluster-yes",
            ],
            capture_output=True, text=True, timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError("reshard failed:\n%s%s" % (done.stdout[-2000:], done.stderr[-500:]))
        return done.stdout

    def migrate_back(self, moved: Dict[int, int], batch: int = 100, pause: float = 0.0) -> None:
        """Return slots moved by :meth:`migrate_slots` to their former owners."""
        by_owner: Dict[int, List[int]] = {}
        for slot, owner in moved.items():
            by_owner.setdefault(owner, []).append(slot)
        for owner, slots in by_owner.items():
            self.migrate_slots(slots, owner, batch=batch, pause=pause)
