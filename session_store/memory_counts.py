"""The memory backend's counters (:mod:`session_store.memory`): the names and readings of every
backend's :class:`~session_store.counters.Counters`, with the hot path's three kept in a
:class:`~session_store.memory_entries.Tally`."""

from __future__ import annotations

import threading

from session_store.counters import Counters
from session_store.memory_entries import Tally

__all__ = ["MemoryCounters"]

#: The counters a :class:`~session_store.memory_entries.Tally` keeps.
_TALLIED = frozenset(Tally.__slots__)


class MemoryCounters(Counters):
    """The memory backend's :class:`~session_store.counters.Counters` (sharing its lock): the
    same names and readings, with ``hits``, ``misses`` and ``writes`` kept in :attr:`tally`."""

    __slots__ = ("tally",)

    def __init__(self, lock: threading.Lock) -> None:
        super().__init__(lock)
        self.tally = Tally()

    def add_held(self, name: str, amount: int = 1) -> None:
        if name in _TALLIED:
            setattr(self.tally, name, getattr(self.tally, name) + amount)
        else:
            self._values[name] += amount

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.add_held(name, amount)

    def get(self, name: str) -> int:
        return getattr(self.tally, name) if name in _TALLIED else self._values[name]

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            values = dict(self._values)
            tally = self.tally
            values.update(hits=tally.hits, misses=tally.misses, writes=tally.writes)
        return values
