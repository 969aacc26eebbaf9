"""Start a real Redis Cluster on free loopback ports, and stop exactly the processes it started.

    with RedisClusterServers(primaries=3, replicas=1) as cluster:
        backend = open_backend(cluster.url_for(prefix="test:"))

Each node is a :class:`~session_store_redis.testing.server.RedisServer` with
``cluster-enabled yes``, its own directory (``nodes.conf`` lives there, so a killed node restarted
on the same port rejoins as the node it was), a client port and a cluster-bus port both picked
free (``cluster-port``: the default bus port, client port + 10000, may not exist or be taken).
``redis-cli --cluster create ... --cluster-yes`` assigns the slots; :meth:`start` returns when
every node agrees that the cluster is ``ok`` and every replica is in sync with its primary.

``cluster-node-timeout`` defaults to 1500 ms, so a killed primary is replaced by its replica in
a few seconds (the failover tests measure it). :meth:`stop` stops only the processes this object
started, by pid. No fake Redis: without ``redis-server`` or ``redis-cli``,
:class:`~session_store_redis.testing.server.RedisServerNotFoundError` says how to install them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from session_store_redis.patterns import prefix_pattern
from session_store_redis.testing.server import (
    RedisServer,
    RedisServerError,
    find_binary,
    find_redis_server,
    free_port,
)

__all__ = [
    "CLI_ENV",
    "ClientCache",
    "ClusterNodeInfo",
    "RedisClusterServers",
    "find_redis_cli",
    "start_node",
    "stop_all",
    "wait_until",
]

#: Environment variable naming the redis-cli binary to use.
CLI_ENV = "SESSION_STORE_REDIS_CLI"
_CLI_FALLBACKS = ("/usr/bin/redis-cli", "/usr/local/bin/redis-cli")
_PORT_ATTEMPTS = 5


def find_redis_cli() -> str:
    """The redis-cli binary: ``$SESSION_STORE_REDIS_CLI``, else on ``PATH``, else the usual places.

    Raises:
        RedisServerNotFoundError: there is none.
    """
    return find_binary(
        "redis-cli",
        CLI_ENV,
        _CLI_FALLBACKS,
        "the Redis Cluster tests need it to create a real cluster: install it (Debian/Ubuntu: "
        "`apt-get install redis-tools`, macOS: `brew install redis`)",
    )


def wait_until(what: str, check: Callable[[], bool], timeout: float, pause: float = 0.05) -> None:
    """Poll ``check`` until it is true.

    Raises:
        RedisServerError: still false after ``timeout`` seconds (naming ``what``).
    """
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RedisServerError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(pause)


class ClientCache:
    """Plain clients to our own servers, kept for the inspection helpers (one connection per
    server instead of one per call); RESP2, one retry so that a restarted server is reached
    again at once, short timeouts so that a dead one costs little."""

    def __init__(self) -> None:
        self._clients: dict[int, redis.Redis] = {}
        self._lock = threading.Lock()

    def of(self, server: RedisServer) -> redis.Redis:
        """The kept client of ``server`` (by port)."""
        with self._lock:
            client = self._clients.get(server.port)
            if client is None:
                client = server.client(
                    socket_timeout=2.0,
                    socket_connect_timeout=1.0,
                    protocol=2,
                    retry=Retry(NoBackoff(), 1),
                )
                self._clients[server.port] = client
            return client

    def close(self) -> None:
        """Close every kept client."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


def stop_all(servers: Iterable[RedisServer]) -> None:
    """Stop servers concurrently (each by its own pid), keeping their directories."""
    servers = list(servers)
    if not servers:
        return
    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        list(pool.map(lambda server: server.stop(remove_directory=False), servers))


def start_node(
    directory: Path,
    extra_config: Iterable[str] = (),
    *,
    binary: str | None = None,
    password: str | None = None,
) -> RedisServer:
    """A cluster-enabled redis-server with a free client port and a free bus port.

    Both ports are picked anew when the server reports one of them taken (another test process
    may grab a port between our check and the server's bind).
    """
    last: RedisServerError | None = None
    for _ in range(_PORT_ATTEMPTS):
        server = RedisServer(
            port=free_port(),
            directory=directory,
            binary=binary,
            password=password,
            extra_config=(
                "cluster-enabled yes",
                "cluster-config-file nodes.conf",
                f"cluster-port {free_port()}",
                *extra_config,
            ),
        )
        try:
            return server.start()
        except RedisServerError as exc:
            if "Address already in use" not in str(exc):
                raise
            last = exc
    assert last is not None
    raise last


