"""Run a blocking :class:`~session_store.backend.SessionBackend` off the event loop.

:class:`ThreadedBackend` gives any sync backend the async protocol by running each call in a
worker thread (``asyncio.to_thread``), so a slow disk never stalls the loop. It is how the
diskcache plugin's async backend is built, and what an app can wrap a backend of its own in.

**Cancellation**: a call already running in its thread cannot be interrupted; cancelling the
awaiting task leaves that thread to finish the call, which the sync backend makes atomic (a
call cancelled before a thread took it is not run). So a cancelled write has happened wholly or
not at all, as the protocol requires. ``scan`` reads its keys in the thread and hands them out
afterwards. ``aclose`` closes the sync backend in a worker thread, then joins the threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping

from session_store.aio.backend import AsyncSessionBackend
from session_store.aio.worker import Worker
from session_store.backend import Scope, SessionBackend, Versioned, VersionToken
from session_store.keys import validate_scan_prefix

__all__ = ["ThreadedBackend"]


class ThreadedBackend(AsyncSessionBackend):
    """The async protocol over a sync backend, each call in a worker thread.

    Args:
        backend: the sync backend; ``aclose`` closes it.
        threads: how many worker threads its calls may run in at once (started as needed).
    """

    scope = Scope.HOST

    def __init__(self, backend: SessionBackend, threads: int = 4) -> None:
        self.sync = backend
        self.counters = backend.counters
        self.scope = backend.scope  # type: ignore[misc]  # the wrapped backend's, per instance
        self._worker = Worker(f"session-store-{type(backend).__name__}", threads)
        #: ``await backend.run(fn, *args)``: ``fn(*args)`` in one of this backend's threads
        self.run = self._worker.run

    def describe(self) -> str:
        return self.sync.describe()

    async def get(self, key: str) -> bytes | None:
        return await self.run(self.sync.get, key)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        await self.run(self.sync.set, key, value, ttl)

    async def delete(self, key: str) -> bool:
        return await self.run(self.sync.delete, key)

    async def touch(self, key: str, ttl: float | None = None) -> bool:
        return await self.run(self.sync.touch, key, ttl)

    async def touch_if(self, key: str, head: bytes, ttl: float | None = None) -> bool:
        return await self.run(self.sync.touch_if, key, head, ttl)

    async def touch_session(
        self, key: str, ttl: float | None = None, keep_own: bool = False
    ) -> bool:
        return await self.run(self.sync.touch_session, key, ttl, keep_own)

    async def delete_session(self, key: str) -> bool:
        return await self.run(self.sync.delete_session, key)

    async def ttl(self, key: str) -> float | None:
        return await self.run(self.sync.ttl, key)

    def scan(self, prefix: str = "") -> AsyncIterator[str]:
        validate_scan_prefix(prefix, backend=self.describe())
        return self._scan(prefix)

    async def _scan(self, prefix: str) -> AsyncIterator[str]:
        keys = await self.run(lambda: list(self.sync.scan(prefix)))
        for key in keys:
            yield key

    async def get_versioned(self, key: str) -> Versioned | None:
        return await self.run(self.sync.get_versioned, key)

    def token_for(self, value: bytes) -> VersionToken | None:
        return self.sync.token_for(value)

    async def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        return await self.run(self.sync.set_if, key, value, token, ttl)

    async def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        return await self.run(self.sync.get_with_ttl, key)

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = list(keys)  # an iterator is consumed here, not in the thread
        return await self.run(self.sync.get_many, wanted)

    async def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        await self.run(self.sync.set_many, dict(items), ttl)

    async def delete_many(self, keys: Iterable[str]) -> int:
        wanted = list(keys)
        return await self.run(self.sync.delete_many, wanted)

    async def aclose(self) -> None:
        try:
            await self.run(self.sync.close)
        finally:
            await asyncio.to_thread(self._worker.stop)  # joins the threads
