"""What a chain knows about its tiers' health: a breaker per tier and the keys each missed.

Shared by the sync :class:`~session_store.tiered.TieredBackend` and its async twin: no I/O here,
only bookkeeping under a lock (the decisions are :mod:`.policy`'s ``may_call`` / ``on_failure`` /
``on_success``). A tier that raised :class:`~session_store.errors.BackendUnavailableError` is
skipped by plain reads and writes for ``retry_after`` seconds; then one call probes it. The keys
written while it was skipped, or that it refused, are remembered (up to ``max_missed``) so that
the chain brings them up to date when it answers again (never deletes them).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from session_store import forksafe
from session_store.counters import Counters
from session_store.errors import BackendError
from session_store.stamps import is_tombstone
from session_store.tiered import policy
from session_store.tiered.policy import Copy, Health, Layout

__all__ = ["EVICTION_WARNING_INTERVAL", "Breakers", "eviction_reader"]

log = logging.getLogger("session_store.tiered")

#: Seconds between two eviction warnings.
EVICTION_WARNING_INTERVAL = 60.0


class Breakers:
    """Health, missed keys and eviction accounting of a chain's tiers.

    Args:
        tiers: the chain's tiers (anything with ``describe()`` and ``counters``), fastest first.
        layout: the chain's :class:`~session_store.tiered.policy.Layout`.
        counters: the chain's counters (``evictions``).
        retry_after / max_missed / clock: as for the chain.
    """

    def __init__(
        self,
        tiers: Sequence[Any],
        layout: Layout,
        counters: Counters,
        *,
        retry_after: float,
        max_missed: int,
        clock: Callable[[], float],
    ) -> None:
        self._tiers = tuple(tiers)
        self._layout = layout
        self._counters = counters
        self.retry_after = retry_after
        self.max_missed = max_missed
        self._clock = clock
        self.lock = threading.Lock()
        self.health = [Health() for _ in self._tiers]
        self.missed: list[set[str]] = [set() for _ in self._tiers]
        #: the tombstones of deletes each tier missed: the only copy of a delete may be gone
        #: from every other tier by the time the tier answers (a Redis that lost its data)
        self.missed_tombstones: list[dict[str, bytes]] = [{} for _ in self._tiers]
        #: each tier's ``evictions`` count as a reader (:func:`eviction_reader`) and the count
        #: as of the last :meth:`check_evictions`: a write calls that only if the two differ
        self.eviction_reads = tuple(eviction_reader(tier) for tier in self._tiers)
        self.evictions_seen = [tier.counters.get("evictions") for tier in self._tiers]
        self._warned_at = -math.inf
        self._refusal_warned_at = [-math.inf] * len(self._tiers)
        #: set by a chain whose timer probes down tiers: plain calls then never probe (a paused
        #: server would hold each probing call for a whole socket timeout)
        self.probes_in_background = False
        forksafe.register(self)

    def _reset_locks(self) -> None:
        """In a forked child: a new, released lock (see :mod:`session_store.forksafe`)."""
        self.lock = threading.Lock()

    # -- the breaker ---------------------------------------------------------------------------
    def skips(self, index: int) -> bool:
        """Whether a plain call must skip tier ``index`` now (down, and not this call's turn to
        probe it; claiming the probe moves the next one ``retry_after`` on)."""
        health = self.health[index]
        if health.down_since is None:
            return False
        if self.probes_in_background:
            return True  # the chain's timer probes it: a caller never waits for a dead tier
        with self.lock:
            now = self._clock()
            if now < health.retry_at:
                return True
            health.retry_at = now + self.retry_after
        return False

    def skipping(self, index: int) -> bool:
        """Whether tier ``index``'s breaker is open now (without claiming a probe)."""
        return not policy.may_call(self.health[index], self._clock())

    def mark_down(self, index: int, exc: BackendError) -> None:
        """Tier ``index`` raised ``exc`` (unavailable): skip it for ``retry_after``."""
        with self.lock:
            first = policy.on_failure(self.health[index], self._clock(), self.retry_after)
        if first:
            log.warning(
                "tier %d (%s) is down, going on without it: %s",
                index,
                self._tiers[index].describe(),
                exc.message,
            )

    def mark_up(self, index: int) -> tuple[float, set[str]] | None:
        """Tier ``index`` answered: if it was down, for how long, and the keys it missed (which
        the caller brings up to date and then reports with :meth:`log_back`)."""
        with self.lock:
            down_for = policy.on_success(self.health[index], self._clock())
            if down_for is None:
                return None
            missed, self.missed[index] = self.missed[index], set()
        return down_for, missed

    def log_back(self, index: int, down_for: float, repaired: int) -> None:
        log.warning(
            "tier %d (%s) is back after %.1f s; %d keys written meanwhile brought up to date",
            index,
            self._tiers[index].describe(),
            down_for,
            repaired,
        )

    # -- missed keys ---------------------------------------------------------------------------
    def note_missed(self, index: int, key: str, data: bytes | None = None) -> None:
        """Tier ``index`` did not take a write of ``key`` (the framed ``data``, if known):
        remember the key (up to ``max_missed``), and a tombstone itself (a few bytes), so that
        the tier gets the delete even if no other tier still holds it."""
        with self.lock:
            missed = self.missed[index]
            if len(missed) < self.max_missed:
                missed.add(key)
                if data is not None and is_tombstone(data):
                    self.missed_tombstones[index][key] = data
                else:
                    self.missed_tombstones[index].pop(key, None)

    def missed_tombstone(self, index: int, key: str, ttl: float) -> Copy | None:
        """The tombstone of a delete of ``key`` tier ``index`` missed (forgotten here), as a
        copy living ``ttl`` seconds: a candidate when the tier is brought up to date, even if no
        other tier still holds it."""
        with self.lock:
            data = self.missed_tombstones[index].pop(key, None)
        return None if data is None else Copy(index, data, ttl)

    def refused(
        self,
        index: int,
        key: str,
        exc: BackendError,
        data: bytes | None = None,
        *,
        remember: bool = True,
    ) -> None:
        """Tier ``index`` refused a write of ``key`` (read-only, full): the key is remembered as
        missed, so that the tier gets the newest copy when a later write finds it writable again,
        instead of keeping an older one for good. It stays readable meanwhile (a read-only disk
        still holds the tombstones and copies that outlive a Redis that lost its data).
        ``remember=False``: the write failed as a whole (an arbiter that refused), so no other
        tier holds anything this one missed. Logged as a warning, once a minute per tier."""
        self._counters.add("errors")
        now = self._clock()
        if now - self._refusal_warned_at[index] >= EVICTION_WARNING_INTERVAL:
            self._refusal_warned_at[index] = now  # (a race warns twice at most: harmless)
            log.warning(
                "tier %d (%s) refused a write (%s); %s (this warning: once a minute per tier)",
                index,
                self._tiers[index].describe(),
                exc.message,
                "the other tiers took it, and this tier gets the newest copy once it takes "
                "writes again"
                if remember
                else "the write failed (the chain's arbiter must take every write)",
            )
        else:
            log.debug("tier %d refused a write of %r: %s", index, key, exc.message)
        if remember:
            self.note_missed(index, key, data)

    def take_all_missed(self, index: int) -> set[str]:
        """The keys tier ``index`` missed, up or down, forgotten here (a chain that closes)."""
        with self.lock:
            missed, self.missed[index] = self.missed[index], set()
        return missed

    def take_missed(self, index: int) -> set[str]:
        """The keys tier ``index`` missed while it is up, forgotten here (to be reconciled);
        empty while it is down."""
        if not self.missed[index] or self.health[index].down_since is not None:
            return set()
        with self.lock:
            missed, self.missed[index] = self.missed[index], set()
        return missed

    # -- evictions -----------------------------------------------------------------------------
    def check_evictions(self, index: int) -> None:
        """Carry tier ``index``'s new evictions into the chain's counter; warn (rate-limited).
        Nothing to do unless ``eviction_reads[index]()`` differs from
        ``evictions_seen[index]`` (what a hot caller compares first, without the call)."""
        seen = self._tiers[index].counters.get("evictions")
        delta = seen - self.evictions_seen[index]
        if delta <= 0:
            return
        self.evictions_seen[index] = seen
        self._counters.add("evictions", delta)
        if index in self._layout.near:
            return  # a near-cache eviction drops nothing: a durable tier holds every entry
        now = self._clock()
        if now - self._warned_at >= EVICTION_WARNING_INTERVAL:
            self._warned_at = now
            log.warning(
                "tier %d (%s) evicted %d entries to stay within its bounds (%d in all); "
                "raise its limits if sessions must stay in it",
                index,
                self._tiers[index].describe(),
                delta,
                seen,
            )


def eviction_reader(tier: Any) -> Callable[[], int]:
    """``tier``'s ``evictions`` count as a reader that makes no Python call where the tier
    offers one (the memory backend's own, or a :class:`Counters`' :meth:`~Counters.reader`),
    else its counters' ``get``."""
    own = getattr(tier, "eviction_reader", None)
    if own is not None:
        reader: Callable[[], int] = own()
        return reader
    counters = tier.counters
    if isinstance(counters, Counters) and type(counters).get is Counters.get:
        return counters.reader("evictions")
    return partial(counters.get, "evictions")
