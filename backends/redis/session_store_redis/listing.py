"""Complete listings of a Redis Cluster, also while slots migrate and nodes come and go.

Walking the primaries one after the other with ``SCAN`` misses a key whose slot moves from a
primary not yet walked to one already walked, and a cached slot map misses a primary added since.
A listing here is *proven* complete slot by slot:

1. **Refresh the slot map** (``CLUSTER SLOTS``) before the walk, so a primary added or a failover
   since the last command is walked.
2. **Walk every primary with** ``SCAN``, reading just before and just after the walk, in one
   ``MULTI`` each, the node's own view of its slots (``CLUSTER NODES``: owned, migrating) and how
   many keys have *arrived* at it (``RESTORE-ASKING`` and ``RESTORE`` calls in ``INFO
   commandstats``: ``MIGRATE`` sends those, and it is the only way a key moves between primaries).
   A slot the node owned at both ends, migrating at neither, with no key arriving in between, is
   proven: its keys stayed on the node throughout the walk, and ``SCAN`` returns every key
   present throughout.
3. **Coverage**: the slots no walk proved (those that migrated or moved, or every slot of a node
   keys arrived at) are read again slot by slot, ``CLUSTER GETKEYSINSLOT`` on the slot's owner in
   one ``MULTI`` with that node's view (so the keys and the slot's state are of one instant). A
   slot its owner does not migrate is then proven. A migrating slot is also read on the target
   (after the source: keys move from source to target); proven if the target still imports it
   (or owns it) and no key arrived back at the source in between. Others are read again, up to
   ``rounds`` times.

What no round proved is reported: :attr:`ClusterListing.complete` is ``False``, its
:attr:`~ClusterListing.unproven_slots` name the slots, and a :class:`ListingIncompleteWarning`
is issued when the listing ends. The proof assumes keys move only by ``MIGRATE`` under the
``SETSLOT`` protocol (what ``redis-cli --cluster reshard/rebalance`` and every operator tool do).
Step 3 reads every key of a slot (all namespaces; the prefix is filtered here), so it costs more
than ``SCAN`` on a large database; it runs only for the slots that moved during the walk.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from redis import Redis
from redis.cluster import ClusterNode, RedisCluster

__all__ = ["SLOTS", "ClusterListing", "ListingIncompleteWarning", "NodeState", "walk_cluster"]

#: Hash slots of a Redis Cluster.
SLOTS = 16384
#: Slots read per ``MULTI`` in the coverage pass: bounds how long one node is busy.
SLOT_BATCH = 256
#: ``GETKEYSINSLOT``'s count: every key of the slot (Redis allocates only what the slot holds).
_ALL_KEYS = 2**31 - 1
_ARRIVALS = ("cmdstat_restore-asking", "cmdstat_restore")


class ListingIncompleteWarning(UserWarning):
    """A cluster listing could not be proven complete: keys of the slots named may be missing
    (slots kept moving through every round). Copying or migrating from such a listing may skip
    sessions; run it again once the resharding is over."""


@dataclass(frozen=True)
class NodeState:
    """A primary's view of itself at one instant."""

    node_id: str
    owned: tuple[tuple[int, int], ...]  # inclusive slot ranges
    migrating: dict[int, str]  # slot -> the node id it migrates to
    importing: dict[int, str]  # slot -> the node id it imports from
    arrivals: int  # RESTORE-ASKING + RESTORE calls so far
    addresses: dict[str, tuple[str, int]] = field(default_factory=dict)  # node id -> host, port

    def owns(self, slot: int) -> bool:
        """Whether this node serves ``slot`` (by its own view)."""
        return any(low <= slot <= high for low, high in self.owned)

    def settled(self, slot: int) -> bool:
        """Whether every key of ``slot`` is on this node now (it owns it, migrates it nowhere)."""
        return slot not in self.migrating and self.owns(slot)


