"""Per-backend operation counters, kept by every backend and read as a plain dict."""

from __future__ import annotations

import threading

from session_store import forksafe

__all__ = ["COUNTER_NAMES", "Counters"]

#: The counters every backend keeps.
COUNTER_NAMES = (
    "hits",
    "misses",
    "writes",
    "deletes",
    "errors",
    "evictions",
    "fallbacks",
    "promotions",
)


class Counters:
    """Thread-safe monotonic counters.

    ``hits`` / ``misses`` count key lookups, ``errors`` failed operations, ``evictions`` entries the
    backend dropped to respect a bound, ``fallbacks`` operations a tiered backend served without a
    tier that was down, ``promotions`` values copied into a faster tier.
    """

    __slots__ = ("__weakref__", "_lock", "_values")

    def __init__(self, lock: threading.Lock | None = None) -> None:
        """Args:
        lock: share the owner's lock, so that the owner can count with :meth:`add_held`
            inside its own critical section without taking a second lock.
        """
        self._lock = lock if lock is not None else threading.Lock()
        self._values = dict.fromkeys(COUNTER_NAMES, 0)
        if lock is None:  # a shared lock is reset by its owner
            forksafe.register(self)

    def _reset_locks(self) -> None:
        self._lock = threading.Lock()

    def add(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name``."""
        with self._lock:
            self._values[name] += amount

    def add_held(self, name: str, amount: int = 1) -> None:
        """Like :meth:`add`, for a caller that already holds the shared lock."""
        self._values[name] += amount

    def get(self, name: str) -> int:
        """The current value of counter ``name``."""
        return self._values[name]

    def as_dict(self) -> dict[str, int]:
        """A snapshot of every counter."""
        with self._lock:
            return dict(self._values)

    def __repr__(self) -> str:
        return f"Counters({self.as_dict()!r})"
