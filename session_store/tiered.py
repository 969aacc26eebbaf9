"""The tiered backend: several backends chained fastest first, itself a backend.

* **Reads** go top-down; a hit in a lower tier is *promoted* into the tiers above it with the
  TTL it has left, so the next read is served from the top.
* **Writes and deletes** go to every tier, lowest (most durable) first, so a value is never in a
  fast tier without being in the durable one below it.
* **scan** is the union of every tier's keys, without duplicates.
* **Compare-and-set** is arbitrated by the first tier whose scope is wider than ``process`` (the
  first tier other processes also see); after it succeeds the other tiers are written. When the
  arbiter is down, the next shared tier arbitrates; when no tier is shared, the lowest does.
* **Tier outages**: a tier that raises :class:`BackendUnavailableError` is skipped and the call
  succeeds on the others. The transition is logged once (down, and up again) and every skipped
  call counts as a ``fallback``. A down tier is not called again until ``retry_after`` seconds
  have passed (a circuit breaker), so a dead server does not cost a timeout per call; then one
  call probes it while the others keep skipping it, and it is marked up when that call succeeds.
* **What a down tier missed** is recorded: the keys written or deleted while it was down. When it
  comes back, those keys are deleted from it before it serves anything again, so it can never
  serve a copy older than the write it missed (DESIGN.md, "Tiers"). If more than
  ``max_missed`` keys pile up, the tier is fenced: it keeps receiving writes but never serves a
  read again in this process, because its older copies can no longer be found and removed.
* **Write stamps** (``stamps=True``, see :mod:`session_store.stamps`): every value is stored with
  a hybrid-logical-clock stamp, and a read that the process-local tiers do not answer compares the
  copies of every shared tier: the newest stamp wins and older copies are repaired. This covers
  what the missed-keys record cannot: writes made by *other* processes while a tier was down (a
  Redis restarted from an older append-only file serves no stale copy to anyone). Deletes made
  while a shared tier is down leave tombstones in the tiers that took them.
* **Near-cache coherence** (``max_staleness=S``): the process-local tiers above the first shared
  tier serve a key only within ``S`` seconds of the moment its copy was last checked against the
  shared tiers (read through them, or written by this process); after that the next read goes to
  the shared tiers and refreshes the copy. So a process never serves a value more than ``S``
  seconds older than another process's write, and always reads back its own writes at once.

With neither option the behaviour (and the stored bytes) are those of the plain chain, except
that a read strips the stamp header from values a chain with stamps wrote (and takes a tombstone
for absent), so that processes can be switched to stamps one at a time. With ``max_staleness``,
``scan`` lists the shared tiers only (the near cache may hold keys other processes deleted).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

from session_store import forksafe, stamps
from session_store.backend import Scope, SessionBackend, Versioned, VersionToken, ensure_bytes
from session_store.counters import COUNTER_NAMES, Counters
from session_store.errors import BackendError, BackendUnavailableError, ConfigurationError
from session_store.keys import validate_key, validate_scan_prefix
from session_store.ttl import NO_EXPIRY, normalize_ttl

__all__ = ["TIERED_COUNTER_NAMES", "TierState", "TieredBackend"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The counters of a tiered backend: every backend's, plus ``repairs`` (older copies replaced by
#: the newest stamped one), ``revalidations`` (near-cache copies checked against the shared
#: tiers) and ``tombstones`` (keys deleted while a shared tier was down).
TIERED_COUNTER_NAMES = (*COUNTER_NAMES, "repairs", "revalidations", "tombstones")

#: Default seconds a tombstone lives (see :class:`TieredBackend`).
DEFAULT_TOMBSTONE_TTL = 86_400.0

# A read's findings in one tier: (tier index, stored bytes, TTL left or None if not read yet).
_Hit = tuple[int, bytes, float | None]


def _get_many(tier: SessionBackend, keys: list[str]) -> dict[str, bytes]:
    return tier.get_many(keys)


def _ttl_of(tier: SessionBackend, key: str) -> float | None:
    return tier.ttl(key)


def _set_if(
    tier: SessionBackend, key: str, stored: bytes, token: VersionToken | None, left: float
) -> bool:
    return tier.set_if(key, stored, token, _ttl_arg(left))


def _ttl_arg(left: float) -> float | None:
    """The TTL to write a copy with, from the TTL another copy has left."""
    return None if left == NO_EXPIRY else max(left, 0.001)


class TierState:
    """Health of one tier as the tiered backend sees it."""

    __slots__ = ("down_since", "fenced", "invalidated", "missed", "retry_at")

    def __init__(self) -> None:
        self.down_since: float | None = None
        self.retry_at = 0.0
        self.missed: set[str] = set()
        self.fenced = False
        self.invalidated = 0

    @property
    def down(self) -> bool:
        """Whether the last call to this tier found it unavailable."""
        return self.down_since is not None


class TieredBackend(SessionBackend):
    """Backends chained fastest first (for example memory, then Redis, then disk).

    Args:
        tiers: at least one backend, fastest first. The tiered backend owns them: ``close``
            closes every tier.
        retry_after: seconds a tier that went down is skipped before it is tried again.
        max_missed: most keys remembered per down tier before it is fenced (see module doc).
        clock: monotonic clock in seconds (tests may pass their own).
        stamps: store every value with a write stamp and let the newest copy win across the
            shared tiers (see module doc). Values stored without a stamp still load.
        max_staleness: seconds a process-local tier may serve a copy without checking it against
            the shared tiers; ``None`` (default): until it is evicted or expires.
        tombstone_ttl: seconds a tombstone (``stamps=True``, a delete while a shared tier was
            down) lives; make it at least the longest session TTL.
    """

    def __init__(
        self,
        tiers: Sequence[SessionBackend],
        *,
        retry_after: float = 5.0,
        max_missed: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        stamps: bool = False,
        max_staleness: float | None = None,
        tombstone_ttl: float = DEFAULT_TOMBSTONE_TTL,
    ) -> None:
        tiers = list(tiers)
        if not tiers:
            raise ConfigurationError("a tiered backend needs at least one tier")
        if not all(isinstance(tier, SessionBackend) for tier in tiers):
            raise ConfigurationError("every tier must be a SessionBackend")
        if not isinstance(stamps, bool):
            raise ConfigurationError(f"stamps must be True or False, got {stamps!r}")
        self.tiers: tuple[SessionBackend, ...] = tuple(tiers)
        self.retry_after = normalize_ttl(retry_after, what="retry_after") or 0.0
        self.max_missed = max_missed
        self.stamps = stamps
        self.max_staleness = normalize_ttl(max_staleness, what="max_staleness")
        self.tombstone_ttl = normalize_ttl(tombstone_ttl, what="tombstone_ttl")
        self._clock = clock
        self._states = tuple(TierState() for _ in self.tiers)
        self._lock = threading.Lock()
        self.counters = Counters(names=TIERED_COUNTER_NAMES)
        forksafe.register(self)
        shared = [i for i, tier in enumerate(self.tiers) if tier.scope is not Scope.PROCESS]
        self._arbiters = shared or [len(self.tiers) - 1]
        # The near cache: the process-local tiers above the first shared tier (none if no tier
        # is shared). The others are the backing tiers, which stamps are compared across.
        self._cache_end = shared[0] if shared else 0
        self._plain = not stamps and self.max_staleness is None
        # Near-cache checks: key -> (monotonic deadline, hash of the exact stored bytes checked).
        # A bytes object caches its hash, so checking the copy the memory tier hands back (the
        # same object every time) is O(1), and no value is kept alive here.
        self._fresh: dict[str, tuple[float, int]] = {}
        self._prune_at = 1024

    def _reset_locks(self) -> None:
        """In a forked child: a new, released lock (see :mod:`session_store.forksafe`)."""
        self._lock = threading.Lock()

    @property
    def scope(self) -> Scope:  # type: ignore[override]
        """The widest scope of its tiers: who else can see data written through it."""
        order = (Scope.PROCESS, Scope.HOST, Scope.NETWORK)
        return max((tier.scope for tier in self.tiers), key=order.index)

    def describe(self) -> str:
        return " | ".join(tier.describe() for tier in self.tiers)

    def tier_states(self) -> list[dict[str, Any]]:
        """Per tier: its description, whether it is down or fenced, keys it missed, counters."""
        return [
            {
                "backend": tier.describe(),
                "down": state.down,
                "fenced": state.fenced,
                "missed": len(state.missed),
                "counters": tier.counters.as_dict(),
            }
            for tier, state in zip(self.tiers, self._states, strict=True)
        ]

    # -- health --------------------------------------------------------------------------------
    def _may_call(self, index: int) -> bool:
        """Whether tier ``index`` is up or due for a probe (without claiming the probe)."""
        state = self._states[index]
        return state.down_since is None or self._clock() >= state.retry_at

    def _probe(self, index: int) -> bool:
        """Claim the probe of a down tier if it is due, and drop the keys it missed.

        Claiming pushes ``retry_at`` forward, so concurrent callers keep skipping the tier while
        one caller finds out whether it is back (a paused server costs one timeout per
        ``retry_after``, not one per thread). The tier is marked up when the probing call succeeds
        (:meth:`_mark_up`).
        """
        state = self._states[index]
        with self._lock:
            now = self._clock()
            if now < state.retry_at:
                return False
            state.retry_at = now + self.retry_after
            missed = list(state.missed)
        if missed:
            tier = self.tiers[index]
            start = time.perf_counter()
            try:
                tier.delete_many(missed)
            except BackendUnavailableError:
                tier.counters.observe("unavailable", time.perf_counter() - start)
                return False
            tier.counters.observe("delete_many", time.perf_counter() - start)
            with self._lock:
                state.missed.difference_update(missed)
                state.invalidated += len(missed)
        return True

    def _mark_up(self, index: int) -> None:
        """A call to a tier that was down succeeded: it is up, unless it missed more meanwhile."""
        state = self._states[index]
        with self._lock:
            if state.down_since is None:
                return
            now = self._clock()
            if state.missed:  # writes skipped it while it was probed: drop those first
                state.retry_at = now
                return
            down_for = now - state.down_since
            state.down_since = None
            invalidated, state.invalidated = state.invalidated, 0
        log.warning(
            "tier %d (%s) is back after %.1f s; %d missed keys invalidated",
            index,
            self.tiers[index].describe(),
            down_for,
            invalidated,
        )

    def _mark_down(self, index: int, exc: BackendError) -> None:
        state = self._states[index]
        with self._lock:
            now = self._clock()
            state.retry_at = now + self.retry_after
            first = state.down_since is None
            if first:
                state.down_since = now
        if first:
            log.warning(
                "tier %d (%s) is down, going on without it: %s",
                index,
                self.tiers[index].describe(),
                exc.message,
            )

    def _missed(self, index: int, keys: Iterable[str]) -> None:
        state = self._states[index]
        with self._lock:
            if state.fenced:
                return
            state.missed.update(keys)
            if len(state.missed) > self.max_missed:
                state.fenced = True
                state.missed.clear()
                log.error(
                    "tier %d (%s) missed more than %d writes while down; it will no longer "
                    "serve reads in this process",
                    index,
                    self.tiers[index].describe(),
                    self.max_missed,
                )

    def _call(
        self,
        index: int,
        fn: Callable[[SessionBackend], T],
        keys: Iterable[str],
        op: str = "call",
    ) -> tuple[bool, T | None]:
        """Run ``fn`` on tier ``index``; ``(False, None)`` if the tier is or went down.

        The time it took goes into the tier's latency histogram under ``op``.
        """
        state = self._states[index]
        tier = self.tiers[index]
        if state.down_since is not None and not self._probe(index):
            self.counters.add("fallbacks")
            tier.counters.add("fallbacks")  # per tier too: which tier the chain went without
            self._missed(index, keys)
            return False, None
        start = time.perf_counter()
        try:
            result = fn(tier)
        except BackendUnavailableError as exc:
            tier.counters.observe("unavailable", time.perf_counter() - start)
            self._mark_down(index, exc)
            self.counters.add("fallbacks")
            tier.counters.add("fallbacks")
            self._missed(index, keys)
            return False, None
        tier.counters.observe(op, time.perf_counter() - start)
        if state.down_since is not None:
            self._mark_up(index)
        return True, result

    def _all_down(self, what: str, key: str | None = None) -> BackendUnavailableError:
        self.counters.add("errors")
        return BackendUnavailableError(
            f"every tier is unavailable, cannot {what}", key=key, backend=self.describe()
        )

    # -- reads ---------------------------------------------------------------------------------
    def _read_tiers(self) -> Iterator[int]:
        """Indexes of the tiers a read may use, top first (fenced tiers never serve reads)."""
        return (i for i, state in enumerate(self._states) if not state.fenced)

    def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        validate_key(key)
        if not self._plain:
            found = self._read(key)
            if found is None:
                return None
            value = stamps.payload(found[0])
            return None if value is None else (value, found[1])
        reached = False
        for index in self._read_tiers():
            ok, found = self._call(index, lambda t: t.get_with_ttl(key), (), "get_with_ttl")
            if not ok:
                continue
            reached = True
            if found is not None:
                if found[0].startswith(stamps.MAGIC):  # written by a chain with stamps
                    value = stamps.payload(found[0])
                    if value is None:  # a tombstone: absent (and not copied upwards)
                        break
                    self._promote(index, key, *found)
                    found = (value, found[1])
                else:
                    self._promote(index, key, *found)
                self.counters.add("hits")
                return found
        if not reached:
            raise self._all_down("read", key)
        self.counters.add("misses")
        return None

    def get(self, key: str) -> bytes | None:
        if self._plain:
            found = self.get_with_ttl(key)
            return None if found is None else found[0]
        validate_key(key)
        state = self._states[0]
        if self._cache_end and state.down_since is None and not state.fenced:
            # The near-cache hit, inlined: what _read does first, without its bookkeeping.
            now = self._clock()
            tier = self.tiers[0]
            start = time.perf_counter()
            try:
                stored = tier.get(key)
            except BackendUnavailableError:
                stored = None  # _read marks it down and goes on
            else:
                tier.counters.observe("get", time.perf_counter() - start)
            if stored is not None and self._is_fresh(key, stored, now):
                self.counters.add("hits")
                return stamps.payload(stored)
        read = self._read(key)
        return None if read is None else stamps.payload(read[0])

    def _promote(self, hit_index: int, key: str, value: bytes, left: float) -> None:
        """Copy a value found in tier ``hit_index`` into the tiers above it.

        The copy is written only where the key is absent (``set_if`` with no token): a writer that
        stored a newer value in an upper tier after our read must win over our older copy.
        """
        self._promote_range(hit_index, 0, key, value, left)

    def _promote_range(self, hit_index: int, top: int, key: str, value: bytes, left: float) -> None:
        ttl = _ttl_arg(left)
        for index in range(hit_index - 1, top - 1, -1):
            ok, stored = self._call(
                index, lambda t: t.set_if(key, value, None, ttl), (key,), "set_if"
            )
            if ok and stored:
                self.counters.add("promotions")
                self.tiers[index].counters.add("promotions")

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(validate_key(key) for key in keys))
        if not wanted:
            return {}
        if not self._plain:
            return self._read_many(wanted)
        found: dict[str, bytes] = {}
        reached = False
        for index in self._read_tiers():
            ok, got = self._call(index, partial(_get_many, keys=wanted), (), "get_many")
            if not ok or got is None:
                continue
            reached = True
            for key, value in got.items():
                found[key] = value
                if index > 0 and stamps.payload(value) is not None:  # (never a tombstone)
                    # promotion needs the TTL left: one more read, only on a lower hit
                    ok_ttl, left = self._call(index, partial(_ttl_of, key=key), (), "ttl")
                    if ok_ttl and left is not None:
                        self._promote(index, key, value, left)
            wanted = [key for key in wanted if key not in got]
            if not wanted:
                break
        if not reached:
            raise self._all_down("read")
        for key in [key for key, value in found.items() if value.startswith(stamps.MAGIC)]:
            stripped = stamps.payload(found[key])  # written by a chain with stamps
            if stripped is None:  # a tombstone: absent
                del found[key]
                wanted.append(key)
            else:
                found[key] = stripped
        self.counters.add("hits", len(found))
        self.counters.add("misses", len(wanted))
        return found

    def ttl(self, key: str) -> float | None:
        validate_key(key)
        if not self._plain:
            found = self._read(key)
            return None if found is None else found[1]
        reached = False
        for index in self._read_tiers():
            ok, left = self._call(index, lambda t: t.ttl(key), (), "ttl")
            if ok:
                reached = True
                if left is not None:
                    return left
        if not reached:
            raise self._all_down("read a TTL", key)
        return None

    def scan(self, prefix: str = "") -> Iterator[str]:
        validate_scan_prefix(prefix)
        indexes = list(self._read_tiers())
        if self.max_staleness is not None and self._cache_end:
            # The near cache may hold keys other processes deleted: list the shared tiers, and
            # the near cache only if none of them answers.
            shared = [i for i in indexes if i >= self._cache_end]
            seen, reached = self._scan(shared, prefix)
            if reached:
                return iter(seen)
            indexes = [i for i in indexes if i < self._cache_end]
        seen, reached = self._scan(indexes, prefix)
        if not reached:
            raise self._all_down("scan")
        return iter(seen)

    def _scan(self, indexes: list[int], prefix: str) -> tuple[dict[str, None], bool]:
        seen: dict[str, None] = {}
        reached = False
        for index in indexes:
            ok, keys = self._call(index, lambda t: list(t.scan(prefix)), (), "scan")
            if ok and keys is not None:
                reached = True
                seen.update(dict.fromkeys(keys))
        return seen, reached

    # -- reads with stamps or a coherent near cache --------------------------------------------
    def _is_fresh(self, key: str, stored: bytes, now: float) -> bool:
        """Whether the near-cache copy ``stored`` was checked less than max_staleness before
        ``now`` (a time taken when the read began)."""
        if self.max_staleness is None:
            return True
        checked = self._fresh.get(key)
        return checked is not None and now < checked[0] and hash(stored) == checked[1]

    def _mark_fresh(self, key: str, start: float, stored: bytes) -> None:
        """``stored`` is the newest copy of ``key`` as of ``start``: the near cache may serve it
        until ``start + max_staleness``."""
        if self.max_staleness is None or not self._cache_end:
            return
        checked = (start + self.max_staleness, hash(stored))
        with self._lock:
            self._fresh[key] = checked
            if len(self._fresh) > self._prune_at:  # amortised O(1): drop what has lapsed
                now = self._clock()
                for lapsed in [k for k, (deadline, _) in self._fresh.items() if deadline <= now]:
                    del self._fresh[lapsed]
                self._prune_at = max(1024, 2 * len(self._fresh))

    def _forget(self, keys: Iterable[str]) -> None:
        if self.max_staleness is None:
            return
        with self._lock:
            for key in keys:
                self._fresh.pop(key, None)

    def _rank(self, stored: bytes) -> stamps.Stamp:
        return stamps.peek(stored)[0] if self.stamps else stamps.UNSTAMPED

    def _read(self, key: str, *, use_cache: bool = True) -> tuple[bytes, float] | None:
        """The newest stored copy of ``key`` (header included) and its TTL left, or ``None``
        (absent, or a tombstone). Promotes, repairs and refreshes the near cache on the way."""
        start = self._clock()
        reached = False
        stale: dict[int, tuple[bytes, float]] = {}
        if use_cache:
            for index in range(self._cache_end):
                if self._states[index].fenced:
                    continue
                ok, found = self._call(index, lambda t: t.get_with_ttl(key), (), "get_with_ttl")
                if not ok:
                    continue
                reached = True
                if found is None:
                    continue
                if self._is_fresh(key, found[0], start):
                    self.counters.add("hits")
                    if index:
                        self._promote(index, key, *found)
                    return found
                self.counters.add("revalidations")
                stale[index] = found
                break
        hits: list[_Hit] = []
        reached_shared = False
        for index in range(self._cache_end, len(self.tiers)):
            if self._states[index].fenced:
                continue
            ok, found = self._call(index, lambda t: t.get_with_ttl(key), (), "get_with_ttl")
            if not ok:
                continue
            reached_shared = True
            if found is not None:
                hits.append((index, found[0], found[1]))
                if not self.stamps:
                    break
        if not reached_shared:
            if stale:  # no shared tier answers: the near-cache copy is all there is
                self.counters.add("fallbacks")
                self.counters.add("hits")
                return next(iter(stale.values()))
            if not reached:
                raise self._all_down("read", key)
            self.counters.add("misses")
            return None
        settled = self._settle(key, start, hits, stale, use_cache)
        if settled is None or settled[1] is None:  # (the TTL is known: every hit read it)
            self.counters.add("misses")
            return None
        self.counters.add("hits")
        return settled[0], settled[1]

    def _read_many(self, wanted: list[str], *, use_cache: bool = True) -> dict[str, bytes]:
        """:meth:`get_many` with stamps or a coherent near cache (stamps stripped)."""
        start = self._clock()
        reached = False
        found: dict[str, bytes] = {}
        stale: dict[str, dict[int, tuple[bytes, float | None]]] = {}
        remaining = wanted
        if use_cache:
            for index in range(self._cache_end):
                if self._states[index].fenced or not remaining:
                    continue
                ok, got = self._call(index, partial(_get_many, keys=remaining), (), "get_many")
                if not ok or got is None:
                    continue
                reached = True
                for key, stored in got.items():
                    if self._is_fresh(key, stored, start):
                        found[key] = stored
                    elif key not in stale:
                        self.counters.add("revalidations")
                        stale[key] = {index: (stored, None)}
                remaining = [key for key in remaining if key not in found and key not in stale]
            remaining = [key for key in wanted if key not in found]
        hits: dict[str, list[_Hit]] = {}
        reached_shared = False
        asking = remaining
        for index in range(self._cache_end, len(self.tiers)):
            if self._states[index].fenced or not asking:
                continue
            ok, got = self._call(index, partial(_get_many, keys=asking), (), "get_many")
            if not ok or got is None:
                continue
            reached_shared = True
            for key, stored in got.items():
                hits.setdefault(key, []).append((index, stored, None))
            if not self.stamps:
                asking = [key for key in asking if key not in got]
        if not reached_shared and remaining:
            if not stale and not reached and not found:
                raise self._all_down("read")
            for key, copies in stale.items():
                self.counters.add("fallbacks")
                found[key] = next(iter(copies.values()))[0]
        elif remaining:
            for key in remaining:
                settled = self._settle(key, start, hits.get(key, []), stale.get(key, {}), use_cache)
                if settled is not None:
                    found[key] = settled[0]
        out: dict[str, bytes] = {}
        for key in wanted:
            if key not in found:
                continue
            value = stamps.payload(found[key])
            if value is not None:
                out[key] = value
        self.counters.add("hits", len(out))
        self.counters.add("misses", len(wanted) - len(out))
        return out

    def _left(self, index: int, key: str, left: float | None) -> float | None:
        """The TTL left of ``key`` in tier ``index``, read if not known yet."""
        if left is not None:
            return left
        ok, read = self._call(index, lambda t: t.ttl(key), (), "ttl")
        return read if ok else None

    def _settle(
        self,
        key: str,
        start: float,
        hits: list[_Hit],
        stale: Mapping[int, tuple[bytes, float | None]],
        use_cache: bool,
    ) -> tuple[bytes, float | None] | None:
        """Pick the newest of the shared tiers' copies, repair and promote, refresh the near
        cache. The newest copy and its TTL left (``None`` if not read), or ``None`` if the key is
        absent or a tombstone."""
        newest: _Hit | None = None
        rank = stamps.UNSTAMPED
        for hit in hits:  # top first: an equal stamp keeps the upper copy
            hit_rank = self._rank(hit[1])
            if newest is None or hit_rank > rank:
                newest, rank = hit, hit_rank
        if newest is None or stamps.peek(newest[1])[1]:
            if newest is not None:
                self._repair(key, newest, rank, hits)
            if use_cache:
                for index, (stored, _) in stale.items():
                    self._drop_if(index, key, stored)
                self._forget([key])
            return None
        if self.stamps and rank is not stamps.UNSTAMPED:
            stamps.clock.observe(rank)
        best_index, best, left = newest
        left = self._repair(key, newest, rank, hits)
        holding = {index for index, _, _ in hits}
        top = 0 if use_cache else self._cache_end
        for index in range(best_index - 1, top - 1, -1):
            if index in stale:
                stored = stale[index][0]
                if stored is not best and stored != best:
                    left = left if left is not None else self._left(best_index, key, None)
                    if left is not None:
                        self._replace_if(index, key, stored, best, left)
            elif index not in holding:
                left = left if left is not None else self._left(best_index, key, None)
                if left is not None:
                    self._promote_range(index + 1, index, key, best, left)
        if use_cache:
            self._mark_fresh(key, start, best)
        return best, left

    def _repair(self, key: str, newest: _Hit, rank: stamps.Stamp, hits: list[_Hit]) -> float | None:
        """Replace the older copies among ``hits`` by ``newest``; the TTL left of ``newest``."""
        best_index, best, left = newest
        for index, stored, _ in hits:
            if stored is best or stored == best or self._rank(stored) >= rank:
                continue
            left = left if left is not None else self._left(best_index, key, None)
            if left is not None and self._replace_if(index, key, stored, best, left):
                self.counters.add("repairs")
        return left

    def _replace_if(self, index: int, key: str, expected: bytes, new: bytes, left: float) -> bool:
        """Replace the copy in tier ``index`` by ``new`` if it still is ``expected``."""
        ok, read = self._call(index, lambda t: t.get_versioned(key), (), "get_versioned")
        if not ok or read is None or read.value != expected:
            return False
        ttl = _ttl_arg(left)
        ok, won = self._call(index, lambda t: t.set_if(key, new, read.token, ttl), (key,), "set_if")
        return bool(ok and won)

    def _drop_if(self, index: int, key: str, expected: bytes) -> None:
        """Drop a near-cache copy if it still is ``expected`` (dropping one is always safe: the
        next read goes to the shared tiers)."""
        ok, read = self._call(index, lambda t: t.get_versioned(key), (), "get_versioned")
        if ok and read is not None and read.value == expected:
            self._call(index, lambda t: t.delete(key), (key,), "delete")

    # -- writes --------------------------------------------------------------------------------
    def _write_tiers(
        self, what: str, keys: list[str], fn: Callable[[SessionBackend], T], key: str | None = None
    ) -> list[tuple[int, T]]:
        """Run ``fn`` on every tier, lowest first; ``(index, result)`` of the tiers that answered.

        A tier that fails after a lower tier already took the write is treated as down for these
        keys (recorded as missed, so it is cleaned before it serves them again); a failure before
        any tier took the write is raised, and nothing was written.
        """
        results: list[tuple[int, T]] = []
        for index in range(len(self.tiers) - 1, -1, -1):
            try:
                ok, result = self._call(index, fn, keys, what)
            except BackendError as exc:
                if not results:
                    self.counters.add("errors")
                    raise
                log.error(
                    "tier %d (%s) failed a %s that lower tiers took; fencing the keys: %s",
                    index,
                    self.tiers[index].describe(),
                    what,
                    exc.message,
                )
                self._mark_down(index, exc)
                self._missed(index, keys)
                continue
            if ok:
                results.append((index, result))  # type: ignore[arg-type]
        if not results:
            raise self._all_down(what, key)
        return results

    def _write_all(
        self, what: str, keys: list[str], fn: Callable[[SessionBackend], T], key: str | None = None
    ) -> list[T]:
        """The results of :meth:`_write_tiers`, without the tier indexes."""
        return [result for _, result in self._write_tiers(what, keys, fn, key)]

    def _stamp(self, value: bytes) -> bytes:
        return stamps.wrap(value, stamps.clock.now()) if self.stamps else value

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        validate_key(key)
        value = ensure_bytes(value, key=key)
        ttl = normalize_ttl(ttl)
        if self._plain:
            self._write_all("write", [key], lambda t: t.set(key, value, ttl), key)
        else:
            start = self._clock()
            stored = self._stamp(value)
            self._write_all("write", [key], lambda t: t.set(key, stored, ttl), key)
            self._mark_fresh(key, start, stored)
        self.counters.add("writes")

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        checked = {validate_key(k): ensure_bytes(v, key=k) for k, v in items.items()}
        ttl = normalize_ttl(ttl)
        if not checked:
            return
        if not self._plain:
            start = self._clock()
            stamp = stamps.clock.now()
            if self.stamps:
                checked = {k: stamps.wrap(v, stamp) for k, v in checked.items()}
            self._write_all("write", list(checked), lambda t: t.set_many(checked, ttl))
            for key, stored in checked.items():
                self._mark_fresh(key, start, stored)
        else:
            self._write_all("write", list(checked), lambda t: t.set_many(checked, ttl))
        self.counters.add("writes", len(checked))

    def _existing(self, keys: list[str]) -> Collection[str] | None:
        """With stamps: which of ``keys`` hold a value (not a tombstone) in the shared tiers;
        ``None`` if no shared tier answers."""
        if not self.stamps:
            return None
        try:
            return set(self._read_many(keys, use_cache=False))
        except BackendUnavailableError:
            return None

    def _tombstone(self, keys: list[str], answered: Collection[int]) -> None:
        """With stamps, after a delete: if a shared tier missed it, leave tombstones in the shared
        tiers that took it, so the older copy in the one that missed it never wins a read."""
        if not self.stamps:
            return
        shared = range(self._cache_end, len(self.tiers))
        if all(index in answered for index in shared):
            return
        dead = stamps.tombstone(stamps.clock.now())
        items = dict.fromkeys(keys, dead)
        for index in shared:
            if index in answered:
                self._call(index, lambda t: t.set_many(items, self.tombstone_ttl), keys, "set_many")
        self.counters.add("tombstones", len(keys))

    def delete(self, key: str) -> bool:
        validate_key(key)
        existing = self._existing([key])
        self._forget([key])
        answers = self._write_tiers("delete", [key], lambda t: t.delete(key), key)
        self._tombstone([key], {index for index, _ in answers})
        self.counters.add("deletes")
        if existing is not None:
            return key in existing
        return any(result for _, result in answers)

    def delete_many(self, keys: Iterable[str]) -> int:
        wanted = list(dict.fromkeys(validate_key(key) for key in keys))
        if not wanted:
            return 0
        existing = self._existing(wanted)
        self._forget(wanted)
        # Each tier says how many it held; the union is what existed. Ask the lowest tier per key
        # would cost a read; the largest count is exact whenever lower tiers hold the upper ones.
        answers = self._write_tiers("delete", wanted, lambda t: t.delete_many(wanted))
        self._tombstone(wanted, {index for index, _ in answers})
        self.counters.add("deletes", len(wanted))
        if existing is not None:
            return len(existing)
        return max(result for _, result in answers)

    def touch(self, key: str, ttl: float | None = None) -> bool:
        validate_key(key)
        ttl = normalize_ttl(ttl)
        existing = self._existing([key])
        if existing is not None and key not in existing:
            return False  # absent, or a tombstone: nothing to keep alive
        results = self._write_all("touch", [key], lambda t: t.touch(key, ttl), key)
        return any(results)

    # -- compare-and-set -----------------------------------------------------------------------
    def _arbiter(self) -> int:
        for index in self._arbiters:
            if not self._states[index].fenced and self._may_call(index):
                return index
        raise self._all_down("arbitrate a compare-and-set")

    def get_versioned(self, key: str) -> Versioned | None:
        validate_key(key)
        repairs = 0
        while True:
            index = self._arbiter()
            ok, read = self._call(index, lambda t: t.get_versioned(key), (), "get_versioned")
            if not ok:
                continue
            if self.stamps:
                newer = self._newer_elsewhere(key, index, read) if repairs < 8 else None
                if newer is not None:
                    # The arbiter holds an older copy (it missed writes): bring it up to date
                    # with a compare-and-set of its own, then read again.
                    repairs += 1
                    token = None if read is None else read.token
                    self._call(
                        index,
                        partial(_set_if, key=key, stored=newer[0], token=token, left=newer[1]),
                        (key,),
                        "set_if",
                    )
                    self.counters.add("repairs")
                    continue
                if read is None:
                    return None
                rank, dead = stamps.peek(read.value)
                if rank is not stamps.UNSTAMPED:
                    stamps.clock.observe(rank)
                if dead:
                    return None
                self.counters.add("hits")
                return Versioned(stamps.payload(read.value) or b"", (index, read.token))
            if read is None:
                return None
            value = read.value
            if value.startswith(stamps.MAGIC):  # written by a chain with stamps
                stripped = stamps.payload(value)
                if stripped is None:  # a tombstone: absent
                    return None
                value = stripped
            self.counters.add("hits")
            return Versioned(value, (index, read.token))

    def _newer_elsewhere(
        self, key: str, arbiter: int, read: Versioned | None
    ) -> tuple[bytes, float] | None:
        """A copy in another shared tier newer than the arbiter's ``read`` (absent: any value)."""
        rank = stamps.UNSTAMPED if read is None else stamps.peek(read.value)[0]
        best: tuple[bytes, float] | None = None
        for index in range(self._cache_end, len(self.tiers)):
            if index == arbiter or self._states[index].fenced:
                continue
            ok, found = self._call(index, lambda t: t.get_with_ttl(key), (), "get_with_ttl")
            if not ok or found is None:
                continue
            found_rank, dead = stamps.peek(found[0])
            if read is None:  # the arbiter lacks the key: any value is newer
                if not dead and (best is None or found_rank > rank):
                    best, rank = found, found_rank
            elif found_rank > rank:
                best, rank = found, found_rank
        return best

    def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        validate_key(key)
        value = ensure_bytes(value, key=key)
        ttl = normalize_ttl(ttl)
        start = self._clock()
        stored = self._stamp(value)
        index = self._arbiter()
        if token is None:
            inner: VersionToken | None = None
        elif isinstance(token, tuple) and len(token) == 2 and token[0] == index:
            inner = token[1]
        else:
            return False  # read through another arbiter (it went down since): start over
        ok, won = self._call(index, lambda t: t.set_if(key, stored, inner, ttl), (), "set_if")
        if not ok:
            return False  # the arbiter went down mid-way: the caller retries on the next one
        if not won and inner is None:
            # "Only if absent" and the arbiter holds a tombstone: that is absent, for us.
            ok, read = self._call(index, lambda t: t.get_versioned(key), (), "get_versioned")
            if ok and read is not None and stamps.peek(read.value)[1]:
                dead_token = read.token
                ok, won = self._call(
                    index, lambda t: t.set_if(key, stored, dead_token, ttl), (), "set_if"
                )
                if not ok:
                    return False
        if not won:
            # Another process wrote first; our upper tiers may hold the old copy.
            self._forget([key])
            for upper in range(index):
                self._call(upper, lambda t: t.delete(key), (key,), "delete")
            return False
        for other in range(len(self.tiers) - 1, -1, -1):
            if other != index:
                self._call(other, lambda t: t.set(key, stored, ttl), (key,), "set")
        self._mark_fresh(key, start, stored)
        self.counters.add("writes")
        return True

    def close(self) -> None:
        for tier in self.tiers:
            try:
                tier.close()
            except Exception:  # close every tier even if one fails
                log.exception("closing tier %s failed", tier.describe())

    @classmethod
    def from_backends(cls, tiers: Sequence[SessionBackend], **options: Any) -> TieredBackend:
        """Same as the constructor; reads well beside :func:`open_backend`."""
        return cls(tiers, **options)
