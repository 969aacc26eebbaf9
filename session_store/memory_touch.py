"""The memory backend's touches and its conditional delete (a base of
:class:`~session_store.memory.MemoryBackend`, which provides the entries, the lock and the
clock): ``touch``, the conditional ``touch_if`` and ``touch_session``, each a check and a new
deadline under the backend's one lock, and ``delete_session``, a check and a removal under it,
so each is atomic against every other call on the backend. A module of its own so that
``memory.py`` stays short.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from session_store.backend import ensure_bytes
from session_store.deleterules import holds_session
from session_store.keys import validate_key
from session_store.memory_entries import VALUE, VERSION, Entry
from session_store.touchrules import HEAD_SPAN, touch_decision
from session_store.ttl import normalize_ttl

if TYPE_CHECKING:
    from session_store.counters import Counters

__all__ = ["MemoryTouches"]


class MemoryTouches:
    """``touch``, ``touch_if``, ``touch_session`` and ``delete_session`` of the memory backend
    (module docstring)."""

    if TYPE_CHECKING:  # provided by MemoryBackend
        _lock: threading.Lock
        _data: OrderedDict[str, Entry]
        _clock: Callable[[], float]

        counters: Counters

        def _live(self, key: str, now: float) -> Entry | None: ...
        def _remove(self, key: str) -> Entry | None: ...
        def _deadline(self, ttl: float | None) -> float: ...

    def touch(self, key: str, ttl: float | None = None) -> bool:
        return self._touch_if(validate_key(key), b"", normalize_ttl(ttl))

    def _touch(self, key: str, ttl: float | None = None) -> bool:
        return self._touch_if(key, b"", ttl)

    def touch_if(self, key: str, head: bytes, ttl: float | None = None) -> bool:
        return self._touch_if(validate_key(key), ensure_bytes(head, key=key), normalize_ttl(ttl))

    def _touch_if(self, key: str, head: bytes, ttl: float | None = None) -> bool:
        deadline = self._deadline(ttl)  # the check and the touch under one lock: atomic
        with self._lock:
            entry = self._live(key, self._clock())
            if entry is None or not entry[VALUE].startswith(head):
                return False
            self._data[key] = (entry[VALUE], deadline, entry[VERSION])
            self._data.move_to_end(key)
            return True

    def touch_session(self, key: str, ttl: float | None = None, keep_own: bool = False) -> bool:
        """Restart the expiry of the session under ``key`` only (the judgement of the value's
        head and the new deadline under one lock): see
        :meth:`session_store.backend.SessionBackend.touch_session`."""
        validate_key(key)
        ttl = normalize_ttl(ttl)
        with self._lock:
            entry = self._live(key, self._clock())
            if entry is None:
                return False
            live, chosen = touch_decision(entry[VALUE][:HEAD_SPAN], ttl, keep_own)
            if not live:
                return False
            self._data[key] = (entry[VALUE], self._deadline(chosen), entry[VERSION])
            self._data.move_to_end(key)
            return True

    def delete_session(self, key: str) -> bool:
        """Remove ``key`` only if it holds a session (the judgement of its value and the
        removal under one lock): see
        :meth:`session_store.backend.SessionBackend.delete_session`."""
        validate_key(key)
        with self._lock:
            entry = self._live(key, self._clock())
            if entry is None or not holds_session(entry[VALUE]):
                return False
            self._remove(key)
            self.counters.add_held("deletes", 1)  # under the lock, as _delete counts
            return True
