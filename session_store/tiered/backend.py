"""The tiered backend: several backends chained fastest first, one consistent store.

The model (docs/guarantees.md states each promise with its bound and test):

* **Versions on every copy.** Every value the chain writes is framed with a version from a hybrid
  logical clock (:mod:`session_store.stamps`); the caller's bytes round-trip exactly. A tier write
  is *ordered*: it never replaces a newer version with an older one (:mod:`.writes`).
* **Deletes are tombstones**: a versioned "deleted" copy in every shared tier, living
  ``tombstone_ttl`` seconds, so no racing promotion, lower-tier copy or tier that comes back
  after an outage brings the key back (all of those are older versions).
* **One arbiter per chain**, the same in every process: the first shared tier (the last tier if
  none is shared). ``get_versioned`` / ``set_if`` (hence ``SessionStore.update``) go to it and
  nowhere else; when it cannot be reached they raise :class:`BackendUnavailableError` and write
  nothing. ``get_versioned`` compares the arbiter's copy with the lower shared tiers' and first
  brings the arbiter up to the newest durable copy (a Redis that lost a key, or restarted from an
  older append-only file, never hands ``update`` an older session or ``None``).
* **Reads** of a key the near cache cannot serve read every shared tier that is up; the newest
  version wins, and tiers holding an older copy (or none) get the newest one by an ordered write
  (reconciliation: it can only replace older versions). A read never writes anything else.
* **Writes** go to the shared tiers lowest first, then to the near cache. A write is acknowledged
  once a durable tier (one that outlives the process) took it; if none did, it raises and the
  near cache does not keep it, so the memory tier never holds an entry no lower tier holds
  (evicting it loses nothing). A chain of process-local tiers only acknowledges on any tier.
* **Outages**: a shared tier that raises :class:`BackendUnavailableError` is skipped by plain
  reads and writes for ``retry_after`` seconds (a breaker; one call probes it afterwards). The
  keys written while it was skipped are remembered (up to ``max_missed``) and, when it answers
  again, brought up to date from the newest copy: never deleted.
* **The near cache** (the process-local tiers above the arbiter) is coherent by default: see
  :mod:`.near`. With an invalidation stream from the arbiter (Redis client-side caching) other
  processes' writes drop its copies within one message; without it copies are re-checked after
  ``max_staleness`` seconds (default 1).
* **Evictions** of every tier (the memory tier's bounds, diskcache's ``size_limit``) are added to
  the chain's ``evictions`` counter; those of a durable tier (sessions lost) are also logged as a
  warning at most once a minute (the near cache's lose nothing: a durable tier holds each entry).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from session_store import stamps
from session_store.backend import SessionBackend, ensure_bytes
from session_store.errors import BackendError
from session_store.keys import validate_key
from session_store.stamps import is_tombstone, version_of
from session_store.tiered import policy
from session_store.tiered.base import (
    DEFAULT_MAX_STALENESS,
    DEFAULT_RETRY_AFTER,
    DEFAULT_TOMBSTONE_TTL,
    DOWN,
    TIERED_COUNTER_NAMES,
    log,
)
from session_store.tiered.bulk import ChainListing
from session_store.tiered.cas import TieredCas
from session_store.tiered.writes import write_after, write_if_newer
from session_store.ttl import normalize_ttl

__all__ = [
    "DEFAULT_MAX_STALENESS",
    "DEFAULT_RETRY_AFTER",
    "DEFAULT_TOMBSTONE_TTL",
    "TIERED_COUNTER_NAMES",
    "ChainListing",
    "TieredBackend",
]


class TieredBackend(TieredCas):
    """Backends chained fastest first (for example memory, then Redis, then disk).

    Args:
        tiers: at least one backend, fastest first. The chain owns them: ``close`` closes them.
        retry_after: seconds a tier that went down is skipped by plain reads and writes.
        max_staleness: seconds a near-cache copy is served without a check while no
            invalidation stream is up (default 1).
        tombstone_ttl: seconds a tombstone lives (default 7 days); at least the longest TTL.
        invalidation: use the arbiter's invalidation stream if it has one (default ``True``).
        max_missed: keys remembered per down tier, to bring up to date when it is back.
        clock: monotonic clock in seconds (tests may pass their own).
        stamps: accepted for older configurations and ignored: every chain versions its copies.
    """

    #: ``touch(key, None)`` restarts a session's expiry with the TTL it was written with.
    keeps_own_ttl = True

    # -- writes --------------------------------------------------------------------------------
    def _write(self, key: str, data: bytes, ttl: float | None, what: str) -> bytes:
        """A new write (see :meth:`_write_once`). If a lower tier holds a version newer than the
        one the arbiter stored while the arbiter still holds ours (a copy written by a host whose
        clock runs ahead, kept after the arbiter lost the key), the write is made again with a
        version past it, so that it is not hidden behind that older write."""
        for _ in range(3):
            data, ahead = self._write_once(key, data, ttl, what)
            if ahead is None:
                return data
            stamps.clock.observe(ahead)
            data = stamps.with_version(data, stamps.clock.now())
        return data

    def _write_once(
        self, key: str, data: bytes, ttl: float | None, what: str
    ) -> tuple[bytes, bytes | None]:
        """A new write of the framed ``data``: the arbiter first (ordered by arrival, see
        :func:`write_after`), then ordered copies of what it stored to the other shared tiers,
        lowest first. With the arbiter down (or skipped by its breaker), the first other tier
        that answers orders the write by arrival instead, and the rest take copies of it; the
        arbiter gets it when it answers again (:meth:`_replay`, within ``retry_after``), and an
        ``update`` deciding there meanwhile sees it in the lower tiers (:meth:`_place_below`).

        Returns the framed bytes written (the arbiter may have moved their version on), and the
        newer version a lower tier holds (see :meth:`_write`), if any. Raises unless a durable
        tier took it (any tier when none is durable): the first typed error a tier gave, else
        :class:`BackendUnavailableError`.
        """
        arbiter = self.layout.arbiter
        acked = False
        error: BackendError | None = None
        skipped: list[int] = []
        behind: list[int] = []  # lower tiers that kept a version at least as new as ours
        arbiter_took = False
        ordered = False  # a tier took it ordered by arrival: the others get copies of that
        order = policy.write_order(self.layout)
        for force in (False, True):
            # second round: no durable tier took it and some were skipped by their breaker; the
            # breaker saves time only when another tier can take the write, so try them now
            for index in skipped if force else order:
                breaker_skips = self.breakers.skipping(index)
                fn: Callable[[SessionBackend], Any]
                if not ordered:
                    fn = partial(write_after, key=key, data=data, ttl=ttl)
                else:
                    fn = partial(write_if_newer, key=key, data=data, ttl=ttl)
                try:
                    result = self._call(index, fn, what, force=force)
                except BackendError as exc:
                    self.breakers.refused(index, key, exc, data)
                    error = error or exc
                    continue
                if result is DOWN:
                    if not force and policy.waits_for_force(self.layout, index, breaker_skips):
                        skipped.append(index)
                    self.breakers.note_missed(index, key, data)
                    continue
                if isinstance(result, bytes):  # ordered by arrival here
                    ordered = True
                    arbiter_took = arbiter_took or index == arbiter
                    if result is not data:
                        data = result  # its version moved past what the tier held
                        stamps.clock.observe(version_of(data))
                elif result is False:
                    behind.append(index)
                self.breakers.check_evictions(index)
                self._drain_missed(index)
                if policy.acknowledges(self.layout, index):
                    acked = True
            if acked or not skipped:
                break
        if not acked:
            self._drop_near(key)
            if error is not None:
                raise error
            raise self._all_down(what, key)
        ahead = self._newer_below(key, data, behind) if behind and arbiter_took else None
        return data, ahead

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        validate_key(key)
        value = ensure_bytes(value, key=key)
        ttl = normalize_ttl(ttl)
        start = self._clock()
        began = self.near.begin()
        data = self._write(key, stamps.frame(value, stamps.clock.now(), ttl), ttl, "write")
        self.nearcache.after_write(key, data, value, ttl, start, began)
        self.counters.add("writes")

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        checked = {validate_key(k): ensure_bytes(v, key=k) for k, v in items.items()}
        ttl = normalize_ttl(ttl)
        for key, value in checked.items():
            self.set(key, value, ttl)

    def delete(self, key: str) -> bool:
        validate_key(key)
        copies, _ = self._collect(key)
        best = policy.newest(copies)
        existed = best is not None and not is_tombstone(best.data)
        if best is not None:
            stamps.clock.observe(best.version)  # the tombstone is newer than every copy read
        self._write(key, stamps.tombstone(stamps.clock.now()), self.tombstone_ttl, "delete")
        self._drop_near(key)  # after the tombstones: fills that began before them are fenced
        self.counters.add("deletes")
        self.counters.add("tombstones")
        return existed

    def delete_many(self, keys: Iterable[str]) -> int:
        wanted = list(dict.fromkeys(validate_key(key) for key in keys))
        return sum(1 for key in wanted if self.delete(key))

    def touch(self, key: str, ttl: float | None = None) -> bool:
        """Restart the expiry of ``key``; ``ttl=None``: the TTL the session was written with."""
        validate_key(key)
        ttl = normalize_ttl(ttl)
        copies, answered = self._collect(key)
        if not answered:
            raise self._all_down("touch", key)
        best = policy.newest(copies)
        if best is None or is_tombstone(best.data):
            return False
        if ttl is None:
            ttl = stamps.own_ttl(best.data)
        touched = False
        for index in (*reversed(self.layout.shared), *self.layout.near):
            try:
                result = self._call(index, lambda t: t.touch(key, ttl), "touch")
            except BackendError:
                self.counters.add("errors")
                continue
            touched = touched or result is True
        return touched

    # -- life cycle ----------------------------------------------------------------------------
    def close(self) -> None:
        with self._replay_lock:
            self._closed = True
            timer, self._replay_timer = self._replay_timer, None
        if timer is not None:
            timer.cancel()
        self._flush_missed()
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            try:
                subscription.close()
            except Exception:  # close the tiers even if the stream fails to stop
                log.exception("closing the invalidation stream failed")
        for tier in self.tiers:
            try:
                tier.close()
            except Exception:  # close every tier even if one fails
                log.exception("closing tier %s failed", tier.describe())

    @classmethod
    def from_backends(cls, tiers: Sequence[SessionBackend], **options: Any) -> TieredBackend:
        """Same as the constructor; reads well beside :func:`open_backend`."""
        return cls(tiers, **options)
