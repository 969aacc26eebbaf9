"""The async tiered chain: the sync :class:`~session_store.tiered.TieredBackend`'s consistency
model on the event loop, opened from the same chain strings::

    AsyncSessionStore("memory:// | redis://127.0.0.1:6379/0?prefix=app: | diskcache:///srv/s", dict)

The model is the sync chain's, word for word (see :mod:`session_store.tiered.backend` and
docs/guarantees.md): versioned frames, ordered writes, tombstones, one arbiter for
``get_versioned`` / ``set_if``, reads that repair, a coherent near cache (the arbiter's
invalidation stream, else the ``max_staleness`` bound), acknowledged means durable, a breaker
per tier with missed-key reconciliation. What it shares rather than repeats: every decision
(:mod:`session_store.tiered.policy`, :mod:`session_store.tiered.writes`), the breakers
(:mod:`session_store.tiered.breakers`) and the near cache
(:mod:`session_store.tiered.nearcache`); only the tier I/O is awaited here and in
:mod:`session_store.aio.tiered_base` (plumbing, single-key reads),
:mod:`session_store.aio.tiered_reconcile` (missed writes, the probe timer),
:mod:`session_store.aio.tiered_bulk` (bulk reads, listing) and
:mod:`session_store.aio.tiered_cas` (compare-and-set).

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
from typing import Any, TypeVar

from session_store import stamps
from session_store.aio.tiered_base import DOWN, log
from session_store.aio.tiered_cas import AsyncTieredCas, whole
from session_store.aio.tiered_writes import write_after, write_if_newer
from session_store.backend import ensure_bytes
from session_store.errors import BackendError
from session_store.keys import validate_key
from session_store.stamps import (
    frame,
    is_tombstone,
    own_ttl,
    tombstone,
    version_of,
    with_version,
)
from session_store.tiered import policy
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

    # -- writes --------------------------------------------------------------------------------
    async def _write(self, key: str, data: bytes, ttl: float | None, what: str) -> bytes:
        """A new write (the sync chain's ``_write``): made again past a newer lower-tier
        version while the arbiter still holds ours."""
        for _ in range(3):
            data, ahead = await self._write_once(key, data, ttl, what)
            if ahead is None:
                return data
            stamps.clock.observe(ahead)
            data = with_version(data, stamps.clock.now())
        return data

    async def _write_once(
        self, key: str, data: bytes, ttl: float | None, what: str
    ) -> tuple[bytes, bytes | None]:
        """The arbiter first (ordered by arrival; with it down, the first tier that answers),
        then ordered copies to the other shared tiers, lowest first; raises unless a durable
        tier took it (the sync ``_write_once``)."""
        arbiter = self.layout.arbiter
        acked = False
        error: BackendError | None = None
        skipped: list[int] = []
        behind: list[int] = []
        arbiter_took = False
        ordered = False  # a tier took it ordered by arrival: the others get copies of that
        for force in (False, True):
            for index in skipped if force else policy.write_order(self.layout):
                breaker_skips = self.breakers.skipping(index)
                write = write_if_newer if ordered else write_after
                try:
                    result: Any = await self._call(
                        index, partial(write, key=key, data=data, ttl=ttl), what, force=force
                    )
                except BackendError as exc:
                    self.breakers.refused(index, key, exc, data)
                    error = error or exc
                    continue
                if result is DOWN:
                    if not force and policy.waits_for_force(self.layout, index, breaker_skips):
                        skipped.append(index)
                    self.breakers.note_missed(index, key, data)
                    continue
                if isinstance(result, bytes):  # ordered by arrival here
                    ordered = True
                    arbiter_took = arbiter_took or index == arbiter
                    if result is not data:
                        data = result  # its version moved past what the tier held
                        stamps.clock.observe(version_of(data))
                elif result is False:
                    behind.append(index)
                self.breakers.check_evictions(index)
                await self._drain_missed(index)
                if policy.acknowledges(self.layout, index):
                    acked = True
            if acked or not skipped:
                break
        if not acked:
            self.nearcache.drop(key)
            if error is not None:
                raise error
            raise self._all_down(what, key)
        ahead = await self._newer_below(key, data, behind) if behind and arbiter_took else None
        return data, ahead

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        validate_key(key)
        value = ensure_bytes(value, key=key)
        ttl = normalize_ttl(ttl)
        await whole(partial(self._set, key, value, ttl))

    async def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        start = self._clock()
        began = self.near.begin()
        data = await self._write(key, frame(value, stamps.clock.now(), ttl), ttl, "write")
        self.nearcache.after_write(key, data, value, ttl, start, began)
        self.counters.add("writes")

    async def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        checked = {validate_key(k): ensure_bytes(v, key=k) for k, v in items.items()}
        ttl = normalize_ttl(ttl)

        async def run() -> None:
            for key, value in checked.items():
                await self._set(key, value, ttl)

        await whole(run)

    async def delete(self, key: str) -> bool:
        validate_key(key)
        return await whole(partial(self._delete, key))

    async def _delete(self, key: str) -> bool:
        copies, _ = await self._collect(key)
        best = policy.newest(copies)
        existed = best is not None and not is_tombstone(best.data)
        if best is not None:
            stamps.clock.observe(best.version)  # the tombstone is newer than every copy read
        await self._write(key, tombstone(stamps.clock.now()), self.tombstone_ttl, "delete")
        self.nearcache.drop(key)  # after the tombstones: fills that began before are fenced
        self.counters.add("deletes")
        self.counters.add("tombstones")
        return existed

    async def delete_many(self, keys: Iterable[str]) -> int:
        wanted = list(dict.fromkeys(validate_key(key) for key in keys))

        async def run() -> int:
            return sum([1 for key in wanted if await self._delete(key)])

        return await whole(run)

    async def touch(self, key: str, ttl: float | None = None) -> bool:
        """Restart the expiry of ``key``; ``ttl=None``: the TTL the session was written with."""
        validate_key(key)
        ttl = normalize_ttl(ttl)
        return await whole(partial(self._touch, key, ttl))

    async def _touch(self, key: str, ttl: float | None) -> bool:
        copies, answered = await self._collect(key)
        if not answered:
            raise self._all_down("touch", key)
        best = policy.newest(copies)
        if best is None or is_tombstone(best.data):
            return False
        if ttl is None:
            ttl = own_ttl(best.data)
        touched = False
        for index in (*reversed(self.layout.shared), *self.layout.near):
            try:
                result = await self._call(index, lambda t: t.touch(key, ttl), "touch")
            except BackendError:
                self.counters.add("errors")
                continue
            touched = touched or result is True
        return touched

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
