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

Lazy (PEP 562), as the top level is: ``import session_store.aio`` loads nothing but this module,
and each name imports its module on first use, so code that needs only the async protocol, the
registry or the memory backend never loads the codec (cattrs, orjson, and the optional
cryptography and zstandard) that :class:`AsyncSessionStore` needs.
"""

from __future__ import annotations

from session_store.lazy import lazy_attributes

# Not typing.TYPE_CHECKING, for the reason the top level gives (session_store/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports on demand
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

# Each public name and the module of this package that defines it, imported on first access.
__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "ASYNC_BACKENDS_GROUP": "session_store.aio.registry",
        "AsyncMemoryBackend": "session_store.aio.memory",
        "AsyncSessionBackend": "session_store.aio.backend",
        "AsyncSessionStore": "session_store.aio.store",
        "AsyncTieredBackend": "session_store.aio.tiered",
        "ThreadedBackend": "session_store.aio.threaded",
        "open_async_backend": "session_store.aio.registry",
    },
    __all__,
)
