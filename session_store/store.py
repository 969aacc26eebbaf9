"""``SessionStore``: what a host app calls. Typed sessions over any backend.

* ``load`` / ``save`` / ``delete`` / ``exists`` / ``keys`` / ``load_many`` / ``save_many``.
* ``update(key, fn)``: atomic read-modify-write on the backend's compare-and-set. ``fn`` gets
  the current object (or ``None``) and returns the new one (or ``None`` to leave it as it is).
  On a conflict it runs again on the fresh value, with exponential backoff and full jitter,
  until ``update_timeout`` seconds have passed; then :class:`ConflictError`, nothing written.
* ``touch(key)``: sliding expiry without rewriting the payload; it keeps the session's own TTL
  (the one it was saved with) unless given another, on every backend: a write with a TTL other
  than the store's records it with the payload (:mod:`session_store.ownttl`).
* **Reads never write.** ``load`` does not rewrite the session: ``last_accessed`` is stamped by
  writes only. ``touch_on_load=True`` makes every successful ``load`` also ``touch`` the
  session (sliding expiry with its own TTL, payload untouched); a tier that refuses the touch
  (read-only, down) does not fail the load. The caller's object is never mutated; the stamped
  copy is what gets stored (``save`` returns it).
* Over a single tier of a chain, the chain's version frames are read through
  (:func:`session_store.stamps.session_bytes`): a tombstone is an absent session.

Safe to share between threads. Every failure is a typed error from :mod:`session_store.errors`,
and a failed ``save`` or ``update`` leaves the stored copy as it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from typing import Any, TypeVar

from session_store.backend import Closing, SessionBackend
from session_store.backend_base import TrustedCalls, trusted
from session_store.errors import BackendError
from session_store.keys import validate_key
from session_store.ownttl import touch_kept
from session_store.registry import open_backend
from session_store.stamps import session_bytes
from session_store.storerules import LISTING_BATCH, StoreRules, backoff_pause, live_sessions

__all__ = ["SessionStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class SessionStore(StoreRules[T, SessionBackend], Closing):
    """Typed sessions in a backend.

    Args:
        backend: a :class:`SessionBackend`, or a URL / chain string to open one (then the store
            owns it and ``close`` closes it).
        schema: the session class (an attrs class registered as a schema, or ``dict``);
            ``None`` loads whatever schema each payload names.
        ttl: seconds a saved session lives: 24 hours unless given (``None`` too);
            ``NO_EXPIRY`` for sessions that never expire (an explicit choice).
        codec: how objects become bytes (default: compression per tier, ``compression``;
            encryption when ``SESSION_STORE_KEYS`` is set, legacy JSON read as
            ``legacy_schema``), used as it is when given.
        legacy_schema: the schema headerless legacy JSON loads as (default: ``dict`` for a
            ``dict`` store, else the data-room schema).
        namespace: bound into encryption, so a payload copied into another store fails.
        access_interval: accepted for older callers and ignored: reads never write.
        touch_on_load: every successful ``load`` also touches the session (sliding expiry
            keeping its own TTL); off by default.
        update_timeout: how long ``update`` retries on conflicts before ``ConflictError``.
        decoded_cache_bytes: bound on the decoded-object near cache
            (:mod:`session_store.decoded`: a warm ``load`` of unchanged bytes undoes no
            stage and returns an object of its own); 0 turns it off.
        compression: what the store's own codec writes (every setting reads zstd): by
            default, per tier (:func:`~session_store.tiercompression.default_compression`):
            uncompressed on Redis alone and on ``memory://`` alone, zstd level 1 above 1 KiB
            on diskcache and chains; ``True`` for zstd level 1 above 1 KiB (about 4.6x less
            Redis memory, for more CPU), a :class:`~session_store.codec.ZstdStage` for
            another level or threshold, ``False`` for none. Not with ``codec``.
    """

    _KIND = "SessionStore"
    #: The backend whose trusted ``set`` :meth:`save` holds in ``_set``.
    _set_of: object = None
    _set: Callable[[str, bytes, float | None], None]
    #: The backend whose trusted calls :meth:`update` holds in ``_calls``.
    _calls_of: object = None
    _calls: TrustedCalls

    def _open(self, url: str) -> SessionBackend:
        return open_backend(url)

    # -- reads ---------------------------------------------------------------------------------
    def load(self, key: str) -> T | None:
        """The session stored under ``key``, or ``None``.

        Raises:
            CorruptPayloadError: the stored bytes do not decode (they are left untouched).
            UnknownSchemaVersionError: stored by a newer schema or format than this code knows.
        """
        data = self.backend.get(key)
        obj = self._cached_decode(key, data)
        if obj is not None and self.touch_on_load:
            self._touch_after_load(key)
        return obj

    def _touch_after_load(self, key: str) -> None:
        """Sliding expiry on read: the session's own TTL, else the store's, judged again where
        it is stored (a save landing since the read keeps its own,
        :func:`~session_store.ownttl.touch_kept`; a chain judges its newest copy); a refusing
        tier never fails a load."""
        try:
            touch_kept(self.backend, key, self.ttl)
        except BackendError as exc:
            log.warning("touch after loading %r failed: %s", key, exc.message)

    def load_many(self, keys: Iterable[str]) -> dict[str, T]:
        """The sessions found among ``keys`` (one backend round trip where it allows)."""
        found: dict[str, T] = {}
        for key, data in self.backend.get_many(keys).items():
            obj = self._decode_stored(key, data)
            if obj is not None:
                found[key] = obj
        return found

    def exists(self, key: str) -> bool:
        """Whether a session is stored under ``key`` (without decoding it)."""
        data = self.backend.get(key)
        return data is not None and session_bytes(data) is not None

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Keys of the stored sessions starting with ``prefix`` (literal text).

        A key that holds no session is not listed: a deleted session's tombstone read through
        one tier of a chain, or an id a login rotated away (``load`` and ``exists`` call them
        absent too). Each :data:`~session_store.storerules.LISTING_BATCH` keys are read by one
        ``get_many`` to tell, unless the listing tells itself (a chain's ``sessions()``, from
        the reads its listing makes anyway)."""
        listing = self.backend.scan(prefix)
        sessions = getattr(listing, "sessions", None)
        if sessions is not None:
            return sessions()  # type: ignore[no-any-return]
        return self._live_keys(listing)

    def _live_keys(self, listing: Iterator[str]) -> Iterator[str]:
        while batch := list(islice(listing, LISTING_BATCH)):
            yield from live_sessions(batch, self.backend.get_many(batch))

    # -- writes --------------------------------------------------------------------------------
    def save(self, key: str, obj: T, ttl: float | None = None) -> T:
        """Store ``obj`` under ``key``; returns what was stored (with ``last_accessed`` stamped).

        Raises:
            SerializationError: ``obj`` cannot be stored; nothing was written.
        """
        write_ttl = self._ttl(ttl)
        if ttl is None:
            stamped, payload, plain = self._prepare_plain(key, obj)  # (checks the key)
        else:  # a TTL of its own is recorded with the payload (ownttl), encoded for its frame
            stamped, payload, plain = self._prepare_recorded(key, obj, write_ttl)
        backend = self.backend
        if self._set_of is not backend:  # trusted() once per backend: an ABC isinstance check
            self._set_of, self._set = backend, trusted(backend).set
        self._set(key, payload, write_ttl)
        self._decoded.put_saved(key, payload, stamped, plain, self._rebuild)  # the next load
        return stamped

    def save_many(self, items: Mapping[str, T], ttl: float | None = None) -> None:
        """Store every item; all are encoded before any is written."""
        write_ttl = self._ttl(ttl)
        encoded = {
            key: self._prepare_recorded(key, obj, write_ttl)[1] for key, obj in items.items()
        }
        self.backend.set_many(encoded, write_ttl)

    def delete(self, key: str) -> bool:
        """Remove the session; ``True`` if there was one, removed by this call.

        ``False``, changing nothing, for a key holding no session, as ``load``, ``exists``
        and ``touch`` call it: absent, a chain's tombstone read through one tier, or a
        **retired id** (the marker a login's id rotation leaves on the old id for a minute),
        which is left as it is, so a logout with an old cookie never undoes the rotation.
        One atomic backend call (``delete_session``: one round trip over a single backend, a
        chain judging its newest copy): a session saved after it judged is never deleted.

        The answer's bound: ``True`` always means a session was removed; ``False`` means the
        final attempt found none. A call whose reply was lost (the connection closed or reset
        after the server ran it) is retried, and that retry may follow this call's own
        removal: ``False``, the session gone either way (docs/guarantees.md).
        """
        self._decoded.discard(key)
        return self.backend.delete_session(key)

    def _discard(self, key: str) -> bool:
        """Remove whatever ``key`` holds, session or marker (``backend.delete``; through a
        chain, a tombstone): what the web integrations' id rotation calls after it retired the
        old id by compare-and-set, to end the marker it wrote itself; ``True`` if a value was
        there. Not :meth:`delete`, which leaves a marker alone."""
        self._decoded.discard(key)
        return self.backend.delete(key)

    def touch(self, key: str, ttl: float | None = None) -> bool:
        """Restart the session's expiry without rewriting it; ``True`` if it holds a session.

        ``ttl=None`` keeps the session's own TTL (the one it was saved with, recorded in its
        frame; :mod:`session_store.ownttl`), else the store's: a session nothing recorded a
        TTL for (one a single-tier store or another program wrote, even read through a chain)
        slides by the store's TTL and never becomes immortal. ``False``, changing nothing, for
        a key holding no session (absent, a deleted session's marker, a retired id), through a
        chain too. One backend call either way (``touch_session``: one round trip over a single
        backend, the web integrations' sliding expiry).
        """
        if ttl is None:
            return touch_kept(self.backend, key, self.ttl)  # the TTL recorded where it is stored
        return self.backend.touch_session(key, ttl)

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
        # the key is checked once, here: the backend's calls are its trusted ones
        backend = self.backend
        if self._calls_of is not backend:  # trusted() once per backend: an ABC isinstance check
            self._calls_of, self._calls = backend, trusted(backend)
        calls = self._calls
        plan = self._update_plan(ttl)
        first = self._known_write(key, fn, plan)
        if first is not None:  # one round trip: compare-and-set against what this store knows
            payload, token, stamped, plain = first
            if calls.set_if(key, payload, token, plan[0]):
                self._put_updated(key, payload, stamped, plain)
                return stamped
        steps = self._update_steps(key, fn, plan, calls, _backoff)
        value: Any = None
        while True:
            call, args = steps.send(value)
            if call is None:
                return args  # type: ignore[no-any-return]
            value = call(*args)

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


def _backoff(attempt: int, deadline: float) -> None:
    """Sleep the jittered, capped pause of :func:`~session_store.storerules.backoff_pause`."""
    time.sleep(backoff_pause(attempt, deadline))
