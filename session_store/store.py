"""``SessionStore``: what a host app calls. Typed sessions over any backend.

* ``load`` / ``save`` / ``delete`` / ``exists`` / ``keys`` / ``load_many`` / ``save_many``.
* ``update(key, fn)``: atomic read-modify-write on the backend's compare-and-set. ``fn`` gets
  the current object (or ``None``) and returns the new one (or ``None`` to leave it as it is).
  On a conflict it runs again on the fresh value, with exponential backoff and full jitter,
  until ``update_timeout`` seconds have passed; then :class:`ConflictError`, nothing written.
* ``touch(key)``: sliding expiry without rewriting the payload.
* ``last_accessed``: reads never rewrite a payload just to say they happened, except at most
  once per ``access_interval`` seconds per session (default 300): a read that finds
  ``last_accessed`` older than that refreshes it with a compare-and-set, which also restarts
  the TTL. A write always stamps it. The caller's object is never mutated; the stamped copy is
  what gets stored (``load`` returns it).

Safe to share between threads. Every failure is a typed error from :mod:`session_store.errors`,
and a failed ``save`` or ``update`` leaves the stored copy as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

from session_store.backend import SessionBackend
from session_store.codec import Codec
from session_store.keys import validate_key
from session_store.registry import open_backend
from session_store.storerules import StoreRules, backoff_pause

__all__ = ["SessionStore"]

T = TypeVar("T")


class SessionStore(StoreRules[T]):
    """Typed sessions in a backend.

    Args:
        backend: a :class:`SessionBackend`, or a URL / chain string to open one (then the store
            owns it and ``close`` closes it).
        schema: the session class (an attrs class registered as a schema, or ``dict``);
            ``None`` loads whatever schema each payload names.
        ttl: seconds a saved session lives (``None``: the backend's default).
        codec: how objects become bytes (default: zstd above 1 KiB, encryption when
            ``SESSION_STORE_KEYS`` is set, legacy JSON read as ``legacy_schema``).
        legacy_schema: the schema headerless legacy JSON loads as (default: ``dict`` for a
            ``dict`` store, else the data-room schema).
        namespace: bound into encryption, so a payload copied into another store fails.
        access_interval: at most this often (seconds) a read refreshes ``last_accessed``;
            ``None`` never.
        update_timeout: how long ``update`` retries on conflicts before ``ConflictError``.
    """

    def __init__(
        self,
        backend: SessionBackend | str,
        schema: type[T] | None = None,
        *,
        ttl: float | None = None,
        codec: Codec | None = None,
        legacy_schema: str | None = None,
        namespace: str = "",
        access_interval: float | None = 300.0,
        update_timeout: float = 10.0,
    ) -> None:
        self._owns_backend = isinstance(backend, str)
        self.backend = open_backend(backend) if isinstance(backend, str) else backend
        self._init_rules(  # schema, codec, TTL and stamping: shared with AsyncSessionStore
            schema,
            ttl=ttl,
            codec=codec,
            legacy_schema=legacy_schema,
            namespace=namespace,
            access_interval=access_interval,
            update_timeout=update_timeout,
        )

    def __repr__(self) -> str:
        name = self.schema.__qualname__ if self.schema else "any"
        return f"SessionStore[{name}]({self.backend.describe()})"

    # -- reads ---------------------------------------------------------------------------------
    def load(self, key: str) -> T | None:
        """The session stored under ``key``, or ``None``.

        Raises:
            CorruptPayloadError: the stored bytes do not decode (they are left untouched).
            UnknownSchemaVersionError: stored by a newer schema or format than this code knows.
        """
        data = self.backend.get(key)
        if data is None:
            return None
        obj = self._decode(key, data)
        if self._access_is_stale(obj):
            obj = self._refresh_access(key, obj)
        return obj

    def load_many(self, keys: Iterable[str]) -> dict[str, T]:
        """The sessions found among ``keys`` (one backend round trip where it allows)."""
        return {key: self._decode(key, data) for key, data in self.backend.get_many(keys).items()}

    def exists(self, key: str) -> bool:
        """Whether a session is stored under ``key`` (without decoding it)."""
        return self.backend.ttl(key) is not None

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Keys of the stored sessions starting with ``prefix`` (literal text)."""
        return self.backend.scan(prefix)

    # -- writes --------------------------------------------------------------------------------
    def save(self, key: str, obj: T, ttl: float | None = None) -> T:
        """Store ``obj`` under ``key``; returns what was stored (with ``last_accessed`` stamped).

        Raises:
            SerializationError: ``obj`` cannot be stored; nothing was written.
        """
        validate_key(key)
        self._check_schema(key, obj)
        stamped = self._stamp(obj)
        self.backend.set(key, self.codec.encode(key, stamped), self._ttl(ttl))
        return stamped

    def save_many(self, items: Mapping[str, T], ttl: float | None = None) -> None:
        """Store every item; all are encoded before any is written."""
        for key, obj in items.items():
            self._check_schema(validate_key(key), obj)
        encoded = {k: self.codec.encode(k, self._stamp(v)) for k, v in items.items()}
        self.backend.set_many(encoded, self._ttl(ttl))

    def delete(self, key: str) -> bool:
        """Remove the session; ``True`` if there was one."""
        return self.backend.delete(key)

    def touch(self, key: str, ttl: float | None = None) -> bool:
        """Restart the session's expiry without rewriting it; ``True`` if it exists."""
        return self.backend.touch(key, self._ttl(ttl))

    def update(
        self, key: str, fn: Callable[[T | None], T | None], ttl: float | None = None
    ) -> T | None:
        """Atomically replace the session with ``fn(current)``; returns what is stored after.

        ``fn`` may run several times (once per conflict), so it must not have side effects
        beyond building its result. Returning ``None`` writes nothing.

        Raises:
            ConflictError: other writers won every attempt for ``update_timeout`` seconds.
        """
        validate_key(key)
        deadline = time.monotonic() + self.update_timeout
        attempt = 0
        while True:
            read = self.backend.get_versioned(key)
            current = None if read is None else self._decode(key, read.value)
            new = fn(current)
            if new is None:
                return current
            self._check_schema(key, new)
            stamped = self._stamp(new)
            payload = self.codec.encode(key, stamped)
            token = None if read is None else read.token
            if self.backend.set_if(key, payload, token, self._ttl(ttl)):
                return stamped
            attempt += 1
            if time.monotonic() >= deadline:
                raise self._conflict(key, attempt, self.backend.describe())
            _backoff(attempt, deadline)

    # -- last_accessed -------------------------------------------------------------------------
    def _refresh_access(self, key: str, obj: T) -> T:
        """Stamp ``last_accessed`` with one compare-and-set; a concurrent writer wins."""
        read = self.backend.get_versioned(key)
        if read is None:
            return obj
        current = self._decode(key, read.value)
        stamped = self._stamp(current)
        if self.backend.set_if(key, self.codec.encode(key, stamped), read.token, self.ttl):
            return stamped
        return current

    def metrics(self) -> dict[str, Any]:
        """Per-tier counters and latency percentiles as a plain dict.

        See :func:`session_store.metrics.snapshot` and docs/metrics.md.
        """
        from session_store.metrics import snapshot

        return snapshot(self)

    # -- life cycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Close the backend if this store opened it from a URL."""
        if self._owns_backend:
            self.backend.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _backoff(attempt: int, deadline: float) -> None:
    """Sleep with exponential backoff and full jitter, never past the deadline."""
    time.sleep(backoff_pause(attempt, deadline))
