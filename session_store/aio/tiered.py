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
:mod:`session_store.aio.tiered_base` (plumbing, single-key reads) and
:mod:`session_store.aio.tiered_bulk` (bulk reads, listing).

**Cancellation.** A write reaches several tiers one after the other; a task cancelled in the
middle would leave the arbiter ahead of the durable tiers and the near cache behind. Every write
(``set``, ``set_many``, ``delete``, ``delete_many``, ``touch``, ``set_if``) therefore runs as an
inner task the caller's cancellation does not interrupt (:func:`asyncio.shield`): the caller's
``CancelledError`` is raised once the write has gone through every tier.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial
from typing import Any, TypeVar

from session_store.aio.backend import AsyncSessionBackend
from session_store.aio.tiered_base import DOWN, log
from session_store.aio.tiered_bulk import AsyncTieredReads
from session_store.aio.tiered_writes import write_after, write_if_newer
from session_store.backend import Versioned, VersionToken, ensure_bytes
from session_store.errors import BackendError
from session_store.keys import validate_key
from session_store.stamps import clock as hlc
from session_store.stamps import (
    frame,
    is_tombstone,
    own_ttl,
    tombstone,
    unframe,
    version_of,
    with_version,
)
from session_store.tiered import policy
from session_store.tiered.backend import _Token
from session_store.ttl import normalize_ttl

__all__ = ["AsyncTieredBackend"]

T = TypeVar("T")


async def _whole(run: Callable[[], Awaitable[T]]) -> T:
    """``await run()``, which a cancellation of the caller does not interrupt: the caller's
    cancellation is raised once ``run`` has finished (as the async cluster backend's writes)."""
    task = asyncio.ensure_future(run())
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():  # the write itself was cancelled (the loop is closing)
                raise
            cancelled = True  # ours: wait for the write to end, then say so
            continue
        except BaseException:
            if cancelled:
                raise asyncio.CancelledError from None
            raise
        if cancelled:
            raise asyncio.CancelledError
        return result


async def _set_if(
    tier: AsyncSessionBackend, key: str, data: bytes, token: VersionToken | None, ttl: float | None
) -> bool:
    return await tier.set_if(key, data, token, ttl)


