"""The async tiered chain: the sync :class:`~session_store.tiered.TieredBackend`'s consistency
model on the event loop, opened from the same chain strings::

    AsyncSessionStore("memory:// | redis://127.0.0.1:6379/0?prefix=app: | diskcache:///srv/s", dict)

The model is the sync chain's, word for word (see :mod:`session_store.tiered.backend` and
docs/guarantees.md): versioned frames, ordered writes, tombstones, one arbiter for
``get_versioned`` / ``set_if``, reads that repair, a coherent near cache (the arbiter's
invalidation stream, else the ``max_staleness`` bound), acknowledged means durable, a breaker
per tier with missed-key reconciliation. What it shares rather than repeats: every decision
(:mod:`session_store.tiered.policy`, :mod:`session_store.tiered.writes`), the breakers
(:mod:`session_store.tiered.breakers`), the near cache (:mod:`session_store.tiered.nearcache`)
and the I/O sequences of writes, deletes, ``touch``, compare-and-set and reconciliation
(:mod:`session_store.tiered.steps`, :mod:`session_store.tiered.cas_steps`: generators of tier
calls, which the sync chain performs with calls and this one with awaits). What is awaited
here: :mod:`session_store.aio.tiered_base` (plumbing, the sequence runner, single-key reads),
:mod:`session_store.aio.tiered_reconcile` (the probe timer), :mod:`session_store.aio.tiered_bulk`
(bulk reads, listing), :mod:`session_store.aio.tiered_cas` (compare-and-set) and this module
(writes, life cycle).

**Cancellation.** A write reaches several tiers one after the other; a task cancelled in the
middle would leave the arbiter ahead of the durable tiers and the near cache behind. Every write
(``set``, ``set_many``, ``delete``, ``delete_many``, ``touch``, ``set_if``) therefore runs as an
inner task the caller's cancellation does not interrupt (:func:`asyncio.shield`): the caller's
``CancelledError`` is raised once the write has gone through every tier.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from functools import partial
from typing import TypeVar

from session_store.aio.backend import whole
from session_store.aio.tiered_base import log
from session_store.aio.tiered_cas import AsyncTieredCas
from session_store.backend import ensure_bytes
from session_store.keys import validate_key
from session_store.tiered import steps
from session_store.tiered.session_delete import delete_session
from session_store.ttl import normalize_ttl

__all__ = ["AsyncTieredBackend"]

T = TypeVar("T")


class AsyncTieredBackend(AsyncTieredCas):
    """Async backends chained fastest first (memory, then Redis, then disk): one store.

    Args:
        tiers: at least one async backend, fastest first; ``aclose`` closes them. Process-local
            tiers (the near cache) must offer their sync view as ``.sync``, as ``memory://`` does.
        retry_after, max_staleness, tombstone_ttl, invalidation, max_missed, clock, stamps: as
            for :class:`~session_store.tiered.TieredBackend`.
    """

    # -- writes: the sequences of session_store.tiered.steps, each run whole ----------------
    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        validate_key(key)
        value = ensure_bytes(value, key=key)
        ttl = normalize_ttl(ttl)
        await whole(partial(self._run, steps.save(self, key, value, ttl, ttl)))

    async def set_with_own_ttl(
        self, key: str, value: bytes, ttl: float | None, own_ttl: float | None
    ) -> None:
        """``set``, expiring after ``ttl``, recording ``own_ttl`` as the session's own TTL: as
        :meth:`TieredBackend.set_with_own_ttl
        <session_store.tiered.TieredBackend.set_with_own_ttl>`."""
        validate_key(key)
        value = ensure_bytes(value, key=key)
        ttl, own_ttl = normalize_ttl(ttl), normalize_ttl(own_ttl, what="own_ttl")
        await whole(partial(self._run, steps.save(self, key, value, ttl, own_ttl)))

    async def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        checked = {validate_key(k): ensure_bytes(v, key=k) for k, v in items.items()}
        ttl = normalize_ttl(ttl)

        async def run() -> None:
            for key, value in checked.items():
                await self._run(steps.save(self, key, value, ttl, ttl))

        await whole(run)

    async def delete(self, key: str) -> bool:
        validate_key(key)
        return await whole(partial(self._run, steps.delete(self, key)))

    async def delete_session(self, key: str) -> bool:
        """``delete`` of a live session only: the sync chain's
        :meth:`~session_store.tiered.TieredBackend.delete_session`, the same steps."""
        validate_key(key)
        return await whole(partial(self._run, delete_session(self, key)))

    async def delete_many(self, keys: Iterable[str]) -> int:
        wanted = list(dict.fromkeys(validate_key(key) for key in keys))

        async def run() -> int:
            return sum([1 for key in wanted if await self._run(steps.delete(self, key))])

        return await whole(run)

    async def touch(self, key: str, ttl: float | None = None) -> bool:
        """Restart the expiry of ``key``; ``ttl=None``: the TTL the session was written with."""
        validate_key(key)
        return await whole(partial(self._run, steps.touch(self, key, normalize_ttl(ttl))))

    async def touch_session(
        self, key: str, ttl: float | None = None, keep_own: bool = False
    ) -> bool:
        """``touch`` of a live session only, keeping its own TTL with ``keep_own`` and falling
        back to ``ttl`` where the newest copy records none: the sync chain's
        :meth:`~session_store.tiered.TieredBackend.touch_session`."""
        validate_key(key)
        ttl = normalize_ttl(ttl)
        own, fallback = (None, ttl) if keep_own else (ttl, None)
        touch = steps.touch(self, key, own, fallback, session=True)
        return await whole(partial(self._run, touch))

    # -- life cycle ----------------------------------------------------------------------------
    async def aclose(self) -> None:
        await self._flush_missed()
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            try:
                await asyncio.to_thread(subscription.close)  # joins the stream's thread
            except Exception:  # close the tiers even if the stream fails to stop
                log.exception("closing the invalidation stream failed")
        for tier in self.tiers:
            try:
                await tier.aclose()
            except Exception:  # close every tier even if one fails
                log.exception("closing tier %s failed", tier.describe())
