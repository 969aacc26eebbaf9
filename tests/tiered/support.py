"""What the chain's tests on a hand-driven clock share."""

from __future__ import annotations

from session_store import MemoryBackend
from session_store.backend import Scope


class Clock:
    """A clock the test moves by hand (``clock.now += 5``), for a chain's ``clock=``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class SharedMemory(MemoryBackend):
    """A memory backend standing for a shared tier (no stream of its own)."""

    scope = Scope.NETWORK
