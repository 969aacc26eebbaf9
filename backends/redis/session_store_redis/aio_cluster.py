"""The async Redis Cluster backend: ``redis+cluster://`` for asyncio apps, over
``redis.asyncio.cluster.RedisCluster``.

Opened from the very URLs of :class:`~session_store_redis.RedisClusterBackend` (parsed by
:func:`~session_store_redis.cluster.parse_cluster_config`: same parameters, defaults and checks)
and storing the very same bytes under the very same keys, so the sync and async backends share
one cluster's sessions. What it does, as the sync backend does:

* One-key operations go to the primary owning the key's slot; redis-py follows ``MOVED`` and
  ``ASK``. ``get_with_ttl`` and ``touch`` without a TTL are a one-key ``MULTI``/``EXEC`` (while
  the slot migrates, which a transaction cannot follow, the two commands on their own).
  Compare-and-set is the same Lua script (:mod:`session_store_redis.scripts`), by its SHA,
  sent in full once to a primary that does not know it.
* ``get_many`` is one ``MGET`` per hash slot, ``delete_many`` one ``UNLINK`` per slot,
  ``set_many`` one ``SET`` per key, the commands of each node pipelined, the nodes concurrently.
  While a slot migrates, one command per key, each following its redirection. Not atomic across
  slots, as the sync backend; **a cancelled** ``set_many`` / ``delete_many`` **finishes first**
  (cancellation is deferred until every node has answered), so a cancelled call never leaves
  half its keys written.
* ``scan`` walks every primary and proves the listing complete slot by slot, also while slots
  migrate (:mod:`session_store_redis.aio_listing`, the proof of
  :mod:`session_store_redis.listing`): the iterator says so once exhausted (``complete``,
  ``unproven_slots``); an unproven one warns
  (:class:`~session_store_redis.listing.ListingIncompleteWarning`) and counts
  ``incomplete_listings``. A node failing mid-way makes it walk again (no key listed twice), up
  to ``retries`` times.

``wait_replicas``: the writes are grouped by the primary owning each key's slot, one pipeline
per primary ending in ``WAIT`` (which counts that primary's replicas); the fewest count. Writes
a redirection bounced (``MOVED``, ``ASK``, ``TRYAGAIN``, ``NOSCRIPT``) did not run and are sent
again, a few rounds at most. ``pool_timeout`` does not apply: redis-py's async cluster client has no
blocking pool, a node with ``max_connections`` busy connections fails the command at once.

One client per running event loop (an asyncio connection belongs to its loop), built on the
first operation of that loop: opening does no I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, Self, TypeVar, cast

from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import PipelineCommand
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.exceptions import (
    AskError,
    MovedError,
    RedisClusterException,
    RedisError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from session_store.aio.backend import whole
from session_store.keys import validate_key, validate_scan_prefix
from session_store.urls import BackendURL
from session_store_redis.aio import AsyncRedisBackend
from session_store_redis.aio_driver import ClusterDriver, Driver
from session_store_redis.aio_listing import AsyncClusterListing, awalk_cluster
from session_store_redis.cluster_config import (
    ClusterConfig,
    build_async_cluster,
    parse_cluster_config,
)
from session_store_redis.cluster_errors import (
    MULTI_KEY_REFUSALS,
    cluster_retryable,
    migrating,
    translate_cluster,
)
from session_store_redis.cluster_routing import write_steps
from session_store_redis.commands import (
    SCAN_COUNT,
    Command,
    checked_items,
    found_values,
    session_keys,
    set_command,
)
from session_store_redis.listing import conclude
from session_store_redis.patterns import prefix_pattern
from session_store_redis.scripts import CAS_SCRIPT
from session_store_redis.urls import parse_multi_host_url

__all__ = ["AsyncRedisClusterBackend", "ClusterDriver", "build_async_cluster"]

_T = TypeVar("_T")
#: Tries of a one-key transaction that met ``MOVED`` (the slot map refreshed before each).
_MOVED_ROUNDS = 3


class AsyncRedisClusterBackend(AsyncRedisBackend):
    """Sessions in a Redis Cluster, for asyncio apps. Opened from a URL::

    open_async_backend("redis+cluster://10.0.0.1:7000,10.0.0.2:7000/?prefix=app:")
    """

    _FAILURES: tuple[type[BaseException], ...] = (
        RedisError,
        RedisClusterException,
        OSError,
    )
    _TYPED_ERROR = staticmethod(translate_cluster)

    def __init__(self, config: ClusterConfig) -> None:
        """A cluster client per event loop, built from ``config`` on that loop's first use."""
        super().__init__(
            None,
            config.settings,
            owns_client=True,
            factory=cast("Callable[[], Driver]", partial(ClusterDriver, config)),
            description=config.describe(),
            # "incomplete_listings": listings that could not be proven complete (see scan)
            counters=("incomplete_listings",),
        )
        #: Rounds of reading again what moved during a listing (0: prove from the walk alone).
        self.scan_rounds = config.scan_rounds

    @classmethod
    def from_url(cls, url: BackendURL | str, **overrides: Any) -> Self:
        """Build from ``redis+cluster://...`` (no I/O; the sync URL rules).

        Raises:
            ConfigurationError: a bad or unknown parameter (named in the message).
        """
        parsed = parse_multi_host_url(url) if isinstance(url, str) else url
        return cls(parse_cluster_config(parsed, overrides))

    @property
    def client(self) -> AsyncRedisCluster:
        """The ``redis.asyncio`` cluster client of the running loop (for other commands). Ask
        again after :meth:`aclose`: a client kept across it was closed, and a command sent on
        it directly reconnects, on sockets no later ``aclose`` closes (``backend.driver``
        kept across it refuses instead: ``ClientClosed``)."""
        return self._cluster_driver.client

    @property
    def _cluster_driver(self) -> ClusterDriver:
        return cast("ClusterDriver", self.driver)

    # -- hooks ---------------------------------------------------------------------------------
    def _retryable(self, failure: BaseException) -> bool:
        return cluster_retryable(failure)

    async def _transaction(self, commands: Sequence[Command]) -> list[Any]:
        """``MULTI`` commands ``EXEC`` on one key; after a ``MOVED`` (the slot map was stale)
        once more, on the new owner; while the slot migrates (``ASK``, which a transaction does
        not follow) the commands on their own, each following its redirection."""
        batch = [args for _, args in commands]
        driver = self._cluster_driver
        for attempt in range(_MOVED_ROUNDS):
            try:
                return await driver.call_many(batch, transaction=True)
            except AskError as exc:
                if not isinstance(exc, MovedError):
                    break  # migrating: below
                if attempt == _MOVED_ROUNDS - 1:
                    raise
            await driver.on_client(_refresh)
        return await driver.call_many(batch)

    async def _write_and_wait(self, commands: Sequence[Command]) -> tuple[list[Any], int]:
        """The writes grouped by the primary owning each key's slot, one pipeline per primary
        ending in ``WAIT``; the fewest acknowledgements count. Bounced writes are sent again
        (:func:`~session_store_redis.cluster_routing.write_steps`, run with awaits)."""
        return await self._cluster_driver.on_client(partial(self._write_and_wait_on, commands))

    async def _write_and_wait_on(
        self, commands: Sequence[Command], client: AsyncRedisCluster
    ) -> tuple[list[Any], int]:
        steps = write_steps(commands, self.wait_replicas, partial(_owner, client), client.get_node)
        answer: Any = None
        while True:
            try:
                step = steps.send(answer)
            except StopIteration as end:
                return cast("tuple[list[Any], int]", end.value)
            kind, answer = step[0], None
            if kind == "round":
                answer = await self._node_round(client, step[1], step[2], step[3])
            elif kind == "load":
                await step[1].execute_command("SCRIPT", "LOAD", CAS_SCRIPT)
            elif kind == "refresh":
                await client.nodes_manager.initialize()
            else:  # "pause"
                await asyncio.sleep(0.05)

    async def _node_round(
        self,
        client: AsyncRedisCluster,
        node: AsyncClusterNode,
        commands: Sequence[Command],
        ask: bool,
    ) -> tuple[list[Any], Any]:
        """One pipeline to ``node``: the commands (each after ``ASKING`` if ``ask``), ``WAIT``;
        the commands' replies and ``WAIT``'s (error replies as exception objects)."""
        sent: list[PipelineCommand] = []
        for _, args in commands:
            if ask:
                sent.append(PipelineCommand(len(sent), "ASKING"))
            sent.append(PipelineCommand(len(sent), *args))
        sent.append(PipelineCommand(len(sent), "WAIT", self.wait_replicas, self._wait_ms))
        try:
            await node.execute_pipeline(sent)
        except (RedisConnectionError, RedisTimeoutError):
            with contextlib.suppress(RedisError, RedisClusterException):
                await client.nodes_manager.initialize()  # the next attempt: new owner
            raise
        results = [command.result for command in sent]
        return (results[1:-1:2] if ask else results[:-1]), results[-1]

    # -- listing -------------------------------------------------------------------------------
    def scan(self, prefix: str = "") -> AsyncClusterListing:
        """Keys starting with ``prefix``, each once, proven complete also while slots migrate
        (see :mod:`session_store_redis.aio_listing`). The prefix is checked at once; the
        listing says, once exhausted, whether it was proven complete."""
        validate_scan_prefix(prefix, backend=self._description)
        head = self._namespace.scan_head(prefix)
        listing = AsyncClusterListing(_nothing())
        listing._keys = self._scan_cluster(prefix_pattern(head), head.encode(), prefix, listing)
        return listing

    async def _scan_cluster(
        self, pattern: str, head: bytes, prefix: str, listing: AsyncClusterListing
    ) -> AsyncIterator[str]:
        seen: set[str] = set()  # SCAN may return a key more than once; so may a second walk
        failures = 0
        unproven: list[frozenset[int]] = []
        while True:
            try:
                driver = self._cluster_driver
                client = await driver.on_client(_initialized)
                pages = awalk_cluster(
                    client, pattern, head, self.scan_rounds, SCAN_COUNT, unproven.append
                )
                # page by page, each a call of the driver: a listing held across aclose()
                # reopens nothing (ClientClosed: walked again on the backend's new driver)
                while (batch := await driver.using(partial(anext, pages, None))) is not None:
                    for key in session_keys(self._namespace, batch, prefix, seen):
                        yield key
                break
            except self._FAILURES as exc:
                failure: BaseException = exc
            failures += 1
            if failures > self.retries or not self._retryable(failure):
                raise self._translate(failure, "scan", None)
            await asyncio.sleep(self._backoff.compute(failures - 1))
        conclude(listing, unproven, self.counters, self._description)

    # -- bulk ----------------------------------------------------------------------------------
    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """One ``MGET`` per hash slot, the slots of a node pipelined."""
        wanted = [validate_key(key) for key in keys]  # all checked before any I/O
        if not wanted:
            return {}
        stored = [self._namespace.encode(key) for key in wanted]
        values: list[bytes | None] = await self._call(
            "get_many", None, partial(self._get_values, stored)
        )
        found, missed = found_values(wanted, values)
        self._count_read(len(wanted) - missed, missed)
        return found

    async def _get_values(self, stored: list[str]) -> list[bytes | None]:
        """``MGET`` per slot; while a slot migrates, one ``GET`` per key."""
        driver = self._cluster_driver
        try:
            return list(await driver.on_client(lambda client: client.mget_nonatomic(stored)))
        except MULTI_KEY_REFUSALS as exc:
            if not migrating(exc):
                raise
        return await driver.call_many([("GET", one) for one in stored])

    async def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        """One ``SET`` per key, pipelined per node; a cancellation waits for the end."""
        checked = checked_items(items, self._description)
        px = self._px(ttl)
        if not checked:
            return
        encode = self._namespace.encode
        acked = [set_command(encode(key), value, px) for key, value in checked]
        if self.wait_replicas:
            await whole(lambda: self._acked("set_many", None, acked))
        else:
            commands = [args for _, args in acked]
            await whole(
                lambda: self._call("set_many", None, partial(self.driver.call_many, commands))
            )
        self.counters.add("writes", len(checked))

    async def delete_many(self, keys: Iterable[str]) -> int:
        """One ``UNLINK`` per hash slot, pipelined per node; a cancellation waits for the end."""
        wanted = [validate_key(key) for key in keys]  # all checked before any I/O
        if not wanted:
            return 0
        stored = list(dict.fromkeys(map(self._namespace.encode, wanted)))  # once each, as UNLINK
        if self.wait_replicas:
            unlinks: list[Command] = [(one, ("UNLINK", one)) for one in stored]
            replies = await whole(lambda: self._acked("delete_many", None, unlinks))
            removed = sum(int(n) for n in replies)
        else:
            removed = await whole(
                lambda: self._call("delete_many", None, partial(self._unlink_all, stored))
            )
        if removed:
            self.counters.add("deletes", int(removed))
        return int(removed)

    async def _unlink_all(self, stored: list[str]) -> int:
        """``UNLINK`` per slot; while a slot migrates, one ``UNLINK`` per key."""
        driver = self._cluster_driver
        try:
            return int(await driver.on_client(lambda client: client.unlink(*stored)))
        except MULTI_KEY_REFUSALS as exc:
            if not migrating(exc):
                raise
        replies = await driver.call_many([("UNLINK", one) for one in stored])
        return sum(int(n) for n in replies)


async def _initialized(client: AsyncRedisCluster) -> AsyncRedisCluster:
    """The client (initialized by :meth:`ClusterDriver.on_client` on the way)."""
    return client


async def _refresh(client: AsyncRedisCluster) -> None:
    """Learn the slot map again (after a ``MOVED``)."""
    await client.nodes_manager.initialize()


async def _nothing() -> AsyncIterator[str]:
    """An empty async iterator (replaced before the listing is handed out)."""
    return
    yield  # pragma: no cover - makes this an async generator


def _owner(client: AsyncRedisCluster, stored: str) -> AsyncClusterNode:
    """The primary owning the slot of ``stored``; a slot no node serves is transient (retried)."""
    node = client.get_node_from_key(stored)
    if node is None:
        raise RedisClusterException(f"slot of {stored!r} not covered")
    return node
