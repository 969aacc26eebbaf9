"""Bulk reads and the listing of the tiered chain (``get_many``, ``scan``), the sequences of
:mod:`.read_steps` after the argument checks.

``get_many`` serves what the near cache holds fresh, reads the rest from every shared tier that
is up and keeps the newest copy of each key; ``scan`` lists every shared tier and keeps the keys
that hold a value; its ``complete`` says whether the listing was proven whole."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from session_store.keys import validate_key, validate_scan_prefix
from session_store.tiered import read_steps
from session_store.tiered.reads import TieredReads

__all__ = ["ChainListing", "TieredBulk"]


class ChainListing(Iterator[str]):
    """The keys of a chain's listing; ``complete`` says whether it was proven whole."""

    #: every key listed held a value, not a tombstone (a store lists them as they are)
    live_only = True

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
        return self._run(read_steps.get_many(self, keys))

    def scan(self, prefix: str = "") -> ChainListing:
        """The live keys starting with ``prefix`` in any shared tier.

        The listing's ``complete`` is ``False`` when it cannot be proven whole: a shared tier
        was down (it may hold keys written while another tier was down), or a tier said its own
        listing was not complete (a Redis Cluster mid-resharding). ``copy`` and ``migrate`` say
        so, and ``migrate`` keeps its checkpoint.
        """
        validate_scan_prefix(prefix)
        keys, complete = self._run(read_steps.listing(self, prefix))
        return ChainListing(self._live(keys), complete)

    def _live(self, keys: list[str]) -> Iterator[str]:
        """The ``keys`` that hold a value (not a tombstone), a batch at a time."""
        for batch in read_steps.batches(keys):
            found = self.get_many(batch)
            yield from (key for key in batch if key in found)
