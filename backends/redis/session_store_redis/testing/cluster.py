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
import subprocess
from typing import Self
from urllib.parse import quote

import redis

from session_store_redis.patterns import prefix_pattern
from session_store_redis.testing.cluster_nodes import (
    CLI_ENV,
    ClusterNodeInfo,
    find_redis_cli,
    nodes_of,
    start_node,
)
from session_store_redis.testing.cluster_reshard import TopologyChanges
from session_store_redis.testing.fleet import ClientCache, stop_all, wait_until
from session_store_redis.testing.server import RedisServer, RedisServerError, find_redis_server
from session_store_redis.testing.workdir import Harness, quote_conf

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


class RedisClusterServers(TopologyChanges, Harness):
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
        super().__init__(directory, password)
        self.extra_config = extra_config
        self.startup_timeout = startup_timeout
        self.nodes: list[RedisServer] = []
        self._clients = ClientCache()

    # -- addresses -----------------------------------------------------------------------------
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
        directory = self._make_directory("session-store-redis-cluster-")
        try:
            for index in range(self.primaries * (1 + self.replicas)):
                self.nodes.append(
                    start_node(
                        directory / f"node-{index}",
                        self._node_config(),
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

    def _node_config(self) -> tuple[str, ...]:
        """The ``redis.conf`` lines of every node (a node added later gets the same)."""
        return (
            f"cluster-node-timeout {self.node_timeout_ms}",
            "repl-diskless-sync-delay 0",  # replicas sync at once, not after 5 s
            *([f"masterauth {quote_conf(self._password)}"] if self._password else []),
            *self.extra_config,
        )

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

    # -- state ---------------------------------------------------------------------------------
    def _view_of(self, node: RedisServer) -> list[ClusterNodeInfo]:
        try:
            return nodes_of(self._clients.of(node))
        except redis.RedisError:
            return []

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
                nodes = nodes_of(client)
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
                return nodes_of(self._clients.of(node))
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
        self._release_directory(remove_directory)

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
