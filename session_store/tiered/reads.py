"""Single-key reads of the tiered chain: ``get`` (whose near-cache hit path is
:func:`~session_store.tiered.read_steps.near_get`), ``get_with_ttl``, ``ttl``. Each checks its
key, then performs the sequence of :mod:`.read_steps` (written once for the sync and the async
chain): a read the near cache cannot serve reads every shared tier that is up, keeps the newest
copy, repairs older ones by ordered writes and fills the near cache."""

from __future__ import annotations

from session_store.keys import validate_key
from session_store.tiered import read_steps
from session_store.tiered.reconcile import TieredReconcile

__all__ = ["TieredReads"]


class TieredReads(TieredReconcile):
    """:class:`~session_store.tiered.reconcile.TieredReconcile` with the single-key reads."""

    def get(self, key: str) -> bytes | None:
        # (with a near cache, the instance's ``get`` is the hit path itself, see ChainCore)
        if self._near_get is None:
            return self._run(read_steps.get(self, validate_key(key), None))
        return self._near_get(key)  # type: ignore[no-any-return]  # the near tier checks a key

    def _get(self, key: str) -> bytes | None:
        """``get`` of a checked key."""
        if self._near_get is None:
            return self._run(read_steps.get(self, key, None))
        return self._near_get(key)  # type: ignore[no-any-return]

    def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        return self._run(read_steps.get_with_ttl(self, validate_key(key)))

    def _get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        return self._run(read_steps.get_with_ttl(self, key))

    def ttl(self, key: str) -> float | None:
        return self._run(read_steps.ttl(self, validate_key(key)))

    def _ttl(self, key: str) -> float | None:
        return self._run(read_steps.ttl(self, key))
