"""``AsyncSessionStore``: :class:`~session_store.store.SessionStore` for event-loop apps.

The same methods, as coroutines, with the same rules: the schema, codec, key and TTL checks,
the ``last_accessed`` stamp written by writes only (reads never write), the chain's version
frames read through, and the backoff of a conflicted ``update`` are
:class:`~session_store.storerules.StoreRules`, shared with the sync store, so a session written
by one reads back through the other byte for byte.

**Cancellation.** Everything a write stores is checked and encoded before the first ``await``;
the write itself is one atomic backend step (``set``, ``set_if``, a ``MULTI``/``EXEC`` for
``save_many``). A task cancelled anywhere in ``save``, ``save_many`` or ``update`` therefore
leaves the session as it was or as the write made it, never half of each; an ``update``
cancelled between its read and its compare-and-set writes nothing.

**Decoded-object cache**: the sync store's (:mod:`session_store.decoded`). A ``load`` of the very
bytes this store last saved or decoded for a key undoes no stage, and every ``load`` returns an
object of its own (a caller changing it changes neither another load's nor what is stored). The
cache is told about a write only after the write has returned, so a cancelled write leaves it
as it was; and since an entry is only ever used for exactly the bytes it was made from, it
cannot serve anything the backend would not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, TypeVar

from session_store.aio.backend import AsyncClosing, AsyncSessionBackend
from session_store.aio.memory import AsyncMemoryBackend
from session_store.aio.registry import open_async_backend
from session_store.errors import BackendError
from session_store.keys import validate_key
from session_store.stamps import session_bytes
from session_store.storerules import LISTING_BATCH, StoreRules, backoff_pause, live_sessions

__all__ = ["AsyncSessionStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class AsyncSessionStore(StoreRules[T, AsyncSessionBackend], AsyncClosing):
    """Typed sessions in an async backend.

    Args:
        backend: an :class:`AsyncSessionBackend`, or a URL to open one with
            :func:`~session_store.aio.open_async_backend` (then ``aclose`` closes it).
        schema, ttl, codec, legacy_schema, namespace, access_interval, touch_on_load,
            update_timeout, decoded_cache_bytes, compression: as for
            :class:`~session_store.store.SessionStore` (24 h by default; the decoded cache
            holds 64 MiB, 0 turns it off).
    """

    _KIND = "AsyncSessionStore"

    def _open(self, url: str) -> AsyncSessionBackend:
        return open_async_backend(url)

    def _compression_tier(self) -> object:
        """The sync memory backend an async memory backend runs (so a bare ``memory://``
        writes uncompressed, as in the sync store), else the backend itself."""
        backend = self.backend
        return backend.sync if type(backend) is AsyncMemoryBackend else backend

    # -- reads ---------------------------------------------------------------------------------
    async def load(self, key: str) -> T | None:
        """The session stored under ``key``, or ``None`` (errors as for the sync store)."""
        data = await self.backend.get(key)
        # the same bytes as last time: no stage undone (see session_store.decoded)
        obj = None if data is None else self._cached_decode(key, data)
        if obj is not None and self.touch_on_load:
            await self._touch_after_load(key)
        return obj

    async def _touch_after_load(self, key: str) -> None:
        """Sliding expiry on read, as the sync store's: the session's own TTL where it is
        stored records it, judged and applied in one backend call (``touch_session``); a
        refusing tier never fails a load (a warning says so)."""
        try:
            await self.backend.touch_session(key, self.ttl, keep_own=True)
        except BackendError as exc:
            log.warning("touch after loading %r failed: %s", key, exc.message)

    async def load_many(self, keys: Iterable[str]) -> dict[str, T]:
        """The sessions found among ``keys`` (one round trip where the backend allows)."""
        found = await self.backend.get_many(keys)
        decoded = {key: self._decode_stored(key, data) for key, data in found.items()}
        return {key: obj for key, obj in decoded.items() if obj is not None}

    async def exists(self, key: str) -> bool:
        """Whether a session is stored under ``key`` (without decoding it): as the sync store
        asks, so a chain's tombstone read through one tier, or the marker a login's id rotation
        leaves on the old id, is no session (the backend's ``ttl`` would say there is one)."""
        data = await self.backend.get(key)
        return data is not None and session_bytes(data) is not None

    def keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Keys of the stored sessions starting with ``prefix``: ``async for key in ...``.
        Keys holding no session are left out, as :meth:`SessionStore.keys
        <session_store.SessionStore.keys>` says."""
        listing = self.backend.scan(prefix)
        sessions = getattr(listing, "sessions", None)
        if sessions is not None:  # a chain's: from the reads its listing makes anyway
            return sessions()  # type: ignore[no-any-return]
        return self._live_keys(listing)

    async def _live_keys(self, listing: AsyncIterator[str]) -> AsyncIterator[str]:
        batch: list[str] = []
        async for key in listing:
            batch.append(key)
            if len(batch) >= LISTING_BATCH:
                for live in live_sessions(batch, await self.backend.get_many(batch)):
                    yield live
                batch = []
        if batch:
            for live in live_sessions(batch, await self.backend.get_many(batch)):
                yield live

    # -- writes --------------------------------------------------------------------------------
    async def save(self, key: str, obj: T, ttl: float | None = None) -> T:
        """Store ``obj`` under ``key``; returns what was stored (``last_accessed`` stamped)."""
        write_ttl = self._ttl(ttl)
        if ttl is None:
            stamped, payload, plain = self._prepare_plain(key, obj)  # (checks the key)
        else:  # a TTL of its own is recorded with the payload (ownttl), encoded for its frame
            stamped, payload, plain = self._prepare_recorded(key, obj, write_ttl)
        await self.backend.set(key, payload, write_ttl)
        self._decoded.put_saved(
            key, payload, stamped, plain, self._rebuild
        )  # the next load of these bytes
        return stamped

    async def save_many(self, items: Mapping[str, T], ttl: float | None = None) -> None:
        """Store every item, all encoded before any is written, in one atomic step."""
        write_ttl = self._ttl(ttl)
        encoded = {
            key: self._prepare_recorded(key, obj, write_ttl)[1] for key, obj in items.items()
        }
        await self.backend.set_many(encoded, write_ttl)

    async def delete(self, key: str) -> bool:
        """Remove the session; ``True`` if there was one, removed by this call. A key holding
        no session (absent, a chain's tombstone, a retired id's marker) is left as it is:
        ``False``. One atomic backend call, ``delete_session``, as the sync store's ``delete``
        says, with its bound: ``True`` always means a session was removed; ``False`` that the
        final attempt found none, which after a lost reply (retried) may follow this call's own
        removal."""
        self._decoded.discard(key)
        return await self.backend.delete_session(key)

    async def _discard(self, key: str) -> bool:
        """Remove whatever ``key`` holds, session or marker: the sync store's
        :meth:`~session_store.store.SessionStore._discard` (the web integrations' id rotation
        ending the marker it wrote)."""
        self._decoded.discard(key)
        return await self.backend.delete(key)

    async def touch(self, key: str, ttl: float | None = None) -> bool:
        """Restart the session's expiry without rewriting it; ``True`` if it holds a session.
        ``ttl=None`` keeps the session's own TTL, as the sync store's ``touch`` says (over a
        single backend one atomic ``touch_session``, which also refuses a key holding no
        session; a chain's too, falling back to the store's TTL where nothing records one)."""
        if ttl is None:
            return await self.backend.touch_session(key, self.ttl, keep_own=True)
        return await self.backend.touch_session(key, ttl)

    async def update(
        self, key: str, fn: Callable[[T | None], T | None], ttl: float | None = None
    ) -> T | None:
        """Atomically replace the session with ``fn(current)`` (a plain function, which may run
        once per conflict); returns what is stored after. ``None`` from ``fn`` writes nothing.

        Raises:
            ConflictError: other writers won every attempt for ``update_timeout`` seconds.
        """
        validate_key(key)
        backend = self.backend
        plan = self._update_plan(ttl)
        first = self._known_write(key, fn, plan)
        if first is not None:  # one round trip: compare-and-set against what this store knows
            payload, token, stamped, plain = first
            if await backend.set_if(key, payload, token, plan[0]):
                self._decoded.put_saved(key, payload, stamped, plain, self._rebuild)
                return stamped
        steps = self._update_steps(key, fn, plan, backend, _backoff)
        value: Any = None
        while True:
            call, args = steps.send(value)
            if call is None:
                return args  # type: ignore[no-any-return]
            value = await call(*args)

    # -- life cycle ----------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Close the backend if this store opened it from a URL."""
        if self._owns_backend:
            await self.backend.aclose()

    def metrics(self) -> dict[str, Any]:
        """The backend's counters as a plain dict, and (``legacy``) the legacy JSON reader's
        process-wide counters, as in :meth:`SessionStore.metrics`."""
        from session_store.codec.legacyjson import LEGACY_COUNTERS

        return {
            "backend": self.backend.describe(),
            "counters": self.backend.counters.as_dict(),
            "legacy": LEGACY_COUNTERS.as_dict(),
        }


async def _backoff(attempt: int, deadline: float) -> None:
    """Sleep the jittered, capped pause of :func:`~session_store.storerules.backoff_pause`."""
    await asyncio.sleep(backoff_pause(attempt, deadline))