@dataclass(frozen=True)
class ClusterNodeInfo:
    """One line of ``CLUSTER NODES`` as seen from a live node."""

    node_id: str
    port: int
    primary: bool
    failed: bool
    primary_id: str | None  # a replica's primary
    slots: int  # how many slots a primary serves
    ranges: tuple[tuple[int, int], ...] = ()  # the slots it serves, as inclusive ranges

    def owns(self, slot: int) -> bool:
        """Whether this node serves ``slot`` (by this view)."""
        return any(low <= slot <= high for low, high in self.ranges)


def _parse_nodes(text: str) -> list[ClusterNodeInfo]:
    nodes = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        address = fields[1].split("@")[0]
        flags = set(fields[2].split(","))
        slots = 0
        ranges: list[tuple[int, int]] = []
        for part in fields[8:]:
            if part.startswith("["):  # a slot being migrated, not owned
                continue
            low, _, high = part.partition("-")
            ranges.append((int(low), int(high) if high else int(low)))
            slots += ranges[-1][1] - ranges[-1][0] + 1
        nodes.append(
            ClusterNodeInfo(
                node_id=fields[0],
                port=int(address.rsplit(":", 1)[1]),
                primary="master" in flags,
                failed="fail" in flags or "fail?" in flags,
                primary_id=None if fields[3] == "-" else fields[3],
                slots=slots,
                ranges=tuple(ranges),
            )
        )
    return nodes


