"""The async memory backend: :class:`~session_store.memory.MemoryBackend` on the event loop.

Every memory operation is a few dictionary steps under a lock held for microseconds, so it runs
inline on the loop (a worker thread would cost a hundred times more than the operation). The
bounds, LRU order, TTLs and counters are the sync backend's own: this class only awaits nothing.
No ``await`` inside an operation means no point where cancellation could split one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Self, Unpack

from session_store.aio.backend import AsyncSessionBackend
from session_store.backend import Scope, Versioned, VersionToken
from session_store.memory import MemoryBackend
from session_store.memory_entries import MemoryOptions
from session_store.urls import BackendURL

__all__ = ["AsyncMemoryBackend"]


class AsyncMemoryBackend(AsyncSessionBackend):
    """A process-local LRU store with the async protocol; arguments as for
    :class:`~session_store.memory.MemoryBackend`, or ``backend=`` to share one (a sync and an
    async view of the same memory)."""

    scope = Scope.PROCESS

    def __init__(
        self, *, backend: MemoryBackend | None = None, **options: Unpack[MemoryOptions]
    ) -> None:
        self.sync = backend or MemoryBackend(**options)
        self.counters = self.sync.counters

    @classmethod
    def from_url(cls, url: BackendURL, **overrides: Any) -> Self:
        """Build from ``memory://?max_entries=N&max_bytes=N&default_ttl=S`` (the sync rules)."""
        return cls(backend=MemoryBackend.from_url(url, **overrides))

    def describe(self) -> str:
        return self.sync.describe()

    async def get(self, key: str) -> bytes | None:
        return self.sync.get(key)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self.sync.set(key, value, ttl)

    async def delete(self, key: str) -> bool:
        return self.sync.delete(key)

    async def touch(self, key: str, ttl: float | None = None) -> bool:
        return self.sync.touch(key, ttl)

    async def touch_if(self, key: str, head: bytes, ttl: float | None = None) -> bool:
        return self.sync.touch_if(key, head, ttl)

    async def touch_session(
        self, key: str, ttl: float | None = None, keep_own: bool = False
    ) -> bool:
        return self.sync.touch_session(key, ttl, keep_own)

    async def delete_session(self, key: str) -> bool:
        return self.sync.delete_session(key)

    async def ttl(self, key: str) -> float | None:
        return self.sync.ttl(key)

    def scan(self, prefix: str = "") -> AsyncIterator[str]:
        return _aiter(list(self.sync.scan(prefix)))  # the prefix is checked here, at once

    async def get_versioned(self, key: str) -> Versioned | None:
        return self.sync.get_versioned(key)

    async def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        return self.sync.set_if(key, value, token, ttl)

    async def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        return self.sync.get_with_ttl(key)

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        return self.sync.get_many(keys)

    async def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        self.sync.set_many(items, ttl)

    async def delete_many(self, keys: Iterable[str]) -> int:
        return self.sync.delete_many(keys)

    async def aclose(self) -> None:
        self.sync.close()


async def _aiter(keys: list[str]) -> AsyncIterator[str]:
    for key in keys:
        yield key
