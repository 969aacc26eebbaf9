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

Standalone ``redis://`` and ``rediss://`` are registered in ``session_store.async_backends``;
Cluster and Sentinel stay sync-only for now.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, Self, cast

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, SSLConnection
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError
from redis.retry import Retry

from session_store.aio.backend import AsyncSessionBackend
from session_store.backend import Scope, Versioned, VersionToken, ensure_bytes
from session_store.counters import COUNTER_NAMES, Counters
from session_store.errors import BackendError, BackendUnavailableError
from session_store.keys import Namespace, validate_key, validate_scan_prefix
from session_store.ttl import effective_ttl, normalize_ttl, ttl_to_ms
from session_store.urls import BackendURL, parse_url
from session_store_redis.backend import SCAN_COUNT, Command, _seconds_left, _set_command
from session_store_redis.client import RedisConfig, make_backoff, parse_config, retryable
from session_store_redis.errors import translate
from session_store_redis.patterns import prefix_pattern
from session_store_redis.scripts import CAS_SCRIPT, CAS_SHA, is_token, version_token

__all__ = ["AsyncRedisBackend", "build_async_client"]

_FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError)


def build_async_client(config: RedisConfig) -> aioredis.Redis:
    """An asyncio client over a new blocking pool for ``config`` (the sync client's settings)."""
    kwargs: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "db": config.db,
        "username": config.username,
        "password": config.password,
        "socket_connect_timeout": config.socket_connect_timeout,
        "socket_timeout": config.socket_timeout,
        "socket_keepalive": True,
        "retry": Retry(NoBackoff(), 0),  # the backend retries whole operations, as the sync one
        "health_check_interval": config.health_check_interval,
        "protocol": 2,
        "socket_read_size": 65536,
    }
    connection_class: type[Connection] = Connection
    if config.tls:
        connection_class = SSLConnection
        kwargs.update(config.ssl)
    pool = aioredis.BlockingConnectionPool(
        max_connections=config.max_connections,
        timeout=config.pool_timeout,
        connection_class=connection_class,
        **kwargs,
    )
    return aioredis.Redis(connection_pool=pool)


class AsyncRedisBackend(AsyncSessionBackend):
    """Sessions in Redis, for asyncio apps. Usually opened from a URL::

        open_async_backend("redis://127.0.0.1:6379/0?prefix=app:&default_ttl=86400")

    A ``redis.asyncio`` connection belongs to the event loop that opened it, so a backend
    opened from a URL keeps one client (one pool) per running loop: an app served on one loop
    uses one pool, and a test client that runs each request on a loop of its own still works.

    Args:
        client: a ``redis.asyncio.Redis`` returning bytes, used on every loop (yours to keep on
            one); ``None``: clients built from ``config``, one per event loop.
        config: the parsed URL (prefix, TTL, retries, ``wait_replicas``, connection settings).
        owns_client: ``aclose`` closes the given client's pool.
    """

    scope = Scope.NETWORK

    def __init__(
        self, client: aioredis.Redis | None, config: RedisConfig, *, owns_client: bool
    ) -> None:
        self._given = client
        self._config = config
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
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
        self._description = config.describe()
        self._secrets = (config.password,)
        self._closed = False
        self.counters = Counters(names=(*COUNTER_NAMES, "unacknowledged"))

    @classmethod
    def from_url(cls, url: BackendURL | str, **overrides: Any) -> Self:
        """Build from ``redis://...`` or ``rediss://...`` (no I/O; the sync URL rules)."""
        parsed = parse_url(url) if isinstance(url, str) else url
        config = parse_config(parsed, overrides)
        return cls(None, config, owns_client=True)

    @property
    def client(self) -> aioredis.Redis:
        """The ``redis.asyncio`` client of the running loop (for other commands)."""
        return self._client

    @property
    def _client(self) -> aioredis.Redis:
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = build_async_client(self._config)
        return client

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
            except _FAILURES as exc:
                failure: BaseException = exc
            failures += 1
            if not retry or failures > self.retries or not retryable(failure):
                break
            if failures > 1:
                await asyncio.sleep(self._backoff.compute(failures - 1))
        raise self._translate(failure, what, key)

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
        """Run writes then ``WAIT`` on one connection; fewer replicas in time is an error."""

        async def run() -> tuple[list[Any], int]:
            for attempt in range(2):
                pipe = self._client.pipeline(transaction=False)
                for _, args in commands:
                    pipe.execute_command(*args)
                pipe.execute_command("WAIT", self.wait_replicas, self._wait_ms)
                replies = await pipe.execute(raise_on_error=False)
                if attempt == 0 and any(isinstance(r, NoScriptError) for r in replies):
                    await self._client.script_load(CAS_SCRIPT)
                    continue
                break
            for reply in replies:
                if isinstance(reply, BaseException):
                    raise reply
            return list(replies[:-1]), int(replies[-1])

        replies, acks = await self._call(what, key, run)
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

    # -- single keys ---------------------------------------------------------------------------
    async def get(self, key: str) -> bytes | None:
        stored = self._key(key)
        value = await self._call("get", key, lambda: self._client.get(stored))
        self._count_read(value is not None, value is None)
        return cast("bytes | None", value)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        stored = self._key(key)
        value = ensure_bytes(value, key=key, backend=self._description)
        px = self._px(ttl)
        if self.wait_replicas:
            await self._acked("set", key, [_set_command(stored, value, px)])
        else:
            await self._call("set", key, lambda: self._client.set(stored, value, px=px))
        self.counters.add("writes")

    async def delete(self, key: str) -> bool:
        stored = self._key(key)
        if self.wait_replicas:
            removed = (await self._acked("delete", key, [(stored, ("UNLINK", stored))]))[0]
        else:
            removed = await self._call("delete", key, lambda: self._client.unlink(stored))
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
            return bool(await self._call("touch", key, lambda: self._client.pexpire(stored, px)))
        replies = await self._call("touch", key, lambda: self._transaction(commands))
        return bool(replies[-1])

    async def _transaction(self, commands: Sequence[Command]) -> list[Any]:
        """``MULTI`` commands ``EXEC``: applied wholly or not at all, even if cancelled."""
        pipe = self._client.pipeline(transaction=True)
        for _, args in commands:
            pipe.execute_command(*args)
        return list(await pipe.execute())

    async def ttl(self, key: str) -> float | None:
        stored = self._key(key)
        return _seconds_left(int(await self._call("ttl", key, lambda: self._client.pttl(stored))))

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
        value = await self._call("get_versioned", key, lambda: self._client.get(stored))
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
                "set_if", key, lambda: self._client.set(stored, value, nx=True, px=px), retry=False
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
        client = self._client
        try:
            return await client.evalsha(CAS_SHA, 1, stored, token, value, px)
        except NoScriptError:
            pass  # a restarted or flushed server: send the script itself once
        return await client.eval(CAS_SCRIPT, 1, stored, token, value, px)

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
        return self._client.scan(cursor, match=pattern, count=SCAN_COUNT)

    # -- bulk ----------------------------------------------------------------------------------
    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = [validate_key(key) for key in keys]
        if not wanted:
            return {}
        stored = [self._head + key for key in wanted]
        values: list[bytes | None] = await self._call(
            "get_many", None, lambda: self._client.mget(stored)
        )
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
            removed = await self._call("delete_many", None, lambda: self._client.unlink(*stored))
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
        clients = [c for owner, c in self._clients.items() if owner is loop]
        self._clients.clear()
        if self._given is not None and self._owns_client:
            clients.append(self._given)
        for client in clients:
            await client.aclose()
            await client.connection_pool.disconnect()
