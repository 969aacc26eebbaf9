"""How the async Redis backends talk to Redis on one event loop: the :class:`Driver` protocol
and its implementations over redis-py's asyncio clients (the standalone backend's own lean
client is :class:`~session_store_redis.aioconn.LeanClient`).

**Forgotten** by its backend (:meth:`Driver.forget`, the backend's ``aclose``), a driver opens
nothing again, as the lean client (mend10b): a call on it raises
:class:`~session_store_redis.aioconn.ClientClosed` (a retryable ``ConnectionError``: the backend
retries on the driver it has now) and sends nothing. A redis-py client would otherwise reopen
on its next command (a pool connects again; a cluster client, marked for re-initialization by
its ``aclose``, connects to every node), on a driver no later ``aclose`` finds: a caller holding
``backend.driver``, or a call in flight across the close, left those sockets open for good
(flaky11: 20 per 20 calls in flight, 13 after a churn against ``aclose`` on another loop). Calls
under way when their driver is closed are not cut: closing redis-py's connections under them
makes them reconnect (or fail with an ``AttributeError`` of a half-closed connection), so the
close waits for the last of them, which closes on its way out.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import PipelineCommand
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from session_store_redis.aioconn import ClientClosed
from session_store_redis.cluster_config import ClusterConfig, build_async_cluster

__all__ = ["ClusterDriver", "Driver", "RedisPyDriver"]

log = logging.getLogger("session_store_redis.aio")

_T = TypeVar("_T")


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

    def forget(self) -> None:
        """Its backend forgot it (safe from any thread): it opens no connection any more."""


class _Forgettable:
    """What the redis-py drivers share: :meth:`forget`, calls counted while under way, and a
    close deferred to the last of them (see the module docstring)."""

    _forgotten = False
    _busy = 0  # calls under way (on the driver's own loop: no lock)

    def forget(self) -> None:
        self._forgotten = True

    async def _close(self) -> None:
        """Close the connections, now."""

    async def using(self, work: Callable[[], Awaitable[_T]]) -> _T:
        """``await work()`` as a call of this driver: refused once it is forgotten (nothing
        sent), and a close that came meanwhile done on the way out."""
        if self._forgotten:
            raise ClientClosed("this driver was closed by its backend's aclose(); nothing sent")
        self._busy += 1
        try:
            return await work()
        finally:
            self._busy -= 1
            if self._forgotten and not self._busy:
                await self._close_quietly()

    async def _close_quietly(self) -> None:
        try:
            await self._close()
        except Exception as exc:  # the call's own outcome is what its caller gets
            log.debug("closing a forgotten driver's connections failed: %r", exc)

    async def aclose(self) -> None:
        """Close the connections; once forgotten, with calls under way: by the last of them."""
        if self._forgotten and self._busy:
            return
        await self._close()


class RedisPyDriver(_Forgettable):
    """A :class:`Driver` over a ``redis.asyncio`` client (what Sentinel needs: the client asks
    a sentinel for the primary on every connect; ``sentinel``, that client's sentinel manager,
    whose connections :meth:`aclose` closes too)."""

    def __init__(
        self, client: aioredis.Redis, *, owns: bool = True, sentinel: AsyncSentinel | None = None
    ) -> None:
        self.client = client
        self._owns = owns
        self._sentinel = sentinel

    async def call(self, *args: object) -> Any:
        return await self.using(lambda: self.client.execute_command(*args))  # type: ignore[no-untyped-call]

    async def call_many(
        self, commands: Sequence[Sequence[object]], *, transaction: bool = False
    ) -> list[Any]:
        pipe = self.client.pipeline(transaction=transaction)
        for command in commands:
            pipe.execute_command(*command)
        return list(await self.using(lambda: pipe.execute(raise_on_error=transaction)))

    async def _close(self) -> None:
        if self._owns:
            await self.client.aclose()
            await self.client.connection_pool.disconnect()
        if self._sentinel is not None:
            for connection in self._sentinel.sentinels:
                await connection.aclose()


class ClusterDriver(_Forgettable):
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
        to finish). Within :meth:`using` (which refuses a forgotten driver)."""
        return await self.client.initialize()

    async def on_client(self, work: Callable[[AsyncRedisCluster], Awaitable[_T]]) -> _T:
        """``await work(client)``, the client initialized, as a call of this driver
        (:meth:`using`): what the backend does with the client itself goes through here."""

        async def run() -> _T:
            return await work(await self.ready())

        return await self.using(run)

    async def call(self, *args: object) -> Any:
        return await self.on_client(lambda client: client.execute_command(*args))  # type: ignore[arg-type]

    async def call_many(
        self, commands: Sequence[Sequence[object]], *, transaction: bool = False
    ) -> list[Any]:
        """A cluster pipeline (commands grouped by node); a transaction must stay in one slot."""
        if transaction:
            return await self.using(lambda: self._transaction(commands))

        async def pipelined(client: AsyncRedisCluster) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)  # type: ignore[arg-type]
            return list(await pipe.execute(raise_on_error=True))

        return await self.on_client(pipelined)

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

    async def _close(self) -> None:
        await self.client.aclose()
