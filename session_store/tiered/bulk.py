"""Bulk reads and the listing of the tiered chain (``get_many``, ``scan``), the sequences of
:mod:`.read_steps` after the argument checks.

``get_many`` serves what the near cache holds fresh, reads the rest from every shared tier that
is up and keeps the newest copy of each key; ``scan`` lists every shared tier and keeps the keys
that hold a value (or, through the listing's ``sessions``, a session); its ``complete`` says
whether the listing was proven whole."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from session_store.keys import validate_key, validate_scan_prefix
from session_store.stamps import sessions_among
from session_store.tiered import read_steps
from session_store.tiered.reads import TieredReads

__all__ = ["ChainListing", "TieredBulk", "held"]


class ChainListing(Iterator[str]):
    """The keys of a chain's listing; ``complete`` says whether it was proven whole.

    Iterated, it yields the keys that hold a value, not a tombstone: every byte string a caller
    stored, whatever it is. ``sessions``, when the chain gives it, yields instead the keys that
    hold a *session*, leaving out a value that reads as none (the marker a login's id rotation
    leaves on the old id, ``websession.steps.RETIRED``), from the same reads, at the same cost:
    what ``SessionStore.keys()`` and ``session-store ls`` list. A listing is read once, one way.
    """

    def __init__(
        self,
        keys: Iterator[str],
        complete: bool,
        sessions: Callable[[], Iterator[str]] | None = None,
    ) -> None:
        self._keys = keys
        self.complete = complete
        self.sessions = sessions

    def __iter__(self) -> ChainListing:
        return self

    def __next__(self) -> str:
        return next(self._keys)


def held(keys: list[str], found: Mapping[str, bytes]) -> list[str]:
    """The ``keys`` that hold a value (``found``, from a chain's ``get_many``: no tombstone)."""
    return [key for key in keys if key in found]


class TieredBulk(TieredReads):
    """:class:`~session_store.tiered.reads.TieredReads` with the bulk reads and the listing."""

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        return self._get_many([validate_key(key) for key in keys])

    def _get_many(self, keys: list[str]) -> dict[str, bytes]:
        return self._run(read_steps.get_many(self, keys))

    def scan(self, prefix: str = "") -> ChainListing:
        """The live keys starting with ``prefix`` in any shared tier (the listing's
        ``sessions()``: those holding a session, see :class:`ChainListing`).

        The listing's ``complete`` is ``False`` when it cannot be proven whole: a shared tier
        was down (it may hold keys written while another tier was down), or a tier said its own
        listing was not complete (a Redis Cluster mid-resharding). ``copy`` and ``migrate`` say
        so, and ``migrate`` keeps its checkpoint.
        """
        validate_scan_prefix(prefix)
        keys, complete = self._run(read_steps.listing(self, prefix))
        return ChainListing(
            self._live(keys, held), complete, lambda: self._live(keys, sessions_among)
        )

    def _live(
        self, keys: list[str], keep: Callable[[list[str], Mapping[str, bytes]], list[str]]
    ) -> Iterator[str]:
        """The ``keys`` that ``keep`` keeps, a batch (one ``get_many``) at a time: :func:`held`
        (a value, not a tombstone) or :func:`~session_store.stamps.sessions_among` (a
        session)."""
        for batch in read_steps.batches(keys):
            yield from keep(batch, self.get_many(batch))
