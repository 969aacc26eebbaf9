"""A listener that records what an invalidation stream tells it, for tests of the stream.

Any test of :meth:`RedisBackend.invalidations <session_store_redis.RedisBackend.invalidations>`
(ours, or a plugin's own stream) needs the same thing: an
:class:`~session_store.tiered.near.InvalidationListener` that keeps every call, and a way to wait
until what it kept satisfies a condition, without sleeping a fixed time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["FLUSHED_DB", "StreamRecorder"]

#: A database the suite stores nothing in: Redis sends every tracking client the flush message
#: (a null list) for a flush of any database, so a test of that message flushes this one, not
#: the shared server's data.
FLUSHED_DB = 9


class StreamRecorder:
    """Keeps every call of the stream: the keys in order of arrival (:attr:`keys`), the same as
    a set (:attr:`seen`), how many batches and flushes arrived, the (dis)connections, and
    whether it is connected now (:attr:`connected`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keys: list[str] = []
        self.seen: set[str] = set()
        self.batches = 0
        self.flushes = 0
        self.connects = 0
        self.disconnects = 0
        self.connected = threading.Event()

    def on_invalidate(self, keys: list[str] | None) -> None:
        with self.lock:
            self.batches += 1
            if keys is None:
                self.flushes += 1
            else:
                self.keys.extend(keys)
                self.seen.update(keys)

    def on_connected(self) -> None:
        with self.lock:
            self.connects += 1
        self.connected.set()

    def on_disconnected(self) -> None:
        with self.lock:
            self.disconnects += 1
        self.connected.clear()

    def wait_for(self, done: Callable[[], bool], seconds: float = 10.0) -> bool:
        """Whether ``done()`` (called with the lock held) became true within ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                if done():
                    return True
            time.sleep(0.005)
        return False
