"""Compare-and-set of the tiered chain: ``get_versioned`` and ``set_if``, decided by the arbiter.

The argument checks, then the sequences of :mod:`.cas_steps` (written once for the sync and the
async chain): ``get_versioned`` reads the arbiter and every durable tier and brings the arbiter
up to a newer durable copy first; ``set_if`` wins on the arbiter, then places its copy in each
lower tier by compare-and-set, giving back to the arbiter a copy that went around it.
"""

from __future__ import annotations

from session_store.backend import Versioned, VersionToken, ensure_bytes
from session_store.keys import validate_key
from session_store.tiered import cas_steps
from session_store.tiered.bulk import TieredBulk
from session_store.ttl import normalize_ttl

__all__ = ["TieredCas"]


class TieredCas(TieredBulk):
    """:class:`~session_store.tiered.bulk.TieredBulk` with compare-and-set."""

    def get_versioned(self, key: str) -> Versioned | None:
        return self._get_versioned(validate_key(key))

    def _get_versioned(self, key: str) -> Versioned | None:
        return self._run(cas_steps.get_versioned(self, key))

    def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        validate_key(key)
        return self._set_if(key, ensure_bytes(value, key=key), token, normalize_ttl(ttl))

    def _set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None
    ) -> bool:
        return self._run(cas_steps.set_if(self, key, value, token, ttl, ttl))

    def set_if_with_own_ttl(
        self,
        key: str,
        value: bytes,
        token: VersionToken | None,
        ttl: float | None,
        own_ttl: float | None,
    ) -> bool:
        """``set_if``, expiring after ``ttl`` but recording ``own_ttl`` as the session's own
        TTL (what ``touch(key)`` restarts it with): how ``migrate`` rewrites a session with
        the time it has left and keeps the TTL it was saved with (a token from
        ``get_versioned`` carries that one: ``token.own_ttl``). Decided by the arbiter and
        placed below as every ``set_if``."""
        validate_key(key)
        value = ensure_bytes(value, key=key)
        ttl, own_ttl = normalize_ttl(ttl), normalize_ttl(own_ttl, what="own_ttl")
        return self._run(cas_steps.set_if(self, key, value, token, ttl, own_ttl))
