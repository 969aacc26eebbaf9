"""The near cache of a chain: the process-local tiers above the arbiter, kept coherent.

One class for the sync :class:`~session_store.tiered.TieredBackend` and its async twin
(:class:`~session_store.aio.tiered.AsyncTieredBackend`): the near tiers are process memory, whose
operations are a few dictionary steps, so both chains call them directly (the async chain through
the memory backend's sync view) under :attr:`NearState.lock`. What is decided here, for both:

* a fill (a read that fetched a copy from the shared tiers) is installed only if no invalidation
  of its key arrived since it began (:meth:`NearState.may_install`), and never over a newer
  version the near cache already holds;
* a write's copy is kept *unchecked* if an invalidation of its key arrived while the write was in
  flight (it may be another process's later write: the next read asks the shared tiers);
* a deleted key is simply absent (never a tombstone in the near cache);
* the invalidation stream's calls (:class:`~session_store.tiered.near.InvalidationListener`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from session_store.backend import SessionBackend
from session_store.backend_base import trusted
from session_store.counters import Counters
from session_store.errors import BackendError
from session_store.stamps import VERSION_END, VERSION_START, frame, unframe, version_of
from session_store.tiered.breakers import eviction_reader
from session_store.tiered.near import _MAX_RECORDS, NearState
from session_store.tiered.policy import Copy, ttl_from_left
from session_store.unchecked import TrustedCalls

__all__ = ["NearCache"]

#: Checked-time records kept before they are all forgotten (keys evicted from the tier).
_MAX_CHECKED = 1_000_000


class NearCache:
    """The near tiers of one chain and their :class:`NearState`.

    Args:
        tiers: the near tiers (sync, process-local), fastest first, as ``(index, backend)``.
        state: the coherence state (checked times, invalidation sequence numbers).
        counters: the chain's counters (``promotions``, ``invalidations``).
        on_put: called with a tier's index after a copy was put in it (eviction accounting).
        clock: the chain's monotonic clock.
    """

    def __init__(
        self,
        tiers: Sequence[tuple[int, SessionBackend]],
        state: NearState,
        counters: Counters,
        on_put: Callable[[int], None],
        clock: Callable[[], float],
    ) -> None:
        self.tiers = tuple(tiers)
        # the data calls, without the key checks the chain already made (see backend_base.trusted)
        self._calls = tuple((index, tier, trusted(tier)) for index, tier in self.tiers)
        # each near tier's eviction count, read after every put without a Python call where
        # the tier offers it (the memory backend), and the count as of the last ``on_put``: a
        # put that evicted nothing leaves ``on_put`` (the breakers' check_evictions, two Python
        # calls, which carries a count that moved since its last call) uncalled
        self._puts = tuple(
            (index, calls, eviction_reader(tier), n)
            for n, (index, tier, calls) in enumerate(self._calls)
        )
        self._evictions_seen = [read() for _, _, read, _ in self._puts]
        self.state = state
        self._counters = counters
        self._on_put = on_put
        self._clock = clock

    # -- fills and writes ----------------------------------------------------------------------
    def install(self, key: str, best: Copy, began: int, start: float) -> None:
        """Put ``best`` in the near cache, unless ``key`` was invalidated since the read began."""
        if not self.tiers:
            return
        ttl = ttl_from_left(best.left)
        with self.state.lock:
            if not self.state.may_install(key, began):
                return
            if self.put_locked(key, best.data, ttl, promote=True):
                self.state.mark_checked(key, start)

    def after_write(
        self, key: str, data: bytes, value: bytes, ttl: float | None, start: float, began: int
    ) -> None:
        """This process wrote ``data`` (framed ``value``) in a write that began at invalidation
        sequence ``began``: the near cache holds it, checked as of ``start``.

        Unless an invalidation of ``key`` arrived while the write was in flight. It may be this
        write's own (the stream reports every client's writes, this process's too), or another
        process's write that landed after this one: the stream cannot tell them apart. The copy
        is then kept *unchecked*: the next read asks the shared tiers (and serves this copy
        only if none of them answers), instead of serving a copy another process may already
        have replaced until the next invalidation (found by the history checker).
        """
        if not self.tiers:
            return
        state = self.state
        version = data[VERSION_START:VERSION_END]  # (the chain framed it: a value)
        versions = state.versions
        lock = state.lock  # (acquire / release in try / finally: cheaper than ``with`` on 3.11)
        lock.acquire()
        try:
            # whether an invalidation raced the write (NearState.may_install), then fence fills
            # in flight, which may have read an older copy (NearState.invalidate_one): inline,
            # every save comes here
            invalidated = state._invalidated
            unchecked = state._floor > began or invalidated.get(key, -1) > began
            state.seq = seq = state.seq + 1
            invalidated[key] = seq
            state.checked.pop(key, None)
            if len(invalidated) > _MAX_RECORDS:
                state._floor = seq
                invalidated.clear()
            # put_locked(key, data, ttl, value=value, version=version), inline: its copy is a
            # value, never a tombstone; no promotion counted
            known = versions.get(key)
            seen = self._evictions_seen
            for index, calls, evictions, n in self._puts:
                try:
                    if known is not None and known >= version and calls.get(key) is not None:
                        continue
                    calls.set(key, value, ttl)
                except BackendError:
                    unchecked = True  # (put_locked's False: the key stays unchecked)
                    self._forget(key, calls)
                    continue
                versions[key] = version
                count = evictions()  # (:meth:`_put_done`, inline)
                if count != seen[n]:
                    seen[n] = count
                    self._on_put(index)
            if len(state.checked) > _MAX_CHECKED:  # keys evicted from the tier: forget them
                state.invalidate(None)
            if not unchecked:
                state.checked[key] = start
        finally:
            lock.release()

    def put_locked(
        self,
        key: str,
        data: bytes,
        ttl: float | None,
        *,
        promote: bool = False,
        value: bytes | None = None,
        version: bytes | None = None,
    ) -> bool:
        """Put the framed ``data`` in the near tiers unless they hold a newer version (lock held).

        The near cache holds the caller's bytes, unframed, so that a hit returns them as they
        are (no copy); their versions are kept beside them in :attr:`NearState.versions`.
        Returns whether every near tier holds it (or a newer version): only then may the key be
        marked checked. A tier that refused it loses its older copy (best effort), and the key
        stays unchecked either way, so an older copy is never served as current.
        """
        if value is None:  # (a writer passes the caller's bytes: no second copy)
            value = unframe(data)
        if value is None:
            return False  # never a tombstone: a deleted key is simply absent from the near cache
        complete = True
        if version is None:  # (a writer passes the version it framed)
            version = version_of(data)
        versions = self.state.versions
        known = versions.get(key)
        for index, calls, _, n in self._puts:
            try:
                if known is not None and known >= version and calls.get(key) is not None:
                    continue
                calls.set(key, value, ttl)
                if promote:
                    self._counters.add("promotions")
                    self.tiers[n][1].counters.add("promotions")
            except BackendError:
                complete = False
                self._forget(key, calls)
                continue
            versions[key] = version
            self._put_done(index, n)
        if len(self.state.checked) > _MAX_CHECKED:  # keys evicted from the tier: forget them
            self.state.invalidate(None)
        return complete

    def _put_done(self, index: int, n: int) -> None:
        """A copy was put in near tier ``index`` (the ``n``-th): ``on_put`` if its eviction
        count moved since the last one. Calling it only then is calling it after every put:
        it carries what moved since its own last call, and nothing else moves the count it
        reads (the tier's, or for an async chain's memory tier its sync view's, the same)."""
        count = self._puts[n][2]()
        if count != self._evictions_seen[n]:
            self._evictions_seen[n] = count
            self._on_put(index)

    def _forget(self, key: str, calls: TrustedCalls) -> None:
        """A near tier (``calls``, its unchecked calls) refused a copy of ``key``: the key is
        unchecked, its version forgotten, its older copy dropped (best effort: it must not be
        served). Lock held."""
        self.state.checked.pop(key, None)
        self.state.versions.pop(key, None)
        with contextlib.suppress(BackendError):
            calls.delete(key)

    def drop(self, key: str) -> None:
        """Forget ``key`` in the near cache and fence fills in flight."""
        if not self.tiers:
            return
        with self.state.lock:
            self.state.invalidate([key])
            self.state.versions.pop(key, None)
            for _, _, calls in self._calls:
                with contextlib.suppress(BackendError):  # dropping a copy is best effort
                    calls.delete(key)

    def after_touch(self, key: str, version: bytes, ttl: float | None, alive: bool) -> None:
        """A ``touch`` read ``version`` of ``key`` and restarted its expiry in the shared tiers
        that still hold it (``alive``), or found it in none of them: the near copy of that
        version gets the same expiry, or is dropped (a copy of a version no shared tier holds
        is stale). A near copy of a newer version (written since the touch read) is left
        alone, an older one dropped."""
        if not self.tiers:
            return
        with self.state.lock:
            known = self.state.versions.get(key)
            if known is None or known > version:
                return
            if alive and known == version:
                for _, _, calls in self._calls:
                    with contextlib.suppress(BackendError):  # an expiry kept is best effort
                        calls.touch(key, ttl)
                return
        self.drop(key)

    def copy_of(self, key: str, index: int, found: tuple[bytes, float]) -> Copy:
        """Near tier ``index``'s copy of ``key`` (the caller's bytes ``found[0]``, TTL left
        ``found[1]``) as a framed :class:`Copy`, with the version it was put with: what a read
        serves when no shared tier answers (the near copy is all there is)."""
        version = self.state.versions.get(key) or bytes(12)
        return Copy(index, frame(found[0], version, None), found[1])

    # -- the invalidation stream (an InvalidationListener) -------------------------------------
    def on_invalidate(self, keys: list[str] | None) -> None:
        """From the stream: ``keys`` changed elsewhere (``None``: everything)."""
        with self.state.lock:
            self.state.invalidate(keys)
        self._counters.add("invalidations", 1 if keys is None else len(keys))

    def on_connected(self) -> None:
        """From the stream: connected; copies checked from now on are trusted until dropped,
        while the stream is heard from (:meth:`on_heard`)."""
        with self.state.lock:
            self.state.connected(self._clock())  # a flush: what changed meanwhile is unknown

    def on_heard(self, age: float) -> None:
        """From the stream: every invalidation sent before ``age`` seconds ago was handled."""
        with self.state.lock:
            self.state.heard(self._clock() - age)

    def on_disconnected(self) -> None:
        """From the stream: down; copies fall back to the ``max_staleness`` check."""
        with self.state.lock:
            self.state.disconnected()
