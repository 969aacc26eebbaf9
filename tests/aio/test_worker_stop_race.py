"""A call made while :meth:`Worker.stop` is ending the threads (attack9c's reading of worker.py,
made a test by the coordinator): before, the thread such a call started took one of the stop
markers meant for the old threads, an old thread then served the call and waited for work
forever, and ``stop`` (so ``aclose``) never returned. The call must run and ``stop`` return."""

from __future__ import annotations

import asyncio
import threading

import pytest

from session_store.aio.worker import Worker


@pytest.mark.anyio
async def test_a_call_made_while_stop_ends_the_threads_runs_and_stop_returns() -> None:
    worker = Worker("stop-race", threads=2)
    release, started = threading.Event(), threading.Event()

    def hold() -> str:
        started.set()
        release.wait(30)
        return "held"

    holding = worker.run(hold)  # the first thread, busy
    await asyncio.to_thread(started.wait, 30)
    assert await worker.run(lambda: "second") == "second"  # the second thread, now idle
    old = list(worker._threads)
    assert len(old) == 2
    idle = old[1]  # started for the second call, while the first thread held the first
    stopper = threading.Thread(target=worker.stop, daemon=True)
    stopper.start()
    await asyncio.to_thread(idle.join, 30)  # the idle thread took its stop marker and ended
    assert not idle.is_alive()
    during = worker.run(lambda: "during stop")
    release.set()
    assert await asyncio.wait_for(holding, 30) == "held"
    assert await asyncio.wait_for(during, 30) == "during stop"
    await asyncio.to_thread(stopper.join, 10)
    assert not stopper.is_alive(), "stop() never returned: a thread waits for work forever"
    await asyncio.to_thread(worker.stop)
