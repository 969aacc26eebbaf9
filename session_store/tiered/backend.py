"""The tiered backend: several backends chained fastest first, one consistent store.

The model (docs/guarantees.md states each promise with its bound and test):

* **Versions on every copy.** Every value the chain writes is framed with a version from a hybrid
  logical clock (:mod:`session_store.stamps`); the caller's bytes round-trip exactly. A tier write
  is *ordered*: it never replaces a newer version with an older one (:mod:`.writes`).
* **Deletes are tombstones**: a versioned "deleted" copy in every shared tier, living
  ``tombstone_ttl`` seconds, so no racing promotion, lower-tier copy or tier that comes back
  after an outage brings the key back (all of those are older versions).
* **One arbiter per chain**, the same in every process: the first shared tier (the last tier if
  none is shared). ``get_versioned`` / ``set_if`` (hence ``SessionStore.update``) go to it and
  nowhere else; when it cannot be reached they raise :class:`BackendUnavailableError` and write
  nothing. ``get_versioned`` compares the arbiter's copy with the lower shared tiers' and first
  brings the arbiter up to the newest durable copy (a Redis that lost a key, or restarted from an
  older append-only file, never hands ``update`` an older session or ``None``).
* **Reads** of a key the near cache cannot serve read every shared tier that is up; the newest
  version wins, and tiers holding an older copy (or none) get the newest one by an ordered write
  (reconciliation: it can only replace older versions). A read never writes anything else.
* **Writes** go to the shared tiers lowest first, then to the near cache. A write is acknowledged
  once a durable tier (one that outlives the process) took it; if none did, it raises and the
  near cache does not keep it, so the memory tier never holds an entry no lower tier holds
  (evicting it loses nothing). A chain of process-local tiers only acknowledges on any tier.
* **Outages**: a shared tier that raises :class:`BackendUnavailableError` is skipped by plain
  reads and writes for ``retry_after`` seconds (a breaker; one call probes it afterwards). The
  keys written while it was skipped are remembered (up to ``max_missed``) and, when it answers
  again, brought up to date from the newest copy: never deleted.
* **The near cache** (the process-local tiers above the arbiter) is coherent by default: see
  :mod:`.near`. With an invalidation stream from the arbiter (Redis client-side caching) other
  processes' writes drop its copies within one message; without it copies are re-checked after
  ``max_staleness`` seconds (default 1).
* **Evictions** of every tier (the memory tier's bounds, diskcache's ``size_limit``) are added to
  the chain's ``evictions`` counter; those of a durable tier (sessions lost) are also logged as a
  warning at most once a minute (the near cache's lose nothing: a durable tier holds each entry).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any

from session_store.backend import SessionBackend, Versioned, VersionToken, ensure_bytes
from session_store.backend_base import TrustedCalls
from session_store.keys import MAX_KEY_BYTES, validate_key
from session_store.tiered import steps, straight
from session_store.tiered.base import (
    DEFAULT_MAX_STALENESS,
    DEFAULT_RETRY_AFTER,
    DEFAULT_TOMBSTONE_TTL,
    TIERED_COUNTER_NAMES,
    log,
)
from session_store.tiered.bulk import ChainListing
from session_store.tiered.cas import TieredCas
from session_store.tiered.session_delete import delete_session
from session_store.ttl import normalize_ttl

__all__ = [
    "DEFAULT_MAX_STALENESS",
    "DEFAULT_RETRY_AFTER",
    "DEFAULT_TOMBSTONE_TTL",
    "TIERED_COUNTER_NAMES",
    "ChainListing",
    "TieredBackend",
]


class TieredBackend(TieredCas):
    """Backends chained fastest first (for example memory, then Redis, then disk).

    Args:
        tiers: at least one backend, fastest first. The chain owns them: ``close`` closes them.
        retry_after: seconds a tier that went down is skipped by plain reads and writes.
        max_staleness: seconds a near-cache copy is served without a check while no
            invalidation stream is up (default 1).
        tombstone_ttl: seconds a tombstone lives (default 7 days); at least the longest TTL.
        invalidation: use the arbiter's invalidation stream if it has one (default ``True``).
        max_missed: keys remembered per down tier, to bring up to date when it is back.
        clock: monotonic clock in seconds (tests may pass their own).
        stamps: accepted for older configurations and ignored: every chain versions its copies.
    """

    # -- writes: the sequences of :mod:`.steps`, after the argument checks --------------------
    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        if not (type(key) is str and key.isascii() and 0 < len(key) <= MAX_KEY_BYTES):
            validate_key(key)  # the common case decided inline (as MemoryBackend.set), the rest
        if type(value) is not bytes:  # in full
            value = ensure_bytes(value, key=key)
        ttl = normalize_ttl(ttl)
        straight.save(self, key, value, ttl, ttl)

    def _set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        straight.save(self, key, value, ttl, ttl)

    def set_with_own_ttl(
        self, key: str, value: bytes, ttl: float | None, own_ttl: float | None
    ) -> None:
        """``set``, expiring after ``ttl`` but recording ``own_ttl`` as the session's own TTL
        (the one ``touch(key)`` restarts it with): how ``copy`` and ``migrate`` carry a
        session with the time it has *left* and keep the TTL it was saved with. Ordered,
        acknowledged and near-cached as every ``set``."""
        validate_key(key)
        value = ensure_bytes(value, key=key)
        ttl, own_ttl = normalize_ttl(ttl), normalize_ttl(own_ttl, what="own_ttl")
        straight.save(self, key, value, ttl, own_ttl)

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        checked = {validate_key(k): ensure_bytes(v, key=k) for k, v in items.items()}
        self._set_many(checked, normalize_ttl(ttl))

    def _set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        for key, value in items.items():
            straight.save(self, key, value, ttl, ttl)

    def delete(self, key: str) -> bool:
        return self._delete(validate_key(key))

    def _delete(self, key: str) -> bool:
        return self._run(steps.delete(self, key))

    def delete_many(self, keys: Iterable[str]) -> int:
        return self._delete_many([validate_key(key) for key in keys])

    def _delete_many(self, keys: Iterable[str]) -> int:
        return sum(1 for key in dict.fromkeys(keys) if self._run(steps.delete(self, key)))

    def delete_session(self, key: str) -> bool:
        """``delete`` of a live session only: see :mod:`.session_delete`."""
        return self._run(delete_session(self, validate_key(key)))

    def touch(self, key: str, ttl: float | None = None) -> bool:
        """Restart the expiry of ``key``; ``ttl=None``: the TTL the session was written with."""
        validate_key(key)
        return self._touch(key, normalize_ttl(ttl))

    def _touch(self, key: str, ttl: float | None = None) -> bool:
        return self._run(steps.touch(self, key, ttl))

    def touch_session(self, key: str, ttl: float | None = None, keep_own: bool = False) -> bool:
        """``touch`` of a live session only (a retired id's marker answers ``False`` and keeps
        its expiry); the TTL is ``ttl``, or with ``keep_own`` the one the newest copy records,
        else ``ttl`` (a copy the chain did not write records none: the store's TTL, never no
        expiry). What a store's ``touch``, ``touch_on_load`` and the web integrations call."""
        validate_key(key)
        return self._touch_session(key, normalize_ttl(ttl), keep_own)

    def _touch_session(self, key: str, ttl: float | None, keep_own: bool) -> bool:
        own, fallback = (None, ttl) if keep_own else (ttl, None)
        return self._run(steps.touch(self, key, own, fallback, session=True))

    @cached_property
    def trusted_calls(self) -> TrustedCalls:
        """The chain's operations without the argument checks, for a caller that made them
        (a :class:`~session_store.SessionStore`): see :func:`session_store.backend_base.trusted`."""
        return _TrustedChain(self)

    # -- life cycle ----------------------------------------------------------------------------
    def close(self) -> None:
        with self._replay_lock:
            self._closed = True
            timer, self._replay_timer = self._replay_timer, None
        if timer is not None:
            timer.cancel()
        self._flush_missed()
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            try:
                subscription.close()
            except Exception:  # close the tiers even if the stream fails to stop
                log.exception("closing the invalidation stream failed")
        for tier in self.tiers:
            try:
                tier.close()
            except Exception:  # close every tier even if one fails
                log.exception("closing tier %s failed", tier.describe())

    @classmethod
    def from_backends(cls, tiers: Sequence[SessionBackend], **options: Any) -> TieredBackend:
        """Same as the constructor; reads well beside :func:`open_backend`."""
        return cls(tiers, **options)


