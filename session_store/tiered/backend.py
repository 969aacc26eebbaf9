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

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple, TypeVar

from session_store import forksafe, stamps
from session_store.backend import Scope, SessionBackend, Versioned, VersionToken, ensure_bytes
from session_store.counters import COUNTER_NAMES, Counters
from session_store.errors import BackendError, BackendUnavailableError, ConfigurationError
from session_store.keys import validate_key, validate_scan_prefix
from session_store.stamps import is_tombstone, unframe, version_of
from session_store.tiered import policy
from session_store.tiered.breakers import Breakers
from session_store.tiered.near import NearState, Subscription
from session_store.tiered.nearcache import NearCache
from session_store.tiered.policy import Copy, Health
from session_store.tiered.writes import write_after, write_if_newer
from session_store.ttl import NO_EXPIRY, normalize_ttl

__all__ = [
    "DEFAULT_MAX_STALENESS",
    "DEFAULT_RETRY_AFTER",
    "DEFAULT_TOMBSTONE_TTL",
    "TIERED_COUNTER_NAMES",
    "ChainListing",
    "TieredBackend",
]

log = logging.getLogger("session_store.tiered")

T = TypeVar("T")

#: The counters of a tiered backend: every backend's, plus ``repairs`` (older or missing copies
#: brought up to the newest version), ``revalidations`` (near-cache copies checked again),
#: ``tombstones`` (deletes) and ``invalidations`` (keys another process changed, from the stream).
TIERED_COUNTER_NAMES = (*COUNTER_NAMES, "repairs", "revalidations", "tombstones", "invalidations")

#: Default seconds a tier that went down is skipped before it is probed again; also the bound
#: on how long a write that went around the arbiter stays unseen by other processes.
DEFAULT_RETRY_AFTER = 1.0
#: Default seconds a tombstone lives: make it at least the longest session TTL.
DEFAULT_TOMBSTONE_TTL = 7 * 86_400.0
#: Default bound, in seconds, on a near-cache copy's age while no invalidation stream is up.
DEFAULT_MAX_STALENESS = 1.0
#: The part of ``max_staleness`` a near-cache copy is served without a check.
STALENESS_MARGIN = 0.95

_DOWN: Any = object()  # what _call returns for a tier that is (or just went) down


class _ChainCounters(Counters):
    """The chain's counters, plus near-cache hits counted without a lock (an int increment under
    the GIL: a rare lost count under heavy threading, never a wrong one), added to ``hits``."""

    __slots__ = ("fast_hits",)

    def __init__(self, *, names: Iterable[str]) -> None:
        super().__init__(names=names)
        self.fast_hits = 0

    def get(self, name: str) -> int:
        value = super().get(name)
        return value + self.fast_hits if name == "hits" else value

    def as_dict(self) -> dict[str, int]:
        values = super().as_dict()
        values["hits"] += self.fast_hits
        return values


class _Token(NamedTuple):
    """A version token of the chain: the arbiter's own token, and the version that was read."""

    inner: VersionToken
    base: bytes


def _bring_up(
    tier: SessionBackend, key: str, data: bytes, read: Versioned | None, ttl: float | None
) -> bool:
    """Compare-and-set ``data`` into ``tier`` over what ``read`` found there."""
    return tier.set_if(key, data, None if read is None else read.token, ttl)


def _place(
    tier: SessionBackend, key: str, data: bytes, ttl: float | None, base: bytes, absent: bool
) -> bool | bytes:
    """Put ``data`` (won by a compare-and-set on the arbiter, based on a read of version
    ``base``) in ``tier`` by compare-and-set against what it holds: ``True`` if written,
    ``False`` if the tier keeps a newer tombstone over an "absent" read, or the tier's copy if
    it shows a write that went around the arbiter since that read (nothing written)."""
    for _ in range(16):
        read = tier.get_versioned(key)
        if read is not None:
            if policy.overtaken(read.value, data, base, absent):
                return read.value
            if version_of(read.value) >= version_of(data):
                return False
        if tier.set_if(key, data, None if read is None else read.token, ttl):
            return True
    return False  # pragma: no cover - 16 writers in a row changed it: each of them is newer


