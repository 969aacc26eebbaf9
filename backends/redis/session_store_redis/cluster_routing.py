"""Routing writes on Redis Cluster: which primary owns a key, and the ``WAIT`` path, where each
primary gets one pipeline of its writes ending in ``WAIT`` (which counts that primary's
replicas), and writes a redirection bounced are sent again.

The rounds (:func:`write_steps`) do no I/O and serve the sync and asyncio backends alike: they
yield the round trips, which :func:`write_and_wait` here and
``AsyncRedisClusterBackend._write_and_wait`` run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any, NamedTuple, TypeVar, cast

from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    AskError,
    ClusterError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from session_store_redis.commands import Command
from session_store_redis.scripts import CAS_SCRIPT

__all__ = [
    "REDIRECT_ROUNDS",
    "NodeOutcome",
    "group_writes",
    "owner",
    "refresh_slots",
    "sort_node_replies",
    "write_and_wait",
    "write_steps",
]

#: Rounds of re-sending writes a redirection or a slot migration bounced (``WAIT`` path).
REDIRECT_ROUNDS = 5

NodeT = TypeVar("NodeT")


def owner(client: RedisCluster, stored: str) -> ClusterNode:
    """The primary that owns the slot of ``stored``, by the client's slot map."""
    node: ClusterNode = client.get_node_from_key(stored)  # type: ignore[no-untyped-call]
    return node


def refresh_slots(client: RedisCluster) -> None:
    """Ask the cluster for the slot map again; if no node answers, the next call will."""
    with contextlib.suppress(RedisError, RedisClusterException):
        client.nodes_manager.initialize()


def group_writes(
    pending: Sequence[int],
    commands: Sequence[Command],
    asking: dict[int, NodeT],
    owner_of: Callable[[str], NodeT],
    name_of: Callable[[NodeT], str],
) -> dict[tuple[str, bool], tuple[NodeT, list[int]]]:
    """The writes ``pending`` (indexes into ``commands``) by the node to send them to: the one an
    ``ASK`` named (sent after ``ASKING``), else the owner of the key's slot."""
    groups: dict[tuple[str, bool], tuple[NodeT, list[int]]] = {}
    for index in pending:
        node = asking.get(index) or owner_of(commands[index][0])
        groups.setdefault((name_of(node), index in asking), (node, []))[1].append(index)
    return groups


class NodeOutcome(NamedTuple):
    """What one primary's replies to a round of writes mean (see :func:`sort_node_replies`)."""

    bounced: list[int]  # writes a redirection bounced: they did not run, send them again
    refresh: bool  # a slot moved, or an ASK named a node the client does not know
    reload_script: bool  # the node lacks the compare-and-set script: load it, then resend
    acked: int | None  # replicas WAIT counted, if any of the writes ran; else None


def sort_node_replies(
    indexes: Sequence[int],
    node_replies: Sequence[Any],
    acks: Any,
    replies: list[Any],
    asking: dict[int, Any],
    find_node: Callable[[str, int], Any],
) -> NodeOutcome:
    """Sort one primary's replies to the writes ``indexes`` (the sync and asyncio cluster
    backends alike; no I/O): a reply goes into ``replies``; ``MOVED``, ``TRYAGAIN`` and
    ``NOSCRIPT`` bounce the write; ``ASK`` bounces it to the node it names (``asking``).

    Raises:
        the ``WAIT`` reply, if it is an error and some write ran (it counts only those).
    """
    bounced: list[int] = []
    refresh = reload_script = applied = False
    for index, reply in zip(indexes, node_replies, strict=True):
        asking.pop(index, None)
        if isinstance(reply, MovedError | TryAgainError | NoScriptError):
            refresh = refresh or isinstance(reply, MovedError)
            reload_script = reload_script or isinstance(reply, NoScriptError)
            bounced.append(index)
        elif isinstance(reply, AskError):  # the slot is migrating to that node
            target = find_node(reply.host, reply.port)
            if target is None:
                refresh = True
            else:
                asking[index] = target
            bounced.append(index)
        else:
            replies[index] = reply
            applied = True
    if not applied:  # WAIT counts for the writes this node ran, not for bounced ones
        return NodeOutcome(bounced, refresh, reload_script, None)
    if isinstance(acks, BaseException):
        raise acks
    return NodeOutcome(bounced, refresh, reload_script, int(acks))


