"""How the async Redis backends talk to Redis on one event loop: the :class:`Driver` protocol
and its implementations over redis-py's asyncio clients (the standalone backend's own lean
client is :class:`~session_store_redis.aioconn.LeanClient`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import redis.asyncio as aioredis

from session_store_redis.cluster_config import ClusterConfig, build_async_cluster

__all__ = ["ClusterDriver", "Driver", "RedisPyDriver"]


class Driver(Protocol):
    """How the backend talks to Redis on one event loop."""

    async def call(self, *args: object) -> Any:
        """One command's reply; an error reply raised as redis-py's exception."""

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
    primary owning its key's slot."""

    def __init__(self, config: ClusterConfig) -> None:
        self.client = build_async_cluster(config)

    async def call(self, *args: object) -> Any:
        return await self.client.execute_command(*args)  # type: ignore[arg-type]

    async def call_many(
        self, commands: Sequence[Sequence[object]], *, transaction: bool = False
    ) -> list[Any]:
        """A cluster pipeline (commands grouped by node); a transaction must stay in one slot."""
        pipe = self.client.pipeline(transaction=transaction)
        for command in commands:
            pipe.execute_command(*command)  # type: ignore[arg-type]
        return list(await pipe.execute(raise_on_error=True))

    async def aclose(self) -> None:
        await self.client.aclose()
