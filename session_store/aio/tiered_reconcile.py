"""The async chain's missed writes and probe timer (the sync chain's
:mod:`session_store.tiered.reconcile`): a tier that comes back, or takes a write after refusing
others, is brought up to the newest copy of each key it missed, tombstones included; a timer on
the running loop probes the tiers that are down; the chain's close flushes what is left."""

from __future__ import annotations

import asyncio
import time
from functools import partial

from session_store.aio.backend import AsyncSessionBackend
from session_store.aio.tiered_base import DOWN, AsyncTieredBase, log
from session_store.errors import BackendError
from session_store.tiered import steps

__all__ = ["AsyncTieredReconcile"]


async def _probe(tier: AsyncSessionBackend, key: str) -> object:
    """A read that tells whether ``tier`` answers."""
    return await tier.get_with_ttl(key)


class AsyncTieredReconcile(AsyncTieredBase):
    """:class:`~session_store.aio.tiered_base.AsyncTieredBase` with missed-write reconciliation."""

    # -- probing tiers that are down (the sync chain's _arm_replay / _replay) ------------------
    def _arm_replay(self) -> None:
        """Probe the shared tiers that are down in ``retry_after`` seconds, on the running loop:
        one that answers gets the writes it missed at once (which bounds how long a write that
        went around the arbiter stays unseen by other processes)."""
        if self._closed or self._clock is not time.monotonic:
            return  # closed, or a test's own clock: probes happen on calls
        if self._replay_handle is not None or self._replay_task is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - called from a sync view, off the loop
            return
        self._replay_handle = loop.call_later(self.retry_after, self._start_replay)

    def _start_replay(self) -> None:
        self._replay_handle = None
        if not self._closed:
            self._replay_task = asyncio.get_running_loop().create_task(self._replay())

    async def _replay(self) -> None:
        still_down = False
        try:
            for index in self.layout.shared:
                if self._closed or not self.breakers.health[index].down:
                    continue
                probe = min(self.breakers.missed[index], default="probe")
                try:
                    found = await self._call(index, partial(_probe, key=probe), "probe", force=True)
                except BackendError:
                    found = DOWN
                still_down = still_down or found is DOWN
        finally:
            self._replay_task = None
        if still_down:
            self._arm_replay()

    async def _flush_missed(self) -> None:
        """Bring every tier up to date with the writes it missed, before the chain goes away
        (best effort; the sync chain's ``_flush_missed``)."""
        self._closed = True
        if self._replay_handle is not None:
            self._replay_handle.cancel()
            self._replay_handle = None
        task, self._replay_task = self._replay_task, None
        if task is not None:
            task.cancel()
        await self._run(steps.flush_missed(self, log.warning))
