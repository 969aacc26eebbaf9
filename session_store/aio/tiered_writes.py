"""Ordered writes for the async chain: :mod:`session_store.tiered.writes`, awaited.

The rules are the sync module's, and so are the decisions (:func:`~session_store.tiered.writes.
holds_newer`, :func:`~session_store.tiered.writes.placed_after`): a *copy* never replaces a
version at least as new (:func:`write_if_newer`), a *new write* at the arbiter always lands,
after whatever the tier holds (:func:`write_after`). How each tier does it:

* a tier offering ``set_if_newer`` / ``set_after`` as coroutines (the async Redis backend, one Lua
  script each, the sync backend's script text) does it in one round trip;
* a tier running a sync backend in a worker thread (:class:`~session_store.aio.ThreadedBackend`,
  such as diskcache) runs the sync function in one thread call: one hop off the loop, not one
  per compare-and-set step;
* any other async backend gets the effect from its own ``get_versioned`` / ``set_if``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from session_store.aio.backend import AsyncSessionBackend
from session_store.aio.threaded import ThreadedBackend
from session_store.errors import BackendUnavailableError
from session_store.stamps import MAGIC, VERSION_END, VERSION_START, with_version
from session_store.tiered import writes
from session_store.tiered.cas_steps import TierSteps, place
from session_store.tiered.writes import CLOCK_END, holds_newer, placed_after

__all__ = [
    "ORDERED_WRITES",
    "run_on",
    "touch_if",
    "write_after",
    "write_after_cas",
    "write_if_newer",
    "write_if_newer_cas",
]

_ATTEMPTS = 16


async def write_if_newer(
    tier: AsyncSessionBackend, key: str, data: bytes, ttl: float | None
) -> bool:
    """Store the framed ``data`` in ``tier`` unless it holds a version at least as new; whether
    it wrote (``False``: a newer or equal version is there, which is fine)."""
    ordered = getattr(tier, "set_if_newer", None)
    if ordered is not None:
        wrote = await ordered(key, data, ttl, head=len(MAGIC), start=VERSION_START, end=VERSION_END)
        return bool(wrote)
    if isinstance(tier, ThreadedBackend):
        return await tier.run(writes.write_if_newer, tier.sync, key, data, ttl)
    return await write_if_newer_cas(tier, key, data, ttl)


async def write_if_newer_cas(
    tier: AsyncSessionBackend, key: str, data: bytes, ttl: float | None
) -> bool:
    """:func:`write_if_newer` with the tier's compare-and-set (any async backend)."""
    for _ in range(_ATTEMPTS):
        read = await tier.get_versioned(key)
        if read is not None and holds_newer(read.value, data):
            return False
        if await tier.set_if(key, data, None if read is None else read.token, ttl):
            return True
    return False  # pragma: no cover - 16 writers in a row beat us: each of them is newer


async def write_after(tier: AsyncSessionBackend, key: str, data: bytes, ttl: float | None) -> bytes:
    """Store the framed ``data`` in ``tier`` after whatever it holds; the framed bytes stored
    (``data``'s version, or the held one's clock plus one if that was at least as new)."""
    after = getattr(tier, "set_after", None)
    if after is not None:
        stored = await after(
            key,
            data,
            ttl,
            head=len(MAGIC),
            start=VERSION_START,
            end=VERSION_END,
            clock_end=CLOCK_END,
        )
        return data if stored == data[VERSION_START:VERSION_END] else with_version(data, stored)
    if isinstance(tier, ThreadedBackend):
        return await tier.run(writes.write_after, tier.sync, key, data, ttl)
    return await write_after_cas(tier, key, data, ttl)


async def write_after_cas(
    tier: AsyncSessionBackend, key: str, data: bytes, ttl: float | None
) -> bytes:
    """:func:`write_after` with the tier's compare-and-set (any async backend)."""
    for _ in range(_ATTEMPTS * 4):
        read = await tier.get_versioned(key)
        if read is not None:
            data = placed_after(read.value, data)
        if await tier.set_if(key, data, None if read is None else read.token, ttl):
            return data
    raise BackendUnavailableError(  # pragma: no cover - 64 writers in a row beat us
        "too many concurrent writers to order this write", key=key, backend=tier.describe()
    )


async def touch_if(tier: AsyncSessionBackend, key: str, head: bytes, ttl: float | None) -> bool:
    """Restart the expiry of ``key`` in ``tier`` only if its copy begins with ``head``
    (:func:`session_store.tiered.writes.touch_if`, awaited): the tier's own ``touch_if`` (one
    script on Redis, one worker-thread call for a threaded backend such as diskcache), else the
    async protocol's default, through the tier's compare-and-set."""
    return bool(await tier.touch_if(key, head, ttl))


async def run_on(tier: AsyncSessionBackend, sequence: TierSteps) -> bool | bytes:
    """Await a sequence of calls on one tier (:func:`~session_store.tiered.cas_steps.place`)."""
    value: Any = None
    while True:
        try:
            name, args = sequence.send(value)
        except StopIteration as done:
            result: bool | bytes = done.value
            return result
        value = await getattr(tier, name)(*args)


async def _place(tier: AsyncSessionBackend, *args: Any) -> bool | bytes:
    return await run_on(tier, place(*args))


#: The ordered writes a sequence of :mod:`session_store.tiered.steps` names, in their async form
#: (with the conditional touch).
ORDERED_WRITES: dict[str, Callable[..., Awaitable[Any]]] = {
    "write_after": write_after,
    "write_if_newer": write_if_newer,
    "place": _place,
    "touch_if": touch_if,
}
