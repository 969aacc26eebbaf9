"""Closing what another event loop owns, from ``aclose`` on this one.

An asyncio connection belongs to the loop that opened it: its transport can only be closed on
that loop. One async backend serves every loop that uses it (a server loop in a thread, the
loop of a shutdown hook, a second thread's), so its ``aclose`` may run on a loop that does not
own every connection it has to release. What it cannot close itself, it hands to the owner:

* the owner runs (in another thread) or is stopped but not closed: the close is scheduled there
  (``call_soon_threadsafe``), as a task of that loop's own, and runs on its next turn (a
  stopped loop's, when it runs again). ``aclose`` does not wait for it: that loop may be
  blocked waiting on this one, and waiting for it would then never end.
* the owner is closed: nothing can run there any more; what it owned is dropped, and its
  sockets are released when their transports are collected.

A failure while closing is logged (debug) and dropped: there is nobody left to raise it to.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["Closer", "close_on_own_loop"]

log = logging.getLogger("session_store_redis.aio")

#: What closes: ``driver.aclose``, say (called on the owner's loop).
Closer = Callable[[], Coroutine[Any, Any, None]]

#: The closes running on their loops, held until done (a task only weakly held may vanish).
_running: set[asyncio.Task[None]] = set()


def close_on_own_loop(owner: asyncio.AbstractEventLoop, close: Closer) -> None:
    """Run ``close()`` on ``owner`` (not the running loop), without waiting for it; nothing if
    ``owner`` is closed. Safe from any thread."""
    if owner.is_closed():
        return
    try:
        owner.call_soon_threadsafe(_start, owner, close)
    except RuntimeError:  # closed meanwhile: as above
        return


def _start(owner: asyncio.AbstractEventLoop, close: Closer) -> None:
    """On ``owner``: the close as a task of its own (the coroutine is made here, so a loop
    closed before it ran leaves no coroutine that was never awaited)."""
    task = owner.create_task(close())
    _running.add(task)
    task.add_done_callback(_done)


def _done(task: asyncio.Task[None]) -> None:
    _running.discard(task)
    if not task.cancelled() and (error := task.exception()) is not None:
        log.debug("closing a connection on its own event loop failed: %r", error)
