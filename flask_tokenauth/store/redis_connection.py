"""How the Redis store talks to Redis: one server or a cluster, with bounds.

Whatever the form of ``JWT_TOKEN_STORE`` (a URL or a client object), the
store opens connections of its own, built from the same settings with
``JWT_TOKEN_STORE_TIMEOUT`` applied, so an app's client is never modified and
the timeout always holds. Three promises are kept here:

- **Bounded connections.** At most ``JWT_TOKEN_STORE_MAX_CONNECTIONS`` calls
  are in flight per process, each on a connection taken from a small idle list
  and given back, whatever the number of threads or greenlets that serve
  requests. A caller waits for a free one within the timeout.
- **Bounded time.** Each operation has a deadline of ``timeout`` seconds from
  its start; errors that a second try may cure (a connection reset, a replica
  taking over, a slot moving) are retried until the deadline, never past it
  (redis-py's own retries are switched off).
- **Errors are StoreError.** Whatever Redis or redis-py raises becomes a
  :class:`~flask_tokenauth.store.StoreError` (503 for the request), never a 500.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Sequence, Tuple, TypeVar

from . import StoreError, _safe

try:
    import redis as _redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # pragma: no cover - depends on the environment
    _redis = None  # type: ignore[assignment]

logger = logging.getLogger("flask_tokenauth")

T = TypeVar("T")

#: The name the store's connections give themselves (unless the app named them).
CLIENT_NAME = "flask_tokenauth"

#: Backoff between tries: 10 ms, doubling up to 200 ms.
_FIRST_DELAY, _MAX_DELAY = 0.01, 0.2


def require_redis() -> Any:
    if _redis is None:
        raise ImportError(
            "JWT_TOKEN_STORE names Redis but the redis package is missing: "
            "pip install 'flask-tokenauth-jwt[redis]'"
        )
    return _redis


def _no_retry() -> Any:
    return Retry(NoBackoff(), 0)


def _cluster_no_retry() -> Dict[str, Any]:
    """RedisCluster options for no retries of redis-py's own. Before redis-py 6
    the client's ``retry`` reached only its node connections, and
    ``cluster_error_retry_attempts`` (3) retried timeouts on top; from 6 on,
    ``retry`` governs both and that argument is deprecated."""
    options: Dict[str, Any] = {"retry": _no_retry()}
    if int(_redis.__version__.split(".")[0]) < 6:
        options["cluster_error_retry_attempts"] = 0
    return options


def _retryable(exc: BaseException) -> bool:
    """Errors a later try can cure: connections lost or refused (a restart, a
    failover), a server still loading, a replica that was a master, a slot
    moving or a cluster electing a new master."""
    errors = _redis.exceptions
    if not_a_cluster(exc):
        return False
    if isinstance(exc, errors.TimeoutError):
        return True  # the deadline decides whether there is time for another
    return isinstance(
        exc,
        (
            errors.ConnectionError,  # includes BusyLoadingError
            errors.ReadOnlyError,
            errors.TryAgainError,
            errors.ClusterDownError,
            errors.AskError,  # includes MovedError
            errors.ClusterError,
            errors.RedisClusterException,  # includes SlotNotCoveredError
        ),
    ) and not isinstance(exc, errors.AuthenticationError)


def _is_redis_error(exc: BaseException) -> bool:
    errors = _redis.exceptions
    return isinstance(exc, (errors.RedisError, errors.RedisClusterException))


def not_a_cluster(exc: BaseException) -> bool:
    """A cluster URL or client that reached a Redis without cluster mode."""
    return "cluster mode is not enabled" in str(exc).lower()


def _describe_error(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return "%s: %s" % (type(exc).__name__, text[:200])


class RedisLink:
    """Connections to one Redis deployment; :meth:`execute` and :meth:`execute_many`
    run commands within the deadline and turn every failure into StoreError."""

    cluster = False

    def __init__(self, description: str, timeout: float, max_connections: int) -> None:
        self.description = description
        self.timeout = float(timeout)
        self.max_connections = max(1, int(max_connections))
        self._pid = os.getpid()
        self._slots = threading.BoundedSemaphore(self.max_connections)

    # --- what the store calls ---------------------------------------------------

    def execute(self, *args: Any) -> Any:
        """One command; its reply (bytes, not decoded)."""
        return self._run(lambda left, first: self._one(args, left, first))

    def execute_many(self, commands: Sequence[Tuple[Any, ...]]) -> List[Any]:
        """Several commands, sent together (split per node on a cluster); their replies."""
        return self._run(lambda left, first: self._many(commands, left, first))

    def write(self, key: str, args: Tuple[Any, ...], *, durable: bool = True) -> Any:
        """A write of ``key``, then, when its master has replicas, ``WAIT`` until
        one of them has it too: replication is asynchronous, and a replica that
        takes over must not have missed a revocation. ``durable``: no replica
        acknowledging within the deadline is a StoreError (the write stands on
        the master; repeating it is harmless); else it is only logged."""

        def attempt(left: float, first: bool) -> Any:
            started = time.monotonic()
            reply, replicas, acked = self._write(key, args, left, first)
            if replicas and not acked:
                waited = time.monotonic() - started
                message = "%s: no replica acknowledged a write within %.2f s" % (self.description, waited)
                if durable:
                    raise StoreError(message)
                logger.warning(message)
            return reply

        return self._run(attempt)

    def info(self) -> List[Dict[str, str]]:
        """``INFO`` of every server that holds entries (every master of a cluster)."""
        return self._run(lambda left, first: self._info())

    def call(self, action: Callable[[], T]) -> T:
        """Run ``action`` (a call into another client of the same Redis, such as
        the login throttle's) under the same bounds: one connection slot, the
        deadline, retries of what a retry cures. Its errors, or the Redis errors
        they wrap (``raise ... from``), become StoreError."""
        return self._run(lambda left, first: action())

    def limits_storage(self) -> Tuple[str, Dict[str, Any]]:
        raise NotImplementedError

    def tracking_connections(self) -> List[Any]:
        """New (unconnected) RESP2 connections, one to each server that holds
        entries, for the invalidations of the revocation cache."""
        raise NotImplementedError

    def primaries(self) -> Any:
        """Which servers hold entries (a change: listen to the new set)."""
        return None

    def close(self) -> None:
        raise NotImplementedError

    # --- how -----------------------------------------------------------------------

    def _one(self, args: Tuple[Any, ...], left: float, first: bool) -> Any:
        raise NotImplementedError

    def _many(self, commands: Sequence[Tuple[Any, ...]], left: float, first: bool) -> List[Any]:
        raise NotImplementedError

    def _write(self, key: str, args: Tuple[Any, ...], left: float, first: bool) -> Tuple[Any, int, int]:
        """Run the write; its reply, the number of replicas, how many acknowledged it."""
        raise NotImplementedError

    def _info(self) -> List[Dict[str, str]]:
        raise NotImplementedError

    def _retryable(self, exc: BaseException, first: bool) -> bool:
        return _retryable(exc)

    def _forked(self) -> None:
        """In a child process: forget the parent's connections (never close them:
        they are the parent's sockets too)."""
        self._pid = os.getpid()
        self._slots = threading.BoundedSemaphore(self.max_connections)

    def _run(self, attempt: Callable[[float, bool], T]) -> T:
        if self._pid != os.getpid():
            self._forked()
        deadline = time.monotonic() + self.timeout
        if not self._slots.acquire(timeout=self.timeout):
            raise StoreError(
                "all %d connections to %s stayed busy for %.1f s (JWT_TOKEN_STORE_MAX_CONNECTIONS)"
                % (self.max_connections, self.description, self.timeout)
            )
        try:
            delay, first = _FIRST_DELAY, True
            while True:
                try:
                    return attempt(deadline - time.monotonic(), first)
                except StoreError:
                    raise
                except Exception as exc:
                    cause = exc if _is_redis_error(exc) else exc.__cause__
                    if cause is None or not _is_redis_error(cause):
                        raise
                    left = deadline - time.monotonic()
                    if not self._retryable(cause, first) or left <= delay:
                        raise StoreError("%s: %s" % (self.description, _describe_error(cause))) from exc
                    time.sleep(delay)
                    delay, first = min(delay * 2, _MAX_DELAY), False
        finally:
            self._slots.release()


class ServerLink(RedisLink):
    """One Redis server (TCP, TLS or a unix socket), on connections of our own."""

    def __init__(
        self,
        connection_class: Any,
        kwargs: Dict[str, Any],
        description: str,
        timeout: float,
        max_connections: int,
    ) -> None:
        super().__init__(description, timeout, max_connections)
        self.connection_class = connection_class
        self.kwargs = _with_bounds(kwargs, self.timeout)
        self._idle: List[Any] = []

    def _retryable(self, exc: BaseException, first: bool) -> bool:
        # A server that refused a fresh connection is down: say so now rather
        # than at the deadline. The first failure may be a pooled connection
        # that went stale (a restart), so it gets one try on a new connection.
        errors = _redis.exceptions
        refused = isinstance(exc, errors.ConnectionError) and not isinstance(exc, errors.BusyLoadingError)
        if refused and not first:
            return False
        return _retryable(exc)

    def _connection(self, left: float, first: bool) -> Any:
        if first:
            try:
                return self._idle.pop()
            except IndexError:
                return self.connection_class(**self.kwargs)
        # A retry: the idle ones are likely stale too (a restart), and this one
        # must not outlive the deadline.
        self._drop_idle()
        bounded = max(0.001, left)
        return self.connection_class(
            **dict(self.kwargs, socket_timeout=bounded, socket_connect_timeout=bounded)
        )

    def _exchange(self, commands: Sequence[Tuple[Any, ...]], left: float, first: bool) -> List[Any]:
        connection = self._connection(left, first)
        try:
            if len(commands) == 1:
                connection.send_packed_command(connection.pack_command(*commands[0]))
            else:
                connection.send_packed_command(connection.pack_commands(commands))
            answers = [connection.read_response() for _ in commands]
        except BaseException:
            connection.disconnect()  # never leave a half-read reply on the socket
            raise
        self._check_in(connection, first)
        return answers

    def _check_in(self, connection: Any, first: bool) -> None:
        """Back to the idle list (a retry's short-timeout connection is closed)."""
        if first:
            self._idle.append(connection)
        else:
            connection.disconnect()

    def _one(self, args: Tuple[Any, ...], left: float, first: bool) -> Any:
        return self._exchange((args,), left, first)[0]

    def _many(self, commands: Sequence[Tuple[Any, ...]], left: float, first: bool) -> List[Any]:
        return self._exchange(commands, left, first)

    def _write(self, key: str, args: Tuple[Any, ...], left: float, first: bool) -> Tuple[Any, int, int]:
        started = time.monotonic()
        connection = self._connection(left, first)
        try:
            done = _write_then_wait(connection, args, left, started)
        except BaseException:
            connection.disconnect()
            raise
        self._check_in(connection, first)
        return done

    def _info(self) -> List[Dict[str, str]]:
        return [parse_info(self._one(("INFO",), self.timeout, True))]

    def _forked(self) -> None:
        super()._forked()
        self._idle = []

    def _drop_idle(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.disconnect()

    def tracking_connections(self) -> List[Any]:
        return [self.connection_class(**_for_tracking(self.kwargs))]

    def limits_storage(self) -> Tuple[str, Dict[str, Any]]:
        redis = require_redis()
        pool = redis.BlockingConnectionPool(
            connection_class=self.connection_class,
            max_connections=self.max_connections,
            timeout=self.timeout,
            **self.kwargs,
        )
        return "redis://", {"connection_pool": pool, "retry": _no_retry()}

    def close(self) -> None:
        self._drop_idle()


class ClusterLink(RedisLink):
    """A Redis Cluster through redis-py's cluster client, made on first use
    (the cluster may be down when the app starts), with retries left to us."""

    cluster = True

    def __init__(
        self,
        make_client: Callable[[Dict[str, Any]], Any],
        options: Dict[str, Any],
        seeds: List[Tuple[str, int]],
        description: str,
        timeout: float,
        max_connections: int,
    ) -> None:
        super().__init__(description, timeout, max_connections)
        self.options = _with_bounds(options, self.timeout)
        self.options["max_connections"] = self.max_connections
        self.seeds = seeds
        self._make_client = make_client
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                client = self._client
                if client is None:
                    client = self._client = self._make_client(dict(self.options, **_cluster_no_retry()))
        return client

    def _one(self, args: Tuple[Any, ...], left: float, first: bool) -> Any:
        with _client_slips():
            return self.client().execute_command(*args)

    def _many(self, commands: Sequence[Tuple[Any, ...]], left: float, first: bool) -> List[Any]:
        with _client_slips():
            pipe = self.client().pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            return pipe.execute()

    def _write(self, key: str, args: Tuple[Any, ...], left: float, first: bool) -> Tuple[Any, int, int]:
        started = time.monotonic()
        client = self.client()
        master = client.nodes_manager.get_node_from_slot(client.keyslot(key))
        pool = client.get_redis_connection(master).connection_pool
        try:
            connection = pool.get_connection()
        except TypeError:  # redis-py before 5.3 wants a command name
            connection = pool.get_connection("SET")
        try:
            return _write_then_wait(connection, args, left, started)
        except BaseException:
            connection.disconnect()
            self._refresh_map(client)  # the slot moved, or its master failed
            raise
        finally:
            pool.release(connection)

    @staticmethod
    def _refresh_map(client: Any) -> None:
        try:
            client.nodes_manager.initialize()
        except Exception as exc:  # the next try meets the same fault and says so
            logger.debug("could not refresh the cluster map: %s", exc)

    def _info(self) -> List[Dict[str, str]]:
        client = self.client()
        found = []
        for node in client.get_primaries():
            info = client.get_redis_connection(node).info()
            found.append({str(key): str(value) for key, value in info.items()})
        return found

    def _forked(self) -> None:
        super()._forked()
        self._client = None  # redis-py's cluster state is not fork-safe
        self._lock = threading.Lock()

    def tracking_connections(self) -> List[Any]:
        redis = require_redis()
        options = {k: v for k, v in self.options.items() if k not in _CLUSTER_ONLY}
        connection_class = options.pop("connection_class", redis.Connection)
        tracking = _for_tracking(options)
        return [connection_class(host=host, port=port, **tracking) for host, port in self.primaries()]

    def primaries(self) -> List[Tuple[str, int]]:
        """The masters that serve slots now, as the cluster says (``CLUSTER
        SLOTS``), not as the client's map remembers them: a map that missed a
        failover would have the cache listen to a node whose slots moved, and
        miss their revocations. A change means the invalidation connections
        must follow."""

        def ask(left: float, first: bool) -> List[Tuple[str, int]]:
            with _client_slips():
                slots = self.client().execute_command("CLUSTER SLOTS")
            found = set()
            for owners in slots.values():
                host, port = owners["primary"]
                found.add((str(host), int(port)))
            return sorted(found)

        return self._run(ask)

    def limits_storage(self) -> Tuple[str, Dict[str, Any]]:
        hosts = ",".join("%s:%d" % seed for seed in self.seeds)
        return "redis+cluster://" + hosts, dict(self.options, **_cluster_no_retry())

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


@contextlib.contextmanager
def _client_slips() -> Iterator[None]:
    """redis-py's cluster client can trip over its own map while the cluster
    changes (an ``AttributeError`` on a node it just dropped): a fault of the
    moment, retried like one and a 503 at the deadline, never a 500."""
    try:
        yield
    except (AttributeError, KeyError, IndexError) as exc:
        raise _redis.exceptions.ClusterError("the cluster client failed: %r" % (exc,)) from exc


def _write_then_wait(
    connection: Any, args: Tuple[Any, ...], left: float, started: float
) -> Tuple[Any, int, int]:
    """On one connection to a master: the write, ROLE (how many replicas follow
    it) in the same round trip, then WAIT for one of them when there are any
    (WAIT counts this connection's own writes). The write's reply, the number
    of replicas, how many acknowledged."""
    connection.send_packed_command(connection.pack_commands([args, ("ROLE",)]))
    reply, role = connection.read_response(), connection.read_response()
    replicas = len(role[2]) if len(role) > 2 and isinstance(role[2], list) else 0
    acked = 0
    if replicas:
        connection.send_command("WAIT", 1, _ms_left(left, started))
        acked = int(connection.read_response())
    return reply, replicas, acked


#: RedisCluster options that are not a connection's.
_CLUSTER_ONLY = (
    "max_connections", "retry", "startup_nodes", "require_full_coverage", "read_from_replicas",
)


def _for_tracking(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """A connection's settings for an invalidation listener: RESP2 (it
    subscribes), its own name in CLIENT LIST."""
    return dict(kwargs, protocol=2, client_name=CLIENT_NAME + "-tracking")


def _ms_left(left: float, started: float) -> int:
    """Most of what remains of ``left`` seconds since ``started``, in whole
    milliseconds (at least 1): WAIT must answer before the socket times out."""
    return max(1, int((left - (time.monotonic() - started)) * 800))


def _with_bounds(kwargs: Dict[str, Any], timeout: float) -> Dict[str, Any]:
    """Connection settings with the store's timeout, no retries of redis-py's
    own (ours honour the deadline), and raw bytes back."""
    bounded = dict(kwargs)
    for key in ("retry_on_timeout", "retry_on_error", "retry", "redis_connect_func", "connection_pool"):
        bounded.pop(key, None)
    bounded.update(
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=False,
    )
    if not bounded.get("client_name"):  # CLIENT LIST shows which connections are ours
        bounded["client_name"] = CLIENT_NAME
    if "host" in bounded or "path" in bounded:  # a single server's connection
        bounded["retry"] = _no_retry()
    return bounded


def parse_info(raw: Any) -> Dict[str, str]:
    """``INFO``'s ``key:value`` lines as a dict (sections and comments skipped)."""
    if isinstance(raw, dict):
        return {str(key): str(value) for key, value in raw.items()}
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else str(raw)
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            key, _, value = line.partition(":")
            found[key.strip()] = value.strip()
    return found


# --- from a URL or a client object ------------------------------------------------


def connect(spec: Any, *, timeout: float, max_connections: int) -> RedisLink:
    """The link that ``JWT_TOKEN_STORE`` names (a URL or a redis-py client).
    Opens nothing yet; raises ValueError for a URL that cannot work."""
    redis = require_redis()
    if isinstance(spec, str):
        scheme = spec.split("://", 1)[0].lower()
        if scheme.endswith("+cluster"):
            return _cluster_from_url(spec, timeout, max_connections)
        kwargs = dict(redis.connection.parse_url(spec))
        connection_class = kwargs.pop("connection_class", redis.Connection)
        return ServerLink(connection_class, kwargs, _safe(spec), timeout, max_connections)
    if hasattr(spec, "get_nodes") and hasattr(spec, "nodes_manager"):  # RedisCluster
        options = dict(spec.nodes_manager.connection_kwargs)
        for key in ("host", "port"):
            options.pop(key, None)
        seeds = [(node.host, int(node.port)) for node in spec.get_nodes()] or [
            (node.host, int(node.port)) for node in spec.nodes_manager.startup_nodes.values()
        ]
        description = "Redis Cluster at %s" % ",".join("%s:%d" % seed for seed in seeds[:3])
        return ClusterLink(_cluster_maker(seeds), options, seeds, description, timeout, max_connections)
    pool = spec.connection_pool
    if "Sentinel" in type(pool).__name__:
        raise ValueError(
            "a Redis Sentinel client is not supported yet: give the master's redis:// URL, "
            "or use a Redis Cluster (redis+cluster://)"
        )
    kwargs = dict(pool.connection_kwargs)
    where = kwargs.get("path") or "%s:%s" % (kwargs.get("host", "localhost"), kwargs.get("port", 6379))
    return ServerLink(pool.connection_class, kwargs, "Redis at %s" % where, timeout, max_connections)


def _cluster_from_url(url: str, timeout: float, max_connections: int) -> ClusterLink:
    """``redis+cluster://[user:password@]host:port[,host:port...][/0][?options]``
    (``rediss+cluster://`` for TLS): any one seed node finds the others."""
    redis = require_redis()
    scheme, rest = url.split("://", 1)
    base = "rediss" if scheme.lower().startswith("rediss") else "redis"
    credentials, at, hosts_and_path = rest.rpartition("@")
    hosts, slash, tail = hosts_and_path.partition("/")
    if "?" in hosts:
        hosts, tail = hosts.split("?", 1)[0], "?" + hosts.split("?", 1)[1]
        slash = ""
    seeds: List[Tuple[str, int]] = []
    for part in hosts.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("%s: each seed node must be host:port" % _safe(url))
        seeds.append((host.strip("[]"), int(port)))
    single = "%s://%s%s%s:%d%s%s" % (
        base, credentials, at, seeds[0][0], seeds[0][1], slash, tail,
    )
    options = dict(redis.connection.parse_url(single))
    if options.pop("db", 0) not in (0, None):
        raise ValueError("%s: a Redis Cluster has only database 0" % _safe(url))
    for key in ("host", "port"):
        options.pop(key, None)
    description = "Redis Cluster at %s" % _safe(url)
    return ClusterLink(_cluster_maker(seeds), options, seeds, description, timeout, max_connections)


def _cluster_maker(seeds: List[Tuple[str, int]]) -> Callable[[Dict[str, Any]], Any]:
    def make(options: Dict[str, Any]) -> Any:
        from redis.cluster import ClusterNode, RedisCluster

        return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in seeds], **options)

    return make
