"""The near cache's coherence state: which copies were checked when, and what invalidated them.

The memory tier above a chain's first shared tier is a *near cache*. A copy in it is served only
while it is known to be current (:func:`~session_store.tiered.policy.is_fresh`):

* **with an invalidation stream** (a backend offering ``invalidations(prefix, listener)``, such as
  Redis client-side caching), every other process's write or delete drops the copy within the
  time of one message; a copy checked after the stream (re)connected is served until dropped,
  *while the stream was heard from recently* (see below);
* **without one** (not offered, not connected yet, or down), a copy is served for at most
  ``max_staleness`` seconds after it was last read from the shared tiers; then it is checked again.

**Heard from.** A connected stream proves nothing about a moment its thread has not reached: after
a pause of the whole process (SIGSTOP, a long GC pause, VM steal) a request thread may run before
the stream's thread has read the invalidations waiting in its socket. So the stream says when it
last *heard* from the server (:meth:`NearState.heard`): the moment it sent a ``PING`` whose answer
it has now read, which proves that every invalidation sent before that moment was handled (they
share one connection, in order). A copy is served on the stream's word only until
:attr:`NearState.trusted_until`, that moment plus ``max_staleness``; later, only by the
``max_staleness`` check of its own age. The stream pings every 0.25 s, so on a healthy connection,
idle or busy, trust never lapses; after a pause longer than the bound, the first reads revalidate.

A fill races with invalidations: a read that fetched a copy from the shared tiers must not install
it after an invalidation of that key arrived (the copy may predate the write that caused it). Every
invalidation gets a sequence number; a fill remembers the number current when it began and is
dropped if the key was invalidated since (:meth:`NearState.may_install`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from typing import Protocol

from session_store import forksafe

__all__ = ["InvalidationListener", "NearState", "Subscription"]

#: Invalidation records kept before they are folded into one floor (bounded memory).
_MAX_RECORDS = 65_536


class InvalidationListener(Protocol):
    """What a backend's invalidation stream calls (from its own thread)."""

    def on_invalidate(self, keys: list[str] | None) -> None:
        """These session keys changed elsewhere; ``None``: everything (a flush)."""

    def on_connected(self) -> None:
        """The stream is (re)connected: from now on every change is reported."""

    def on_disconnected(self) -> None:
        """The stream is down: changes may go unreported until it reconnects."""

    # A listener may also define ``on_heard(age: float)``: every change made before the moment
    # ``age`` seconds ago has been reported (the stream's answer to a ping sent then). A stream
    # calls it if the listener has it (the chain's does; without it, a chain trusts its stream
    # for ``max_staleness`` after each connection only, then falls back to its version check).


class Subscription(Protocol):
    """What ``invalidations(prefix, listener)`` returns."""

    def close(self) -> None: ...


class NearState:
    """Checked times and invalidation sequence numbers of one chain's near cache."""

    def __init__(self, max_staleness: float, clock: Callable[[], float]) -> None:
        self.max_staleness = max_staleness
        self._clock = clock
        self.lock = threading.Lock()
        self.checked: dict[str, float] = {}
        #: the version of each copy put in the near cache (which holds the caller's bytes)
        self.versions: dict[str, bytes] = {}
        #: monotonic time the stream connected; inf while there is no stream or it is down
        self.coherent_since = math.inf
        #: until when a checked copy is served on the stream's word (the last time the stream
        #: was heard from, plus max_staleness); -inf while there is no stream or it is down.
        #: Every copy in :attr:`checked` while the stream is up was checked after it connected
        #: (the flush of :meth:`connected` fences older fills and writes), so a hit compares only
        #: this deadline, with no per-copy test of ``coherent_since``.
        self.trusted_until = -math.inf
        self.seq = 0
        self._floor = 0
        self._invalidated: dict[str, int] = {}
        forksafe.register(self)

    def _reset_locks(self) -> None:
        """In a forked child: a new lock, and no stream (the listener thread did not fork)."""
        self.lock = threading.Lock()
        self.coherent_since = math.inf
        self.trusted_until = -math.inf

    def begin(self) -> int:
        """The sequence number a fill starts from."""
        return self.seq

    def may_install(self, key: str, began: int) -> bool:
        """Whether a fill that began at ``began`` may install ``key`` (call with the lock held)."""
        # an invalidation numbered n happened before a fill that began at n or later
        return self._floor <= began and self._invalidated.get(key, -1) <= began

    def connected(self, now: float) -> None:
        """The stream (re)connected at ``now``: flush (what changed while it was down is
        unknown), and trust copies checked from now on for ``max_staleness`` (lock held)."""
        self.invalidate(None)
        self.coherent_since = now
        self.trusted_until = now + self.max_staleness

    def disconnected(self) -> None:
        """The stream is down: no copy is served on its word any more (lock held)."""
        self.coherent_since = math.inf
        self.trusted_until = -math.inf

    def heard(self, at: float) -> None:
        """Every invalidation the server sent before ``at`` has been handled: copies checked
        since the stream connected are trusted until ``at + max_staleness`` (lock held)."""
        if self.coherent_since <= at and at + self.max_staleness > self.trusted_until:
            self.trusted_until = at + self.max_staleness

    def mark_checked(self, key: str, at: float) -> None:
        """``key``'s copy was read from the shared tiers at ``at`` (call with the lock held)."""
        self.checked[key] = at

    def invalidate_one(self, key: str) -> None:
        """:meth:`invalidate` of one key (every write does this: no list, no loop)."""
        self.seq += 1
        self._invalidated[key] = self.seq
        self.checked.pop(key, None)
        if len(self._invalidated) > _MAX_RECORDS:
            self._floor = self.seq
            self._invalidated.clear()

    def invalidate(self, keys: Iterable[str] | None) -> None:
        """Drop the checks of ``keys`` (``None``: all) and fence fills in flight (lock held)."""
        self.seq += 1
        if keys is None:
            self._floor = self.seq
            self._invalidated.clear()
            self.checked.clear()
            if len(self.versions) > _MAX_RECORDS:
                self.versions.clear()  # fills are fenced by sequence numbers meanwhile
            return
        for key in keys:
            self._invalidated[key] = self.seq
            self.checked.pop(key, None)
        if len(self._invalidated) > _MAX_RECORDS:
            self._floor = self.seq
            self._invalidated.clear()