def write_steps(
    commands: Sequence[Command],
    replicas: int,
    owner_of: Callable[[str], NodeT],
    find_node: Callable[[str, int], NodeT | None],
) -> Generator[tuple[Any, ...], Any, tuple[list[Any], int]]:
    """The ``WAIT`` path's rounds, written once for the sync and asyncio backends: the writes
    grouped by the primary that owns each key's slot, one pipeline per primary ending in
    ``WAIT`` (which counts that primary's replicas); the replies and the fewest count.

    Writes a redirection bounced (``MOVED``: the slot moved; ``ASK``: it is migrating;
    ``TRYAGAIN``; ``NOSCRIPT``) did not run and are sent again, at most a few rounds. Yields the
    I/O it needs and gets the answer sent back: ``("round", node, commands, ask)`` -> the
    commands' replies and ``WAIT``'s; ``("load", node)``: the compare-and-set script;
    ``("refresh",)``: the slot map; ``("pause",)``: a moment before the next round.
    """
    replies: list[Any] = [None] * len(commands)
    fewest = replicas
    pending = list(range(len(commands)))
    asking: dict[int, NodeT] = {}
    for _ in range(REDIRECT_ROUNDS):
        groups = group_writes(pending, commands, asking, owner_of, _name)
        bounced: list[int] = []
        refresh = False
        for (_, ask), (node, indexes) in groups.items():
            node_replies, acks = yield ("round", node, [commands[i] for i in indexes], ask)
            outcome = sort_node_replies(indexes, node_replies, acks, replies, asking, find_node)
            if outcome.reload_script:
                yield ("load", node)
            bounced.extend(outcome.bounced)
            refresh = refresh or outcome.refresh
            if outcome.acked is not None:
                fewest = min(fewest, outcome.acked)
        if not bounced:
            break
        yield ("refresh",) if refresh else ("pause",)
        pending = bounced
    else:
        raise ClusterError("TTL exhausted: writes kept being redirected")
    for reply in replies:
        if isinstance(reply, BaseException):
            raise reply
    return replies, fewest


def write_and_wait(
    client: RedisCluster, commands: Sequence[Command], replicas: int, wait_ms: int
) -> tuple[list[Any], int]:
    """:func:`write_steps` run on the sync cluster client."""
    steps = write_steps(commands, replicas, lambda stored: owner(client, stored), client.get_node)
    answer: Any = None
    while True:
        try:
            step = steps.send(answer)
        except StopIteration as end:
            return cast("tuple[list[Any], int]", end.value)
        kind, answer = step[0], None
        if kind == "round":
            answer = _node_round(client, step[1], step[2], step[3], replicas, wait_ms)
        elif kind == "load":
            client.get_redis_connection(step[1]).script_load(CAS_SCRIPT)
        elif kind == "refresh":
            client.nodes_manager.initialize()
        else:  # "pause"
            time.sleep(0.05)


def _name(node: Any) -> str:
    return str(node.name)


def _node_round(
    client: RedisCluster,
    node: ClusterNode,
    commands: Sequence[Command],
    ask: bool,
    replicas: int,
    wait_ms: int,
) -> tuple[list[Any], Any]:
    """One pipeline to ``node``: the commands (each after ``ASKING`` if ``ask``), ``WAIT``;
    the commands' replies and ``WAIT``'s (an error from a node that is no primary now)."""
    pipe = client.get_redis_connection(node).pipeline(transaction=False)
    for _, args in commands:
        if ask:
            pipe.execute_command("ASKING")  # type: ignore[no-untyped-call]
        pipe.execute_command(*args)  # type: ignore[no-untyped-call]
    pipe.execute_command("WAIT", replicas, wait_ms)  # type: ignore[no-untyped-call]
    try:
        replies = pipe.execute(raise_on_error=False)
    except (RedisConnectionError, RedisTimeoutError):
        refresh_slots(client)  # the next attempt asks the new owner
        raise
    return list(replies[1:-1:2] if ask else replies[:-1]), replies[-1]
