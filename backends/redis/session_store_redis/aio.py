"""The async Redis backend: ``redis.asyncio`` behind the async protocol of session_store.aio.

Opened from the very URLs of the sync backend (:mod:`session_store_redis.client` parses them,
with every parameter, default and check), and storing the very same bytes under the very same
keys: a session written by :class:`~session_store_redis.RedisBackend` reads back here and the
other way round. What it shares with the sync backend rather than repeats: the namespace
(:class:`session_store.keys.Namespace`), TTL rules, the compare-and-set script and its tokens,
the SCAN pattern, the retry policy and the error translation.

**Cancellation.** Each operation is one command, one Lua script or one ``MULTI``/``EXEC``
(``set_many``, ``touch`` without TTL, ``get_with_ttl``): Redis applies it wholly or not at all.
redis-py disconnects a connection whose reply was abandoned by a cancelled task, so the next
command never reads a stale reply (tests/aio/test_cancellation.py cancels at every step).

``redis://``, ``rediss://`` and ``redis+sentinel://`` are registered in
``session_store.async_backends``; ``redis+cluster://`` is :mod:`session_store_redis.aio_cluster`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol, Self, cast

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.exceptions import NoScriptError, RedisError

from session_store.aio.backend import AsyncSessionBackend
from session_store.backend import Scope, Versioned, VersionToken, ensure_bytes
from session_store.counters import COUNTER_NAMES, Counters
from session_store.errors import BackendError, BackendUnavailableError, ConfigurationError
from session_store.keys import Namespace, validate_key, validate_scan_prefix
from session_store.ttl import effective_ttl, normalize_ttl, ttl_to_ms
from session_store.urls import BackendURL, parse_url
from session_store_redis.aio_ordered import AsyncOrderedWrites
from session_store_redis.aioconn import LeanClient
from session_store_redis.backend import SCAN_COUNT, Command, _seconds_left, _set_command
from session_store_redis.client import (
    ClientSettings,
    RedisConfig,
    make_backoff,
    parse_config,
    retryable,
)
from session_store_redis.errors import translate
from session_store_redis.patterns import prefix_pattern
from session_store_redis.scripts import CAS_SCRIPT, CAS_SHA, is_token, version_token
from session_store_redis.sentinel import (
    SentinelConfig,
    parse_sentinel_config,
    primary_connection_kwargs,
    sentinel_connection_kwargs,
)
from session_store_redis.urls import parse_multi_host_url

__all__ = [
    "AsyncRedisBackend",
    "AsyncRedisSentinelBackend",
    "build_async_sentinel_client",
]

_FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError)


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


class AsyncRedisBackend(AsyncOrderedWrites, AsyncSessionBackend):
    """Sessions in Redis, for asyncio apps. Usually opened from a URL::

        open_async_backend("redis://127.0.0.1:6379/0?prefix=app:&default_ttl=86400")

    An asyncio connection belongs to the event loop that opened it, so the backend keeps one
    connection (:class:`~session_store_redis.aioconn.LeanClient`, pipelined) per running loop:
    an app served on one loop uses one, and a test client that runs each request on a loop of
    its own still works.

    Args:
        client: a ``redis.asyncio.Redis`` returning bytes, used on every loop (yours to keep on
            one); ``None``: connections built from ``config``, one per event loop.
        config: the parsed URL (prefix, TTL, retries, ``wait_replicas``, connection settings).
        owns_client: ``aclose`` closes the given client's pool.
        factory: builds the :class:`Driver` of a loop (Sentinel gives its own).
    """

    scope = Scope.NETWORK
    #: What a failed command raises (translated by :meth:`_translate`); Cluster adds its own.
    _FAILURES: tuple[type[BaseException], ...] = _FAILURES

    def __init__(
        self,
        client: aioredis.Redis | None,
        config: RedisConfig | ClientSettings,
        *,
        owns_client: bool,
        factory: Callable[[], Driver] | None = None,
        description: str | None = None,
        secrets: tuple[str | None, ...] = (),
    ) -> None:
        self._given = None if client is None else RedisPyDriver(client, owns=owns_client)
        if factory is None:
            if not isinstance(config, RedisConfig):
                raise ConfigurationError("a driver factory is needed for these settings")
            factory = partial(LeanClient, config)
        self._factory = factory
        self._drivers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Driver] = (
            weakref.WeakKeyDictionary()
        )
        self._namespace = Namespace(config.prefix)
        self._head = self._namespace.scan_head()
        self.prefix = config.prefix
        self.default_ttl = normalize_ttl(config.default_ttl, what="default_ttl")
        self.retries = config.retries
        self.wait_replicas = config.wait_replicas
        self.wait_timeout = config.wait_timeout
        self._wait_ms = max(1, round(config.wait_timeout * 1000))
        self._backoff = make_backoff()
        self._owns_client = owns_client
        if description is None:
            if not isinstance(config, RedisConfig):
                raise ConfigurationError("a description is needed for these settings")
            description = config.describe()
        self._description = description
        self._secrets = (config.password, *secrets)
        self._closed = False
        self.counters = Counters(names=(*COUNTER_NAMES, "unacknowledged"))
        self._stream_config = config if isinstance(config, RedisConfig) else None  # aio_ordered

    @classmethod
    def from_url(cls, url: BackendURL | str, **overrides: Any) -> Self:
        """Build from ``redis://...`` or ``rediss://...`` (no I/O; the sync URL rules)."""
        parsed = parse_url(url) if isinstance(url, str) else url
        config = parse_config(parsed, overrides)
        return cls(None, config, owns_client=True)

    @property
    def driver(self) -> Driver:
        """How this backend talks to Redis on the running loop (for other commands)."""
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        driver = self._drivers.get(loop)
        if driver is None:
            driver = self._drivers[loop] = self._factory()
        return driver

    def _run(self, *args: object) -> Callable[[], Awaitable[Any]]:
        """A call of one command, for :meth:`_call` (which may run it again)."""
        return lambda: self.driver.call(*args)

    @property
    def namespace(self) -> Namespace:
        return self._namespace

    def describe(self) -> str:
        return self._description

    # -- plumbing ------------------------------------------------------------------------------
    def _translate(self, exc: BaseException, what: str, key: str | None) -> BackendError:
        self.counters.add("errors")
        return translate(exc, what=what, key=key, backend=self._description, secrets=self._secrets)

    async def _call(
        self, what: str, key: str | None, fn: Callable[[], Awaitable[Any]], *, retry: bool = True
    ) -> Any:
        """``await fn()``, retried after a failed connection if ``retry`` (idempotent only),
        errors translated; the typed error is raised outside the ``except`` (no context)."""
        failures = 0
        while True:
            try:
                return await fn()
            except self._FAILURES as exc:
                failure: BaseException = exc
            failures += 1
            if not retry or failures > self.retries or not self._retryable(failure):
                break
            if failures > 1:
                await asyncio.sleep(self._backoff.compute(failures - 1))
        raise self._translate(failure, what, key)

    def _retryable(self, failure: BaseException) -> bool:
        """Whether ``failure`` may clear if the idempotent operation runs again."""
        return retryable(failure)

    def _key(self, key: str) -> str:
        validate_key(key, backend=self._description)
        return self._head + key

    def _px(self, ttl: float | None) -> int | None:
        seconds = effective_ttl(ttl, self.default_ttl)
        return None if seconds is None else ttl_to_ms(seconds)

    def _count_read(self, found: int, missed: int) -> None:
        if found:
            self.counters.add("hits", found)
        if missed:
            self.counters.add("misses", missed)

    async def _acked(self, what: str, key: str | None, commands: Sequence[Command]) -> list[Any]:
        """Run writes then ``WAIT``; fewer replicas in time is an error."""
        replies, acks = await self._call(what, key, partial(self._write_and_wait, commands))
        if acks < self.wait_replicas:
            self.counters.add("errors")
            self.counters.add("unacknowledged")
            raise BackendUnavailableError(
                f"redis: {what} reached the primary, but only {acks} of {self.wait_replicas} "
                f"replica(s) acknowledged it within {self.wait_timeout:g} s",
                key=key,
                backend=self._description,
            )
        return cast("list[Any]", replies)

    async def _write_and_wait(self, commands: Sequence[Command]) -> tuple[list[Any], int]:
        """The writes then ``WAIT`` on one connection: their replies, and how many replicas
        acknowledged them (Cluster counts per primary)."""
        batch = [args for _, args in commands]
        batch.append(("WAIT", self.wait_replicas, self._wait_ms))
        for attempt in range(2):
            replies = await self.driver.call_many(batch)
            if attempt == 0 and any(isinstance(r, NoScriptError) for r in replies):
                await self.driver.call("SCRIPT", "LOAD", CAS_SCRIPT)
                continue
            break
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return list(replies[:-1]), int(replies[-1])

    # -- single keys ---------------------------------------------------------------------------
    async def get(self, key: str) -> bytes | None:
        stored = self._key(key)
        value = await self._call("get", key, self._run("GET", stored))
        self._count_read(value is not None, value is None)
        return cast("bytes | None", value)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        stored = self._key(key)
        value = ensure_bytes(value, key=key, backend=self._description)
        px = self._px(ttl)
        if self.wait_replicas:
            await self._acked("set", key, [_set_command(stored, value, px)])
        else:
            await self._call("set", key, self._run(*_set_command(stored, value, px)[1]))
        self.counters.add("writes")

    async def delete(self, key: str) -> bool:
        stored = self._key(key)
        if self.wait_replicas:
            removed = (await self._acked("delete", key, [(stored, ("UNLINK", stored))]))[0]
        else:
            removed = await self._call("delete", key, self._run("UNLINK", stored))
        self.counters.add("deletes")
        return bool(removed)

    async def touch(self, key: str, ttl: float | None = None) -> bool:
        stored = self._key(key)
        px = self._px(ttl)
        if px is not None:
            commands: list[Command] = [(stored, ("PEXPIRE", stored, px))]
        else:
            commands = [(stored, ("PERSIST", stored)), (stored, ("EXISTS", stored))]
        if self.wait_replicas:
            return bool((await self._acked("touch", key, commands))[-1])
        if px is not None:
            return bool(await self._call("touch", key, self._run("PEXPIRE", stored, px)))
        replies = await self._call("touch", key, lambda: self._transaction(commands))
        return bool(replies[-1])

    async def _transaction(self, commands: Sequence[Command]) -> list[Any]:
        """``MULTI`` commands ``EXEC``: applied wholly or not at all, even if cancelled."""
        return await self.driver.call_many([args for _, args in commands], transaction=True)

    async def ttl(self, key: str) -> float | None:
        stored = self._key(key)
        return _seconds_left(int(await self._call("ttl", key, self._run("PTTL", stored))))

    async def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        stored = self._key(key)
        commands: list[Command] = [(stored, ("GET", stored)), (stored, ("PTTL", stored))]
        value, pttl = await self._call("get_with_ttl", key, lambda: self._transaction(commands))
        left = _seconds_left(int(pttl))
        if value is None or left is None:
            self._count_read(0, 1)
            return None
        self._count_read(1, 0)
        return cast("bytes", value), left

    # -- compare-and-set -----------------------------------------------------------------------
    async def get_versioned(self, key: str) -> Versioned | None:
        stored = self._key(key)
        value = await self._call("get_versioned", key, self._run("GET", stored))
        self._count_read(value is not None, value is None)
        if value is None:
            return None
        return Versioned(value, version_token(value))

    async def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        """One atomic round trip, never retried (a lost reply leaves the outcome unknown)."""
        stored = self._key(key)
        value = ensure_bytes(value, key=key, backend=self._description)
        px = self._px(ttl)
        if token is not None and not is_token(token):
            return False
        if self.wait_replicas:
            if token is None:
                command = _set_command(stored, value, px, "NX")
            else:
                command = (stored, ("EVALSHA", CAS_SHA, 1, stored, token, value, px or 0))
            written = (await self._acked("set_if", key, [command]))[0]
        elif token is None:
            written = await self._call(
                "set_if", key, self._run(*_set_command(stored, value, px, "NX")[1]), retry=False
            )
        else:
            written = await self._call(
                "set_if",
                key,
                partial(self._run_cas, stored, cast("str", token), value, px or 0),
                retry=False,
            )
        if written:
            self.counters.add("writes")
        return bool(written)

    async def _run_cas(self, stored: str, token: str, value: bytes, px: int) -> Any:
        """The compare-and-set script by its SHA, loaded first if the server lost it."""
        driver = self.driver
        try:
            return await driver.call("EVALSHA", CAS_SHA, 1, stored, token, value, px)
        except NoScriptError:
            pass  # a restarted or flushed server: send the script itself once
        return await driver.call("EVAL", CAS_SCRIPT, 1, stored, token, value, px)

    # -- listing -------------------------------------------------------------------------------
    def scan(self, prefix: str = "") -> AsyncIterator[str]:
        validate_scan_prefix(prefix, backend=self._description)
        return self._scan(prefix_pattern(self._namespace.scan_head(prefix)), prefix)

    async def _scan(self, pattern: str, prefix: str) -> AsyncIterator[str]:
        seen: set[str] = set()
        cursor = 0
        while True:
            cursor, batch = await self._call("scan", None, partial(self._page, cursor, pattern))
            for raw in batch:
                try:
                    key = self._namespace.decode(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    continue
                if key is None or not key.startswith(prefix) or key in seen:
                    continue
                seen.add(key)
                yield key
            if int(cursor) == 0:
                return

    def _page(self, cursor: int, pattern: str) -> Awaitable[Any]:
        return self.driver.call("SCAN", cursor, "MATCH", pattern, "COUNT", SCAN_COUNT)

    # -- bulk ----------------------------------------------------------------------------------
    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = [validate_key(key) for key in keys]
        if not wanted:
            return {}
        stored = [self._head + key for key in wanted]
        values: list[bytes | None] = await self._call("get_many", None, self._run("MGET", *stored))
        missed = values.count(None)
        self._count_read(len(wanted) - missed, missed)
        return {k: v for k, v in zip(wanted, values, strict=True) if v is not None}

    async def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        """All or none: one ``MULTI``/``EXEC`` (a cancelled call never leaves half the keys)."""
        d = self._description
        checked = [(validate_key(k), ensure_bytes(v, key=k, backend=d)) for k, v in items.items()]
        px = self._px(ttl)
        if not checked:
            return
        commands = [_set_command(self._head + key, value, px) for key, value in checked]
        if self.wait_replicas:
            multi: list[Command] = [(commands[0][0], ("MULTI",)), *commands]
            await self._acked("set_many", None, [*multi, (commands[0][0], ("EXEC",))])
        else:
            await self._call("set_many", None, lambda: self._transaction(commands))
        self.counters.add("writes", len(checked))

    async def delete_many(self, keys: Iterable[str]) -> int:
        wanted = [validate_key(key) for key in keys]
        if not wanted:
            return 0
        stored = [self._head + k for k in wanted]
        if self.wait_replicas:
            removed = (await self._acked("delete_many", None, [(stored[0], ("UNLINK", *stored))]))[
                0
            ]
        else:
            removed = await self._call("delete_many", None, self._run("UNLINK", *stored))
        self.counters.add("deletes", len(wanted))
        return int(removed)

    # -- life cycle ----------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Close the pool if this backend built it."""
        if self._closed:
            return
        self._closed = True
        # a connection can only be closed on its own loop; those of other (ended) loops go with it
        loop = asyncio.get_running_loop()
        drivers = [d for owner, d in self._drivers.items() if owner is loop]
        self._drivers.clear()
        if self._given is not None:
            drivers.append(self._given)
        for driver in drivers:
            await driver.aclose()


class AsyncRedisSentinelBackend(AsyncRedisBackend):
    """Sessions on a Sentinel-managed primary, for asyncio apps: the ``redis+sentinel://`` URLs
    of :class:`~session_store_redis.RedisSentinelBackend`, over ``redis.asyncio.sentinel``.
    Every connection asks a sentinel for the current primary, so after a failover the next
    connection reaches the promoted replica; all else is :class:`AsyncRedisBackend`."""

    _sentinels: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncSentinel]

    @classmethod
    def from_url(cls, url: BackendURL | str, **overrides: Any) -> Self:
        """Build from ``redis+sentinel://...`` (no I/O; the sync URL rules)."""
        parsed = parse_multi_host_url(url) if isinstance(url, str) else url
        config = parse_sentinel_config(parsed, overrides)
        sentinels: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncSentinel] = (
            weakref.WeakKeyDictionary()
        )

        def factory() -> Driver:
            sentinel, client = build_async_sentinel_client(config)
            sentinels[asyncio.get_running_loop()] = sentinel
            return RedisPyDriver(client)

        backend = cls(
            None,
            config.settings,
            owns_client=True,
            factory=factory,
            description=config.describe(),
            secrets=(config.sentinel_password,),
        )
        backend._sentinels = sentinels
        return backend

    async def aclose(self) -> None:
        if self._closed:
            return
        await super().aclose()
        sentinel = self._sentinels.pop(asyncio.get_running_loop(), None)
        if sentinel is not None:
            for connection in sentinel.sentinels:
                await connection.aclose()
        self._sentinels.clear()


def build_async_sentinel_client(config: SentinelConfig) -> tuple[AsyncSentinel, aioredis.Redis]:
    """The asyncio sentinel manager and a client of the current primary; connects lazily."""
    sentinel = AsyncSentinel(  # type: ignore[no-untyped-call]
        list(config.sentinels), sentinel_kwargs=sentinel_connection_kwargs(config)
    )
    client: aioredis.Redis = sentinel.master_for(
        config.service, redis_class=aioredis.Redis, **primary_connection_kwargs(config)
    )
    return sentinel, client
