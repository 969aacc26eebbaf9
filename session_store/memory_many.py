"""The memory backend's batch calls (a base of :class:`~session_store.memory.MemoryBackend`,
which provides the entries, the lock and the per-entry steps): ``get_many``, ``set_many`` and
``delete_many``, each under the backend's one lock, so each batch is atomic against every other
call on the backend. A module of its own so that ``memory.py`` stays short.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from session_store.backend import ensure_bytes
from session_store.keys import validate_key
from session_store.memory_entries import EXPIRES, VALUE, Entry, Evicted
from session_store.ttl import normalize_ttl

if TYPE_CHECKING:
    from session_store.counters import Counters

__all__ = ["MemoryMany"]


class MemoryMany:
    """``get_many``, ``set_many`` and ``delete_many`` of the memory backend (module docstring)."""

    if TYPE_CHECKING:  # provided by MemoryBackend
        _lock: threading.Lock
        _data: OrderedDict[str, Entry]
        _clock: Callable[[], float]

        counters: Counters

        def _live(self, key: str, now: float) -> Entry | None: ...
        def _remove(self, key: str) -> Entry | None: ...
        def _store(self, key: str, value: bytes, expires_at: float) -> list[Evicted] | None: ...
        def _deadline(self, ttl: float | None) -> float: ...
        def _report(self, evicted: list[Evicted]) -> None: ...

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        keys = [validate_key(key) for key in keys]
        found: dict[str, bytes] = {}
        with self._lock:
            now = self._clock()
            for key in keys:
                entry = self._live(key, now)
                if entry is None:
                    self.counters.add_held("misses")
                    continue
                self._data.move_to_end(key)
                self.counters.add_held("hits")
                found[key] = entry[VALUE]
        return found

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        checked = [(validate_key(key), ensure_bytes(value)) for key, value in items.items()]
        deadline = self._deadline(normalize_ttl(ttl))
        evicted: list[Evicted] = []
        with self._lock:
            for key, value in checked:
                evicted += self._store(key, value, deadline) or ()
            self.counters.add_held("writes", len(checked))
        self._report(evicted)

    def delete_many(self, keys: Iterable[str]) -> int:
        keys = [validate_key(key) for key in keys]
        with self._lock:
            now = self._clock()
            entries = [self._remove(key) for key in keys]
            removed = sum(1 for entry in entries if entry is not None and entry[EXPIRES] > now)
            self.counters.add_held("deletes", removed)  # keys deleted, not keys asked for
        return removed
