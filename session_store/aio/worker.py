"""The worker threads of a :class:`~session_store.aio.ThreadedBackend`: blocking calls run off
the event loop, with a cheaper hand-off than ``asyncio.to_thread``.

``asyncio.to_thread`` goes through the loop's executor: a ``concurrent.futures`` future with its
condition and callbacks, a work item, the pool's thread accounting, an asyncio future chained to
it. For the async chain's disk tier that machinery was most of what a ``save`` cost beyond the
sync chain (bench_aio_chain). Here a call is one ``SimpleQueue.put`` of ``(loop, reply, fn,
args)``; a thread of the backend's own runs it and hands the outcome back with one
``call_soon_threadsafe``, whose callback resumes the waiting task in that same loop pass
(:class:`~session_store.aio.reply.Reply`).

**Cancellation.** A call cancelled before its thread took it is not run; one already running
finishes in its thread (a sync backend's operation is atomic), so a cancelled write has
happened wholly or not at all. **Closing** (:meth:`Worker.stop`) lets the queued calls finish,
then ends and joins every thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from session_store import forksafe
from session_store.aio.reply import Reply

__all__ = ["Worker"]

T = TypeVar("T")

_Job = tuple[
    asyncio.AbstractEventLoop, Reply[Any], contextvars.Context, Callable[..., Any], tuple[Any, ...]
]


def _do(
    loop: asyncio.AbstractEventLoop,
    reply: Reply[Any],
    context: contextvars.Context,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
) -> None:
    """One call, in a worker thread; its outcome handed to the loop."""
    if reply.done():  # cancelled before it started: not run
        return
    try:
        outcome, failed = context.run(fn, *args), False
    except BaseException as exc:  # handed to the caller, whatever it is
        outcome, failed = exc, True
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
        loop.call_soon_threadsafe(_settle, reply, outcome, failed)


def _settle(reply: Reply[Any], outcome: Any, failed: bool) -> None:
    """On the loop, from ``call_soon_threadsafe``: no task runs, so the waiter resumes now."""
    reply.resolve(outcome, failed)


class _Crew:
    """One generation of threads: their queue, the threads and how many wait for a call.
    :meth:`Worker.stop` retires a crew whole, so a call made meanwhile goes to the next one
    and can never take (or be left behind) a stop marker meant for the old threads."""

    __slots__ = ("idle", "jobs", "threads")

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.idle = 0


class Worker:
    """Up to ``threads`` threads running blocking calls in the order they were queued, started
    on first use (one more whenever every started thread is busy)."""

    def __init__(self, name: str, threads: int = 4) -> None:
        if threads < 1:
            raise ValueError("a worker needs at least one thread")
        self._name = name
        self._most = threads
        self._reset_locks()
        forksafe.register(self)

    def _reset_locks(self) -> None:
        """A fresh crew (also in a forked child: the parent's threads are not there)."""
        self._lock = threading.Lock()
        self._crew = _Crew()

    @property
    def _threads(self) -> list[threading.Thread]:
        """The threads of the current crew (tests look at them)."""
        return self._crew.threads

    def run(self, fn: Callable[..., T], *args: Any) -> Reply[T]:
        """``fn(*args)`` in a worker thread, in the caller's context; await the result."""
        loop = asyncio.get_running_loop()
        reply: Reply[T] = Reply(loop)
        job = (loop, reply, contextvars.copy_context(), fn, args)
        with self._lock:  # queued in the crew current now: before any stop marker sent to it
            crew = self._crew
            start = not crew.idle and len(crew.threads) < self._most
            if start:
                thread = threading.Thread(
                    target=self._serve,
                    args=(crew,),
                    name=f"{self._name}-{len(crew.threads)}",
                    daemon=True,
                )
                crew.threads.append(thread)
            crew.jobs.put(job)
        if start:
            thread.start()
        return reply

    def _serve(self, crew: _Crew) -> None:
        jobs, lock = crew.jobs, self._lock
        while True:
            with lock:
                crew.idle += 1
            job = jobs.get()
            with lock:
                crew.idle -= 1
            if job is None:
                return
            _do(*job)
            job = None  # nothing of it kept while waiting for the next

    def stop(self) -> None:
        """Let the queued calls finish, then end and join every thread (blocking: call it
        from a thread, e.g. ``await asyncio.to_thread(worker.stop)``). A call made meanwhile
        or afterwards starts a new crew of threads."""
        with self._lock:
            crew, self._crew = self._crew, _Crew()
            for _ in crew.threads:  # after every call queued to this crew (run holds the lock)
                crew.jobs.put(None)
        for thread in crew.threads:
            thread.join()
