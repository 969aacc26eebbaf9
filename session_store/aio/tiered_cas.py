"""The async chain's compare-and-set: ``get_versioned`` and ``set_if`` decided by the arbiter.

The sync :class:`~session_store.tiered.TieredBackend`'s sequences,
:mod:`session_store.tiered.cas_steps` (whose docstrings say why each step is there), awaited:

* ``get_versioned`` reads the arbiter, and every durable tier whatever its breaker says; it
  brings the arbiter up to a newer durable copy first, and refuses (typed) when the arbiter
  holds nothing while a durable tier does not answer;
* ``set_if`` wins on the arbiter, then places its copy in each lower tier by compare-and-set
  against what that tier holds; a copy there that is newer than the read the compare-and-set is
  based on, while the arbiter still holds the new write, is a write that went around the
  arbiter (:func:`~session_store.tiered.policy.overtaken`): the arbiter gets it back and
  ``set_if`` returns ``False``, so the caller's retry reads it;
* every write runs whole (:func:`~session_store.aio.backend.whole`): a cancelled caller never
  leaves it half applied.
"""

from __future__ import annotations

from functools import partial
from typing import TypeVar

from session_store.aio.backend import whole
from session_store.aio.tiered_bulk import AsyncTieredReads
from session_store.backend import Versioned, VersionToken, ensure_bytes
from session_store.keys import validate_key
from session_store.tiered import cas_steps
from session_store.ttl import normalize_ttl

__all__ = ["AsyncTieredCas", "whole"]

T = TypeVar("T")


class AsyncTieredCas(AsyncTieredReads):
    """Compare-and-set of :class:`~session_store.aio.AsyncTieredBackend` (see there)."""

    async def get_versioned(self, key: str) -> Versioned | None:
        validate_key(key)
        return await self._run(cas_steps.get_versioned(self, key))

    async def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        validate_key(key)
        value = ensure_bytes(value, key=key)
        ttl = normalize_ttl(ttl)
        sequence = cas_steps.set_if(self, key, value, token, ttl, ttl)
        return await whole(partial(self._run, sequence))

    async def set_if_with_own_ttl(
        self,
        key: str,
        value: bytes,
        token: VersionToken | None,
        ttl: float | None,
        own_ttl: float | None,
    ) -> bool:
        """``set_if``, expiring after ``ttl``, recording ``own_ttl`` as the session's own TTL:
        as :meth:`TieredBackend.set_if_with_own_ttl
        <session_store.tiered.TieredBackend.set_if_with_own_ttl>`."""
        validate_key(key)
        value = ensure_bytes(value, key=key)
        ttl, own_ttl = normalize_ttl(ttl), normalize_ttl(own_ttl, what="own_ttl")
        sequence = cas_steps.set_if(self, key, value, token, ttl, own_ttl)
        return await whole(partial(self._run, sequence))
