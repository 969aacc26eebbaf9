"""Single-key reads of the tiered chain: ``get`` (with its near-cache hit path), ``get_with_ttl``,
``ttl``; a read the near cache cannot serve reads every shared tier that is up, keeps the newest
copy, repairs older ones by ordered writes and fills the near cache."""

from __future__ import annotations

from collections.abc import Callable

from session_store import stamps
from session_store.backend_base import trusted
from session_store.errors import BackendError, BackendUnavailableError
from session_store.keys import validate_key
from session_store.stamps import is_tombstone, unframe
from session_store.tiered import policy
from session_store.tiered.base import DOWN, log
from session_store.tiered.policy import Copy
from session_store.tiered.reconcile import TieredReconcile
from session_store.tiered.writes import write_if_newer

__all__ = ["TieredReads"]


class TieredReads(TieredReconcile):
    """:class:`~session_store.tiered.reconcile.TieredReconcile` with the single-key reads."""

    def _fast_get(self) -> Callable[[str], bytes | None]:
        """The chain's ``get``, as a closure over what a near-cache hit touches (installed per
        instance, see ``__init__``): the same steps as :meth:`_get`, without a bound method and
        six attribute lookups per call (a warm hit is a fraction of a microsecond: they showed).
        A miss, a stale copy or a failing near tier goes on to :meth:`_past_near`.

        When the near tier offers a lock-free ``hit_reader`` (the built-in memory backend
        does), a hit is one dictionary lookup in it, not a whole ``get``; anything it does not
        serve goes through the tier's ``get`` (which checks the key and counts) as before."""
        near = self.tiers[0]
        near_get = near.get  # the public get: it checks a key it does not hold
        checked_get = self.near.checked.get
        state = self.near
        counters = self.counters
        clock = self._clock
        slow = self._past_near
        reader = getattr(near, "hit_reader", None)

        def get(key: str) -> bytes | None:
            try:
                data = near_get(key)
            except BackendUnavailableError:
                return slow(key, None)
            if data is not None:
                checked = checked_get(key)
                if checked is not None and (
                    checked >= state.coherent_since or clock() - checked < state.max_staleness
                ):
                    counters.fast_hits += 1  # no lock on the hot path (see _ChainCounters)
                    return data
            return slow(key, data)

        if reader is None:
            return get
        peek: Callable[[str], bytes | None] = reader()

        def get_peeking(key: str) -> bytes | None:
            data = peek(key)
            if data is None:
                return get(key)  # the tier's own get: a miss, an expired copy, a bad key
            checked = checked_get(key)
            if checked is not None and (
                checked >= state.coherent_since or clock() - checked < state.max_staleness
            ):
                counters.fast_hits += 1  # no lock on the hot path (see _ChainCounters)
                return data
            return slow(key, data)

        return get_peeking

    def get(self, key: str) -> bytes | None:
        if self._near0 is None:  # else the near tier checks a key it does not hold
            validate_key(key)
        return self._get(key)

    def _get(self, key: str) -> bytes | None:
        near = self._near0
        data = None
        if near is not None:
            try:
                data = near.get(key)
            except BackendUnavailableError:
                data = None  # the slow path reads the shared tiers
            if data is not None:
                state = self.near
                checked = state.checked.get(key)
                if checked is not None and (
                    checked >= state.coherent_since or self._clock() - checked < state.max_staleness
                ):
                    self.counters.fast_hits += 1  # no lock on the hot path (see _ChainCounters)
                    return data  # the near cache holds the caller's bytes (see NearCache)
        return self._past_near(key, data)

    def _past_near(self, key: str, near_copy: bytes | None) -> bytes | None:
        """``get`` once the near cache could not serve ``key`` (``near_copy``: a copy it holds
        that is not known fresh): the newest copy of the shared tiers."""
        if near_copy is not None:
            self.counters.add("revalidations")
        best = self._read(key)
        return None if best is None else unframe(best.data)

    def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        return self._get_with_ttl(validate_key(key))

    def _get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        best = self._read(key)
        if best is None:
            return None
        value = unframe(best.data)
        return None if value is None else (value, best.left)

    def ttl(self, key: str) -> float | None:
        return self._ttl(validate_key(key))

    def _ttl(self, key: str) -> float | None:
        copies, answered = self._collect(key)
        if not answered:
            raise self._all_down("read a TTL", key)
        best = policy.newest(copies)
        if best is None or is_tombstone(best.data):
            return None
        return best.left

    def _read(self, key: str) -> Copy | None:
        """The newest copy of ``key`` (``None``: absent or deleted); repairs older copies and
        fills the near cache on the way."""
        if self._resubscribe:  # a forked child: its own stream
            self._resubscribe = False
            self._subscribe()
        start = self._clock()
        began = self.near.begin()
        copies, answered = self._collect(key)
        if not answered:
            for index in self.layout.near:  # no shared tier answers: the near copy is all there is
                found = self._call(index, lambda t: trusted(t).get_with_ttl(key), "get_with_ttl")
                if found is not DOWN and found is not None:
                    self.counters.add("hits")
                    return self.nearcache.copy_of(key, index, found)
            raise self._all_down("read", key)
        best = policy.newest(copies)
        if best is None:
            self._drop_near(key)
            self.counters.add("misses")
            return None
        stamps.clock.observe(best.version)
        self._repair(key, best, copies, answered)
        if is_tombstone(best.data):
            self._drop_near(key)
            self.counters.add("misses")
            return None
        self._install(key, best, began, start)
        self.counters.add("hits")
        return best

    def _repair(self, key: str, best: Copy, copies: list[Copy], answered: list[int]) -> None:
        """Give the tiers holding an older copy (or none) the newest one, by ordered writes."""
        ttl = policy.copy_ttl(best, self.tombstone_ttl)
        for index in policy.repair_targets(best, copies, answered):
            try:
                wrote = self._call(
                    index, lambda t: write_if_newer(t, key, best.data, ttl), "write_if_newer"
                )
            except BackendError as exc:  # read-only, full: the read goes on without the repair
                self.counters.add("errors")
                log.debug("repair of %r in tier %d failed: %s", key, index, exc.message)
                continue
            if wrote is True:
                self.counters.add("repairs")
                self.tiers[index].counters.add("promotions")
                self.counters.add("promotions")
