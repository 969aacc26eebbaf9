"""Per-backend operation counters, kept by every backend and read as a plain dict.

The same machinery serves every layer that counts: backends keep :data:`COUNTER_NAMES`, the
tiered backend times every tier call into the tier's latency histogram (:meth:`Counters.observe`),
and the data-room :class:`~session_store.dataroom.SessionMetrics` keeps its own names. Readers
(``session_store.metrics``, the ``stats`` command, the Prometheus and OpenTelemetry exporters)
take snapshots; nothing here logs or allocates on the hot path beyond one histogram per operation.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable
from functools import partial

from session_store import forksafe

__all__ = ["COUNTER_NAMES", "LATENCY_BUCKETS", "Counters"]

#: Upper bounds, in seconds, of the latency histogram buckets (the last one is open-ended).
LATENCY_BUCKETS = tuple(2.0**e / 1_000_000 for e in range(0, 27))  # 1 µs .. ~67 s

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

    __slots__ = ("__weakref__", "_latency", "_latency_sum", "_lock", "_values")

    def __init__(
        self, lock: threading.Lock | None = None, *, names: Iterable[str] = COUNTER_NAMES
    ) -> None:
        """Args:
        lock: share the owner's lock, so that the owner can count with :meth:`add_held`
            inside its own critical section without taking a second lock.
        names: the counters kept (default: :data:`COUNTER_NAMES`, what every backend keeps).
        """
        self._lock = lock if lock is not None else threading.Lock()
        self._values = dict.fromkeys(names, 0)
        self._latency: dict[str, list[int]] = {}
        self._latency_sum: dict[str, float] = {}
        if lock is None:  # a shared lock is reset by its owner
            forksafe.register(self)

    def _reset_locks(self) -> None:
        self._lock = threading.Lock()

    def add(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name``."""
        lock = self._lock  # (acquire / release in try / finally: cheaper than ``with`` on 3.11,
        lock.acquire()  # and every save counts twice)
        try:
            self._values[name] += amount
        finally:
            lock.release()

    def add_held(self, name: str, amount: int = 1) -> None:
        """Like :meth:`add`, for a caller that already holds the shared lock."""
        self._values[name] += amount

    def observe(self, operation: str, seconds: float) -> None:
        """Record one ``operation`` (``get``, ``set``, ...) that took ``seconds``."""
        index = bisect_left(LATENCY_BUCKETS, seconds)
        lock = self._lock  # (as in :meth:`add`)
        lock.acquire()
        try:
            buckets = self._latency.get(operation)
            if buckets is None:
                buckets = self._latency[operation] = [0] * (len(LATENCY_BUCKETS) + 1)
                self._latency_sum[operation] = 0.0
            buckets[index] += 1
            self._latency_sum[operation] += seconds
        finally:
            lock.release()

    def latency(self) -> dict[str, dict[str, float]]:
        """Per operation: ``count`` and the ``p50`` / ``p90`` / ``p99`` upper bounds in seconds.

        Percentiles are bucket upper bounds (powers of two from 1 µs), so they are exact to a
        factor of two: enough to tell a cache hit from a network round trip or a timeout.
        """
        with self._lock:
            snapshot = {op: list(b) for op, b in self._latency.items()}
        return {op: _percentiles(buckets) for op, buckets in snapshot.items()}

    def latency_buckets(self) -> dict[str, list[int]]:
        """Raw histogram counts per operation, bucket ``i`` bounded by ``LATENCY_BUCKETS[i]``."""
        with self._lock:
            return {op: list(b) for op, b in self._latency.items()}

    def latency_histograms(self) -> dict[str, tuple[list[int], float]]:
        """Per operation: the raw bucket counts (as :meth:`latency_buckets`) and the total
        seconds observed, taken together under one lock (what a Prometheus histogram needs)."""
        with self._lock:
            return {op: (list(b), self._latency_sum[op]) for op, b in self._latency.items()}

    @property
    def names(self) -> tuple[str, ...]:
        """The counters kept, in order."""
        return tuple(self._values)

    def get(self, name: str) -> int:
        """The current value of counter ``name``."""
        return self._values[name]

    def reader(self, name: str) -> Callable[[], int]:
        """Counter ``name`` as a call that reads it without a Python frame (what :meth:`get`
        answers): a chain reads each tier's ``evictions`` after every write."""
        return partial(self._values.__getitem__, name)

    def as_dict(self) -> dict[str, int]:
        """A snapshot of every counter."""
        with self._lock:
            return dict(self._values)

    def __repr__(self) -> str:
        return f"Counters({self.as_dict()!r})"


def _percentiles(buckets: list[int]) -> dict[str, float]:
    total = sum(buckets)
    out: dict[str, float] = {"count": float(total)}
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        rank, seen = q * total, 0
        for index, count in enumerate(buckets):
            seen += count
            if seen >= rank and count:
                out[name] = LATENCY_BUCKETS[min(index, len(LATENCY_BUCKETS) - 1)]
                break
        else:
            out[name] = 0.0
    return out
