"""The async chain's compare-and-set: ``get_versioned`` and ``set_if`` decided by the arbiter.

The sync :class:`~session_store.tiered.TieredBackend`'s rules, on the event loop (its docstrings
say why each step is there; the decisions themselves are :mod:`session_store.tiered.policy`'s):

* ``get_versioned`` reads the arbiter, and every durable tier whatever its breaker says; it
  brings the arbiter up to a newer durable copy first, and refuses (typed) when the arbiter
  holds nothing while a durable tier does not answer;
* ``set_if`` wins on the arbiter, then places its copy in each lower tier by compare-and-set
  against what that tier holds; a copy there that is newer than the read the compare-and-set is
  based on, while the arbiter still holds the new write, is a write that went around the
  arbiter (:func:`~session_store.tiered.policy.overtaken`): the arbiter gets it back and
  ``set_if`` returns ``False``, so the caller's retry reads it;
* every write runs whole (:func:`whole`): a cancelled caller never leaves it half applied.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

from session_store import stamps
from session_store.aio.backend import AsyncSessionBackend
from session_store.aio.tiered_base import DOWN
from session_store.aio.tiered_bulk import AsyncTieredReads
from session_store.aio.tiered_writes import write_if_newer
from session_store.backend import Versioned, VersionToken, ensure_bytes
from session_store.errors import BackendError, BackendUnavailableError
from session_store.keys import validate_key
from session_store.stamps import frame, is_tombstone, own_ttl, unframe, version_of, with_version
from session_store.tiered import policy
from session_store.tiered.base import _Token
from session_store.ttl import normalize_ttl

__all__ = ["AsyncTieredCas", "whole"]

T = TypeVar("T")


async def whole(run: Callable[[], Awaitable[T]]) -> T:
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


async def _place(
    tier: AsyncSessionBackend, key: str, data: bytes, ttl: float | None, base: bytes, absent: bool
) -> bool | bytes:
    """The sync chain's ``_place``: ``data`` into ``tier`` by compare-and-set; ``True`` if
    written, ``False`` if a newer tombstone stays over an "absent" read, or the tier's copy if
    it shows a write that went around the arbiter since the read of version ``base``."""
    for _ in range(16):
        read = await tier.get_versioned(key)
        if read is not None:
            if policy.overtaken(read.value, data, base, absent):
                return read.value
            if version_of(read.value) >= version_of(data):
                return False
        if await tier.set_if(key, data, None if read is None else read.token, ttl):
            return True
    return False  # pragma: no cover - 16 writers in a row changed it: each of them is newer


class AsyncTieredCas(AsyncTieredReads):
    """Compare-and-set of :class:`~session_store.aio.AsyncTieredBackend` (see there)."""

    async def get_versioned(self, key: str) -> Versioned | None:
        validate_key(key)
        arbiter = self.layout.arbiter
        for _ in range(8):
            read = await self._arbitrate(lambda t: t.get_versioned(key), "get_versioned", key)
            lower, answered = await self._collect(key, skip=arbiter, force=True)
            best = policy.newest(lower)
            if policy.unheard_durable(self.layout, answered, arbiter):
                # it may hold a write made around the arbiter (or the only copy): an update
                # built on the arbiter's copy alone could silently replace it
                self.counters.add("errors")
                raise BackendUnavailableError(
                    "a durable tier does not answer: it may hold a newer copy of the session, "
                    "cannot read it for an update",
                    key=key,
                    backend=self.describe(),
                )
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
            stamps.clock.observe(
                best.version
            )  # a newer lower tombstone: "absent" must be replaced past it
        if read is None:
            return None
        stamps.clock.observe(version_of(read.value))
        value = unframe(read.value)
        if value is None:
            return None
        self.counters.add("hits")
        return Versioned(value, _Token(read.token, version_of(read.value)))

    async def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        validate_key(key)
        value = ensure_bytes(value, key=key)
        ttl = normalize_ttl(ttl)
        if token is None:
            inner: VersionToken | None = None
            base = b""
        elif isinstance(token, _Token):
            inner, base = token.inner, token.base
        else:
            return False  # not a token of this chain
        return await whole(partial(self._set_if, key, value, inner, base, ttl))

    async def _set_if(
        self, key: str, value: bytes, inner: VersionToken | None, base: bytes, ttl: float | None
    ) -> bool:
        start = self._clock()
        began = self.near.begin()
        data = frame(value, stamps.clock.now(), ttl)
        won = await self._arbitrate(lambda t: t.set_if(key, data, inner, ttl), "set_if", key)
        if not won and inner is None:
            # "only if absent" and the arbiter holds a tombstone (absent): the value must be
            # newer than that tombstone (the sync chain's set_if explains why)
            read = await self._arbitrate(lambda t: t.get_versioned(key), "get_versioned", key)
            if read is not None and is_tombstone(read.value):
                dead = read.token
                base = version_of(read.value)
                stamps.clock.observe(base)
                data = with_version(data, stamps.clock.now())
                won = await self._arbitrate(lambda t: t.set_if(key, data, dead, ttl), "set_if", key)
        if not won:
            self.nearcache.drop(key)
            return False
        behind, overtaking = await self._place_below(key, data, ttl, base, absent=inner is None)
        if overtaking is not None and await self._step_back(key, data, overtaking):
            self.nearcache.drop(key)
            return False
        if behind:
            data = await self._restamp(key, data, behind, ttl)
        self.nearcache.after_write(key, data, value, ttl, start, began)
        self.counters.add("writes")
        return True

    async def _place_below(
        self, key: str, data: bytes, ttl: float | None, base: bytes, *, absent: bool
    ) -> tuple[list[int], bytes | None]:
        """The sync chain's ``_place_below``: the tiers that kept a newer tombstone, and the
        copy that overtook the read, if one did (then nothing more is written)."""
        behind: list[int] = []
        for index in reversed(self.layout.shared):
            if index == self.layout.arbiter:
                continue
            place = partial(_place, key=key, data=data, ttl=ttl, base=base, absent=absent)
            try:
                placed = await self._call(index, place, "write")
            except BackendError as exc:
                self.breakers.refused(index, key, exc, data)
                continue
            if placed is DOWN:
                self.breakers.note_missed(index, key, data)
            elif isinstance(placed, bytes):
                return behind, placed
            elif placed is False:
                behind.append(index)
        return behind, None

    async def _step_back(self, key: str, data: bytes, newer: bytes) -> bool:
        """The sync chain's ``_step_back``: if the arbiter still holds ``data``, it gets
        ``newer`` (a write that went around it) back and ``True`` says the compare-and-set is
        undone; otherwise a later write went through the arbiter, ``False``."""
        read = await self._arbitrate(lambda t: t.get_versioned(key), "get_versioned", key)
        if read is None or version_of(read.value) != version_of(data):
            return False  # a later write replaced it on the arbiter: ours came first
        token = read.token
        ttl = self.tombstone_ttl if is_tombstone(newer) else own_ttl(newer)
        if await self._arbitrate(lambda t: t.set_if(key, newer, token, ttl), "set_if", key):
            self.counters.add("repairs")
            return True
        return False  # pragma: no cover - a later write replaced it meanwhile: ours came first

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

    async def _restamp(self, key: str, data: bytes, behind: list[int], ttl: float | None) -> bytes:
        """The sync chain's ``_restamp``: a lower tier holds a newer tombstone than the version
        the arbiter took over "absent"; move the value past it by a compare-and-set on the
        arbiter, then copy it down."""
        ahead = await self._newer_below(key, data, behind)
        if ahead is None:
            return data
        stamps.clock.observe(ahead)
        read = await self._arbitrate(lambda t: t.get_versioned(key), "get_versioned", key)
        if read is None or version_of(read.value) != version_of(data):
            return data  # a later write replaced it: that one decides
        newer = with_version(data, stamps.clock.now())
        token = read.token
        if await self._arbitrate(lambda t: t.set_if(key, newer, token, ttl), "set_if", key):
            self.counters.add("repairs")
            for index in reversed(self.layout.shared):
                if index != self.layout.arbiter:
                    copy = partial(write_if_newer, key=key, data=newer, ttl=ttl)
                    try:
                        await self._call(index, copy, "write")
                    except BackendError:
                        continue
            return newer
        return data  # pragma: no cover - a later write won the race: it decides
