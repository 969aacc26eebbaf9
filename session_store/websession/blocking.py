"""Reading a session through an :class:`~session_store.aio.AsyncSessionStore` from synchronous
code: Starlette's ``request.session``, the first use of a
:class:`~session_store.websession.lazy.LazyDictSession`.

An event loop cannot wait for its own I/O from inside a synchronous call, so:

* a store in this process's memory (:class:`~session_store.aio.AsyncMemoryBackend`) is read
  inline: it never waits on anything;
* a store with a blocking twin (a :class:`~session_store.aio.ThreadedBackend`'s own backend,
  or the sync backend of the same single URL, opened on the first such read) is read through
  it: one blocking round trip, the same bytes and version token as the async backend's (the
  sync and async backends of a URL share the key layout and the compare-and-set tokens);
* any other store (a chain, a store given without its URL) is read by the async store itself,
  on a helper event loop in a thread of its own (started on first use; async backends keep one
  connection set per loop), while the calling thread waits for that one read.

The app's event loop is blocked for that read, one round trip, as a Flask worker is for its
own read; an app that must never block its loop awaits
``session_store.starlette.load_session(request)`` before using the session. The bytes are
decoded through the async store's own decoded-object cache either way.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

from session_store import forksafe
from session_store.aio.memory import AsyncMemoryBackend
from session_store.aio.threaded import ThreadedBackend
from session_store.backend import SessionBackend
from session_store.registry import open_backend, split_chain
from session_store.websession.ids import hiding
from session_store.websession.state import Read
from session_store.websession.storeio import aread_session, decode_read

if TYPE_CHECKING:
    from session_store.aio.store import AsyncSessionStore

__all__ = ["BlockingReads"]


class BlockingReads:
    """Synchronous reads of sessions in ``store`` (see the module docstring).

    Args:
        store: the async store whose sessions are read (its decoded-object cache included).
        url: the URL ``store``'s backend was opened from, if it was: a single URL (not a chain)
            gives the blocking twin.
    """

    def __init__(self, store: AsyncSessionStore[dict[str, Any]], url: str | None = None) -> None:
        self.store = store
        backend = store.backend
        self._twin: SessionBackend | None = None
        self._twin_url: str | None = None
        if isinstance(backend, ThreadedBackend):
            self._twin = backend.sync
        elif url is not None and len(split_chain(url)) == 1:
            self._twin_url = url  # opened on the first blocking read
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        forksafe.register(self)

    def _reset_locks(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, sid: str) -> Read | None:
        """The session ``sid`` with its version token, or ``None``; one backend read."""
        backend = self.store.backend
        if isinstance(backend, AsyncMemoryBackend):  # in this process: nothing to wait for
            with hiding(sid):
                return decode_read(self.store, sid, backend.sync.get_versioned(sid))
        twin = self._twin or self._open_twin()
        if twin is not None:
            with hiding(sid):
                return decode_read(self.store, sid, twin.get_versioned(sid))
        future = asyncio.run_coroutine_threadsafe(aread_session(self.store, sid), self._helper())
        return future.result()

    def _open_twin(self) -> SessionBackend | None:
        if self._twin_url is None:
            return None
        with self._lock:
            if self._twin is None:
                self._twin = open_backend(self._twin_url)
            return self._twin

    def _helper(self) -> asyncio.AbstractEventLoop:
        """The helper loop, started on first use (and again in a forked child, where the
        parent's thread does not exist)."""
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="session-store-reads", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def close(self) -> None:
        """Stop the helper loop and close the twin opened from the URL, if either was (the
        store itself is not closed)."""
        twin = None
        with self._lock:
            if self._twin_url is not None:  # ours to close (a ThreadedBackend's is the store's)
                twin, self._twin = self._twin, None
        if twin is not None:
            twin.close()
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()
