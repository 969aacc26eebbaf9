"""How the async Redis backends talk to Redis on one event loop: the :class:`Driver` protocol
and its implementations over redis-py's asyncio clients (the standalone backend's own lean
client is :class:`~session_store_redis.aioconn.LeanClient`)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import PipelineCommand
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from session_store_redis.cluster_config import ClusterConfig, build_async_cluster

__all__ = ["ClusterDriver", "Driver", "RedisPyDriver"]


class Driver(Protocol):
    """How the backend talks to Redis on one event loop."""

    def call(self, *args: object) -> Awaitable[Any]:
        """One command's reply, to await; an error reply raised as redis-py's exception."""

    async def call_many(
        self, commands: Sequence[Sequence[object]], *, transaction: bool = False
    ) -> list[Any]:
        """Several commands on one connection: replies in order (error replies as exception
        objects); with ``transaction``, inside ``MULTI``/``EXEC``, an error raised."""

    async def aclose(self) -> None:
        """Close the connections."""


class RedisPyDriver:
    """A :class:`Driver` over a ``redis.asyncio`` client (what Sentinel needs: the client asks
    a sentinel for the primary on every connect)."""

    def __init__(self, client: aioredis.Redis, *, owns: bool = True) -> None:
        self.client = client
        self._owns = owns

    async def call(self, *args: object) -> Any:
        return await self.client.execute_command(*args)  # type: ignore[no-untyped-call]

    async def call_many(
        self, commands: Sequence[Sequence[object]], *, transaction: bool = False
    ) -> list[Any]:
        pipe = self.client.pipeline(transaction=transaction)
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=transaction))

    async def aclose(self) -> None:
        if self._owns:
            await self.client.aclose()
            await self.client.connection_pool.disconnect()


class ClusterDriver:
    """A :class:`Driver` over a ``redis.asyncio`` cluster client: each command goes to the
    primary owning its key's slot.

    Every call first waits for the client to be initialized (slot map, nodes; a no-op once it
    is): redis-py 8's async cluster client, given many concurrent first commands (or commands
    right after a connection error, which marks it for re-initialization), lets them race the
    initialization, and the losers meet connections that are being closed under them
    ("Connection closed by server", "'NoneType' object has no attribute 'writelines'"); with
    no retries of redis-py's own, as configured here, those reach the caller."""

    def __init__(self, config: ClusterConfig) -> None:
        self.client = build_async_cluster(config)

    async def ready(self) -> AsyncRedisCluster:
        """The client, initialized on the running loop (waiting for a concurrent initialization
        to finish)."""
        return await self.client.initialize()

    async def call(self, *args: object) -> Any:
        client = await self.ready()
        return await client.execute_command(*args)  # type: ignore[arg-type]

    async def call_many(
        self, commands: Sequence[Sequence[object]], *, transaction: bool = False
    ) -> list[Any]:
        """A cluster pipeline (commands grouped by node); a transaction must stay in one slot."""
        if transaction:
            return await self._transaction(commands)
        pipe = (await self.ready()).pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)  # type: ignore[arg-type]
        return list(await pipe.execute(raise_on_error=True))

    async def _transaction(self, commands: Sequence[Sequence[object]]) -> list[Any]:
        """``MULTI``, the commands, ``EXEC``: one pipeline to the primary owning the slot of the
        first command's key (every key must be in that slot); an error reply raised (``MOVED``
        and ``ASK`` among them, for the backend to follow).

        Not redis-py's transactional cluster pipeline: it runs every queued command through
        ``asyncio.run`` in a thread of its own (redis-py 8), so a client not initialized yet
        opened its connections on that short-lived loop, and later calls on the caller's loop
        met "a Future attached to a different loop" or "Event loop is closed"."""
        client = await self.ready()  # on the caller's loop, not in redis-py's thread
        node = client.get_node_from_key(cast("str", commands[0][1]))
        if node is None:
            raise RedisClusterException(f"slot of {commands[0][1]!r} not covered")
        sent = [
            PipelineCommand(0, "MULTI"),
            *(PipelineCommand(n, *command) for n, command in enumerate(commands, 1)),
            PipelineCommand(len(commands) + 1, "EXEC"),
        ]
        try:
            await node.execute_pipeline(sent)
        except (RedisConnectionError, RedisTimeoutError):
            # the node is gone or unreachable: learn the slot map again (a replica may have
            # taken over), so that the backend's next attempt goes to the new owner
            with contextlib.suppress(RedisError, RedisClusterException):
                await client.nodes_manager.initialize()
            raise
        for command in sent[:-1]:  # a command refused when queued: MOVED, ASK, a wrong type
            if isinstance(command.result, ResponseError):
                raise command.result
        replies = sent[-1].result
        if isinstance(replies, BaseException):
            raise replies
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return list(replies)

    async def aclose(self) -> None:
        await self.client.aclose()
