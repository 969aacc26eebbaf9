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
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from redis import Redis
from redis.cluster import RedisCluster
from redis.exceptions import ResponseError

from session_store.counters import Counters
from session_store_redis.multi_acl import LISTING, NO_MULTI, NODE_STATE, needs_one, refuses_multi

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


def parse_state(nodes_text: bytes | str, stats: bytes | str | dict[str, Any]) -> NodeState:
    """A :class:`NodeState` from ``CLUSTER NODES`` (its ``myself`` line) and ``INFO
    commandstats`` (raw or parsed)."""
    text = nodes_text.decode() if isinstance(nodes_text, bytes) else nodes_text
    stats = parse_commandstats(stats)
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


def read_state(node: Redis, slots: Iterable[int], client: object) -> tuple[NodeState, list[Any]]:
    """The node's view of itself and, of the same instant (one ``MULTI``; one script where the
    server refuses it, remembered on ``client``: :mod:`~.multi_acl`), its keys in ``slots``."""
    wanted = list(slots)
    if not getattr(client, NO_MULTI, False):
        pipe = node.pipeline(transaction=True)
        reads = (("CLUSTER", "NODES"), ("INFO", "commandstats"))
        for args in (*reads, *(("CLUSTER", "GETKEYSINSLOT", s, _ALL_KEYS) for s in wanted)):
            pipe.execute_command(*args)  # type: ignore[no-untyped-call]
        try:
            replies = pipe.execute()
        except ResponseError as exc:
            if not refuses_multi(exc):
                raise
            setattr(client, NO_MULTI, True)
    try:
        if getattr(client, NO_MULTI, False):
            replies = node.eval(NODE_STATE.text, 0, *wanted, _ALL_KEYS)
        return parse_state(replies[0], replies[1]), [list(keys) for keys in replies[2:]]
    except ResponseError as exc:  # EVAL refused too: say what the listing needs
        raise needs_one(exc, LISTING) from None


def parse_commandstats(raw: bytes | str | dict[str, Any]) -> dict[str, dict[str, int]]:
    """``INFO commandstats`` as :func:`~session_store_redis.listing.parse_state` wants it
    (``{"cmdstat_get": {"calls": 3, ...}}``), from the raw reply ``EXEC`` hands back."""
    if isinstance(raw, dict):
        return raw
    text = raw.decode() if isinstance(raw, bytes) else raw
    stats: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        if not sep or not name.startswith("cmdstat_"):
            continue
        fields: dict[str, int] = {}
        for part in rest.split(","):
            field_name, _, value = part.partition("=")
            if value.isdigit():
                fields[field_name] = int(value)
        stats[name] = fields
    return stats


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


# -- the walk, written once: steps that a sync and an asyncio driver run --------------------------
# The proof (see the module's docstring) yields what it needs done and gets the answer sent back:
#   ("refresh",) -> None            the slot map asked for again
#   ("primaries",) -> [node]        the primaries of the client's slot map
#   ("state", node, slots) -> (NodeState, keys per slot)   see read_state
#   ("scan", node, cursor) -> (cursor, keys)                one SCAN page of the walk's pattern
#   ("owner", slot) -> node         the slot's owner in the slot map
#   ("node", (host, port)) -> node | None   a node the client knows
#   ("page", keys) -> None          keys for the listing's consumer
# ``walk_steps`` returns the slots it could not prove. :func:`walk_cluster` is the sync driver,
# :func:`~session_store_redis.aio_listing.awalk_cluster` the asyncio one.
Step = tuple[Any, ...]
Steps = Generator[Step, Any, frozenset[int]]
_R = TypeVar("_R")


def walk_steps(head: bytes, rounds: int, *, refresh_first: bool) -> Steps:
    """The steps of one listing of the keys starting with ``head`` (see above)."""
    walk = _Walk()
    if refresh_first:  # step 1: a primary added since is walked
        yield ("refresh",)
    yield from _scan_nodes((yield ("primaries",)), walk)
    if not walk.complete:
        # A primary added or promoted, slots moved: walk the primaries of the map of now that
        # were not walked, then read what is still unproven slot by slot.
        yield ("refresh",)
        primaries = yield ("primaries",)
        yield from _scan_nodes([n for n in primaries if n.name not in walk.walked], walk)
    for attempt in range(rounds):
        if walk.complete:
            break
        missing = walk.missing
        if attempt:
            yield ("refresh",)
        yield from _slot_steps(missing, head, walk)
    return frozenset() if walk.complete else frozenset(walk.missing)


