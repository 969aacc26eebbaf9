"""The async chain's plumbing and single-key reads (its writes: :mod:`session_store.aio.tiered`,
missed writes and the probe timer: :mod:`session_store.aio.tiered_reconcile`, bulk reads and
listing: :mod:`session_store.aio.tiered_bulk`,
compare-and-set: :mod:`session_store.aio.tiered_cas`).

Everything decided here is decided by the sync chain's own code: the layout, breakers and missed
keys (:class:`~session_store.tiered.breakers.Breakers`), which copy is newest and which tiers a
read repairs (:mod:`session_store.tiered.policy`), and the near cache
(:class:`~session_store.tiered.nearcache.NearCache`, over the memory tier's sync view: a memory
operation is a few dictionary steps, run inline on the loop). Only the I/O is awaited.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from operator import methodcaller
from typing import Any, TypeVar

from session_store import forksafe, stamps
from session_store.aio.backend import AsyncSessionBackend
from session_store.aio.tiered_writes import ORDERED_WRITES, write_if_newer
from session_store.backend import Scope, SessionBackend
from session_store.errors import BackendError, BackendUnavailableError, ConfigurationError
from session_store.keys import validate_key
from session_store.stamps import is_tombstone, unframe
from session_store.tiered import policy, steps
from session_store.tiered.base import (
    DEFAULT_MAX_STALENESS,
    DEFAULT_RETRY_AFTER,
    DEFAULT_TOMBSTONE_TTL,
    STALENESS_MARGIN,
    TIERED_COUNTER_NAMES,
    _ChainCounters,
)
from session_store.tiered.breakers import Breakers
from session_store.tiered.near import NearState, Subscription
from session_store.tiered.nearcache import NearCache
from session_store.tiered.policy import Copy
from session_store.tiered.steps import DOWN, Direct, OnArbiter, OnTier, Step, Steps
from session_store.ttl import normalize_ttl

__all__ = ["DOWN", "AsyncTieredBase"]

log = logging.getLogger("session_store.tiered")

T = TypeVar("T")
R = TypeVar("R")


def _near_view(tier: AsyncSessionBackend) -> SessionBackend:
    """The sync view of a process-local tier (the near cache runs inline on the loop)."""
    sync = getattr(tier, "sync", None)
    if not isinstance(sync, SessionBackend):
        raise ConfigurationError(
            f"a process-local tier of an async chain must offer its sync view (.sync), as "
            f"memory:// does; {tier.describe()} does not"
        )
    return sync


class AsyncTieredBase(AsyncSessionBackend):
    """Plumbing and reads of :class:`~session_store.aio.AsyncTieredBackend` (see there)."""

    keeps_own_ttl = True
    scope = Scope.NETWORK

    def __init__(
        self,
        tiers: Sequence[AsyncSessionBackend],
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
        if not all(isinstance(tier, AsyncSessionBackend) for tier in tiers):
            raise ConfigurationError("every tier of an async chain must be an AsyncSessionBackend")
        if stamps is not None and not isinstance(stamps, bool):
            raise ConfigurationError(f"stamps must be True or False, got {stamps!r}")
        self.tiers: tuple[AsyncSessionBackend, ...] = tuple(tiers)
        self.retry_after = normalize_ttl(retry_after, what="retry_after") or 0.0
        staleness = normalize_ttl(max_staleness, what="max_staleness")
        self.max_staleness = DEFAULT_MAX_STALENESS if staleness is None else staleness
        self.tombstone_ttl = normalize_ttl(tombstone_ttl, what="tombstone_ttl")
        self._clock = clock
        self.counters: _ChainCounters = _ChainCounters(names=TIERED_COUNTER_NAMES)
        self.layout = policy.layout([tier.scope for tier in self.tiers])
        order = (Scope.PROCESS, Scope.HOST, Scope.NETWORK)
        self.scope = max((t.scope for t in self.tiers), key=order.index)  # type: ignore[misc]
        self.breakers = Breakers(
            self.tiers,
            self.layout,
            self.counters,
            retry_after=self.retry_after,
            max_missed=max_missed,
            clock=clock,
        )
        self.breakers.probes_in_background = clock is time.monotonic  # see the sync chain
        self.near = NearState(self.max_staleness * STALENESS_MARGIN, clock)
        near_tiers = [(i, _near_view(self.tiers[i])) for i in self.layout.near]
        self.nearcache = NearCache(
            near_tiers, self.near, self.counters, self.breakers.check_evictions, clock
        )
        self._near0 = near_tiers[0][1] if near_tiers else None
        self._subscription: Subscription | None = None
        self._resubscribe = False
        self._replay_handle: asyncio.TimerHandle | None = None
        self._replay_task: asyncio.Task[None] | None = None
        self._closed = False
        forksafe.register(self)
        if self.layout.near and invalidation:
            self._subscribe()

    def _reset_locks(self) -> None:
        """In a forked child: the stream's thread did not fork; the next slow read starts one.
        Nor did the event loop of the probe timer: the next tier that goes down arms it again."""
        self._replay_handle = None
        self._replay_task = None
        if self._subscription is not None:
            self._subscription = None
            self._resubscribe = True

    def _subscribe(self) -> None:
        subscribe = getattr(self.tiers[self.layout.arbiter], "invalidations", None)
        if subscribe is None:
            return
        try:
            self._subscription = subscribe("", self.nearcache)
        except BackendError as exc:  # no stream: the version check alone keeps the bound
            log.warning("no invalidation stream (%s): near cache re-checks copies", exc.message)

    # -- description ---------------------------------------------------------------------------
    def describe(self) -> str:
        return " | ".join(tier.describe() for tier in self.tiers)

    @property
    def coherent(self) -> bool:
        """Whether the near cache is kept coherent by a connected invalidation stream."""
        return self.near.coherent_since != math.inf

    def tier_states(self) -> list[dict[str, Any]]:
        """Per tier: its description, role, whether it is down, keys it missed, its counters."""
        return [
            {
                "backend": tier.describe(),
                "role": "near cache"
                if index in self.layout.near
                else "arbiter"
                if index == self.layout.arbiter
                else "durable",
                "down": health.down,
                "missed": len(self.breakers.missed[index]),
                "counters": tier.counters.as_dict(),
            }
            for index, (tier, health) in enumerate(
                zip(self.tiers, self.breakers.health, strict=True)
            )
        ]

    # -- calls ---------------------------------------------------------------------------------
    async def _call(
        self,
        index: int,
        fn: Callable[[AsyncSessionBackend], Awaitable[T]],
        op: str,
        *,
        force: bool = False,
    ) -> T:
        """``await fn(tier)``; :data:`DOWN` if the tier is (or just went) down (the sync
        chain's ``_call``: ``force`` ignores the breaker, other errors propagate)."""
        health = self.breakers.health[index]
        tier = self.tiers[index]
        if health.down_since is not None and not force and self.breakers.skips(index):
            self._arm_replay()  # (a no-op while the timer runs; a forked child starts its own)
            self.counters.add("fallbacks")
            tier.counters.add("fallbacks")
            return DOWN  # type: ignore[no-any-return]
        start = time.perf_counter()
        try:
            result = await fn(tier)
        except BackendUnavailableError as exc:
            tier.counters.observe("unavailable", time.perf_counter() - start)
            self.breakers.mark_down(index, exc)
            self._arm_replay()
            self.counters.add("fallbacks")
            tier.counters.add("fallbacks")
            return DOWN  # type: ignore[no-any-return]
        tier.counters.observe(op, time.perf_counter() - start)
        if health.down_since is not None:
            await self._mark_up(index)
        return result

    async def _arbitrate(
        self, fn: Callable[[AsyncSessionBackend], Awaitable[T]], op: str, key: str
    ) -> T:
        """``await fn(arbiter)``, whatever the breaker says; unavailable: raised, typed."""
        index = self.layout.arbiter
        tier = self.tiers[index]
        start = time.perf_counter()
        try:
            result = await fn(tier)
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
            await self._mark_up(index)
        return result

    async def _mark_up(self, index: int) -> None:
        back = self.breakers.mark_up(index)
        if back is not None:
            down_for, missed = back
            self.breakers.log_back(index, down_for, await self._reconcile(index, missed))

    async def _drain_missed(self, index: int) -> None:
        """Tier ``index`` took a write: bring up to date what it missed (refused) before."""
        missed = self.breakers.take_missed(index)
        if missed:
            await self._reconcile(index, missed)

    async def _reconcile(self, index: int, keys: Iterable[str]) -> int:
        """Bring tier ``index`` up to the newest copy of each of ``keys`` (ordered writes)."""
        return await self._run(steps.reconcile(self, index, keys))

    @abstractmethod
    def _arm_replay(self) -> None:
        """Probe the tiers that are down after ``retry_after``
        (:mod:`session_store.aio.tiered_reconcile`)."""

    def _all_down(self, what: str, key: str | None = None) -> BackendUnavailableError:
        self.counters.add("errors")
        return BackendUnavailableError(
            f"no durable tier is available, cannot {what}", key=key, backend=self.describe()
        )

    # -- reads ---------------------------------------------------------------------------------
    async def get(self, key: str) -> bytes | None:
        near = self._near0
        if near is not None:
            try:
                data = near.get(key)
            except BackendUnavailableError:
                data = None  # the slow path reads the shared tiers
            if data is not None:
                state = self.near
                checked = state.checked.get(key)
                if policy.is_fresh(
                    checked, self._clock(), state.coherent_since, state.max_staleness
                ):
                    self.counters.fast_hits += 1
                    return data
                self.counters.add("revalidations")
        else:
            validate_key(key)
        best = await self._read(key)
        return None if best is None else unframe(best.data)

    async def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        validate_key(key)
        best = await self._read(key)
        if best is None:
            return None
        value = unframe(best.data)
        return None if value is None else (value, best.left)

    async def ttl(self, key: str) -> float | None:
        validate_key(key)
        copies, answered = await self._collect(key)
        if not answered:
            raise self._all_down("read a TTL", key)
        best = policy.newest(copies)
        if best is None or is_tombstone(best.data):
            return None
        return best.left

    async def _collect(
        self, key: str, skip: int | None = None, *, force: bool = False
    ) -> tuple[list[Copy], list[int]]:
        """Every shared tier's copy of ``key`` (tiers that are down skipped, unless ``force``),
        and who answered (:func:`session_store.tiered.steps.collect`)."""
        return await self._run(steps.collect(self, key, skip, force=force))

    # -- running the I/O sequences of :mod:`session_store.tiered.steps` ------------------------
    async def _run(self, sequence: Steps[R]) -> R:
        """Await the calls ``sequence`` yields, one after the other; a call that raises is
        thrown back into it (the sync chain's ``_run``). Returns what it returns."""
        send: Callable[[Any], Step] = sequence.send
        value: Any = None
        while True:
            try:
                step = send(value)
            except StopIteration as done:
                result: R = done.value
                return result
            try:
                value = await self._step(step)
            except BaseException as exc:  # thrown back into the sequence, where the call was made
                value, send = exc, sequence.throw
            else:
                send = sequence.send

    async def _step(self, step: Step) -> Any:
        helper = ORDERED_WRITES.get(step.fn)
        args = step.args
        call: Callable[[AsyncSessionBackend], Awaitable[Any]] = (
            methodcaller(step.fn, *args) if helper is None else lambda t: helper(t, *args)
        )
        if type(step) is OnTier:
            return await self._call(step.tier, call, step.what, force=step.force)
        if type(step) is OnArbiter:
            return await self._arbitrate(call, step.what, step.key)
        assert type(step) is Direct
        return await call(self.tiers[step.tier])

    async def _read(self, key: str) -> Copy | None:
        """The newest copy of ``key`` (``None``: absent or deleted); repairs older copies and
        fills the near cache on the way (the sync chain's ``_read``)."""
        if self._resubscribe:
            self._resubscribe = False
            self._subscribe()
        start = self._clock()
        began = self.near.begin()
        copies, answered = await self._collect(key)
        if not answered:
            for index, tier in self.nearcache.tiers:  # the near copy is all there is
                found = tier.get_with_ttl(key)
                if found is not None:
                    self.counters.add("hits")
                    return self.nearcache.copy_of(key, index, found)
            raise self._all_down("read", key)
        best = policy.newest(copies)
        if best is None:
            self.nearcache.drop(key)
            self.counters.add("misses")
            return None
        stamps.clock.observe(best.version)
        await self._repair(key, best, copies, answered)
        if is_tombstone(best.data):
            self.nearcache.drop(key)
            self.counters.add("misses")
            return None
        self.nearcache.install(key, best, began, start)
        self.counters.add("hits")
        return best

    async def _repair(self, key: str, best: Copy, copies: list[Copy], answered: list[int]) -> None:
        """Give the tiers holding an older copy (or none) the newest one, by ordered writes."""
        ttl = policy.copy_ttl(best, self.tombstone_ttl)
        for index in policy.repair_targets(best, copies, answered):
            try:
                wrote = await self._call(
                    index, partial(write_if_newer, key=key, data=best.data, ttl=ttl), "write"
                )
            except BackendError as exc:  # read-only, full: the read goes on without the repair
                self.counters.add("errors")
                log.debug("repair of %r in tier %d failed: %s", key, index, exc.message)
                continue
            if wrote is True:
                self.counters.add("repairs")
                self.tiers[index].counters.add("promotions")
                self.counters.add("promotions")
