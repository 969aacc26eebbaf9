"""The async chain's bulk reads and listing (``get_many``, ``scan``): the sync chain's
sequences (:func:`session_store.tiered.read_steps.get_many`,
:func:`~session_store.tiered.read_steps.listing`), awaited.

``get_many`` serves what the near cache holds fresh, reads the rest from every shared tier that
is up and keeps the newest copy of each key; ``scan`` lists every shared tier and keeps the
keys that hold a value (or, through the listing's ``sessions``, a session), and its
``complete`` says whether the listing was proven whole (no shared tier down, no tier saying its
own listing was incomplete).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping

from session_store.aio.tiered_reconcile import AsyncTieredReconcile
from session_store.keys import validate_key, validate_scan_prefix
from session_store.stamps import sessions_among
from session_store.tiered import read_steps
from session_store.tiered.bulk import held

__all__ = ["AsyncChainListing", "AsyncTieredReads"]


class AsyncChainListing(AsyncIterator[str]):
    """The keys of an async chain's listing; ``complete`` is known once it is exhausted.

    Iterated, the keys holding a value; ``sessions()``, the keys holding a session, from the
    same reads (as :class:`~session_store.tiered.bulk.ChainListing`). Read once, one way."""

    def __init__(
        self,
        keys: AsyncIterator[str],
        sessions: Callable[[], AsyncIterator[str]] | None = None,
    ) -> None:
        self._keys = keys
        self.complete = True
        self.sessions = sessions

    def __aiter__(self) -> AsyncChainListing:
        return self

    async def __anext__(self) -> str:
        return await self._keys.__anext__()


class AsyncTieredReads(AsyncTieredReconcile):
    """:class:`~.tiered_reconcile.AsyncTieredReconcile` with the bulk reads and the listing."""

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        return await self._run(read_steps.get_many(self, [validate_key(key) for key in keys]))

    def scan(self, prefix: str = "") -> AsyncChainListing:
        """The live keys starting with ``prefix`` in any shared tier; ``complete`` (once the
        listing is exhausted) as for the sync chain."""
        validate_scan_prefix(prefix)
        listing = AsyncChainListing(
            self._scan(prefix, lambda: listing, held),
            lambda: self._scan(prefix, lambda: listing, sessions_among),
        )
        return listing

    async def _scan(
        self,
        prefix: str,
        listing: Callable[[], AsyncChainListing],
        keep: Callable[[list[str], Mapping[str, bytes]], list[str]],
    ) -> AsyncIterator[str]:
        """The listed keys that ``keep`` keeps (a value, or a session), a batch at a time."""
        keys, listing().complete = await self._run(read_steps.listing(self, prefix))
        for batch in read_steps.batches(keys):
            for key in keep(batch, await self.get_many(batch)):
                yield key
