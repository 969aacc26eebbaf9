"""The async chain's bulk reads and listing (``get_many``, ``scan``), as the sync chain's.

``get_many`` serves what the near cache holds fresh (:func:`~session_store.tiered.policy.
is_fresh`), reads the rest from every shared tier that is up and keeps the newest copy of each
key (:func:`~session_store.tiered.policy.newest`); ``scan`` lists every shared tier and keeps the
keys that hold a value, and its ``complete`` says whether the listing was proven whole (no
shared tier down, no tier saying its own listing was incomplete).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Iterable
from functools import partial

from session_store.aio.backend import AsyncSessionBackend
from session_store.aio.tiered_base import DOWN
from session_store.aio.tiered_reconcile import AsyncTieredReconcile
from session_store.errors import BackendUnavailableError
from session_store.keys import validate_key, validate_scan_prefix
from session_store.stamps import unframe
from session_store.tiered import policy
from session_store.tiered.policy import Copy

__all__ = ["AsyncChainListing", "AsyncTieredReads"]


async def _listed(tier: AsyncSessionBackend, prefix: str) -> tuple[list[str], bool]:
    """A tier's keys under ``prefix``, and whether its listing says it is complete."""
    listing = tier.scan(prefix)
    keys = [key async for key in listing]
    return keys, getattr(listing, "complete", None) is not False


class AsyncChainListing(AsyncIterator[str]):
    """The keys of an async chain's listing; ``complete`` is known once it is exhausted."""

    def __init__(self, keys: AsyncIterator[str]) -> None:
        self._keys = keys
        self.complete = True

    def __aiter__(self) -> AsyncChainListing:
        return self

    async def __anext__(self) -> str:
        return await self._keys.__anext__()


class AsyncTieredReads(AsyncTieredReconcile):
    """:class:`~.tiered_reconcile.AsyncTieredReconcile` with the bulk reads and the listing."""

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(validate_key(key) for key in keys))
        near_hits: dict[str, bytes] = {}  # the caller's bytes, from the near cache
        near = self._near0
        if near is not None and wanted:
            try:
                got = near.get_many(wanted)
            except BackendUnavailableError:
                got = {}
            now, state = self._clock(), self.near
            for key, data in got.items():
                checked = state.checked.get(key)
                if policy.is_fresh(checked, now, state.coherent_since, state.max_staleness):
                    near_hits[key] = data
        remaining = [key for key in wanted if key not in near_hits]
        found: dict[str, bytes] = {}  # framed copies from the shared tiers
        if remaining:
            copies: dict[str, list[Copy]] = {}
            reached = False
            for index in self.layout.shared:
                got = await self._call(index, lambda t: t.get_many(remaining), "get_many")
                if got is DOWN:
                    continue
                reached = True
                for key, data in got.items():
                    copies.setdefault(key, []).append(Copy(index, data, math.inf))
            if not reached:
                raise self._all_down("read")
            for key, held in copies.items():
                best = policy.newest(held)
                if best is not None:
                    found[key] = best.data
        out: dict[str, bytes] = {}
        for key in wanted:
            stored = found.get(key)
            value = near_hits.get(key) if stored is None else unframe(stored)
            if value is not None:
                out[key] = value
        self.counters.add("hits", len(out))
        self.counters.add("misses", len(wanted) - len(out))
        return out

    def scan(self, prefix: str = "") -> AsyncChainListing:
        """The live keys starting with ``prefix`` in any shared tier; ``complete`` (once the
        listing is exhausted) as for the sync chain."""
        validate_scan_prefix(prefix)
        listing = AsyncChainListing(self._scan(prefix, lambda: listing))
        return listing

    async def _scan(
        self, prefix: str, listing: Callable[[], AsyncChainListing]
    ) -> AsyncIterator[str]:
        seen: dict[str, None] = {}
        reached = False
        for index in self.layout.shared:
            found = await self._call(index, partial(_listed, prefix=prefix), "scan")
            if found is DOWN:
                listing().complete = False
                continue
            keys, proven = found
            reached = True
            listing().complete = listing().complete and proven
            seen.update(dict.fromkeys(keys))
        if not reached:
            raise self._all_down("scan")
        keys = list(seen)
        for start in range(0, len(keys), 500):
            batch = keys[start : start + 500]
            live = await self.get_many(batch)
            for key in batch:
                if key in live:
                    yield key
