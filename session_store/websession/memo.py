"""The data a web request wrote, kept to answer the next request of the same user without
parsing the session back out of its JSON body.

A web request that changes its session writes it (:func:`~session_store.websession.steps.
commit_steps`) and tells the store's decoded-object cache (:mod:`session_store.decoded`) the
checked JSON body of those bytes. The next request reads the same bytes back, and the cache
hands that body to a ``rebuild`` function to get a new object of its own: a parse of the body
(about 28k instructions for a 2 KB session, counted with callgrind) where the data itself was
in hand a moment ago. :class:`WrittenData` keeps that data, by session, together with the very
body object the cache keeps for it; the ``rebuild`` it gives the cache returns a fresh copy of
the data when the cache hands it that same object, and parses otherwise.

It can never answer for other bytes: the cache only hands over a body for exactly the bytes it
was made from, and an entry here matches only that body object (held here, so its identity is
not reused). What it returns is a copy (JSON's types copied directly), so a request changing
its session never changes the kept data, nor what the next request gets.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from session_store import forksafe
from session_store.codec import Plain
from session_store.websession.state import Data, snapshot

if TYPE_CHECKING:
    from session_store.aio.store import AsyncSessionStore
    from session_store.store import SessionStore

__all__ = ["WrittenData", "written_data"]

#: Sessions whose last write is kept per store (the busiest users; older ones parse again).
MAX_ENTRIES = 1024


class WrittenData:
    """The data last written per session by this process's web requests in ``store`` (see the
    module docstring), bounded to ``max_entries`` sessions, least recently used first."""

    def __init__(
        self, store: SessionStore[Data] | AsyncSessionStore[Data], max_entries: int = MAX_ENTRIES
    ) -> None:
        self._store = weakref.ref(store)  # kept beside the store, never keeping it alive
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[Plain, Data]] = OrderedDict()
        self._lock = threading.Lock()
        #: A sync store's backend calls without the key and TTL checks (:func:`trusted`): the
        #: web integrations call it only with ids they checked (``is_session_id``) or made.
        self.trusted: Any = None
        forksafe.register(self)

    def _reset_locks(self) -> None:
        self._lock = threading.Lock()

    def remember(self, sid: str, plain: Plain, data: Data) -> None:
        """``plain`` (the body object the decoded cache now keeps for ``sid``) holds ``data``."""
        kept = snapshot(data)
        with self._lock:
            self._entries[sid] = (plain, kept)
            self._entries.move_to_end(sid)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def rebuild(self, sid: str, plain: Plain) -> Data:
        """The decoded cache's ``rebuild``: a copy of the data kept for this very body object,
        else the store's own parse of the body."""
        with self._lock:
            entry = self._entries.get(sid)
        if entry is not None and entry[0] is plain:
            return snapshot(entry[1])
        store = self._store()
        assert store is not None  # the store is the one reading
        data: Data = store._rebuild(sid, plain)
        return data


#: The WrittenData of each store, by ``id(store)``, with a weak reference to the store (an id
#: is reused once its store is gone, so the reference is checked): a plain dict read, where a
#: ``WeakKeyDictionary`` lookup costs a frame and a new weak reference (twice a request).
_kept: dict[int, tuple[weakref.ReferenceType[Any], WrittenData]] = {}
_kept_lock = threading.Lock()


def written_data(store: SessionStore[Data] | AsyncSessionStore[Data]) -> WrittenData:
    """The :class:`WrittenData` of ``store`` (one per store, made on first use)."""
    found = _kept.get(id(store))
    if found is not None and found[0]() is store:
        return found[1]
    with _kept_lock:
        found = _kept.get(id(store))
        if found is not None and found[0]() is store:
            return found[1]
        key = id(store)
        kept = WrittenData(store)
        _kept[key] = (weakref.ref(store, lambda _: _forget(key)), kept)
        return kept


def _forget(key: int) -> None:
    """The store ``key`` named is gone: drop its entry (unless a new store took its id). No
    lock: a weak reference's callback may run inside a garbage collection that started while
    this thread held it; at worst a new store's entry is dropped and made again."""
    found = _kept.get(key)
    if found is not None and found[0]() is None:
        _kept.pop(key, None)
