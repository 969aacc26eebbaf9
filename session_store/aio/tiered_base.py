"""The async chain's plumbing and single-key reads (its writes: :mod:`session_store.aio.tiered`,
missed writes and the probe timer: :mod:`session_store.aio.tiered_reconcile`, bulk reads and
listing: :mod:`session_store.aio.tiered_bulk`,
compare-and-set: :mod:`session_store.aio.tiered_cas`).

Everything decided here is decided by the sync chain's own code: construction, the description,
the invalidation stream and the breaker bookkeeping
(:class:`~session_store.tiered.core.ChainCore`), the layout, breakers and missed keys
(:class:`~session_store.tiered.breakers.Breakers`), which copy is newest and which tiers a read
repairs (:mod:`session_store.tiered.policy`), the near cache
(:class:`~session_store.tiered.nearcache.NearCache`, over the memory tier's sync view: a memory
operation is a few dictionary steps, run inline on the loop) and its hit path, and the I/O
sequences of every operation (:mod:`session_store.tiered.steps`,
:mod:`session_store.tiered.read_steps`, :mod:`session_store.tiered.cas_steps`). Only the I/O is
awaited.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from operator import methodcaller
from types import GeneratorType
from typing import Any, TypeVar

from session_store.aio.backend import AsyncSessionBackend
from session_store.aio.tiered_writes import ORDERED_WRITES
from session_store.backend import SessionBackend
from session_store.errors import BackendUnavailableError, ConfigurationError
from session_store.keys import validate_key
from session_store.tiered import read_steps, steps
from session_store.tiered.core import ChainCore, ChainCounters, log
from session_store.tiered.steps import DOWN, Direct, OnArbiter, OnTier, Step, Steps

__all__ = ["DOWN", "AsyncTieredBase", "log"]

T = TypeVar("T")
R = TypeVar("R")


async def _listed(tier: AsyncSessionBackend, prefix: str) -> tuple[list[str], bool]:
    """An async tier's keys under ``prefix``, and whether its listing says it is complete."""
    listing = tier.scan(prefix)
    keys = [key async for key in listing]
    return keys, getattr(listing, "complete", None) is not False


#: The helpers a step may name besides a tier method (see :mod:`session_store.tiered.steps`).
_HELPERS: dict[str, Callable[..., Awaitable[Any]]] = {**ORDERED_WRITES, "listed": _listed}


class AsyncTieredBase(ChainCore, AsyncSessionBackend):  # type: ignore[override]
    """Plumbing and reads of :class:`~session_store.aio.AsyncTieredBackend` (see there)."""

    _TIER_KIND = (
        AsyncSessionBackend,
        "every tier of an async chain must be an AsyncSessionBackend",
    )
    _GET_IS_HIT_PATH = False
    tiers: tuple[AsyncSessionBackend, ...]
    counters: ChainCounters

    def _near_view(self, tier: Any) -> SessionBackend:
        """The sync view of a process-local tier (the near cache runs inline on the loop)."""
        sync = getattr(tier, "sync", None)
        if not isinstance(sync, SessionBackend):
            raise ConfigurationError(
                f"a process-local tier of an async chain must offer its sync view (.sync), as "
                f"memory:// does; {tier.describe()} does not"
            )
        return sync

    def _past_near(self, key: str, near_copy: bytes | None) -> Steps[bytes | None]:
        """The read sequence of a key the hit path cannot serve, for ``get`` to await."""
        return read_steps.get(self, key, near_copy)

    def _reset_replay(self) -> None:
        self._replay_handle: asyncio.TimerHandle | None = None
        self._replay_task: asyncio.Task[None] | None = None

    # -- calls ---------------------------------------------------------------------------------
    async def _call(
        self,
        index: int,
        fn: Callable[[AsyncSessionBackend], Awaitable[T]],
        op: str,
        *,
        force: bool = False,
        key: str | None = None,
    ) -> T:
        """``await fn(tier)``; :data:`DOWN` if the tier is (or just went) down (the sync
        chain's ``_call``: ``force`` ignores the breaker, ``key`` makes it arbitrated)."""
        down = self.breakers.health[index].down_since is not None
        if down and not force and self.breakers.skips(index):
            return self._skipped(index)  # type: ignore[no-any-return]
        start = time.perf_counter()
        try:
            result = await fn(self.tiers[index])
        except BackendUnavailableError as exc:
            return self._unavailable(index, exc, start, op, key)  # type: ignore[no-any-return]
        if self._answered(index, op, start):
            await self._mark_up(index)
        return result

    async def _mark_up(self, index: int) -> None:
        back = self.breakers.mark_up(index)
        if back is not None:
            down_for, missed = back
            self.breakers.log_back(index, down_for, await self._reconcile(index, missed))

    async def _reconcile(self, index: int, keys: Iterable[str]) -> int:
        """Bring tier ``index`` up to the newest copy of each of ``keys`` (ordered writes)."""
        return await self._run(steps.reconcile(self, index, keys))

    # -- reads: the sequences of session_store.tiered.read_steps --------------------------------
    async def get(self, key: str) -> bytes | None:
        hit = self._near_get
        if hit is None:
            return await self._run(read_steps.get(self, validate_key(key), None))
        found = hit(key)  # the near tier checks a key it does not hold
        if type(found) is GeneratorType:
            return await self._run(found)
        return found  # type: ignore[no-any-return]

    async def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        return await self._run(read_steps.get_with_ttl(self, validate_key(key)))

    async def ttl(self, key: str) -> float | None:
        return await self._run(read_steps.ttl(self, validate_key(key)))

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
        helper = _HELPERS.get(step.fn)
        args = step.args
        call: Callable[[AsyncSessionBackend], Awaitable[Any]] = (
            methodcaller(step.fn, *args) if helper is None else lambda t: helper(t, *args)
        )
        if type(step) is OnTier:
            return await self._call(step.tier, call, step.what, force=step.force)
        if type(step) is OnArbiter:
            return await self._call(self.layout.arbiter, call, step.what, force=True, key=step.key)
        assert type(step) is Direct
        return await call(self.tiers[step.tier])
