"""Bulk reads and the listing of the tiered chain (``get_many``, ``scan``).

``get_many`` serves what the near cache holds fresh, reads the rest from every shared tier that
is up and keeps the newest copy of each key; ``scan`` lists every shared tier and keeps the keys
that hold a value; its ``complete`` says whether the listing was proven whole."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from functools import partial

from session_store.backend import SessionBackend
from session_store.backend_base import trusted
from session_store.errors import BackendUnavailableError
from session_store.keys import validate_key, validate_scan_prefix
from session_store.stamps import unframe
from session_store.tiered import policy
from session_store.tiered.base import DOWN
from session_store.tiered.policy import Copy
from session_store.tiered.reads import TieredReads

__all__ = ["ChainListing", "TieredBulk"]


def _listed(tier: SessionBackend, prefix: str) -> tuple[list[str], bool]:
    """A tier's keys under ``prefix``, and whether its listing says it is complete."""
    listing = trusted(tier).scan(prefix)
    keys = list(listing)
    return keys, getattr(listing, "complete", None) is not False


class ChainListing(Iterator[str]):
    """The keys of a chain's listing; ``complete`` says whether it was proven whole."""

    def __init__(self, keys: Iterator[str], complete: bool) -> None:
        self._keys = keys
        self.complete = complete

    def __iter__(self) -> ChainListing:
        return self

    def __next__(self) -> str:
        return next(self._keys)


class TieredBulk(TieredReads):
    """:class:`~session_store.tiered.reads.TieredReads` with the bulk reads and the listing."""

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        return self._get_many([validate_key(key) for key in keys])

    def _get_many(self, keys: list[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(keys))
        found: dict[str, bytes] = {}  # framed copies from the shared tiers
        near_hits: dict[str, bytes] = {}  # the caller's bytes, from the near cache
        remaining = wanted
        near = self._near0
        if near is not None and wanted:
            try:
                got = trusted(near).get_many(wanted)
            except BackendUnavailableError:
                got = {}
            now = self._clock()
            state = self.near
            for key, data in got.items():
                if policy.is_fresh(
                    state.checked.get(key), now, state.coherent_since, state.max_staleness
                ):
                    near_hits[key] = data
            remaining = [key for key in wanted if key not in near_hits]
        if remaining:
            copies: dict[str, list[Copy]] = {}
            reached = False
            for index in self.layout.shared:
                got = self._call(index, lambda t: trusted(t).get_many(remaining), "get_many")
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

    def scan(self, prefix: str = "") -> ChainListing:
        """The live keys starting with ``prefix`` in any shared tier.

        The listing's ``complete`` is ``False`` when it cannot be proven whole: a shared tier
        was down (it may hold keys written while another tier was down), or a tier said its own
        listing was not complete (a Redis Cluster mid-resharding). ``copy`` and ``migrate`` say
        so, and ``migrate`` keeps its checkpoint.
        """
        validate_scan_prefix(prefix)
        seen: dict[str, None] = {}
        reached = False
        complete = True
        for index in self.layout.shared:
            found = self._call(index, partial(_listed, prefix=prefix), "scan")
            if found is DOWN:
                complete = False
                continue
            keys, proven = found
            reached = True
            complete = complete and proven
            seen.update(dict.fromkeys(keys))
        if not reached:
            raise self._all_down("scan")
        return ChainListing(self._live(list(seen)), complete)

    def _live(self, keys: list[str]) -> Iterator[str]:
        """The ``keys`` that hold a value (not a tombstone), a batch at a time."""
        for start in range(0, len(keys), 500):
            batch = keys[start : start + 500]
            found = self.get_many(batch)
            yield from (key for key in batch if key in found)
