"""A lock held by another thread at fork time is free in the child."""

from __future__ import annotations

import os
import threading

from session_store import MemoryBackend, TieredBackend
from session_store.counters import Counters


def test_locks_held_during_fork_are_new_in_the_child() -> None:
    memory, counters = MemoryBackend(), Counters()
    chain = TieredBackend([MemoryBackend(), memory])
    memory.set("k", b"v")
    held = [memory._lock, counters._lock, chain._lock]
    for lock in held:
        lock.acquire()  # as if another thread were inside a critical section right now
    try:
        pid = os.fork()
        if pid == 0:  # the child: every operation must go through, not hang
            ok = memory.get("k") == b"v"
            counters.add("hits")
            chain.set("x", b"y")
            ok = ok and chain.get("x") == b"y" and counters.get("hits") == 1
            os._exit(0 if ok else 1)
        waited = threading.Event()
        result: list[int] = []

        def wait() -> None:
            result.append(os.waitpid(pid, 0)[1])
            waited.set()

        threading.Thread(target=wait, daemon=True).start()
        if not waited.wait(10):
            os.kill(pid, 9)
            raise AssertionError("the child hung on a lock inherited from the parent")
        assert os.waitstatus_to_exitcode(result[0]) == 0
    finally:
        for lock in held:
            lock.release()