def parse_state(nodes_text: bytes | str, stats: dict[str, Any]) -> NodeState:
    """A :class:`NodeState` from ``CLUSTER NODES`` (its ``myself`` line) and ``INFO
    commandstats``."""
    text = nodes_text.decode() if isinstance(nodes_text, bytes) else nodes_text
    arrivals = sum(int(stats.get(name, {}).get("calls", 0)) for name in _ARRIVALS)
    addresses: dict[str, tuple[str, int]] = {}
    mine: list[str] | None = None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        host, _, port = fields[1].split("@")[0].rpartition(":")
        if port.isdigit():
            addresses[fields[0]] = (host, int(port))
        if "myself" in fields[2].split(","):
            mine = fields
    if mine is not None:
        fields = mine
        owned: list[tuple[int, int]] = []
        migrating: dict[int, str] = {}
        importing: dict[int, str] = {}
        for part in fields[8:]:
            if part.startswith("["):
                slot_text, arrow, other = part.strip("[]").partition("->-")
                if arrow:
                    migrating[int(slot_text)] = other
                else:
                    slot_text, _, other = part.strip("[]").partition("-<-")
                    importing[int(slot_text)] = other
                continue
            low, _, high = part.partition("-")
            owned.append((int(low), int(high or low)))
        return NodeState(fields[0], tuple(owned), migrating, importing, arrivals, addresses)
    raise ValueError("CLUSTER NODES has no line for the node itself")


def read_state(node: Redis, slots: Iterable[int] = ()) -> tuple[NodeState, list[list[bytes]]]:
    """The node's view of itself and, of the same instant (one ``MULTI``), its keys in
    ``slots``."""
    pipe = node.pipeline(transaction=True)
    pipe.execute_command("CLUSTER", "NODES")  # type: ignore[no-untyped-call]
    pipe.execute_command("INFO", "commandstats")  # type: ignore[no-untyped-call]
    wanted = list(slots)
    for slot in wanted:
        pipe.execute_command("CLUSTER", "GETKEYSINSLOT", slot, _ALL_KEYS)  # type: ignore[no-untyped-call]
    replies = pipe.execute()
    return parse_state(replies[0], replies[1]), [list(keys) for keys in replies[2:]]


@dataclass
class ClusterListing(Iterator[str]):
    """The keys of one cluster listing, and, once exhausted, whether it was proven complete.

    ``complete`` is ``None`` while keys are still coming, then ``True`` or ``False``;
    ``unproven_slots`` names the slots no round could prove (empty when complete).
    """

    _keys: Iterator[str]
    complete: bool | None = None
    unproven_slots: frozenset[int] = field(default_factory=frozenset)

    def __iter__(self) -> ClusterListing:
        return self

    def __next__(self) -> str:
        return next(self._keys)


class _Walk:
    """Which slots a walk has proven so far (one byte per slot), and which nodes it walked."""

    def __init__(self) -> None:
        self._proven = bytearray(SLOTS)
        self.walked: set[str] = set()

    def prove(self, slot: int) -> None:
        self._proven[slot] = 1

    def prove_walk(self, before: NodeState, after: NodeState) -> None:
        """The slots a ``SCAN`` of one node proved, from its state before and after it: owned
        at both ends, migrating at neither, no key arrived in between."""
        if before.node_id != after.node_id or before.arrivals != after.arrivals:
            return
        moving = {*before.migrating, *after.migrating}
        kept = {slot: self._proven[slot] for slot in moving}  # proven by another walk, or not
        if before.owned == after.owned:  # the usual case: mark whole ranges
            for low, high in before.owned:
                self._proven[low : high + 1] = b"\x01" * (high - low + 1)
        else:
            for low, high in before.owned:
                for slot in range(low, high + 1):
                    if after.owns(slot):
                        self._proven[slot] = 1
        for slot, value in kept.items():
            self._proven[slot] = value

    @property
    def missing(self) -> list[int]:
        """The slots not proven yet, in order (found by ``bytearray.find``: fast when few)."""
        found: list[int] = []
        start = self._proven.find(0)
        while start != -1:
            found.append(start)
            start = self._proven.find(0, start + 1)
        return found

    @property
    def complete(self) -> bool:
        """Whether every slot is proven."""
        return self._proven.find(0) == -1

    def __len__(self) -> int:
        return SLOTS - self._proven.count(0)


