"""The async API: :class:`AsyncSessionStore` over async backends (docs/async.md).

    from session_store.aio import AsyncSessionStore

    store = AsyncSessionStore("redis://127.0.0.1:6379/0?prefix=app:", dict, ttl=3600)
    await store.save("u1", {"cart": []})
    await store.update("u1", lambda s: {**(s or {}), "seen": True})

Async backends register in the entry-point group ``session_store.async_backends`` under the
same URL schemes as the sync ones: ``memory://`` here, ``redis://`` / ``rediss://`` from
session-store-redis (``redis.asyncio``), ``diskcache://`` from session-store-diskcache (its
calls in a worker thread). Any sync backend can be put off the loop with
:class:`ThreadedBackend`. A chain string (``memory:// | redis://... | diskcache://DIR``) opens
an :class:`AsyncTieredBackend`, the sync chain's consistency model on the loop.
"""

from session_store.aio.backend import AsyncSessionBackend
from session_store.aio.memory import AsyncMemoryBackend
from session_store.aio.registry import ASYNC_BACKENDS_GROUP, open_async_backend
from session_store.aio.store import AsyncSessionStore
from session_store.aio.threaded import ThreadedBackend
from session_store.aio.tiered import AsyncTieredBackend

__all__ = [
    "ASYNC_BACKENDS_GROUP",
    "AsyncMemoryBackend",
    "AsyncSessionBackend",
    "AsyncSessionStore",
    "AsyncTieredBackend",
    "ThreadedBackend",
    "open_async_backend",
]
