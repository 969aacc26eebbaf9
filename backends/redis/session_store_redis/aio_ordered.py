"""What an async chain needs from the async Redis backend: ordered writes and an invalidation
stream, the sync backend's own (:mod:`session_store_redis.invalidation`).

* ``set_if_newer`` / ``set_after`` (their arguments checked by
  :func:`~session_store.unchecked.checked`): the very Lua script text of the sync backend
  (:data:`~session_store_redis.ordered_scripts.SET_IF_NEWER_SCRIPT`,
  :data:`~session_store_redis.ordered_scripts.SET_AFTER_SCRIPT`), sent by SHA (``EVALSHA``) and by
  text once if the server lost it; one atomic round trip each, never retried (a lost reply leaves
  the outcome unknown). With ``wait_replicas`` they are compare-and-set loops instead, whose
  ``set_if`` waits for the replicas (as the sync backend does).
* ``invalidations(prefix, listener)``: the sync :class:`~session_store_redis.invalidation.
  InvalidationStream` (a thread with its own blocking RESP2 connection, built from the same URL
  settings), not a native asyncio one: the listener (the chain's near cache) is thread-safe, the
  stream is measured (0.7 ms on loopback) and tested, and a second implementation would be a
  second thing to prove. Offered for a standalone server; a Sentinel or Cluster deployment has
  none, and the chain falls back to its ``max_staleness`` check.

Mixed into :class:`~session_store_redis.aio.AsyncRedisBackend` by :class:`AsyncOrderedWrites`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from redis.exceptions import NoScriptError

from session_store.backend import Versioned, VersionToken
from session_store.counters import Counters
from session_store.errors import BackendUnavailableError
from session_store.keys import Namespace
from session_store.tiered.near import InvalidationListener
from session_store.unchecked import checked
from session_store_redis.client import RedisConfig, build_client
from session_store_redis.invalidation import InvalidationStream
from session_store_redis.ordered_scripts import SET_AFTER_SCRIPT, SET_IF_NEWER_SCRIPT

if TYPE_CHECKING:
    from session_store_redis.aio_driver import Driver

__all__ = ["SET_AFTER_SHA", "SET_IF_NEWER_SHA", "AsyncOrderedWrites"]

SET_IF_NEWER_SHA = hashlib.sha1(SET_IF_NEWER_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis's
SET_AFTER_SHA = hashlib.sha1(SET_AFTER_SCRIPT.encode()).hexdigest()  # noqa: S324 - script id


class _Host(Protocol):
    """What the mixin uses of :class:`~session_store_redis.aio.AsyncRedisBackend`."""

    wait_replicas: int
    counters: Counters
    _stream_config: RedisConfig | None
    _namespace: Namespace
    _description: str

    @property
    def driver(self) -> Driver: ...

    def _px(self, ttl: float | None) -> int | None: ...

    async def _call(
        self, what: str, key: str | None, fn: Callable[[], Awaitable[Any]], *, retry: bool = True
    ) -> Any: ...

    async def get_versioned(self, key: str) -> Versioned | None: ...

    async def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool: ...


async def _script(host: _Host, sha: str, text: str, stored: str, args: list[object]) -> Any:
    """A script by its SHA, sent as text once if the server lost it (restarted, flushed)."""
    driver = host.driver
    try:
        return await driver.call("EVALSHA", sha, 1, stored, *args)
    except NoScriptError:
        pass
    return await driver.call("EVAL", text, 1, stored, *args)


class AsyncOrderedWrites:
    """``set_if_newer``, ``set_after`` and ``invalidations`` for the async Redis backends."""

    def invalidations(self: _Host, prefix: str, listener: InvalidationListener) -> Any:
        """Start a stream telling ``listener`` about every change of a key under ``prefix``."""
        config = self._stream_config
        if config is None:
            raise BackendUnavailableError(
                "no invalidation stream for this deployment (standalone Redis only)",
                backend=self._description,
            )
        return InvalidationStream(build_client(config), self._namespace, prefix, listener).start()

    async def _set_if_newer(
        self: _Host, key: str, value: bytes, ttl: float | None, *, head: int, start: int, end: int
    ) -> bool:
        """Store ``value`` unless the current value shares its first ``head`` bytes and its
        bytes ``[start:end]`` are at least ``value``'s (one atomic round trip)."""
        if self.wait_replicas:  # the WAIT path: compare-and-set, which waits for replicas
            from session_store.aio.tiered_writes import write_if_newer_cas

            return await write_if_newer_cas(self, key, value, ttl)  # type: ignore[arg-type]
        stored = self._namespace.encode(key)
        args: list[object] = [value, self._px(ttl) or 0, head, start + 1, end]
        run = SET_IF_NEWER_SHA, SET_IF_NEWER_SCRIPT, stored, args
        written = await self._call("set_if_newer", key, lambda: _script(self, *run), retry=False)
        if written:
            self.counters.add("writes")
        return bool(written)

    set_if_newer = checked(_set_if_newer)

    async def _set_after(
        self: _Host,
        key: str,
        value: bytes,
        ttl: float | None,
        *,
        head: int,
        start: int,
        end: int,
        clock_end: int,
    ) -> bytes:
        """Store ``value`` after whatever is there (see the sync backend's ``set_after``);
        the bytes ``[start:end]`` stored."""
        if self.wait_replicas:
            from session_store.aio.tiered_writes import write_after_cas

            written = await write_after_cas(self, key, value, ttl)  # type: ignore[arg-type]
            return written[start:end]
        stored = self._namespace.encode(key)
        args: list[object] = [value, self._px(ttl) or 0, head, start + 1, end, clock_end]
        run = SET_AFTER_SHA, SET_AFTER_SCRIPT, stored, args
        version = await self._call("set_after", key, lambda: _script(self, *run), retry=False)
        self.counters.add("writes")
        return bytes(version)

    set_after = checked(_set_after)