class AsyncTieredBackend(AsyncTieredReads):
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
            hlc.observe(ahead)
            data = with_version(data, hlc.now())
        return data

    async def _newer_below(self, key: str, data: bytes, behind: list[int]) -> bytes | None:
        """The newest version among the ``behind`` tiers if newer than ``data``'s while the
        arbiter still holds ``data``'s version; else ``None``."""
        below: list[bytes] = []
        for index in behind:
            found = await self._call(index, lambda t: t.get_with_ttl(key), "get_with_ttl")
            if found is not DOWN and found is not None:
                below.append(found[0])
        newest = policy.newer_below(version_of(data), below)
        if newest is None:
            return None
        arbiter = self.layout.arbiter
        held = await self._call(arbiter, lambda t: t.get_with_ttl(key), "get_with_ttl")
        if held is DOWN or held is None or version_of(held[0]) != version_of(data):
            return None
        return newest

    async def _write_once(
        self, key: str, data: bytes, ttl: float | None, what: str
    ) -> tuple[bytes, bytes | None]:
        """The arbiter first (ordered by arrival), then ordered copies to the other shared
        tiers, lowest first; raises unless a durable tier took it (the sync ``_write_once``)."""
        arbiter = self.layout.arbiter
        acked = False
        error: BackendError | None = None
        skipped: list[int] = []
        behind: list[int] = []
        arbiter_took = False
        for force in (False, True):
            for index in skipped if force else policy.write_order(self.layout):
                breaker_skips = self.breakers.skipping(index)
                write = write_after if index == arbiter else write_if_newer
                try:
                    result: Any = await self._call(
                        index, partial(write, key=key, data=data, ttl=ttl), what, force=force
                    )
                except BackendError as exc:
                    self.breakers.refused(index, key, exc)
                    error = error or exc
                    continue
                if result is DOWN:
                    if not force and policy.waits_for_force(self.layout, index, breaker_skips):
                        skipped.append(index)
                    self.breakers.note_missed(index, key)
                    continue
                if index == arbiter:
                    arbiter_took = True
                    if isinstance(result, bytes) and result is not data:
                        data = result  # its version moved past what the arbiter held
                        hlc.observe(version_of(data))
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
        await _whole(partial(self._set, key, value, ttl))

    async def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        start = self._clock()
        began = self.near.begin()
        data = await self._write(key, frame(value, hlc.now(), ttl), ttl, "write")
        self.nearcache.after_write(key, data, value, ttl, start, began)
        self.counters.add("writes")

    async def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        checked = {validate_key(k): ensure_bytes(v, key=k) for k, v in items.items()}
        ttl = normalize_ttl(ttl)

        async def run() -> None:
            for key, value in checked.items():
                await self._set(key, value, ttl)

        await _whole(run)

    async def delete(self, key: str) -> bool:
        validate_key(key)
        return await _whole(partial(self._delete, key))

    async def _delete(self, key: str) -> bool:
        copies, _ = await self._collect(key)
        best = policy.newest(copies)
        existed = best is not None and not is_tombstone(best.data)
        if best is not None:
            hlc.observe(best.version)  # the tombstone is newer than every copy read
        await self._write(key, tombstone(hlc.now()), self.tombstone_ttl, "delete")
        self.nearcache.drop(key)  # after the tombstones: fills that began before are fenced
        self.counters.add("deletes")
        self.counters.add("tombstones")
        return existed

    async def delete_many(self, keys: Iterable[str]) -> int:
        wanted = list(dict.fromkeys(validate_key(key) for key in keys))

        async def run() -> int:
            return sum([1 for key in wanted if await self._delete(key)])

        return await _whole(run)

    async def touch(self, key: str, ttl: float | None = None) -> bool:
        """Restart the expiry of ``key``; ``ttl=None``: the TTL the session was written with."""
        validate_key(key)
        ttl = normalize_ttl(ttl)
        return await _whole(partial(self._touch, key, ttl))

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

    # -- compare-and-set -----------------------------------------------------------------------
    async def get_versioned(self, key: str) -> Versioned | None:
        validate_key(key)
        arbiter = self.layout.arbiter
        for _ in range(8):
            read = await self._arbitrate(lambda t: t.get_versioned(key), "get_versioned", key)
            lower, _ = await self._collect(key, skip=arbiter)
            best = policy.newest(lower)
            if policy.arbiter_behind(None if read is None else read.value, best):
                # The arbiter lost the key or holds an older copy: bring it up to the newest
                # durable copy (a compare-and-set against what it holds), then read again.
                assert best is not None
                token = None if read is None else read.token
                ttl = policy.copy_ttl(best, self.tombstone_ttl)
                bring_up = partial(_set_if, key=key, data=best.data, token=token, ttl=ttl)
                await self._arbitrate(bring_up, "set_if", key)
                self.counters.add("repairs")
                continue
            break
        if best is not None:
            hlc.observe(best.version)  # a newer lower tombstone: "absent" must be replaced past it
        if read is None:
            return None
        hlc.observe(version_of(read.value))
        value = unframe(read.value)
        if value is None:
            return None
        self.counters.add("hits")
        return Versioned(value, _Token(read.token))

    async def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        validate_key(key)
        value = ensure_bytes(value, key=key)
        ttl = normalize_ttl(ttl)
        if token is None:
            inner: VersionToken | None = None
        elif isinstance(token, _Token):
            inner = token.inner
        else:
            return False  # not a token of this chain
        return await _whole(partial(self._set_if, key, value, inner, ttl))

    async def _set_if(
        self, key: str, value: bytes, inner: VersionToken | None, ttl: float | None
    ) -> bool:
        start = self._clock()
        began = self.near.begin()
        data = frame(value, hlc.now(), ttl)
        won = await self._arbitrate(lambda t: t.set_if(key, data, inner, ttl), "set_if", key)
        if not won and inner is None:
            # "only if absent" and the arbiter holds a tombstone (absent): the value must be
            # newer than that tombstone (the sync chain's set_if explains why)
            read = await self._arbitrate(lambda t: t.get_versioned(key), "get_versioned", key)
            if read is not None and is_tombstone(read.value):
                dead = read.token
                hlc.observe(version_of(read.value))
                data = with_version(data, hlc.now())
                won = await self._arbitrate(lambda t: t.set_if(key, data, dead, ttl), "set_if", key)
        if not won:
            self.nearcache.drop(key)
            return False
        behind = await self._copy_down(key, data, ttl)
        if behind:
            data = await self._restamp(key, data, behind, ttl)
        self.nearcache.after_write(key, data, value, ttl, start, began)
        self.counters.add("writes")
        return True

    async def _copy_down(self, key: str, data: bytes, ttl: float | None) -> list[int]:
        """Ordered copies of what the arbiter took to the other shared tiers, lowest first;
        the tiers that kept a version at least as new."""
        behind: list[int] = []
        for index in reversed(self.layout.shared):
            if index == self.layout.arbiter:
                continue
            try:
                wrote = await self._call(
                    index, partial(write_if_newer, key=key, data=data, ttl=ttl), "write"
                )
            except BackendError as exc:
                self.breakers.refused(index, key, exc)
                continue
            if wrote is DOWN:
                self.breakers.note_missed(index, key)
            elif wrote is False:
                behind.append(index)
        return behind

    async def _restamp(self, key: str, data: bytes, behind: list[int], ttl: float | None) -> bytes:
        """The sync chain's ``_restamp``: a lower tier holds a newer version than the one the
        arbiter took; move the value past it by a compare-and-set on the arbiter, copy it down."""
        ahead = await self._newer_below(key, data, behind)
        if ahead is None:
            return data
        hlc.observe(ahead)
        read = await self._arbitrate(lambda t: t.get_versioned(key), "get_versioned", key)
        if read is None or version_of(read.value) != version_of(data):
            return data  # a later write replaced it: that one decides
        newer = with_version(data, hlc.now())
        token = read.token
        if await self._arbitrate(lambda t: t.set_if(key, newer, token, ttl), "set_if", key):
            self.counters.add("repairs")
            await self._copy_down(key, newer, ttl)
            return newer
        return data  # pragma: no cover - a later write won the race: it decides

    # -- life cycle ----------------------------------------------------------------------------
    async def aclose(self) -> None:
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