def walk_cluster(
    client: RedisCluster,
    pattern: str,
    head: bytes,
    rounds: int,
    scan_count: int,
    on_end: Callable[[frozenset[int]], None],
) -> Iterator[list[bytes]]:
    """Pages of stored keys matching ``pattern`` (``SCAN`` pattern) / starting with ``head``
    (the same prefix, literal), over every primary; see the module's docstring. When it ends,
    ``on_end`` gets the slots it could not prove (empty: complete). Raises redis-py's errors."""
    walk = _Walk()
    yield from _scan_nodes(client, client.get_primaries(), pattern, scan_count, walk)  # type: ignore[no-untyped-call]
    if not walk.complete:
        # A primary added or promoted, slots moved: walk the primaries of the map of now that
        # were not walked, then read what is still unproven slot by slot.
        client.nodes_manager.initialize()
        fresh = [n for n in client.get_primaries() if n.name not in walk.walked]  # type: ignore[no-untyped-call]
        yield from _scan_nodes(client, fresh, pattern, scan_count, walk)
    for attempt in range(rounds):
        if walk.complete:
            break
        missing = walk.missing
        if attempt:
            client.nodes_manager.initialize()
        yield from _read_slots(client, missing, head, walk)
    on_end(frozenset() if walk.complete else frozenset(walk.missing))


def _scan_nodes(
    client: RedisCluster,
    nodes: list[ClusterNode],
    pattern: str,
    scan_count: int,
    walk: _Walk,
) -> Iterator[list[bytes]]:
    """``SCAN`` each node, its state read before and after; what that proves goes to ``walk``."""
    for node in nodes:
        walk.walked.add(node.name)
        redis_node = client.get_redis_connection(node)
        before, _ = read_state(redis_node)
        cursor = 0
        while True:
            cursor, batch = redis_node.scan(cursor, match=pattern, count=scan_count)
            yield cast("list[bytes]", batch)
            if int(cursor) == 0:
                break
        after, _ = read_state(redis_node)
        walk.prove_walk(before, after)


def _read_slots(
    client: RedisCluster, slots: list[int], head: bytes, walk: _Walk
) -> Iterator[list[bytes]]:
    """Read ``slots`` slot by slot on their owners (and migration targets); add what is proven
    to ``walk``."""
    by_owner: dict[str, tuple[ClusterNode, list[int]]] = {}
    for slot in slots:
        owner = client.nodes_manager.get_node_from_slot(slot)
        by_owner.setdefault(owner.name, (owner, []))[1].append(slot)
    for owner, owned in by_owner.values():
        source = client.get_redis_connection(owner)
        for start in range(0, len(owned), SLOT_BATCH):
            batch = owned[start : start + SLOT_BATCH]
            state, keys_per_slot = read_state(source, batch)
            for slot, keys in zip(batch, keys_per_slot, strict=True):
                mine = [key for key in keys if key.startswith(head)]
                if state.settled(slot):
                    walk.prove(slot)
                    yield mine
                elif slot in state.migrating:
                    yield mine  # keys still on the source; the rest are on the target
                    yield from _read_target(client, source, state, slot, head, walk)


def _read_target(
    client: RedisCluster, source: Redis, state: NodeState, slot: int, head: bytes, walk: _Walk
) -> Iterator[list[bytes]]:
    """The keys of a migrating slot already on its target; proven if the target still imports
    it (or owns it, the migration done) and no key arrived back at the source meanwhile."""
    address = state.addresses.get(state.migrating[slot])
    target = None if address is None else client.get_node(*address)  # type: ignore[no-untyped-call]
    if target is None:  # a node the client does not know yet: the next round, after a refresh
        return
    target_state, (keys,) = read_state(client.get_redis_connection(target), [slot])
    yield [key for key in keys if key.startswith(head)]
    if target_state.importing.get(slot) != state.node_id and not target_state.settled(slot):
        return
    source_after, _ = read_state(source)
    if source_after.arrivals == state.arrivals and source_after.node_id == state.node_id:
        walk.prove(slot)


def warn_incomplete(description: str, unproven: frozenset[int]) -> None:
    """Issue the :class:`ListingIncompleteWarning` for a listing that missed ``unproven``."""
    shown = ", ".join(str(slot) for slot in sorted(unproven)[:10])
    more = f" and {len(unproven) - 10} more" if len(unproven) > 10 else ""
    warnings.warn(
        ListingIncompleteWarning(
            f"the listing of {description} could not be proven complete: slots {shown}{more} "
            "kept moving (a resharding in progress); keys there may be missing"
        ),
        stacklevel=3,
    )
