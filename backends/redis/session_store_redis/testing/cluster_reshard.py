"""Changing a test Redis Cluster's topology while it runs: add and remove primaries, rebalance,
and move one slot step by step (``SETSLOT IMPORTING/MIGRATING``, ``MIGRATE``, ``SETSLOT NODE``)
so that a test can hold a slot half-moved. A base of
:class:`~session_store_redis.testing.cluster.RedisClusterServers`, which provides the nodes."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from session_store_redis.testing.cluster_nodes import (
    PORT_ATTEMPTS,
    ClusterNodeInfo,
    command,
    start_node,
)
from session_store_redis.testing.fleet import ClientCache, wait_until
from session_store_redis.testing.server import RedisServer, RedisServerError

__all__ = ["SlotMigrator", "TopologyChanges"]


class TopologyChanges:
    """Topology changes of a running cluster (see the module docstring)."""

    if TYPE_CHECKING:  # provided by RedisClusterServers
        binary: str
        directory: Path | None
        nodes: list[RedisServer]
        startup_timeout: float
        _clients: ClientCache
        _password: str | None

        @property
        def host(self) -> str: ...
        def _node_config(self) -> tuple[str, ...]: ...
        def _cli(self, *args: str, expect: str | None = None) -> str: ...
        def _view_of(self, node: RedisServer) -> list[ClusterNodeInfo]: ...
        def wait_healthy(self, timeout: float = 30.0) -> None: ...
        def topology(self) -> list[ClusterNodeInfo]: ...
        def node_on(self, port: int) -> RedisServer: ...
        def primary_nodes(self) -> list[RedisServer]: ...

    def add_primary(self) -> RedisServer:
        """Start one more node and join it as a primary serving no slot yet (``redis-cli
        --cluster add-node``); :meth:`rebalance` gives it slots.

        Raises:
            RedisServerError: it did not start or join.
        """
        assert self.directory is not None
        node = start_node(
            self.directory / f"node-{len(self.nodes)}",
            self._node_config(),
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
        for _ in range(PORT_ATTEMPTS):
            source = self._agreed_owner(slot)
            if source is target:
                return source
            ids = {info.port: info.node_id for info in self.topology()}
            src, dst = self._clients.of(source), self._clients.of(target)
            try:
                command(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.port])
                command(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.port])
            except redis.ResponseError:
                # a gossip message of an older configuration arrived late: start again
                for client in (dst, src):
                    command(client, "CLUSTER", "SETSLOT", slot, "STABLE")
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
            keys = command(src, "CLUSTER", "GETKEYSINSLOT", slot, 10)
            if not keys:
                break
            for key in keys[: None if limit is None else limit - moved]:
                command(src, "MIGRATE", self.host, target.port, "", 0, 5000, *auth, "KEYS", key)
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
            command(self._clients.of(node), "CLUSTER", "SETSLOT", slot, "NODE", ids[target.port])
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


class SlotMigrator(threading.Thread):
    """Moves ``slots`` to the next primary, one slot after the other and a key at a time, then
    all of them back, over and over until :attr:`stop` is set; counts the keys moved
    (:attr:`moved`) and the rounds (:attr:`rounds`), and keeps an error for the test to report
    (:attr:`error`). A slot is not moved back at once: a cluster whose slot changes owner twice
    within one gossip round can lose track of it.

    Args:
        cluster: the cluster (its slots must be stable when the thread starts).
        slots: the slots to move.
        home_on_stop: once stopped, finish the round trip, so that every slot is back on its
            first primary (a cluster shared with later tests); otherwise stop before the next
            slot.
    """

    def __init__(
        self, cluster: TopologyChanges, slots: list[int], *, home_on_stop: bool = False
    ) -> None:
        super().__init__(daemon=True)
        self.cluster, self.slots, self.home_on_stop = cluster, slots, home_on_stop
        self.stop = threading.Event()
        self.moved = self.rounds = 0
        self.error: BaseException | None = None

    def _stopping(self) -> bool:
        return self.stop.is_set() and not (self.home_on_stop and self.rounds % 2)

    def run(self) -> None:
        try:
            primaries = self.cluster.primary_nodes()
            home = {slot: self.cluster.owner_of(slot) for slot in self.slots}
            while not self._stopping():
                for slot in self.slots:
                    if self.stop.is_set() and not self.home_on_stop:
                        return
                    source = home[slot]
                    away = primaries[(primaries.index(source) + 1) % len(primaries)]
                    target = away if self.rounds % 2 == 0 else source
                    self.moved += self.cluster.move_slot(slot, target, pause=0.001)
                self.rounds += 1
        except BaseException as exc:  # reported by the test
            self.error = exc
