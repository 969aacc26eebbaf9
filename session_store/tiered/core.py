"""What the sync chain and its async twin share besides their I/O sequences: construction, the
description, the invalidation stream, and the breaker bookkeeping around a tier call.

:class:`ChainCore` is the first base of :class:`~session_store.tiered.base.TieredBase` and of
:class:`~session_store.aio.tiered_base.AsyncTieredBase`; each of them brings only what is
awaited or not: the tier call itself (``_call``), the sequence runner (``_run``), the probe
timer. The runner stays written twice, on purpose: one shared through an iterator object cost
about 7,000 instructions (4-14 %) per chain operation, measured with callgrind. The near cache
is process memory, run inline by both (the async chain through the memory tier's sync view,
:meth:`ChainCore._near_view`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from session_store import forksafe
from session_store.backend import Scope, SessionBackend
from session_store.counters import COUNTER_NAMES, Counters
from session_store.errors import BackendError, BackendUnavailableError, ConfigurationError
from session_store.tiered import policy, read_steps
from session_store.tiered.breakers import Breakers
from session_store.tiered.near import NearState, Subscription
from session_store.tiered.nearcache import NearCache
from session_store.tiered.steps import DOWN
from session_store.ttl import normalize_ttl

__all__ = [
    "DEFAULT_MAX_STALENESS",
    "DEFAULT_RETRY_AFTER",
    "DEFAULT_TOMBSTONE_TTL",
    "STALENESS_MARGIN",
    "TIERED_COUNTER_NAMES",
    "ChainCore",
    "ChainCounters",
]

log = logging.getLogger("session_store.tiered")

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

_SCOPE_ORDER = (Scope.PROCESS, Scope.HOST, Scope.NETWORK)


class ChainCounters(Counters):
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


class ChainCore:
    """Construction and bookkeeping of a chain, sync or async (arguments: see
    :class:`~session_store.tiered.TieredBackend`)."""

    #: The class every tier must be, and the error saying so.
    _TIER_KIND: ClassVar[tuple[type, str]]
    #: Whether the chain's ``get`` is the near-cache hit path itself (the sync chain's is; the
    #: async chain's ``get`` awaits what the hit path hands back).
    _GET_IS_HIT_PATH: ClassVar[bool]

    #: ``touch(key, None)`` restarts a session's expiry with the TTL it was written with.
    keeps_own_ttl = True

    tiers: tuple[Any, ...]

    def __init__(
        self,
        tiers: Sequence[Any],
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
        kind, rule = self._TIER_KIND
        if not tiers:
            raise ConfigurationError("a tiered backend needs at least one tier")
        if not all(isinstance(tier, kind) for tier in tiers):
            raise ConfigurationError(rule)
        if stamps is not None and not isinstance(stamps, bool):
            raise ConfigurationError(f"stamps must be True or False, got {stamps!r}")
        self.tiers = tuple(tiers)
        self.retry_after = normalize_ttl(retry_after, what="retry_after") or 0.0
        staleness = normalize_ttl(max_staleness, what="max_staleness")
        self.max_staleness = DEFAULT_MAX_STALENESS if staleness is None else staleness
        self.tombstone_ttl = normalize_ttl(tombstone_ttl, what="tombstone_ttl")
        self.max_missed = max_missed
        self._clock = clock
        self.counters: ChainCounters = ChainCounters(names=TIERED_COUNTER_NAMES)
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
        near_tiers = [(i, self._near_view(self.tiers[i])) for i in self.layout.near]
        self.nearcache = NearCache(
            near_tiers, self.near, self.counters, self.breakers.check_evictions, clock
        )
        # its public get: a miss there is the check of a key ``get`` was given (see read_steps)
        self._near0: SessionBackend | None = near_tiers[0][1] if near_tiers else None
        self._near_get: Callable[[str], Any] | None = None
        if self._near0 is not None:
            self._near_get = read_steps.near_get(self, self._near0, self._past_near)
            if self._GET_IS_HIT_PATH:
                self.get = self._near_get
        self._subscription: Subscription | None = None
        self._resubscribe = False
        self._closed = False
        self._reset_replay()
        forksafe.register(self)
        if self.layout.near and invalidation:
            self._subscribe()

    def _near_view(self, tier: Any) -> SessionBackend:
        """The sync backend the near cache runs on for the process-local ``tier``."""
        return tier  # type: ignore[no-any-return]

    def _past_near(self, key: str, near_copy: bytes | None) -> Any:
        """What the hit path does with a key it cannot serve (:func:`.read_steps.near_get`)."""
        raise NotImplementedError

    def _reset_replay(self) -> None:
        """Forget the probe timer (a new chain, or a forked child, where it did not fork)."""
        raise NotImplementedError

    def _arm_replay(self) -> None:
        """Probe the tiers that are down after ``retry_after``."""
        raise NotImplementedError

    def _reset_locks(self) -> None:
        """In a forked child (see :mod:`session_store.forksafe`; the breakers and the near
        state reset their own locks): the stream's thread did not fork, so the next read that
        misses the near cache starts a new one (never here, inside the fork handler); nor did
        the probe timer's, which the next tier that goes down arms again."""
        self._reset_replay()
        if self._subscription is not None:
            self._subscription = None
            self._resubscribe = True

    # -- description ---------------------------------------------------------------------------
    @property
    def scope(self) -> Scope:
        """The widest scope of its tiers: who else can see data written through it."""
        scopes: list[Scope] = [tier.scope for tier in self.tiers]
        return max(scopes, key=_SCOPE_ORDER.index)

    def describe(self) -> str:
        return " | ".join(tier.describe() for tier in self.tiers)

    @property
    def coherent(self) -> bool:
        """Whether the near cache is kept coherent by a connected invalidation stream."""
        return self.near.coherent_since != math.inf

    @property
    def _lock(self) -> Any:
        """The breakers' lock (the chain's own lock before they moved to :mod:`.breakers`)."""
        return self.breakers.lock

    def tier_states(self) -> list[dict[str, Any]]:
        """Per tier: its description, role, whether it is down, keys it missed, its counters."""
        return [
            {
                "backend": tier.describe(),
                "role": self._role(index),
                "down": health.down,
                "fenced": False,
                "missed": len(self.breakers.missed[index]),
                "counters": tier.counters.as_dict(),
            }
            for index, (tier, health) in enumerate(
                zip(self.tiers, self.breakers.health, strict=True)
            )
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

    def _stream_after_fork(self) -> None:
        """A forked child subscribes to its own stream, on its first read past the near cache."""
        if self._resubscribe:
            self._resubscribe = False
            self._subscribe()

    def on_invalidate(self, keys: list[str] | None) -> None:
        """From the stream: ``keys`` changed elsewhere (``None``: everything)."""
        self.nearcache.on_invalidate(keys)

    def on_connected(self) -> None:
        """From the stream: connected; copies checked from now on are trusted until dropped."""
        self.nearcache.on_connected()

    def on_heard(self, age: float) -> None:
        """From the stream: it handled every invalidation sent before ``age`` seconds ago (the
        answer to its ping): copies it vouches for are trusted ``max_staleness`` past that."""
        self.nearcache.on_heard(age)

    def on_disconnected(self) -> None:
        """From the stream: down; copies fall back to the ``max_staleness`` check."""
        self.nearcache.on_disconnected()

    # -- the bookkeeping around a tier call ----------------------------------------------------
    def _skipped(self, index: int) -> Any:
        """The breaker skips tier ``index``: count the fallback, make sure a probe is armed."""
        self._arm_replay()  # (a no-op while the timer runs; a forked child starts its own)
        self.counters.add("fallbacks")
        self.tiers[index].counters.add("fallbacks")
        return DOWN

    def _unavailable(
        self, index: int, exc: BackendUnavailableError, start: float, op: str, key: str | None
    ) -> Any:
        """Tier ``index`` raised unavailable: it is down. An arbitrated call (``key`` given)
        raises, typed; any other falls back (:data:`DOWN`). The timer's probe (``op`` is
        ``"probe"``) goes into its own histogram, ``probe_unavailable``, and is no fallback:
        ``unavailable`` then counts only the callers' calls that waited for the tier."""
        tier = self.tiers[index]
        probe = op == "probe"
        tier.counters.observe(
            "probe_unavailable" if probe else "unavailable", time.perf_counter() - start
        )
        self.breakers.mark_down(index, exc)
        if probe:
            return DOWN  # the timer arms itself again while a tier is down
        if key is None:
            return self._skipped(index)
        self.counters.add("errors")
        raise BackendUnavailableError(
            f"the chain's arbiter is unavailable, cannot {op}: {exc.message}",
            key=key,
            backend=tier.describe(),
        ) from None

    def _answered(self, index: int, op: str, start: float) -> bool:
        """Tier ``index`` answered: its time goes into its histogram. Whether it was down (it
        is marked up then, which brings it up to date with what it missed)."""
        self.tiers[index].counters.observe(op, time.perf_counter() - start)
        return self.breakers.health[index].down_since is not None

    def _all_down(self, what: str, key: str | None = None) -> BackendUnavailableError:
        self.counters.add("errors")
        return BackendUnavailableError(
            f"no durable tier is available, cannot {what}", key=key, backend=self.describe()
        )
