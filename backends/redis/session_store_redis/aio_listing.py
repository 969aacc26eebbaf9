"""Complete listings of a Redis Cluster for asyncio: :mod:`session_store_redis.listing`'s proof,
step for step, over ``redis.asyncio.cluster``.

The proof is the sync one (its module docstring says why it holds): refresh the slot map, walk
every primary with ``SCAN`` between two readings of the node's own view of its slots and of the
keys that arrived at it, then read again slot by slot, on their owners and migration targets,
what the walks did not prove. Only the I/O differs; the bookkeeping
(:class:`~session_store_redis.listing.NodeState`, which slots are proven) is the sync module's
own. Each reading of a node's state is one ``MULTI``/``EXEC`` sent on one connection of that node
(``ClusterNode.execute_pipeline``), so the state and the keys read with it are of one instant.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster

from session_store_redis.listing import (
    _ALL_KEYS,
    SLOT_BATCH,
    NodeState,
    _Walk,
    parse_state,
)

__all__ = ["AsyncClusterListing", "awalk_cluster", "parse_commandstats"]


@dataclass
class AsyncClusterListing:
    """The keys of one async cluster listing, and, once exhausted, whether it was proven
    complete (``complete``: ``None`` while keys are coming; ``unproven_slots``)."""

    _keys: AsyncIterator[str]
    complete: bool | None = None
    unproven_slots: frozenset[int] = field(default_factory=frozenset)

    def __aiter__(self) -> AsyncClusterListing:
        return self

    async def __anext__(self) -> str:
        return await anext(self._keys)


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


async def read_state(
    node: ClusterNode, slots: Iterable[int] = ()
) -> tuple[NodeState, list[list[bytes]]]:
    """The node's view of itself and, of the same instant (one ``MULTI``), its keys in
    ``slots``."""
    wanted = list(slots)
    # command names as bytes: redis-py applies no reply callback to them (it would parse the
    # ``QUEUED`` replies of INFO and CLUSTER NODES), so EXEC hands back the raw replies
    args: list[tuple[object, ...]] = [
        (b"MULTI",),
        (b"CLUSTER", b"NODES"),
        (b"INFO", b"commandstats"),
        *((b"CLUSTER", b"GETKEYSINSLOT", slot, _ALL_KEYS) for slot in wanted),
        (b"EXEC",),
    ]
    commands = [PipelineCommand(i, *command) for i, command in enumerate(args)]
    await node.execute_pipeline(commands)
    for command in commands:
        if isinstance(command.result, BaseException):
            raise command.result
    replies = commands[-1].result
    if not isinstance(replies, list):  # EXEC aborted: the transaction did not run
        raise RuntimeError(f"CLUSTER NODES transaction aborted: {replies!r}")
    state = parse_state(replies[0], parse_commandstats(replies[1]))
    return state, [list(keys) for keys in replies[2:]]


async def awalk_cluster(
    client: RedisCluster,
    pattern: str,
    head: bytes,
    rounds: int,
    scan_count: int,
    on_end: Callable[[frozenset[int]], None],
) -> AsyncIterator[list[bytes]]:
    """Pages of stored keys matching ``pattern`` / starting with ``head`` over every primary,
    as :func:`~session_store_redis.listing.walk_cluster`; ``on_end`` gets the slots it could
    not prove (empty: complete). Raises redis-py's errors."""
    walk = _Walk()
    await client.nodes_manager.initialize()  # step 1: a primary added since is walked
    async for page in _scan_nodes(client.get_primaries(), pattern, scan_count, walk):
        yield page
    if not walk.complete:
        await client.nodes_manager.initialize()
        fresh = [n for n in client.get_primaries() if n.name not in walk.walked]
        async for page in _scan_nodes(fresh, pattern, scan_count, walk):
            yield page
    for attempt in range(rounds):
        if walk.complete:
            break
        missing = walk.missing
        if attempt:
            await client.nodes_manager.initialize()
        async for page in _read_slots(client, missing, head, walk):
            yield page
    on_end(frozenset() if walk.complete else frozenset(walk.missing))


async def _scan_nodes(
    nodes: list[ClusterNode], pattern: str, scan_count: int, walk: _Walk
) -> AsyncIterator[list[bytes]]:
    """``SCAN`` each node, its state read before and after; what that proves goes to ``walk``."""
    for node in nodes:
        walk.walked.add(node.name)
        before, _ = await read_state(node)
        cursor: Any = 0
        while True:
            reply = await node.execute_command(
                "SCAN", cursor, "MATCH", pattern, "COUNT", scan_count
            )
            cursor, batch = reply
            yield list(batch)
            if int(cursor) == 0:
                break
        after, _ = await read_state(node)
        walk.prove_walk(before, after)


async def _read_slots(
    client: RedisCluster, slots: list[int], head: bytes, walk: _Walk
) -> AsyncIterator[list[bytes]]:
    """Read ``slots`` slot by slot on their owners (and migration targets)."""
    by_owner: dict[str, tuple[ClusterNode, list[int]]] = {}
    for slot in slots:
        owner = client.nodes_manager.get_node_from_slot(slot)
        by_owner.setdefault(owner.name, (owner, []))[1].append(slot)
    for owner, owned in by_owner.values():
        for start in range(0, len(owned), SLOT_BATCH):
            batch = owned[start : start + SLOT_BATCH]
            state, keys_per_slot = await read_state(owner, batch)
            for slot, keys in zip(batch, keys_per_slot, strict=True):
                mine = [key for key in keys if key.startswith(head)]
                if state.settled(slot):
                    walk.prove(slot)
                    yield mine
                elif slot in state.migrating:
                    yield mine  # keys still on the source; the rest are on the target
                    async for page in _read_target(client, owner, state, slot, head, walk):
                        yield page


async def _read_target(
    client: RedisCluster,
    source: ClusterNode,
    state: NodeState,
    slot: int,
    head: bytes,
    walk: _Walk,
) -> AsyncIterator[list[bytes]]:
    """The keys of a migrating slot already on its target; proven if the target still imports
    it (or owns it) and no key arrived back at the source meanwhile."""
    address = state.addresses.get(state.migrating[slot])
    target = None if address is None else client.get_node(*address)
    if target is None:  # a node the client does not know yet: the next round, after a refresh
        return
    target_state, (keys,) = await read_state(target, [slot])
    yield [key for key in keys if key.startswith(head)]
    if target_state.importing.get(slot) != state.node_id and not target_state.settled(slot):
        return
    source_after, _ = await read_state(source)
    if source_after.arrivals == state.arrivals and source_after.node_id == state.node_id:
        walk.prove(slot)