class RedisClusterServers:
    """A Redis Cluster of ``primaries`` primaries with ``replicas`` replicas each, on 127.0.0.1.

    Args:
        primaries: how many primaries share the 16384 slots (at least 3, Redis's minimum).
        replicas: replicas per primary (0 or more).
        node_timeout_ms: ``cluster-node-timeout``: how long a primary may be unreachable before
            its replica takes over.
        password: ``requirepass`` (and ``masterauth``) of every node; the URLs then carry it.
        directory: where the nodes keep their files; a temporary directory :meth:`stop` removes
            by default.
        extra_config: more ``redis.conf`` lines for every node.
        startup_timeout: seconds to wait for the cluster to be ``ok`` and in sync.
    """

    def __init__(
        self,
        *,
        primaries: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 1500,
        password: str | None = None,
        directory: str | os.PathLike[str] | None = None,
        extra_config: tuple[str, ...] = (),
        startup_timeout: float = 60.0,
    ) -> None:
        if primaries < 3:
            raise ValueError("Redis Cluster needs at least 3 primaries")
        if replicas < 0:
            raise ValueError("replicas must be >= 0")
        self.binary = find_redis_server()
        self.cli = find_redis_cli()
        self.primaries = primaries
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self._password = password
        self._own_directory = directory is None
        self.directory = Path(directory) if directory is not None else None
        self.extra_config = extra_config
        self.startup_timeout = startup_timeout
        self.nodes: list[RedisServer] = []
        self._clients = ClientCache()

    # -- addresses -----------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """Always the loopback address."""
        return "127.0.0.1"

    @property
    def password(self) -> str | None:
        """The nodes' ``requirepass``, if any."""
        return self._password

    @property
    def ports(self) -> list[int]:
        """Client ports of every node, primaries and replicas, in start order."""
        return [node.port for node in self.nodes]

    def url_for(self, *, startup_nodes: int = 1, **params: str) -> str:
        """``redis+cluster://127.0.0.1:PORT[,...]/?name=value...`` naming ``startup_nodes`` nodes.

        One startup node is enough: the client learns every other node from it. (A URL listing
        several needs a session-store core whose ``parse_url`` accepts a host list.)
        """
        auth = f":{quote(self._password, safe='')}@" if self._password else ""
        hosts = ",".join(f"{self.host}:{port}" for port in self.ports[:startup_nodes])
        query = "&".join(f"{name}={quote(value, safe='/:')}" for name, value in params.items())
        return f"redis+cluster://{auth}{hosts}/" + (f"?{query}" if query else "")

    @property
    def url(self) -> str:
        """The cluster's URL with one startup node and no parameters."""
        return self.url_for()

    @property
    def pids(self) -> list[int]:
        """Process ids of the nodes that run."""
        return [node.pid for node in self.nodes if node.pid is not None]

    def __repr__(self) -> str:
        running = sum(node.running for node in self.nodes)
        return f"RedisClusterServers({running}/{len(self.nodes)} nodes on 127.0.0.1 {self.ports})"

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> Self:
        """Start every node, create the cluster, wait until it is ``ok`` and replicas are synced.

        Raises:
            RedisServerError: a node did not start, ``redis-cli --cluster create`` failed, or the
                cluster did not converge within ``startup_timeout``.
        """
        if self.nodes:
            return self
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="session-store-redis-cluster-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        config = (
            f"cluster-node-timeout {self.node_timeout_ms}",
            "repl-diskless-sync-delay 0",  # replicas sync at once, not after 5 s
            *([f"masterauth {_quote_conf(self._password)}"] if self._password else []),
            *self.extra_config,
        )
        try:
            for index in range(self.primaries * (1 + self.replicas)):
                self.nodes.append(
                    start_node(
                        self.directory / f"node-{index}",
                        config,
                        binary=self.binary,
                        password=self._password,
                    )
                )
            self._create()
            self.wait_healthy(self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        addresses = [f"{self.host}:{node.port}" for node in self.nodes]
        self._cli(
            "create",
            *addresses,
            "--cluster-replicas",
            str(self.replicas),
            "--cluster-yes",
            expect="[OK] All 16384 slots covered",
        )

    def _cli(self, *args: str, expect: str | None = None) -> str:
        """Run ``redis-cli --cluster <args>``; its output.

        Raises:
            RedisServerError: it failed, or its output lacks ``expect``.
        """
        environment = dict(os.environ)
        if self._password:  # through the environment: never in the process list
            environment["REDISCLI_AUTH"] = self._password
        result = subprocess.run(  # noqa: S603 - our own binary and arguments
            [self.cli, "--cluster", *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=self.startup_timeout,
            check=False,
        )
        if result.returncode != 0 or (expect is not None and expect not in result.stdout):
            raise RedisServerError(
                f"redis-cli --cluster {args[0]} failed ({result.returncode}):\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )
        return result.stdout

    # -- changing the topology -----------------------------------------------------------------
    def add_primary(self) -> RedisServer:
        """Start one more node and join it as a primary serving no slot yet (``redis-cli
        --cluster add-node``); :meth:`rebalance` gives it slots.

        Raises:
            RedisServerError: it did not start or join.
        """
        assert self.directory is not None
        config = (
            f"cluster-node-timeout {self.node_timeout_ms}",
            "repl-diskless-sync-delay 0",
            *([f"masterauth {_quote_conf(self._password)}"] if self._password else []),
            *self.extra_config,
        )
        node = start_node(
            self.directory / f"node-{len(self.nodes)}",
            config,
            binary=self.binary,
            password=self._password,
        )
        self.nodes.append(node)
        existing = next(n for n in self.primary_nodes() if n is not node)
        self._cli("add-node", f"{self.host}:{node.port}", f"{self.host}:{existing.port}")
        wait_until(
            "every node to know the new one",
            lambda: all(
                node.port in {n.port for n in self._view_of(other)} for other in self.nodes
            ),
            self.startup_timeout,
        )
        self.wait_healthy(self.startup_timeout)  # the new node says the cluster is ok, too
        return node

    def _view_of(self, node: RedisServer) -> list[ClusterNodeInfo]:
        try:
            return _nodes_of(self._clients.of(node))
        except redis.RedisError:
            return []

    def rebalance(self) -> None:
        """Spread the slots evenly over every primary, empty ones included (``redis-cli --cluster
        rebalance --cluster-use-empty-masters``: it migrates keys slot by slot), and wait until
        every node agrees.

        Raises:
            RedisServerError: it failed or the cluster did not settle.
        """
        first = self.primary_nodes()[0]
        self._cli("rebalance", f"{self.host}:{first.port}", "--cluster-use-empty-masters")
        self.wait_healthy(self.startup_timeout)

    def remove_primary(self, node: RedisServer) -> None:
        """Move every slot off ``node`` (``redis-cli --cluster rebalance`` with its weight 0),
        then remove it (``del-node``: the others forget it, it is shut down) and wait until the
        rest agree.

        Raises:
            RedisServerError: a step failed or the cluster did not settle.
        """
        ids = {info.port: info.node_id for info in self.topology()}
        other = next(n for n in self.primary_nodes() if n is not node)
        address = f"{self.host}:{other.port}"
        self._cli("rebalance", address, "--cluster-weight", f"{ids[node.port]}=0")
        self._cli("del-node", address, ids[node.port])
        self.nodes.remove(node)
        node.stop(remove_directory=False)  # del-node shut it down; make sure, by its pid
        self.wait_healthy(self.startup_timeout)

    def owner_of(self, slot: int) -> RedisServer:
        """The primary serving ``slot`` now (by the first running node's view)."""
        for info in self.topology():
            if info.primary and info.owns(slot):
                return self.node_on(info.port)
        raise RedisServerError(f"no primary serves slot {slot}")

    def move_slot(self, slot: int, target: RedisServer, *, pause: float = 0.0) -> int:
        """Move ``slot`` to ``target`` as ``redis-cli --cluster reshard`` does
        (:meth:`start_move`, :meth:`migrate_keys`, :meth:`finish_move`); ``pause`` seconds
        between keys keep the slot half-moved meanwhile. Returns how many keys moved.

        Raises:
            RedisServerError: the primaries did not agree on the slot's owner in time.
        """
        source = self.start_move(slot, target)
        if source is target:
            return 0
        moved = self.migrate_keys(slot, source, target, pause=pause)
        self.finish_move(slot, source, target)
        return moved

    def start_move(self, slot: int, target: RedisServer) -> RedisServer:
        """``CLUSTER SETSLOT IMPORTING`` on ``target``, ``MIGRATING`` on the slot's owner; the
        owner (``target`` itself if it owns the slot already: nothing to do)."""
        for _ in range(_PORT_ATTEMPTS):
            source = self._agreed_owner(slot)
            if source is target:
                return source
            ids = {info.port: info.node_id for info in self.topology()}
            src, dst = self._clients.of(source), self._clients.of(target)
            try:
                _command(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.port])
                _command(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.port])
            except redis.ResponseError:
                # a gossip message of an older configuration arrived late: start again
                for client in (dst, src):
                    _command(client, "CLUSTER", "SETSLOT", slot, "STABLE")
                time.sleep(0.05)
                continue
            return source
        raise RedisServerError(f"could not start moving slot {slot}")

    def migrate_keys(
        self,
        slot: int,
        source: RedisServer,
        target: RedisServer,
        *,
        pause: float = 0.0,
        limit: int | None = None,
    ) -> int:
        """``MIGRATE`` the keys of ``slot`` from ``source`` to ``target`` one at a time (at most
        ``limit``); how many moved."""
        src = self._clients.of(source)
        auth = ("AUTH", self._password) if self._password else ()
        moved = 0
        while limit is None or moved < limit:
            keys = _command(src, "CLUSTER", "GETKEYSINSLOT", slot, 10)
            if not keys:
                break
            for key in keys[: None if limit is None else limit - moved]:
                _command(src, "MIGRATE", self.host, target.port, "", 0, 5000, *auth, "KEYS", key)
                moved += 1
                if pause:
                    time.sleep(pause)
        return moved

    def finish_move(self, slot: int, source: RedisServer, target: RedisServer) -> None:
        """``SETSLOT NODE`` on the target, the source and every other primary; wait until every
        primary agrees."""
        ids = {info.port: info.node_id for info in self.topology()}
        others = [n for n in self.primary_nodes() if n is not source and n is not target]
        for node in [target, source, *others]:
            _command(self._clients.of(node), "CLUSTER", "SETSLOT", slot, "NODE", ids[target.port])
        self._agreed_owner(slot)

    def _agreed_owner(self, slot: int) -> RedisServer:
        """The primary every primary says serves ``slot`` (waiting until they agree)."""
        owners: set[int] = set()

        def agreed() -> bool:
            owners.clear()
            for node in self.primary_nodes():
                owners.update(info.port for info in self._view_of(node) if info.owns(slot))
            return len(owners) == 1

        wait_until(f"every primary to agree which one serves slot {slot}", agreed, 10)
        return self.node_on(owners.pop())

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until every running node says ``cluster_state:ok``, agrees on the primaries, and
        every running replica's link to its primary is up and caught up.

        Raises:
            RedisServerError: not so within ``timeout`` seconds.
        """
        wait_until("the cluster to be ok and in sync", self.healthy, timeout)

    def healthy(self) -> bool:
        """Whether the cluster is ``ok`` on every running node, all agree, and replicas synced."""
        running = [node for node in self.nodes if node.running]
        views: list[frozenset[tuple[int, int]]] = []
        for node in running:
            client = self._clients.of(node)
            try:
                info = client.cluster("INFO")
                if info.get("cluster_state") != "ok":
                    return False
                nodes = _nodes_of(client)
                live_ports = {n.port for n in running}
                if any(n.failed and n.port in live_ports for n in nodes):
                    return False
                views.append(frozenset((n.port, n.slots) for n in nodes if n.primary and n.slots))
                replication = client.info("replication")
                if replication.get("role") == "slave" and (
                    replication.get("master_link_status") != "up"
                    or replication.get("master_sync_in_progress")
                ):
                    return False
            except redis.RedisError:
                return False
        return bool(views) and len(set(views)) == 1 and sum(s for _, s in views[0]) == 16384

    def topology(self) -> list[ClusterNodeInfo]:
        """``CLUSTER NODES`` as seen from the first running node."""
        for node in self.nodes:
            if not node.running:
                continue
            try:
                return _nodes_of(self._clients.of(node))
            except redis.RedisError:
                continue
        raise RedisServerError("no cluster node answers")

    def node_on(self, port: int) -> RedisServer:
        """The node listening on ``port``."""
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(port)

    def primary_nodes(self) -> list[RedisServer]:
        """The running nodes that serve slots now (roles change after a failover)."""
        ports = {n.port for n in self.topology() if n.primary and n.slots and not n.failed}
        return [node for node in self.nodes if node.port in ports and node.running]

    def primary_with_replica(self, timeout: float = 30.0) -> tuple[RedisServer, RedisServer]:
        """A primary serving slots and one of its replicas, waiting (up to ``timeout`` seconds)
        until the cluster's view shows such a pair: gossip can lag a just-started cluster on a
        loaded machine."""
        found: list[tuple[RedisServer, RedisServer]] = []

        def known() -> bool:
            nodes = self.topology()
            by_id = {n.node_id: n for n in nodes}
            for replica in nodes:
                primary = by_id.get(replica.primary_id or "")
                if primary is not None and primary.slots and not replica.failed:
                    found.append((self.node_on(primary.port), self.node_on(replica.port)))
                    return True
            return False

        wait_until("a primary with a replica in the cluster's view", known, timeout)
        return found[-1]

    def stop(self, *, remove_directory: bool | None = None) -> None:
        """Stop every node this object started (by pid: SIGTERM, then SIGKILL)."""
        nodes, self.nodes = self.nodes, []
        self._clients.close()
        stop_all(nodes)
        if remove_directory is None:
            remove_directory = self._own_directory
        if remove_directory and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- inspection ----------------------------------------------------------------------------
    def client(self, **options: object) -> redis.RedisCluster:
        """A plain redis-py cluster client (the caller closes it)."""
        settings: dict[str, object] = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}
        settings.update(options)
        return redis.RedisCluster(
            host=self.host,
            port=self.primary_nodes()[0].port,
            password=self._password,
            **settings,  # type: ignore[arg-type]
        )

    def command_calls(self) -> dict[str, int]:
        """``INFO commandstats`` summed over the primaries: ``{"mget": calls, ...}``."""
        total: dict[str, int] = {}
        for node in self.primary_nodes():
            for name, calls in node.command_calls().items():
                total[name] = total.get(name, 0) + calls
        return total

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with the literal ``prefix`` on every primary (SCAN +
        UNLINK one key at a time, so keys of different slots never meet in one command)."""
        if not prefix:
            raise ValueError("refusing to delete every key: give a non-empty prefix")
        removed = 0
        for node in self.primary_nodes():
            client = self._clients.of(node)
            keys = list(client.scan_iter(match=prefix_pattern(prefix), count=1000))
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.unlink(key)
            removed += sum(int(n) for n in pipe.execute()) if keys else 0
        return removed


def _command(client: redis.Redis, *args: object) -> Any:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def _quote_conf(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _nodes_of(client: redis.Redis) -> list[ClusterNodeInfo]:
    reply = client.execute_command("CLUSTER", "NODES")  # type: ignore[no-untyped-call]
    return _parse_nodes(reply.decode() if isinstance(reply, bytes) else str(reply))
