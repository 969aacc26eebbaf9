"""Missed writes and the probe timer of the tiered chain: bringing a tier that comes back (or
took a write after refusing others) up to the newest copy of each key it missed, tombstones
included (:meth:`TieredReconcile._reconcile`); a timer that probes the tiers that are down
(:meth:`TieredReconcile._arm_replay`); and the last flush when the chain closes."""

from __future__ import annotations

import threading
import time
from functools import partial

from session_store.backend import SessionBackend
from session_store.errors import BackendError
from session_store.tiered import steps
from session_store.tiered.base import DOWN, TieredBase, log

__all__ = ["TieredReconcile"]


def _probe(tier: SessionBackend, key: str) -> object:
    """A read that tells whether ``tier`` answers."""
    return tier.get_with_ttl(key)


class TieredReconcile(TieredBase):
    """:class:`~session_store.tiered.base.TieredBase` with reconciliation of missed writes."""

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
                found = DOWN
            still_down = still_down or found is DOWN
        if still_down:
            self._arm_replay()

    def _flush_missed(self) -> None:
        """Bring every tier up to date with the writes it missed, before the chain (and the
        memory of what was missed) goes away: best effort, a tier still down keeps missing
        them."""
        self._run(steps.flush_missed(self, log.warning))
