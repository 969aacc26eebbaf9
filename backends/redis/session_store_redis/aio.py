"""The async Redis backend: ``redis.asyncio`` behind the async protocol of session_store.aio.

Opened from the very URLs of the sync backend (:mod:`session_store_redis.client` parses them,
with every parameter, default and check), and storing the very same bytes under the very same
keys: a session written by :class:`~session_store_redis.RedisBackend` reads back here and the
other way round. What it shares with the sync backend rather than repeats: the namespace
(:class:`session_store.keys.Namespace`), TTL rules, the compare-and-set script and its tokens,
the SCAN pattern, the retry policy and the error translation.

**Cancellation.** Each operation is one command, one Lua script or one ``MULTI``/``EXEC``
(``set_many``, ``touch`` without TTL, ``get_with_ttl``; one script instead where the server's
ACL refuses ``MULTI``: :mod:`~session_store_redis.multi_acl`): Redis applies it wholly or not
at all.
redis-py disconnects a connection whose reply was abandoned by a cancelled task, so the next
command never reads a stale reply (tests/aio/test_cancellation.py cancels at every step).

``redis://``, ``rediss://`` and ``redis+sentinel://`` are registered in
``session_store.async_backends``; ``redis+cluster://`` is :mod:`session_store_redis.aio_cluster`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, ClassVar, Self, cast

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.exceptions import NoScriptError

from session_store.backend import Versioned, VersionToken, ensure_bytes
from session_store.keys import validate_key, validate_scan_prefix
from session_store.urls import BackendURL, parse_url
from session_store_redis.aio_base import AsyncRedisBase
from session_store_redis.aio_driver import Driver, RedisPyDriver
from session_store_redis.aio_ordered import AsyncOrderedWrites
from session_store_redis.commands import (
    SCAN_COUNT,
    Command,
    checked_items,
    found_values,
    seconds_left,
    session_keys,
    set_command,
)
from session_store_redis.conditional_delete import AsyncConditionalDelete
from session_store_redis.conditional_touch import AsyncConditionalTouch
from session_store_redis.config import parse_config
from session_store_redis.multi_acl import GET_PTTL, PERSIST_EXISTS, SET_MANY
from session_store_redis.patterns import prefix_pattern
from session_store_redis.scripts import CAS_SCRIPT, CAS_SHA, cas_args, is_token, version_token
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
    "Driver",
    "RedisPyDriver",
    "build_async_sentinel_client",
]


class AsyncRedisBackend(
    AsyncOrderedWrites, AsyncConditionalTouch, AsyncConditionalDelete, AsyncRedisBase
):
    """Sessions in Redis, for asyncio apps. Usually opened from a URL::

        open_async_backend("redis://127.0.0.1:6379/0?prefix=app:&default_ttl=86400")

    The constructor's arguments: :class:`~session_store_redis.aio_base.AsyncRedisBase`.
    """

    #: A framed value's compare-and-set checks its version, not the payload (scripts.py): a
    #: store's ``update`` frames what it writes here (``storerules.checks_versions``).
    checks_versions: ClassVar[bool] = True

    @classmethod
    def from_url(cls, url: BackendURL | str, **overrides: Any) -> Self:
        """Build from ``redis://...`` or ``rediss://...`` (no I/O; the sync URL rules)."""
        parsed = parse_url(url) if isinstance(url, str) else url
        config = parse_config(parsed, overrides)
        return cls(None, config, owns_client=True)

    # -- single keys ---------------------------------------------------------------------------
    async def get(self, key: str) -> bytes | None:
        stored = self._key(key)
        failure = None
        try:  # the first attempt here, not through _call: one coroutine layer less (hot path)
            value = await self.driver.call("GET", stored)
        except self._FAILURES as exc:
            failure = exc
        if failure is not None:  # outside the except: a typed error carries no context
            value = await self._again("get", key, self._run("GET", stored), failure)
        self._count_read(value is not None, value is None)
        return cast("bytes | None", value)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        stored = self._key(key)
        value = ensure_bytes(value, key=key, backend=self._description)
        px = self._px(ttl)
        if self.wait_replicas:
            await self._acked("set", key, [set_command(stored, value, px)])
            self.counters.add("writes")
            return
        args = set_command(stored, value, px)[1]
        failure = None
        try:  # as in get: the first attempt inline
            await self.driver.call(*args)
        except self._FAILURES as exc:
            failure = exc
        if failure is not None:
            await self._again("set", key, self._run(*args), failure)
        self._count("writes")

    async def delete(self, key: str) -> bool:
        stored = self._key(key)
        if self.wait_replicas:
            removed = (await self._acked("delete", key, [(stored, ("UNLINK", stored))]))[0]
        else:
            removed = await self._call("delete", key, self._run("UNLINK", stored))
        if removed:
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
        run = partial(self._all_or_none, "touch", commands, PERSIST_EXISTS, (stored,), ())
        replies = await self._call("touch", key, run)
        return bool(replies[-1])

    async def ttl(self, key: str) -> float | None:
        stored = self._key(key)
        return seconds_left(int(await self._call("ttl", key, self._run("PTTL", stored))))

    async def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        stored = self._key(key)
        commands: list[Command] = [(stored, ("GET", stored)), (stored, ("PTTL", stored))]
        run = partial(self._all_or_none, "get_with_ttl", commands, GET_PTTL, (stored,), ())
        value, pttl = await self._call("get_with_ttl", key, run)
        left = seconds_left(int(pttl))
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

    def token_for(self, value: bytes) -> VersionToken | None:
        """The token of a value stored unchanged: read from the bytes (see ``scripts``)."""
        return version_token(value)

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
                command = set_command(stored, value, px, "NX")
            else:
                argv = cas_args(token, value, px)
                command = (stored, ("EVALSHA", CAS_SHA, 1, stored, *argv))
            written = (await self._acked("set_if", key, [command]))[0]
        elif token is None:
            written = await self._call(
                "set_if", key, self._run(*set_command(stored, value, px, "NX")[1]), retry=False
            )
        else:
            written = await self._call(
                "set_if",
                key,
                partial(self._run_cas, stored, cas_args(token, value, px)),
                retry=False,
            )
        if written:
            self.counters.add("writes")
        return bool(written)

    async def _run_cas(self, stored: str, args: Sequence[object]) -> Any:
        """The compare-and-set script by its SHA, sent in full if the server lost it."""
        driver = self.driver
        try:
            return await driver.call("EVALSHA", CAS_SHA, 1, stored, *args)
        except NoScriptError:
            pass  # a restarted or flushed server: send the script itself once
        return await driver.call("EVAL", CAS_SCRIPT, 1, stored, *args)

    # -- listing -------------------------------------------------------------------------------
    def scan(self, prefix: str = "") -> AsyncIterator[str]:
        validate_scan_prefix(prefix, backend=self._description)
        return self._scan(prefix_pattern(self._namespace.scan_head(prefix)), prefix)

    async def _scan(self, pattern: str, prefix: str) -> AsyncIterator[str]:
        seen: set[str] = set()
        cursor = 0
        while True:
            cursor, batch = await self._call("scan", None, partial(self._page, cursor, pattern))
            for key in session_keys(self._namespace, batch, prefix, seen):
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
        stored = [self._namespace.encode(key) for key in wanted]
        values: list[bytes | None] = await self._call("get_many", None, self._run("MGET", *stored))
        found, missed = found_values(wanted, values)
        self._count_read(len(wanted) - missed, missed)
        return found

    async def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        """All or none: one ``MULTI``/``EXEC``, or one script where the ACL refuses ``MULTI``
        (a cancelled call never leaves half the keys)."""
        checked = checked_items(items, self._description)
        px = self._px(ttl)
        if not checked:
            return
        encode = self._namespace.encode
        commands = [set_command(encode(key), value, px) for key, value in checked]
        keys = [stored for stored, _ in commands]
        atomic = SET_MANY, keys, ["" if px is None else px, *(value for _, value in checked)]
        if self.wait_replicas:
            acked = partial(self._all_or_none, "set_many", commands, *atomic, wait=True)
            await self._acked_by("set_many", None, acked)
        else:
            run = partial(self._all_or_none, "set_many", commands, *atomic)
            await self._call("set_many", None, run)
        self.counters.add("writes", len(checked))

    async def delete_many(self, keys: Iterable[str]) -> int:
        wanted = [validate_key(key) for key in keys]
        if not wanted:
            return 0
        stored = [self._namespace.encode(k) for k in wanted]
        if self.wait_replicas:
            removed = (await self._acked("delete_many", None, [(stored[0], ("UNLINK", *stored))]))[
                0
            ]
        else:
            removed = await self._call("delete_many", None, self._run("UNLINK", *stored))
        if removed:
            self.counters.add("deletes", int(removed))
        return int(removed)

    # -- life cycle ----------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Close the pool if this backend built it. Every call does: a use after ``aclose``
        reopens a connection (as the sync backend and redis-py do), and the next ``aclose``
        releases it."""
        self._closed = True
        # a connection can only be closed on its own loop; those of other (ended) loops go with it
        loop = asyncio.get_running_loop()
        drivers = self._forget_drivers(loop)
        if self._given is not None:
            drivers.append(self._given)
        for driver in drivers:
            await driver.aclose()


class AsyncRedisSentinelBackend(AsyncRedisBackend):
    """Sessions on a Sentinel-managed primary, for asyncio apps: the ``redis+sentinel://`` URLs
    of :class:`~session_store_redis.RedisSentinelBackend`, over ``redis.asyncio.sentinel``.
    Every connection asks a sentinel for the current primary, so after a failover the next
    connection reaches the promoted replica; all else is :class:`AsyncRedisBackend`."""

    def __init__(self, config: SentinelConfig) -> None:
        """Connections to the primary the sentinels of ``config`` name, one per event loop."""
        self._sentinel_config = config
        super().__init__(
            None,
            config.settings,
            owns_client=True,
            factory=self._connect,
            description=config.describe(),
            secrets=(config.sentinel_password,),
        )

    def _connect(self) -> Driver:
        """The driver of the running loop: a client of the primary its sentinel manager names
        (the driver closes the manager's connections to the sentinels with its own)."""
        sentinel, client = build_async_sentinel_client(self._sentinel_config)
        return RedisPyDriver(client, sentinel=sentinel)

    @classmethod
    def from_url(cls, url: BackendURL | str, **overrides: Any) -> Self:
        """Build from ``redis+sentinel://...`` (no I/O; the sync URL rules)."""
        parsed = parse_multi_host_url(url) if isinstance(url, str) else url
        return cls(parse_sentinel_config(parsed, overrides))


def build_async_sentinel_client(config: SentinelConfig) -> tuple[AsyncSentinel, aioredis.Redis]:
    """The asyncio sentinel manager and a client of the current primary; connects lazily."""
    sentinel = AsyncSentinel(  # type: ignore[no-untyped-call]
        list(config.sentinels), sentinel_kwargs=sentinel_connection_kwargs(config)
    )
    client: aioredis.Redis = sentinel.master_for(
        config.service, redis_class=aioredis.Redis, **primary_connection_kwargs(config)
    )
    return sentinel, client
