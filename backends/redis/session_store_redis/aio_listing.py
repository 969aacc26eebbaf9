"""Complete listings of a Redis Cluster for asyncio: :mod:`session_store_redis.listing`'s proof
over ``redis.asyncio.cluster``.

The proof is written once, as the steps of :func:`~session_store_redis.listing.walk_steps` (its
module docstring says why it holds); :func:`awalk_cluster` runs them with awaits. Each reading of
a node's state is one ``MULTI``/``EXEC`` sent on one connection of that node
(``ClusterNode.execute_pipeline``), so the state and the keys read with it are of one instant
(one script where the server's ACL refuses ``MULTI``: :mod:`session_store_redis.multi_acl`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.exceptions import ResponseError

from session_store_redis.listing import (
    _ALL_KEYS,
    NodeState,
    parse_commandstats,
    parse_state,
    walk_steps,
)
from session_store_redis.multi_acl import LISTING, NO_MULTI, NODE_STATE, needs_one, refuses_multi

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


async def read_state(
    node: ClusterNode, slots: Iterable[int] = (), client: object = None
) -> tuple[NodeState, list[list[bytes]]]:
    """The node's view of itself and, of the same instant (one ``MULTI``; one script where the
    server refuses it, remembered on ``client``), its keys in ``slots``."""
    wanted = list(slots)
    if getattr(client, NO_MULTI, False):
        return await _by_script(node, wanted)
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
    if refuses_multi(commands[0].result):  # ACL or rename-command: one script (multi_acl)
        if client is not None:
            setattr(client, NO_MULTI, True)
        return await _by_script(node, wanted)
    for command in commands:
        if isinstance(command.result, BaseException):
            raise command.result
    replies = commands[-1].result
    if not isinstance(replies, list):  # EXEC aborted: the transaction did not run
        raise RuntimeError(f"CLUSTER NODES transaction aborted: {replies!r}")
    state = parse_state(replies[0], replies[1])
    return state, [list(keys) for keys in replies[2:]]


async def _by_script(node: ClusterNode, wanted: list[int]) -> tuple[NodeState, list[list[bytes]]]:
    """:func:`read_state` as one script (:data:`~session_store_redis.multi_acl.NODE_STATE`)."""
    try:
        replies = await node.execute_command(b"EVAL", NODE_STATE.text, 0, *wanted, _ALL_KEYS)
    except ResponseError as exc:
        failure = needs_one(exc, LISTING)
    else:
        return parse_state(replies[0], replies[1]), [list(keys) for keys in replies[2:]]
    raise failure


async def awalk_cluster(
    client: RedisCluster,
    pattern: str,
    head: bytes,
    rounds: int,
    scan_count: int,
    on_end: Callable[[frozenset[int]], None],
) -> AsyncIterator[list[bytes]]:
    """Pages of stored keys matching ``pattern`` / starting with ``head`` over every primary,
    as :func:`~session_store_redis.listing.walk_cluster` (the same steps, run with awaits);
    ``on_end`` gets the slots it could not prove (empty: complete). Raises redis-py's errors."""
    steps = walk_steps(head, rounds, refresh_first=True)
    answer: Any = None
    while True:
        try:
            step = steps.send(answer)
        except StopIteration as end:
            on_end(end.value)
            return
        kind, answer = step[0], None
        if kind == "page":
            yield step[1]
        elif kind == "refresh":
            await client.nodes_manager.initialize()
        elif kind == "primaries":
            answer = client.get_primaries()
        elif kind == "state":
            answer = await read_state(step[1], step[2], client)
        elif kind == "scan":
            cursor = step[2]
            answer = await step[1].execute_command(
                "SCAN", cursor, "MATCH", pattern, "COUNT", scan_count
            )
        elif kind == "owner":
            answer = client.nodes_manager.get_node_from_slot(step[1])
        else:  # "node"
            answer = client.get_node(*step[1])
