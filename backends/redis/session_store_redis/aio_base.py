"""What every async Redis backend shares: the namespace, TTLs, retries, error translation, the
``WAIT`` path, and one :class:`~session_store_redis.aio_driver.Driver` per running event loop.

The same rules as the sync backends (:mod:`session_store_redis.base`): the same namespace
(:class:`session_store.keys.Namespace`), TTL rules, retry policy and error translation, so a
session written by either reads back through the other.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, ClassVar, cast

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from session_store import forksafe
from session_store.aio.backend import AsyncSessionBackend
from session_store.backend import Scope
from session_store.counters import COUNTER_NAMES, Counters
from session_store.errors import BackendError, BackendUnavailableError, ConfigurationError
from session_store.keys import SEPARATOR, Namespace, validate_key
from session_store.ttl import effective_ttl, normalize_ttl, ttl_to_ms
from session_store_redis.aio_driver import Driver, RedisPyDriver
from session_store_redis.aioconn import LeanClient
from session_store_redis.client import make_backoff, retryable
from session_store_redis.commands import Command, wait_replies
from session_store_redis.config import ClientSettings, RedisConfig
from session_store_redis.errors import translate
from session_store_redis.multi_acl import OneScript, needs_one, refuses_multi
from session_store_redis.scripts import CAS_SCRIPT

__all__ = ["AsyncRedisBase"]

log = logging.getLogger("session_store_redis.aio")

_FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError)


def _nothing() -> None:
    """The dead weak reference :attr:`AsyncRedisBase._last` starts with."""


class AsyncRedisBase(AsyncSessionBackend):
    """The plumbing of :class:`~session_store_redis.aio.AsyncRedisBackend` and its Sentinel and
    Cluster subclasses.

    An asyncio connection belongs to the event loop that opened it, so the backend keeps one
    connection (:class:`~session_store_redis.aioconn.LeanClient`, pipelined) per running loop:
    an app served on one loop uses one, and a test client that runs each request on a loop of
    its own still works.

    Args:
        client: a ``redis.asyncio.Redis`` returning bytes, used on every loop (yours to keep on
            one); ``None``: connections built from ``config``, one per event loop.
        config: the parsed URL (prefix, TTL, retries, ``wait_replicas``, connection settings).
        owns_client: ``aclose`` closes the given client's pool.
        factory: builds the :class:`Driver` of a loop (Sentinel and Cluster give their own).
        description: what :meth:`describe` returns; ``None``: the redacted URL of ``config``.
        secrets: more secrets to scrub from messages than ``config``'s password.
        counters: more counter names than the standard ones and ``unacknowledged``.
    """

    #: As the sync backend's: a store over it alone writes uncompressed by default.
    compress_by_default: ClassVar[bool] = False

    scope = Scope.NETWORK
    #: What a failed command raises (translated by :meth:`_translate`); Cluster adds its own.
    _FAILURES: tuple[type[BaseException], ...] = _FAILURES
    #: The typed error of a failed command (a cluster's knows its own conditions too).
    _TYPED_ERROR = staticmethod(translate)
    #: ``MULTI`` is tried (until the server's ACL refuses it: then ``False``, for good).
    _multi: bool = True

    def __init__(
        self,
        client: aioredis.Redis | None,
        config: ClientSettings,
        *,
        owns_client: bool,
        factory: Callable[[], Driver] | None = None,
        description: str | None = None,
        secrets: tuple[str | None, ...] = (),
        counters: tuple[str, ...] = (),
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
        separator = config.separator if isinstance(config, RedisConfig) else SEPARATOR
        self._namespace = Namespace(config.prefix, separator)
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
        #: what the invalidation stream of :mod:`~session_store_redis.aio_ordered` connects with
        self._stream_config = config if isinstance(config, RedisConfig) else None
        self._closed = False
        # the driver of the loop last asked for, and a weak reference to that loop: the hot
        # path's lookup without a WeakKeyDictionary (which builds a weak reference per call)
        self._last: tuple[Callable[[], object], Driver] = (_nothing, cast("Driver", None))
        # "unacknowledged": writes that reached the primary but not wait_replicas replicas;
        # counted under the lock, as the sync base does (no method call per count)
        self._count_lock = threading.Lock()
        self.counters = Counters(
            self._count_lock, names=(*COUNTER_NAMES, "unacknowledged", *counters)
        )
        self._counts = self.counters._values
        forksafe.register(self)
        # the last TTL a write was given and its PX: a store writes with the same TTL each time
        self._last_px: tuple[float | None, int | None] = (None, self._px_of(None))

    def _reset_locks(self) -> None:
        self._count_lock = self.counters._lock = threading.Lock()

    @property
    def driver(self) -> Driver:
        """How this backend talks to Redis on the running loop (for other commands)."""
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        last_loop, driver = self._last
        if last_loop() is loop:
            return driver
        driver = self._drivers.get(loop)  # type: ignore[assignment]
        if driver is None:
            driver = self._drivers[loop] = self._factory()
        self._last = (weakref.ref(loop), driver)
        return driver

    def _forget_drivers(self, loop: asyncio.AbstractEventLoop) -> list[Driver]:
        """Forget every driver, the hot path's cached one included (else a use after
        ``aclose`` would go on with it, and no later ``aclose`` would find it to close);
        returns those of ``loop``, the only ones that can be closed from it. Those of another
        loop are closed on it (:func:`~session_store_redis.aio_close.close_on_own_loop`: on
        its next turn, not waited for; dropped if it is closed). Each driver is told at once
        (:meth:`~session_store_redis.aio_driver.Driver.forget`): a call in flight on it, or a
        driver a caller kept, must not open a connection no later ``aclose`` would find
        (attack10b; the Sentinel and Cluster drivers too, flaky11)."""
        from session_store_redis.aio_close import close_on_own_loop

        drivers, self._drivers = self._drivers, weakref.WeakKeyDictionary()
        self._last = (_nothing, cast("Driver", None))
        mine = []
        for ref in drivers.keyrefs():  # a list: another thread may add to it meanwhile
            owner = ref()
            driver = None if owner is None else drivers.get(owner)
            if owner is None or driver is None:  # that loop is gone, and its driver with it
                continue
            driver.forget()
            if owner is loop:
                mine.append(driver)
            else:
                close_on_own_loop(owner, driver.aclose)
        return mine

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
        error = self._TYPED_ERROR(
            exc, what=what, key=key, backend=self._description, secrets=self._secrets
        )
        log.debug("%s", error)
        return error

    async def _call(
        self, what: str, key: str | None, fn: Callable[[], Awaitable[Any]], *, retry: bool = True
    ) -> Any:
        """``await fn()``, retried after a failed connection if ``retry`` (idempotent only),
        errors translated; the typed error is raised outside the ``except`` (no context)."""
        try:
            return await fn()
        except self._FAILURES as exc:
            failure: BaseException = exc
        return await self._again(what, key, fn, failure, retry=retry)

    async def _again(
        self,
        what: str,
        key: str | None,
        fn: Callable[[], Awaitable[Any]],
        failure: BaseException,
        *,
        retry: bool = True,
    ) -> Any:
        """What :meth:`_call` does once a first attempt failed with ``failure`` (a hot call
        makes that first attempt itself, saving a coroutine layer): retried as :meth:`_call`
        says, else the typed error. Call it outside the ``except`` that caught ``failure``."""
        failures = 1
        while retry and failures <= self.retries and self._retryable(failure):
            if failures > 1:
                await asyncio.sleep(self._backoff.compute(failures - 1))
            try:
                return await fn()
            except self._FAILURES as exc:
                failure = exc
            failures += 1
        raise self._translate(failure, what, key)

    def _retryable(self, failure: BaseException) -> bool:
        """Whether ``failure`` may clear if the idempotent operation runs again."""
        return retryable(failure)

    def _key(self, key: str) -> str:
        validate_key(key, backend=self._description)
        return self._namespace.encode(key)

    def _px(self, ttl: float | None) -> int | None:
        last_ttl, px = self._last_px
        if ttl == last_ttl and type(ttl) is type(last_ttl):  # (True == 1: not the same TTL)
            return px
        px = self._px_of(ttl)
        self._last_px = (ttl, px)
        return px

    def _px_of(self, ttl: float | None) -> int | None:
        seconds = effective_ttl(ttl, self.default_ttl)
        return None if seconds is None else ttl_to_ms(seconds)

    def _count(self, name: str, amount: int = 1) -> None:
        lock = self._count_lock
        lock.acquire()
        self._counts[name] += amount  # cannot raise: every name counted is there
        lock.release()

    def _count_read(self, found: int, missed: int) -> None:
        lock = self._count_lock
        lock.acquire()
        if found:
            self._counts["hits"] += found
        if missed:
            self._counts["misses"] += missed
        lock.release()

    async def _acked(self, what: str, key: str | None, commands: Sequence[Command]) -> list[Any]:
        """Run writes then ``WAIT``; fewer replicas in time is an error."""
        return await self._acked_by(what, key, partial(self._write_and_wait, commands))

    async def _acked_by(
        self, what: str, key: str | None, write: Callable[[], Awaitable[tuple[list[Any], int]]]
    ) -> list[Any]:
        """:meth:`_acked` of writes that ``write`` runs, followed by ``WAIT`` (its replies and
        the replica count, as :meth:`_write_and_wait`)."""
        replies, acks = await self._call(what, key, write)
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

    async def _all_or_none(
        self,
        what: str,
        commands: Sequence[Command],
        script: OneScript,
        keys: Sequence[object],
        args: Sequence[object],
        *,
        wait: bool = False,
    ) -> Any:
        """``commands`` as one step: ``MULTI``/``EXEC`` (their replies), or, once the server's
        ACL refused ``MULTI``, ``script`` over ``keys`` and ``args`` (its reply; see
        :mod:`~session_store_redis.multi_acl`); with ``wait``, followed by ``WAIT`` (the
        replies and the replica count, as :meth:`_write_and_wait`)."""
        if self._multi:
            try:
                if not wait:
                    return await self._transaction(commands)
                first = commands[0][0]
                multi = [(first, ("MULTI",)), *commands, (first, ("EXEC",))]
                return await self._write_and_wait(multi)
            except ResponseError as exc:
                if not refuses_multi(exc):
                    raise
            if self._multi:
                self._multi = False
                log.warning(
                    "%s: the server refused MULTI (ACL or rename-command);"
                    " %s and the like run as one script",
                    self._description,
                    what,
                )
        try:
            if wait:
                first = commands[0][0]
                return await self._write_and_wait(
                    [(first, ("EVAL", script.text, len(keys), *keys, *args))]
                )
            driver = self.driver
            try:
                return await driver.call("EVALSHA", script.sha, len(keys), *keys, *args)
            except NoScriptError:  # loaded (every primary of a cluster), then by SHA again
                pass
            await driver.call("SCRIPT", "LOAD", script.text)
            return await driver.call("EVALSHA", script.sha, len(keys), *keys, *args)
        except ResponseError as exc:
            failure: BaseException = needs_one(exc, what)
        raise failure

    async def _transaction(self, commands: Sequence[Command]) -> list[Any]:
        """``MULTI`` commands ``EXEC``: applied wholly or not at all, even if cancelled."""
        return await self.driver.call_many([args for _, args in commands], transaction=True)

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
        return wait_replies(replies)
