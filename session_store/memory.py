"""The memory backend: a bounded, thread-safe, least-recently-used store inside one process.

Bounded by ``max_entries`` and ``max_bytes`` (value bytes plus key characters); the least recently
used entry goes first, in O(1): an ``OrderedDict`` is both the index and the recency list, so
nothing is sorted or scanned on the hot path. Expired entries are dropped when touched and when
they reach the old end of the list.

**What it evicts is gone** unless someone keeps it: ``memory://`` alone loses evicted sessions.
Use it as the first tier of a chain (``memory:// | diskcache:///...``), where every write also
reached a durable tier, or pass ``on_evict`` to be told what was dropped. ``on_evict`` runs after
the lock is released, never inside it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from functools import cached_property, partial
from typing import Any, Self

from session_store import forksafe
from session_store.backend import Scope, SessionBackend, Versioned, VersionToken, ensure_bytes
from session_store.errors import ConfigurationError
from session_store.keys import MAX_KEY_BYTES, validate_key, validate_scan_prefix
from session_store.memory_counts import MemoryCounters
from session_store.memory_entries import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ENTRIES,
    Evicted,
    hit_reader,
    hit_reader_at,
)
from session_store.memory_entries import EXPIRES as _EXPIRES
from session_store.memory_entries import INF as _INF
from session_store.memory_entries import VALUE as _VALUE
from session_store.memory_entries import VERSION as _VERSION
from session_store.memory_entries import Entry as _Entry
from session_store.memory_entries import entry_size as _size
from session_store.memory_many import MemoryMany
from session_store.memory_touch import MemoryTouches
from session_store.memory_url import options_from_url
from session_store.ttl import NO_EXPIRY, normalize_ttl
from session_store.unchecked import ONE_KEY_CALLS, TrustedCalls, unchecked_calls
from session_store.urls import BackendURL

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_ENTRIES", "Evicted", "MemoryBackend"]

log = logging.getLogger(__name__)


class MemoryBackend(MemoryTouches, MemoryMany, SessionBackend):
    """A process-local LRU store.

    Args:
        max_entries: most entries kept (at least 1).
        max_bytes: most value bytes plus key characters kept, or ``None`` for no byte bound.
        default_ttl: TTL in seconds of a write that gives none; ``None``: no expiry.
        on_evict: called with the entries dropped to respect the bounds (not expired ones).
        clock: a monotonic clock in seconds (tests may pass their own).
    """

    scope = Scope.PROCESS

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        default_ttl: float | None = None,
        on_evict: Callable[[list[Evicted]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigurationError(f"max_entries must be an integer >= 1, got {max_entries!r}")
        if max_bytes is not None and (
            isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1
        ):
            raise ConfigurationError(
                f"max_bytes must be an integer >= 1 or None, got {max_bytes!r}"
            )
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.default_ttl = normalize_ttl(default_ttl, what="default_ttl")
        self.on_evict = on_evict
        self._clock = clock
        self._lock = threading.Lock()
        self._data: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._version = 0
        self.counters = MemoryCounters(self._lock)
        # Counted inline under the shared lock (what add_held does, without the call): the hot
        # path's hits, misses and writes in the tally, the rest in the counters' own dict.
        self._tally = self.counters.tally
        self._counts = self.counters._values
        self._lookup, self._move = self._data.get, self._data.move_to_end  # (one lookup less)
        forksafe.register(self)

    def _reset_locks(self) -> None:
        """In a forked child: new, released locks (see :mod:`session_store.forksafe`)."""
        self._lock = threading.Lock()
        self.counters._lock = self._lock

    @classmethod
    def from_url(cls, url: BackendURL, **overrides: Any) -> Self:
        """Build from ``memory://?max_entries=N&max_bytes=N&default_ttl=S``."""
        return cls(**options_from_url(url, overrides))

    def describe(self) -> str:
        return f"memory://?max_entries={self.max_entries}&max_bytes={self.max_bytes}"

    # -- internals (call with the lock held) ---------------------------------------------------
    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[_EXPIRES] <= now:
            self._remove(key)
            return None
        return entry

    def _remove(self, key: str) -> _Entry | None:
        entry = self._data.pop(key, None)
        if entry is not None:
            self._bytes -= _size(key, entry[_VALUE])
        return entry

    def _store(self, key: str, value: bytes, expires_at: float) -> list[Evicted] | None:
        """Write one entry; what had to be evicted for it, or None (the usual case)."""
        data = self._data
        old = self._lookup(key)
        size = len(key) + len(value)
        max_bytes = self.max_bytes
        if max_bytes is not None and size > max_bytes:
            # Larger than the whole cache: keeping it would evict everything, so report it instead.
            if old is not None:
                self._remove(key)
            self._counts["evictions"] += 1
            return [Evicted(key, value, expires_at - self._clock())]
        self._version += 1
        data[key] = (value, expires_at, self._version)
        if old is None:
            self._bytes += size
        else:  # replaced in place, then moved to the recent end: cheaper than pop and insert
            self._move(key)
            self._bytes += len(value) - len(old[_VALUE])
        if len(data) > self.max_entries or (max_bytes is not None and self._bytes > max_bytes):
            evicted: list[Evicted] = []
            self._evict(evicted)
            return evicted
        return None

    def _evict(self, evicted: list[Evicted]) -> None:
        """Drop the least recently used entries until both bounds hold."""
        data, max_bytes = self._data, self.max_bytes
        now = self._clock()
        while len(data) > self.max_entries or (max_bytes is not None and self._bytes > max_bytes):
            old_key, old = data.popitem(last=False)
            self._bytes -= len(old_key) + len(old[_VALUE])
            if old[_EXPIRES] > now:
                evicted.append(Evicted(old_key, old[_VALUE], old[_EXPIRES] - now))
                self._counts["evictions"] += 1

    def _deadline(self, ttl: float | None) -> float:
        """The deadline of a write whose ``ttl`` passed :func:`~session_store.ttl.normalize_ttl`."""
        chosen = self.default_ttl if ttl is None else ttl
        return _INF if chosen is None or chosen == _INF else self._clock() + chosen

    def _report(self, evicted: list[Evicted]) -> None:
        if evicted and self.on_evict is not None:
            try:
                self.on_evict(evicted)
            except Exception:
                log.exception("on_evict callback failed for %d evicted entries", len(evicted))
                self.counters.add("errors")

    def eviction_reader(self) -> Callable[[], int]:
        """The ``evictions`` count as a reader that makes no Python call (the counters' own
        dict): a chain reads it after every put in its near cache (see ``tiered.nearcache``)."""
        return partial(self._counts.__getitem__, "evictions")

    # -- protocol ------------------------------------------------------------------------------
    def hit_reader(self) -> Callable[[str], bytes | None]:
        """A read for a near cache's hit path (the tiered chain's): the live value of ``key``,
        else ``None`` (a key it does not hold, an expired entry, a key that is not a ``str``),
        for which the caller asks :meth:`get`, which checks the key, counts and drops the
        expired entry. Without the lock: a dictionary lookup is atomic under the GIL and an
        entry is an immutable tuple. The entry moves to the LRU end as in ``get`` (one evicted
        meanwhile is not moved back), and the hit is counted, without the lock too (two threads
        may lose one count between them; a count is never wrong otherwise)."""
        return hit_reader(self._data, self._clock, self._tally)

    def hit_reader_at(
        self, clock: Callable[[], float]
    ) -> Callable[[str, float], bytes | None] | None:
        """:meth:`hit_reader` for a caller that reads ``clock`` on its hit path anyway (the
        chain's near cache does, to know whether its invalidation stream still vouches for a
        copy): the read takes ``(key, now)``, ``now`` a reading of ``clock``, instead of reading
        the clock a second time. ``None`` unless ``clock`` is this backend's own clock (its
        expiry deadlines are on that clock's time line)."""
        if clock is not self._clock:
            return None
        return hit_reader_at(self._data, self._tally)

    def get(self, key: str) -> bytes | None:
        # The hot path, kept flat: a key found in the table was validated when it was written,
        # so only its type is checked (a str subclass could hash like a stored key); a miss is
        # validated in full, so a bad key is still an InvalidKeyError.
        # (acquire / release in try / finally: measurably cheaper than ``with`` on 3.11.)
        if type(key) is not str:
            validate_key(key)
        lock = self._lock
        lock.acquire()
        try:
            entry = self._lookup(key)
            if entry is not None:
                expires_at = entry[1]
                if expires_at == _INF or expires_at > self._clock():
                    self._move(key)
                    self._tally.hits += 1
                    return entry[0]
                self._remove(key)
            else:
                validate_key(key)
            self._tally.misses += 1
            return None
        finally:
            lock.release()

    @cached_property
    def trusted_calls(self) -> TrustedCalls:
        """The unchecked forms (``_get`` ...) of the public methods (which check, then run them;
        get and set inline), for a composite (see :func:`session_store.backend_base.trusted`)."""
        return unchecked_calls(self, MemoryBackend, *ONE_KEY_CALLS, "touch_if")

    def _get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._live(key, self._clock())
            if entry is None:
                self._tally.misses += 1
                return None
            self._move(key)
            self._tally.hits += 1
            return entry[_VALUE]

    def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        return self._get_with_ttl(validate_key(key))

    def _get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        with self._lock:
            now = self._clock()
            entry = self._live(key, now)
            if entry is None:
                self.counters.add_held("misses")
                return None
            self._data.move_to_end(key)
            self.counters.add_held("hits")
            return entry[_VALUE], entry[_EXPIRES] - now

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        if not (type(key) is str and key.isascii() and 0 < len(key) <= MAX_KEY_BYTES):
            validate_key(key)  # the common case decided inline, the rest in full
        if type(value) is not bytes:
            value = ensure_bytes(value)
        no_ttl = ttl is None and self.default_ttl is None
        deadline = _INF if no_ttl else self._deadline(normalize_ttl(ttl))
        lock = self._lock
        lock.acquire()
        try:
            old, max_bytes = self._lookup(key), self.max_bytes
            if old is None or len(self._data) > self.max_entries:
                evicted = self._store(key, value, deadline)
            elif max_bytes is None or self._bytes + len(value) - len(old[0]) <= max_bytes:
                # _store's replacement of an entry within both bounds, inline: no call
                self._version += 1
                self._data[key] = (value, deadline, self._version)
                self._move(key)
                self._bytes += len(value) - len(old[0])
                evicted = None
            else:
                evicted = self._store(key, value, deadline)
            self._tally.writes += 1
        finally:
            lock.release()
        if evicted:
            self._report(evicted)

    def _set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        # The unchecked set (key and value checked, ttl normalized by the caller): a chain's
        # near cache writes every save's copy here, so the common case is decided inline as in
        # ``set`` (its deadline, and the replacement of an entry within both bounds), not in
        # _deadline and _store: three calls fewer per save. Keep the two bodies alike.
        chosen = self.default_ttl if ttl is None else ttl
        deadline = _INF if chosen is None or chosen == _INF else self._clock() + chosen
        lock = self._lock
        lock.acquire()
        try:
            old, max_bytes = self._lookup(key), self.max_bytes
            if old is None or len(self._data) > self.max_entries:
                evicted = self._store(key, value, deadline)
            elif max_bytes is None or self._bytes + len(value) - len(old[0]) <= max_bytes:
                self._version += 1
                self._data[key] = (value, deadline, self._version)
                self._move(key)
                self._bytes += len(value) - len(old[0])
                evicted = None
            else:
                evicted = self._store(key, value, deadline)
            self._tally.writes += 1
        finally:
            lock.release()
        if evicted:
            self._report(evicted)

    def delete(self, key: str) -> bool:
        return self._delete(validate_key(key))

    def _delete(self, key: str) -> bool:
        with self._lock:
            entry = self._remove(key)
            removed = entry is not None and entry[_EXPIRES] > self._clock()
            self.counters.add_held("deletes", int(removed))  # keys deleted, not calls
            return removed

    def ttl(self, key: str) -> float | None:
        return self._ttl(validate_key(key))

    def _ttl(self, key: str) -> float | None:
        with self._lock:
            now = self._clock()
            entry = self._live(key, now)
            if entry is None:
                return None
            return NO_EXPIRY if entry[_EXPIRES] == _INF else entry[_EXPIRES] - now

    def scan(self, prefix: str = "") -> Iterator[str]:
        validate_scan_prefix(prefix)
        with self._lock:
            now = self._clock()
            keys = [k for k, e in self._data.items() if e[_EXPIRES] > now and k.startswith(prefix)]
        return iter(keys)

    def get_versioned(self, key: str) -> Versioned | None:
        return self._get_versioned(validate_key(key))

    def _get_versioned(self, key: str) -> Versioned | None:
        with self._lock:
            entry = self._live(key, self._clock())
            if entry is None:
                self.counters.add_held("misses")
                return None
            self._data.move_to_end(key)
            self.counters.add_held("hits")
            return Versioned(entry[_VALUE], entry[_VERSION])

    def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        validate_key(key)
        return self._set_if(key, ensure_bytes(value), token, normalize_ttl(ttl))

    def _set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        deadline = self._deadline(ttl)
        with self._lock:
            entry = self._live(key, self._clock())
            current = None if entry is None else entry[_VERSION]
            if current != token:
                return False
            evicted = self._store(key, value, deadline)
            self.counters.add_held("writes")
        if evicted:
            self._report(evicted)
        return True

    @property
    def entry_count(self) -> int:
        """Entries held, expired ones not yet dropped included.

        (Not ``__len__``: a backend must never be falsy, or ``backend or default`` would
        silently replace an empty one.)
        """
        return len(self._data)

    @property
    def size_bytes(self) -> int:
        """Value bytes plus key characters held."""
        return self._bytes
