"""The tiered chain's plumbing: construction, description, the invalidation stream, the calls
to one tier (:meth:`TieredBase._call`, :meth:`TieredBase._arbitrate`) with their breaker
bookkeeping, and :meth:`TieredBase._run`, which performs the I/O sequences of :mod:`.steps` and
:mod:`.cas_steps` (the async chain performs the same sequences with awaits). Every tier call
goes through :func:`~session_store.backend_base.trusted`: the chain checked the arguments once.

The chain is built in layers, one job per module, as the async twin is
(:mod:`session_store.aio.tiered`): this base; :mod:`.reconcile` (the probe timer, the flush on
close); :mod:`.reads` (single-key reads); :mod:`.bulk` (``get_many``, ``scan``); :mod:`.cas`
(``get_versioned``, ``set_if``); :mod:`.backend` (writes, deletes, life cycle).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Sequence
from operator import methodcaller
from typing import Any, TypeVar

from session_store import forksafe
from session_store.backend import Scope, SessionBackend
from session_store.backend_base import trusted
from session_store.counters import COUNTER_NAMES, Counters
from session_store.errors import BackendError, BackendUnavailableError, ConfigurationError
from session_store.tiered import policy, steps
from session_store.tiered.breakers import Breakers
from session_store.tiered.near import NearState, Subscription
from session_store.tiered.nearcache import NearCache
from session_store.tiered.policy import Copy, Health
from session_store.tiered.steps import DOWN, Direct, OnArbiter, OnTier, Step, Steps
from session_store.tiered.writes import ORDERED_WRITES
from session_store.ttl import normalize_ttl

__all__ = [
    "DEFAULT_MAX_STALENESS",
    "DEFAULT_RETRY_AFTER",
    "DEFAULT_TOMBSTONE_TTL",
    "DOWN",
    "STALENESS_MARGIN",
    "TIERED_COUNTER_NAMES",
    "TieredBase",
]

log = logging.getLogger("session_store.tiered")

T = TypeVar("T")
R = TypeVar("R")


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


class TieredBase(SessionBackend):
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
        # its public get: a miss there is the check of a key ``get`` was given (see reads)
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

    def _reconcile(self, index: int, keys: Iterable[str]) -> int:
        """Bring tier ``index`` up to the newest copy of each of ``keys`` (ordered writes)."""
        return self._run(steps.reconcile(self, index, keys))

    @abstractmethod
    def _arm_replay(self) -> None:
        """Probe the tiers that are down after ``retry_after`` (:mod:`.reconcile`)."""

    @abstractmethod
    def _fast_get(self) -> Callable[[str], bytes | None]:
        """The chain's ``get`` as a closure over the near-cache hit path (:mod:`.reads`)."""

    def _call(
        self, index: int, fn: Callable[[SessionBackend], T], op: str, *, force: bool = False
    ) -> T:
        """``fn`` on tier ``index``; :data:`DOWN` if the tier is (or just went) down.

        ``force``: call it even if the breaker says to skip it. Other :class:`BackendError`
        propagate. The time taken goes into the tier's histogram.
        """
        health = self.breakers.health[index]
        tier = self.tiers[index]
        if health.down_since is not None and not force and self.breakers.skips(index):
            self._arm_replay()  # (a no-op while the timer runs; a forked child starts its own)
            self.counters.add("fallbacks")
            tier.counters.add("fallbacks")
            return DOWN  # type: ignore[no-any-return]
        start = time.perf_counter()
        try:
            result = fn(tier)
        except BackendUnavailableError as exc:
            tier.counters.observe("unavailable", time.perf_counter() - start)
            self.breakers.mark_down(index, exc)
            self._arm_replay()
            self.counters.add("fallbacks")
            tier.counters.add("fallbacks")
            return DOWN  # type: ignore[no-any-return]
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

    def _collect(
        self, key: str, skip: int | None = None, *, force: bool = False
    ) -> tuple[list[Copy], list[int]]:
        """Every shared tier's copy of ``key`` (tiers that are down skipped, unless ``force``),
        and who answered."""
        return self._run(steps.collect(self, key, skip, force=force))

    # -- running the I/O sequences of :mod:`.steps` ----------------------------------------------
    def _run(self, sequence: Steps[R]) -> R:
        """Perform the calls ``sequence`` yields, one after the other; a call that raises is
        thrown back into it. Returns what it returns."""
        send: Callable[[Any], Step] = sequence.send
        value: Any = None
        while True:
            try:
                step = send(value)
            except StopIteration as done:
                result: R = done.value
                return result
            try:
                value = self._step(step)
            except BaseException as exc:  # thrown back into the sequence, where the call was made
                value, send = exc, sequence.throw
            else:
                send = sequence.send

    def _step(self, step: Step) -> Any:
        helper = ORDERED_WRITES.get(step.fn)
        args = step.args
        call: Callable[[SessionBackend], Any]
        if helper is None:  # a tier method: the checks ran once, in the chain
            method = methodcaller(step.fn, *args)
            call = lambda t: method(trusted(t))  # noqa: E731
        else:
            call = lambda t: helper(t, *args)  # noqa: E731
        if type(step) is OnTier:
            return self._call(step.tier, call, step.what, force=step.force)
        if type(step) is OnArbiter:
            return self._arbitrate(call, step.what, step.key)
        assert type(step) is Direct
        return call(self.tiers[step.tier])

    def _install(self, key: str, best: Copy, began: int, start: float) -> None:
        """Put ``best`` in the near cache, unless ``key`` was invalidated since the read began."""
        self.nearcache.install(key, best, began, start)

    def _drop_near(self, key: str) -> None:
        """Forget ``key`` in the near cache and fence fills in flight."""
        self.nearcache.drop(key)