def _scan_nodes(nodes: list[Any], walk: _Walk) -> Generator[Step, Any, None]:
    """``SCAN`` each node, its state read before and after; what that proves goes to ``walk``."""
    for node in nodes:
        walk.walked.add(node.name)
        before, _ = yield ("state", node, ())
        cursor: Any = 0
        while True:
            cursor, batch = yield ("scan", node, cursor)
            yield ("page", list(batch))
            if int(cursor) == 0:
                break
        after, _ = yield ("state", node, ())
        walk.prove_walk(before, after)


def _slot_steps(slots: list[int], head: bytes, walk: _Walk) -> Generator[Step, Any, None]:
    """Read ``slots`` slot by slot on their owners (and migration targets); add what is proven
    to ``walk``."""
    by_owner: dict[str, tuple[Any, list[int]]] = {}
    for slot in slots:
        owner = yield ("owner", slot)
        by_owner.setdefault(owner.name, (owner, []))[1].append(slot)
    for owner, owned in by_owner.values():
        for start in range(0, len(owned), SLOT_BATCH):
            batch = owned[start : start + SLOT_BATCH]
            state, keys_per_slot = yield ("state", owner, batch)
            for slot, keys in zip(batch, keys_per_slot, strict=True):
                mine = [key for key in keys if key.startswith(head)]
                if state.settled(slot):
                    walk.prove(slot)
                    yield ("page", mine)
                elif slot in state.migrating:
                    yield ("page", mine)  # keys still on the source; the rest are on the target
                    yield from _read_target(owner, state, slot, head, walk)


def _read_target(
    source: Any, state: NodeState, slot: int, head: bytes, walk: _Walk
) -> Generator[Step, Any, None]:
    """The keys of a migrating slot already on its target; proven if the target still imports
    it (or owns it, the migration done) and no key arrived back at the source meanwhile."""
    address = state.addresses.get(state.migrating[slot])
    target = None if address is None else (yield ("node", address))
    if target is None:  # a node the client does not know yet: the next round, after a refresh
        return
    target_state, (keys,) = yield ("state", target, [slot])
    yield ("page", [key for key in keys if key.startswith(head)])
    if target_state.importing.get(slot) != state.node_id and not target_state.settled(slot):
        return
    source_after, _ = yield ("state", source, ())
    if source_after.arrivals == state.arrivals and source_after.node_id == state.node_id:
        walk.prove(slot)


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
    steps = walk_steps(head, rounds, refresh_first=False)
    on_end((yield from _run(client, steps, pattern, scan_count)))


def _read_slots(
    client: RedisCluster, slots: list[int], head: bytes, walk: _Walk
) -> Iterator[list[bytes]]:
    """The pages of reading ``slots`` slot by slot (step 3 alone); what is proven goes to
    ``walk``."""
    yield from _run(client, _slot_steps(slots, head, walk), "", 0)


def _run(
    client: RedisCluster, steps: Generator[Step, Any, _R], pattern: str, scan_count: int
) -> Generator[list[bytes], None, _R]:
    """Run the steps of a walk on the sync client: the pages they find, then what they return."""
    answer: Any = None
    while True:
        try:
            step = steps.send(answer)
        except StopIteration as end:
            result: _R = end.value
            return result
        kind, answer = step[0], None
        if kind == "page":
            yield step[1]
        elif kind == "refresh":
            client.nodes_manager.initialize()
        elif kind == "primaries":
            answer = client.get_primaries()  # type: ignore[no-untyped-call]
        elif kind == "state":
            answer = read_state(client.get_redis_connection(step[1]), step[2], client)
        elif kind == "scan":
            node = client.get_redis_connection(step[1])
            answer = node.scan(step[2], match=pattern, count=scan_count)
        elif kind == "owner":
            answer = client.nodes_manager.get_node_from_slot(step[1])
        else:  # "node"
            answer = client.get_node(*step[1])  # type: ignore[no-untyped-call]


class ListingOutcome(Protocol):
    """What a listing (sync or asyncio) says once exhausted."""

    complete: bool | None
    unproven_slots: frozenset[int]


def conclude(
    listing: ListingOutcome, unproven: list[frozenset[int]], counters: Counters, description: str
) -> None:
    """Record on ``listing`` whether it was proven complete (the last walk's verdict: a walk
    retried after a failure proves what it lists again); one that was not counts as an
    ``incomplete_listings`` and issues a :class:`ListingIncompleteWarning`."""
    listing.unproven_slots = unproven[-1] if unproven else frozenset()
    listing.complete = not listing.unproven_slots
    if listing.complete:
        return
    counters.add("incomplete_listings")
    shown = ", ".join(str(slot) for slot in sorted(listing.unproven_slots)[:10])
    left = len(listing.unproven_slots) - 10
    more = f" and {left} more" if left > 0 else ""
    warnings.warn(
        ListingIncompleteWarning(
            f"the listing of {description} could not be proven complete: slots {shown}{more} "
            "kept moving (a resharding in progress); keys there may be missing"
        ),
        stacklevel=3,
    )