class _TrustedChain:
    """:attr:`TieredBackend.trusted_calls`: each public method's body after its checks (the
    caller promises what they would have checked: see
    :func:`~session_store.backend_base.trusted`)."""

    __slots__ = ("_chain", "get")

    def __init__(self, chain: TieredBackend) -> None:
        self._chain = chain
        # a near-cache hit checks nothing (the near tier holds only checked keys)
        self.get: Callable[[str], bytes | None] = chain.get if chain._near0 else chain._get

    def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        return self._chain._get_with_ttl(key)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        straight.save(self._chain, key, value, ttl, ttl)

    def delete(self, key: str) -> bool:
        return self._chain._delete(key)

    def touch(self, key: str, ttl: float | None = None) -> bool:
        return self._chain._touch(key, ttl)

    def touch_if(self, key: str, head: bytes, ttl: float | None = None) -> bool:
        return self._chain.touch_if(key, head, ttl)  # the protocol's default, on the chain

    def touch_session(self, key: str, ttl: float | None = None, keep_own: bool = False) -> bool:
        return self._chain._touch_session(key, ttl, keep_own)

    def ttl(self, key: str) -> float | None:
        return self._chain._ttl(key)

    def scan(self, prefix: str = "") -> Iterator[str]:
        return self._chain.scan(prefix)  # one check per listing, not per key

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        return self._chain._get_many(list(keys))

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        self._chain._set_many(items, ttl)

    def delete_many(self, keys: Iterable[str]) -> int:
        return self._chain._delete_many(keys)

    def get_versioned(self, key: str) -> Versioned | None:
        return self._chain._get_versioned(key)

    def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        return self._chain._set_if(key, value, token, ttl)
