"""The tiered chain's plumbing: the calls to one tier (:meth:`TieredBase._call`,
:meth:`TieredBase._arbitrate`) and :meth:`TieredBase._run`, which performs the I/O sequences of
:mod:`.steps`, :mod:`.read_steps` and :mod:`.cas_steps` (the async chain performs the same
sequences with awaits). Construction, the description, the invalidation stream and the breaker
bookkeeping are :class:`~session_store.tiered.core.ChainCore`'s, shared with the async chain.
Every tier call goes through :func:`~session_store.backend_base.trusted`: the chain checked the
arguments once.

The chain is built in layers, one job per module, as the async twin is
(:mod:`session_store.aio.tiered`): this base; :mod:`.reconcile` (the probe timer, the flush on
close); :mod:`.reads` (single-key reads); :mod:`.bulk` (``get_many``, ``scan``); :mod:`.cas`
(``get_versioned``, ``set_if``); :mod:`.backend` (writes, deletes, life cycle).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from functools import cached_property, partial
from operator import methodcaller
from time import perf_counter
from typing import Any, TypeVar

from session_store.backend import SessionBackend
from session_store.backend_base import trusted
from session_store.errors import BackendUnavailableError
from session_store.tiered import read_steps, steps, writes
from session_store.tiered.core import (
    DEFAULT_MAX_STALENESS,
    DEFAULT_RETRY_AFTER,
    DEFAULT_TOMBSTONE_TTL,
    STALENESS_MARGIN,
    TIERED_COUNTER_NAMES,
    ChainCore,
    ChainCounters,
    log,
)
from session_store.tiered.steps import DOWN, Direct, OnArbiter, OnTier, Step, Steps
from session_store.tiered.writes import ORDERED_WRITES

__all__ = [
    "DEFAULT_MAX_STALENESS",
    "DEFAULT_RETRY_AFTER",
    "DEFAULT_TOMBSTONE_TTL",
    "DOWN",
    "STALENESS_MARGIN",
    "TIERED_COUNTER_NAMES",
    "TieredBase",
    "log",
]

T = TypeVar("T")
R = TypeVar("R")

#: The helpers a step may name besides a tier method (see :mod:`.steps`).
_HELPERS: dict[str, Callable[..., Any]] = {**ORDERED_WRITES, "listed": read_steps.listed}


class TieredBase(ChainCore, SessionBackend):  # type: ignore[override]
    """The plumbing of :class:`~session_store.tiered.TieredBackend` (see there)."""

    _TIER_KIND = (SessionBackend, "every tier must be a SessionBackend")
    _GET_IS_HIT_PATH = True
    tiers: tuple[SessionBackend, ...]
    counters: ChainCounters

    @cached_property
    def _bound(self) -> dict[tuple[int, str], Callable[..., Any]]:
        """The ordered writes of :class:`OnTier` steps, bound per ``(tier index, name)``."""
        return {}

    def _reset_replay(self) -> None:
        self._replay_lock = threading.Lock()
        self._replay_timer: threading.Timer | None = None

    def _past_near(self, key: str, near_copy: bytes | None) -> bytes | None:
        """``get`` once the near cache could not serve ``key`` (see :func:`.read_steps.get`)."""
        return self._run(read_steps.get(self, key, near_copy))

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

    def _call(
        self,
        index: int,
        fn: Callable[[SessionBackend], T],
        op: str,
        *,
        force: bool = False,
        key: str | None = None,
    ) -> T:
        """``fn`` on tier ``index``; :data:`DOWN` if the tier is (or just went) down.

        ``force``: call it even if the breaker says to skip it. ``key``: an arbitrated call,
        whose unavailable tier raises, typed. Other :class:`BackendError` propagate. The time
        taken goes into the tier's histogram.
        """
        down = self.breakers.health[index].down_since is not None
        if down and not force and self.breakers.skips(index):
            return self._skipped(index)  # type: ignore[no-any-return]
        start = time.perf_counter()
        try:
            result = fn(self.tiers[index])
        except BackendUnavailableError as exc:
            return self._unavailable(index, exc, start, op, key)  # type: ignore[no-any-return]
        if self._answered(index, op, start):
            self._mark_up(index)
        return result

    def _arbitrate(self, fn: Callable[[SessionBackend], T], op: str, key: str) -> T:
        """``fn`` on the arbiter, whatever the breaker says; unavailable: raised, typed."""
        return self._call(self.layout.arbiter, fn, op, force=True, key=key)

    # -- running the I/O sequences of :mod:`.steps` ----------------------------------------------
    def _run(self, sequence: Steps[R], primed: Iterable[tuple[int, bool, Any]] = ()) -> R:
        """Perform the calls ``sequence`` yields, one after the other; a call that raises is
        thrown back into it. Returns what it returns.

        ``primed``: the outcomes of its first calls, made already (:mod:`.straight`), each
        ``(tier, raised, result or exception)``: handed to it as if made now."""
        send: Callable[[Any], Step] = sequence.send
        value: Any = None
        for tier, raised, outcome in primed:
            step = send(value)
            assert type(step) is OnTier and step.tier == tier, (step, tier)
            value, send = outcome, sequence.throw if raised else sequence.send
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
        if type(step) is OnTier:  # (every write's path: :meth:`_call`, inlined)
            index = step.tier
            health = self.breakers.health[index]
            if health.down_since is not None and not step.force and self.breakers.skips(index):
                return self._skipped(index)
            bound = self._bound.get((index, step.fn))
            if bound is None:
                bound = self._bind(index, step.fn)
            start = perf_counter()
            try:
                result = bound(*step.args)
            except BackendUnavailableError as exc:
                return self._unavailable(index, exc, start, step.what, None)
            self.tiers[index].counters.observe(step.what, perf_counter() - start)
            if health.down_since is not None:  # it was down: it is up now
                self._mark_up(index)
            return result
        helper = _HELPERS.get(step.fn)
        args = step.args
        call: Callable[[SessionBackend], Any]
        if helper is None:  # a tier method: the checks ran once, in the chain
            method = methodcaller(step.fn, *args)
            call = lambda t: method(trusted(t))  # noqa: E731
        else:
            call = lambda t: helper(t, *args)  # noqa: E731
        if type(step) is OnArbiter:
            return self._arbitrate(call, step.what, step.key)
        assert type(step) is Direct
        return call(self.tiers[step.tier])

    def _bind(self, index: int, fn: str) -> Callable[..., Any]:
        """What an :class:`OnTier` step naming ``fn`` calls on tier ``index``: an ordered write
        bound once (:func:`~.writes.bound`), or the tier method, looked up on every call."""
        if fn in ORDERED_WRITES:
            bound = self._bound[index, fn] = writes.bound(fn, self.tiers[index])
            return bound
        if fn in _HELPERS:
            return partial(_HELPERS[fn], self.tiers[index])
        tier = self.tiers[index]
        return lambda *args: getattr(trusted(tier), fn)(*args)