def _probe(tier: SessionBackend, key: str) -> object:
    """A read that tells whether ``tier`` answers."""
    return tier.get_with_ttl(key)


def _listed(tier: SessionBackend, prefix: str) -> tuple[list[str], bool]:
    """A tier's keys under ``prefix``, and whether its listing says it is complete."""
    listing = tier.scan(prefix)
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


class TieredBackend(SessionBackend):
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

    def __init__(
        self,
        tiers: Sequence[SessionBackend],
        *,
        retry_after: float = DEFAULT_RETRY_AFTER,
        max_staleness: float | None = DEFAULT_MAX_STALENESS,
        tombstone_ttl: float = DEFAULT_TOMBSTONE_TTL,
        invalidation: bool = True,
        max_missed: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        stamps: bool | None = None,
    ) -> None:
        tiers = list(tiers)
        if not tiers:
            raise ConfigurationError("a tiered backend needs at least one tier")
        if not all(isinstance(tier, SessionBackend) for tier in tiers):
            raise ConfigurationError("every tier must be a SessionBackend")
        if stamps is not None and not isinstance(stamps, bool):
            raise ConfigurationError(f"stamps must be True or False, got {stamps!r}")
        self.tiers: tuple[SessionBackend, ...] = tuple(tiers)
        self.retry_after = normalize_ttl(retry_after, what="retry_after") or 0.0
        staleness = normalize_ttl(max_staleness, what="max_staleness")
        self.max_staleness = DEFAULT_MAX_STALENESS if staleness is None else staleness
        self.tombstone_ttl = normalize_ttl(tombstone_ttl, what="tombstone_ttl")
        self.max_missed = max_missed
        self._clock = clock
        self.counters: _ChainCounters = _ChainCounters(names=TIERED_COUNTER_NAMES)
        self.layout = policy.layout([tier.scope for tier in self.tiers])
        self.breakers = Breakers(
            self.tiers,
            self.layout,
            self.counters,
            retry_after=self.retry_after,
            max_missed=max_missed,
            clock=clock,
        )
        # a timer probes tiers that are down (real time only: a test's own clock gets probes
        # on calls, as before)
        self.breakers.probes_in_background = clock is time.monotonic
        # copies are re-checked a little before max_staleness (STALENESS_MARGIN), so that the
        # bound holds as measured by another process, whose own reads and clock take time too
        self.near = NearState(self.max_staleness * STALENESS_MARGIN, clock)
        self.nearcache = NearCache(
            [(i, self.tiers[i]) for i in self.layout.near],
            self.near,
            self.counters,
            self.breakers.check_evictions,
            clock,
        )
        self._near0 = self.tiers[0] if self.layout.near else None
        self._subscription: Subscription | None = None
        self._resubscribe = False
        self._replay_lock = threading.Lock()
        self._replay_timer: threading.Timer | None = None
        self._closed = False
        forksafe.register(self)
        if self.layout.near:
            self.get = self._fast_get()  # type: ignore[method-assign,assignment]
        if self.layout.near and invalidation:
            self._subscribe()

    def _reset_locks(self) -> None:
        """In a forked child (see :mod:`session_store.forksafe`; the breakers and the near
        state reset their own locks): the stream's thread did not fork, so the next read that
        misses the near cache starts a new one (never here, inside the fork handler); nor did
        the probe timer's, which the next tier that goes down arms again."""
        self._replay_lock = threading.Lock()
        self._replay_timer = None
        if self._subscription is not None:
            self._subscription = None
            self._resubscribe = True

    # -- description ---------------------------------------------------------------------------
    @property
    def scope(self) -> Scope:  # type: ignore[override]
        """The widest scope of its tiers: who else can see data written through it."""
        order = (Scope.PROCESS, Scope.HOST, Scope.NETWORK)
        return max((tier.scope for tier in self.tiers), key=order.index)

    def describe(self) -> str:
        return " | ".join(tier.describe() for tier in self.tiers)

    @property
    def coherent(self) -> bool:
        """Whether the near cache is kept coherent by a connected invalidation stream."""
        return self.near.coherent_since != math.inf

    @property
    def _lock(self) -> threading.Lock:
        """The breakers' lock (the chain's own lock before they moved to :mod:`.breakers`)."""
        return self.breakers.lock

    @property
    def _health(self) -> list[Health]:
        return self.breakers.health

    @property
    def _missed(self) -> list[set[str]]:
        return self.breakers.missed

    def tier_states(self) -> list[dict[str, Any]]:
        """Per tier: its description, whether it is down, keys it missed, its counters."""
        return [
            {
                "backend": tier.describe(),
                "role": self._role(index),
                "down": health.down,
                "fenced": False,
                "missed": len(self._missed[index]),
                "counters": tier.counters.as_dict(),
            }
            for index, (tier, health) in enumerate(zip(self.tiers, self._health, strict=True))
        ]

    def _role(self, index: int) -> str:
        if index in self.layout.near:
            return "near cache"
        return "arbiter" if index == self.layout.arbiter else "durable"

    # -- the invalidation stream ---------------------------------------------------------------
    def _subscribe(self) -> None:
        subscribe = getattr(self.tiers[self.layout.arbiter], "invalidations", None)
        if subscribe is None:
            return
        try:
            self._subscription = subscribe("", self)
        except BackendError as exc:  # no stream: the version check alone keeps the bound
            log.warning("no invalidation stream (%s): near cache re-checks copies", exc.message)

    def on_invalidate(self, keys: list[str] | None) -> None:
        """From the stream: ``keys`` changed elsewhere (``None``: everything)."""
        self.nearcache.on_invalidate(keys)

    def on_connected(self) -> None:
        """From the stream: connected; copies checked from now on are trusted until dropped."""
        self.nearcache.on_connected()

    def on_disconnected(self) -> None:
        """From the stream: down; copies fall back to the ``max_staleness`` check."""
        self.nearcache.on_disconnected()

    # -- health ----------------------------------------------------------------------------------
    def _mark_up(self, index: int) -> None:
        back = self.breakers.mark_up(index)
        if back is None:
            return
        down_for, missed = back
        self.breakers.log_back(index, down_for, self._reconcile(index, missed))

    def _drain_missed(self, index: int) -> None:
        """Tier ``index`` took a write: bring up to date what it missed (refused) before."""
        missed = self.breakers.take_missed(index)
        if missed:
            self._reconcile(index, missed)

    def _reconcile(self, index: int, keys: Iterable[str]) -> int:
        """Bring tier ``index`` up to the newest copy of each of ``keys`` (ordered writes)."""
        repaired = 0
        for key in keys:
            copies, _ = self._collect(key, skip=index)
            missed = self.breakers.missed_tombstone(index, key, self.tombstone_ttl or NO_EXPIRY)
            if missed is not None:  # the delete it missed, even if no other tier holds it
                copies.append(missed)
            best = policy.newest(copies)
            if best is None:
                continue
            ttl = policy.copy_ttl(best, self.tombstone_ttl)
            try:
                if write_if_newer(self.tiers[index], key, best.data, ttl):
                    repaired += 1
            except BackendError:
                break
        self.counters.add("repairs", repaired)
        return repaired

    def _call(
        self, index: int, fn: Callable[[SessionBackend], T], op: str, *, force: bool = False
    ) -> T:
        """``fn`` on tier ``index``; :data:`_DOWN` if the tier is (or just went) down.

        ``force``: call it even if the breaker says to skip it. Other :class:`BackendError`
        propagate. The time taken goes into the tier's histogram.
        """
        health = self.breakers.health[index]
        tier = self.tiers[index]
        if health.down_since is not None and not force and self.breakers.skips(index):
            self._arm_replay()  # (a no-op while the timer runs; a forked child starts its own)
            self.counters.add("fallbacks")
            tier.counters.add("fallbacks")
            return _DOWN  # type: ignore[no-any-return]
        start = time.perf_counter()
        try:
            result = fn(tier)
        except BackendUnavailableError as exc:
            tier.counters.observe("unavailable", time.perf_counter() - start)
            self.breakers.mark_down(index, exc)
            self._arm_replay()
            self.counters.add("fallbacks")
            tier.counters.add("fallbacks")
            return _DOWN  # type: ignore[no-any-return]
        tier.counters.observe(op, time.perf_counter() - start)
        if health.down_since is not None:
            self._mark_up(index)
        return result

    def _arbitrate(self, fn: Callable[[SessionBackend], T], op: str, key: str) -> T:
        """``fn`` on the arbiter, whatever the breaker says; unavailable: raised, typed."""
        index = self.layout.arbiter
        tier = self.tiers[index]
        start = time.perf_counter()
        try:
            result = fn(tier)
        except BackendUnavailableError as exc:
            tier.counters.observe("unavailable", time.perf_counter() - start)
            self.breakers.mark_down(index, exc)
            self.counters.add("errors")
            raise BackendUnavailableError(
                f"the chain's arbiter is unavailable, cannot {op}: {exc.message}",
                key=key,
                backend=tier.describe(),
            ) from None
        tier.counters.observe(op, time.perf_counter() - start)
        if self.breakers.health[index].down_since is not None:
            self._mark_up(index)
        return result

    def _all_down(self, what: str, key: str | None = None) -> BackendUnavailableError:
        self.counters.add("errors")
        return BackendUnavailableError(
            f"no durable tier is available, cannot {what}", key=key, backend=self.describe()
        )

    # -- reads ---------------------------------------------------------------------------------
    def _fast_get(self) -> Callable[[str], bytes | None]:
        """The chain's ``get``, as a closure over what a near-cache hit touches (installed per
        instance, see ``__init__``): the same steps as :meth:`get`, without a bound method and
        six attribute lookups per call (a warm hit is a third of a microsecond: they showed).
        A miss, a stale copy or a failing near tier goes on to :meth:`get`."""
        near_get = self.tiers[0].get
        checked_get = self.near.checked.get
        state = self.near
        counters = self.counters
        clock = self._clock
        slow = partial(TieredBackend.get, self)

        def get(key: str) -> bytes | None:
            try:
                data = near_get(key)
            except BackendUnavailableError:
                return slow(key)
            if data is not None:
                checked = checked_get(key)
                if checked is not None and (
                    checked >= state.coherent_since or clock() - checked < state.max_staleness
                ):
                    counters.fast_hits += 1  # no lock on the hot path (see _ChainCounters)
                    return data
            return slow(key)

        return get

    def get(self, key: str) -> bytes | None:
        near = self._near0
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
                self.counters.add("revalidations")
        else:
            validate_key(key)
        best = self._read(key)
        return None if best is None else unframe(best.data)

    def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        validate_key(key)
        best = self._read(key)
        if best is None:
            return None
        value = unframe(best.data)
        return None if value is None else (value, best.left)

    def ttl(self, key: str) -> float | None:
        validate_key(key)
        copies, answered = self._collect(key)
        if not answered:
            raise self._all_down("read a TTL", key)
        best = policy.newest(copies)
        if best is None or is_tombstone(best.data):
            return None
        return best.left

    def _collect(
        self, key: str, skip: int | None = None, *, force: bool = False
    ) -> tuple[list[Copy], list[int]]:
        """Every shared tier's copy of ``key`` (tiers that are down skipped, unless ``force``),
        and who answered."""
        copies: list[Copy] = []
        answered: list[int] = []
        for index in self.layout.shared:
            if index == skip:
                continue
            was_down = self.breakers.health[index].down_since is not None
            found = self._call(index, lambda t: t.get_with_ttl(key), "get_with_ttl", force=force)
            if was_down and found is not _DOWN and self.breakers.health[index].down_since is None:
                # it just came back, and got the writes it missed: what it holds now counts
                found = self._call(index, lambda t: t.get_with_ttl(key), "get_with_ttl")
            if found is _DOWN:
                continue
            answered.append(index)
            if found is not None:
                copies.append(Copy(index, found[0], found[1]))
        return copies, answered

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
                found = self._call(index, lambda t: t.get_with_ttl(key), "get_with_ttl")
                if found is not _DOWN and found is not None:
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

    def _install(self, key: str, best: Copy, began: int, start: float) -> None:
        """Put ``best`` in the near cache, unless ``key`` was invalidated since the read began."""
        self.nearcache.install(key, best, began, start)

    def _drop_near(self, key: str) -> None:
        """Forget ``key`` in the near cache and fence fills in flight."""
        self.nearcache.drop(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(validate_key(key) for key in keys))
        found: dict[str, bytes] = {}  # framed copies from the shared tiers
        near_hits: dict[str, bytes] = {}  # the caller's bytes, from the near cache
        remaining = wanted
        near = self._near0
        if near is not None and wanted:
            try:
                got = near.get_many(wanted)
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
                got = self._call(index, lambda t: t.get_many(remaining), "get_many")
                if got is _DOWN:
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
            if found is _DOWN:
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

    def _newer_below(self, key: str, data: bytes, behind: list[int]) -> bytes | None:
        """The newest version among the ``behind`` tiers if it is newer than ``data``'s and the
        arbiter still holds ``data``'s version (no later write exists); else ``None``."""
        version = version_of(data)
        below: list[bytes] = []
        for index in behind:
            found = self._call(index, lambda t: t.get_with_ttl(key), "get_with_ttl")
            if found is not _DOWN and found is not None:
                below.append(found[0])
        newest = policy.newer_below(version, below)
        if newest is None:
            return None
        held = self._call(self.layout.arbiter, lambda t: t.get_with_ttl(key), "get_with_ttl")
        if held is _DOWN or held is None or version_of(held[0]) != version:
            return None
        return newest

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
                if result is _DOWN:
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

    # -- compare-and-set -----------------------------------------------------------------------
    def get_versioned(self, key: str) -> Versioned | None:
        validate_key(key)
        arbiter = self.layout.arbiter
        for _ in range(8):
            read = self._arbitrate(lambda t: t.get_versioned(key), "get_versioned", key)
            # every durable tier, whatever its breaker says: a copy only it holds decides
            lower, answered = self._collect(key, skip=arbiter, force=True)
            best = policy.newest(lower)
            if policy.unheard_durable(self.layout, answered, arbiter):
                # it may hold a write made around the arbiter (or the only copy): an update
                # built on the arbiter's copy alone could silently replace it
                self.counters.add("errors")
                raise BackendUnavailableError(
                    "a durable tier does not answer: it may hold a newer copy of the session, "
                    "cannot read it for an update",
                    key=key,
                    backend=self.describe(),
                )
            if policy.arbiter_behind(None if read is None else read.value, best):
                assert best is not None
                # The arbiter lost the key or holds an older copy: bring it up to the newest
                # durable copy (a compare-and-set against what it holds), then read again.
                ttl = policy.copy_ttl(best, self.tombstone_ttl)
                self._arbitrate(
                    partial(_bring_up, key=key, data=best.data, read=read, ttl=ttl),
                    "set_if",
                    key,
                )
                self.counters.add("repairs")
                continue
            break
        if best is not None:
            # a lower tier's tombstone may be newer than the clock of this process: the value
            # that replaces "absent" must be newer still (see set_if)
            stamps.clock.observe(best.version)
        if read is None:
            return None
        stamps.clock.observe(version_of(read.value))
        value = unframe(read.value)
        if value is None:
            return None
        self.counters.add("hits")
        return Versioned(value, _Token(read.token, version_of(read.value)))

    def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        validate_key(key)
        value = ensure_bytes(value, key=key)
        ttl = normalize_ttl(ttl)
        if token is None:
            inner: VersionToken | None = None
            base = b""
        elif isinstance(token, _Token):
            inner, base = token.inner, token.base
        else:
            return False  # not a token of this chain
        start = self._clock()
        began = self.near.begin()
        data = stamps.frame(value, stamps.clock.now(), ttl)
        won = self._arbitrate(lambda t: t.set_if(key, data, inner, ttl), "set_if", key)
        if not won and inner is None:
            # "only if absent", and the arbiter holds a tombstone: that is absent. It may be a
            # delete that landed since the caller's read, with a version newer than this
            # process's clock gives (another host's clock, or a busier one): the value must be
            # newer than it, or the lower tiers keep the tombstone and it wins every later read.
            read = self._arbitrate(lambda t: t.get_versioned(key), "get_versioned", key)
            if read is not None and is_tombstone(read.value):
                dead = read.token
                base = version_of(read.value)
                stamps.clock.observe(base)
                data = stamps.with_version(data, stamps.clock.now())
                won = self._arbitrate(lambda t: t.set_if(key, data, dead, ttl), "set_if", key)
        if not won:
            self._drop_near(key)
            return False
        behind, overtaking = self._place_below(key, data, ttl, base, absent=inner is None)
        if overtaking is not None and self._step_back(key, data, overtaking):
            self._drop_near(key)
            return False
        if behind:
            data = self._restamp(key, data, behind, ttl)
        self.nearcache.after_write(key, data, value, ttl, start, began)
        self.counters.add("writes")
        return True

    def _place_below(
        self, key: str, data: bytes, ttl: float | None, base: bytes, *, absent: bool
    ) -> tuple[list[int], bytes | None]:
        """Copy what a compare-and-set stored on the arbiter to the other shared tiers, lowest
        first, each by a compare-and-set against what it holds, unless that shows a write that
        went around the arbiter after the read the compare-and-set is based on
        (:func:`~session_store.tiered.policy.overtaken`).

        Returns the tiers that kept a newer tombstone (see :meth:`_restamp`), and the copy that
        overtook the read, if one did (then nothing more is written).
        """
        behind: list[int] = []
        for index in reversed(self.layout.shared):
            if index == self.layout.arbiter:
                continue
            try:
                placed = self._call(
                    index,
                    partial(_place, key=key, data=data, ttl=ttl, base=base, absent=absent),
                    "write",
                )
            except BackendError as exc:
                self.breakers.refused(index, key, exc, data)
                continue
            if placed is _DOWN:
                self.breakers.note_missed(index, key, data)
            elif isinstance(placed, bytes):
                return behind, placed
            elif placed is False:
                behind.append(index)
        return behind, None

    def _step_back(self, key: str, data: bytes, newer: bytes) -> bool:
        """A compare-and-set that won on the arbiter found ``newer``, written after the read it
        is based on, in a lower tier. If the arbiter still holds ``data``, ``newer`` went
        around it (its process could not reach it): the arbiter gets ``newer`` back, by a
        compare-and-set against ``data``, and ``True`` says the compare-and-set is undone (the
        caller's retry reads ``newer``). Otherwise a later write went through the arbiter (one
        that read ``data``, or a save): ``data`` stood before it, ``False``."""
        read = self._arbitrate(lambda t: t.get_versioned(key), "get_versioned", key)
        if read is None or version_of(read.value) != version_of(data):
            return False  # a later write replaced it on the arbiter: ours came first
        token = read.token
        ttl = self.tombstone_ttl if is_tombstone(newer) else stamps.own_ttl(newer)
        if self._arbitrate(lambda t: t.set_if(key, newer, token, ttl), "set_if", key):
            self.counters.add("repairs")
            return True
        return False  # pragma: no cover - a later write replaced it meanwhile: ours came first

    def _restamp(self, key: str, data: bytes, behind: list[int], ttl: float | None) -> bytes:
        """A compare-and-set over "absent" won on the arbiter, but a lower tier holds a newer
        tombstone (a delete from a clock ahead of this one, kept after the arbiter lost it):
        move the value past it, by a compare-and-set on the arbiter (so a later write is never
        overwritten), then copy it down again. Returns the framed bytes the chain now holds."""
        ahead = self._newer_below(key, data, behind)
        if ahead is None:
            return data
        stamps.clock.observe(ahead)
        read = self._arbitrate(lambda t: t.get_versioned(key), "get_versioned", key)
        if read is None or version_of(read.value) != version_of(data):
            return data  # a later write replaced it: that one decides
        newer = stamps.with_version(data, stamps.clock.now())
        token = read.token
        if self._arbitrate(lambda t: t.set_if(key, newer, token, ttl), "set_if", key):
            self.counters.add("repairs")
            for index in reversed(self.layout.shared):
                if index != self.layout.arbiter:
                    with contextlib.suppress(BackendError):
                        self._call(
                            index, partial(write_if_newer, key=key, data=newer, ttl=ttl), "write"
                        )
            return newer
        return data  # pragma: no cover - a later write won the race: it decides

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

    def _arm_replay(self) -> None:
        """Probe the shared tiers that are down in ``retry_after`` seconds, from a timer thread:
        one that answers gets the writes it missed at once, instead of on this process's next
        call to it (which may never come). This bounds how long a write that went around the
        arbiter stays unseen by other processes' near caches."""
        if self._clock is not time.monotonic:
            return  # a test's own clock: no timer in real time (probes happen on calls)
        with self._replay_lock:
            if self._closed or (self._replay_timer is not None and self._replay_timer.is_alive()):
                return
            timer = threading.Timer(self.retry_after, self._replay)
            timer.daemon = True
            timer.name = "session-store-tier-probe"
            self._replay_timer = timer
        timer.start()

    def _replay(self) -> None:
        """The timer of :meth:`_arm_replay`: probe each shared tier that is down (a read of one
        key it missed); one that answers is marked up, which reconciles what it missed. Armed
        again while one is still down."""
        with self._replay_lock:
            self._replay_timer = None
        still_down = False
        for index in self.layout.shared:
            if self._closed or not self.breakers.health[index].down:
                continue
            probe = partial(_probe, key=min(self.breakers.missed[index], default="probe"))
            try:
                found = self._call(index, probe, "probe", force=True)
            except BackendError:
                found = _DOWN
            still_down = still_down or found is _DOWN
        if still_down:
            self._arm_replay()

    def _flush_missed(self) -> None:
        """Bring every tier up to date with the writes it missed, before the chain (and the
        memory of what was missed) goes away: best effort, a tier still down keeps missing
        them."""
        for index in self.layout.shared:
            missed = self.breakers.take_all_missed(index)
            if not missed:
                continue
            try:
                self._reconcile(index, missed)
            except BackendError as exc:
                log.warning(
                    "closing: %d keys tier %d missed could not be brought up to date: %s",
                    len(missed),
                    index,
                    exc.message,
                )

    @classmethod
    def from_backends(cls, tiers: Sequence[SessionBackend], **options: Any) -> TieredBackend:
        """Same as the constructor; reads well beside :func:`open_backend`."""
        return cls(tiers, **options)
