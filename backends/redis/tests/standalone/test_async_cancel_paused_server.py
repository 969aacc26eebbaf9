"""The async Redis backend's cancellation (``session_store_redis.aioconn``),
against a real redis-server of the test's own that is paused with ``SIGSTOP``: while it is
stopped no reply can arrive, so a caller's timeout always fires while its command waits.

docs/async.md: a task may be cancelled at any ``await`` (a client disconnects, a timeout
fires); the command was written whole, its reply is read and dropped, the connection stays in
step. A web app cancels such reads on every client disconnect, so a cancellation must also be
quiet: no ERROR record per cancelled request.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from session_store.aio import AsyncSessionStore
from session_store_redis.testing import RedisServer

ServerFactory = Callable[..., RedisServer]


@contextmanager
def stopped(server: RedisServer) -> Iterator[None]:
    """The server's process is stopped (SIGSTOP) meanwhile, and continued after."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


def test_a_cancelled_command_logs_no_error_and_the_connection_stays_in_step(
    redis_server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancel a ``load``, a ``save`` and an ``update`` (by ``asyncio.wait_for``) while the
    server is stopped: each raises ``TimeoutError`` to its caller; afterwards every command gets
    its own reply (the dropped replies are not handed to later commands), the cancelled
    ``save`` is either whole or absent, and asyncio logged no "exception was never retrieved"
    (before the fix: one ERROR record with a traceback per cancelled command, from the
    ``gather`` the connection waited on, which nobody retrieved once it was cancelled)."""
    server = redis_server_factory()
    caplog.set_level(logging.ERROR, logger="asyncio")

    async def main() -> None:
        async with AsyncSessionStore(server.url_for(prefix="cancel:"), dict) as store:
            await store.save("k", {"n": 0})
            await store.save("other", {"n": 100})
            calls: list[Callable[[], Any]] = [
                lambda: store.load("k"),
                lambda: store.save("k", {"n": 1}),
                lambda: store.update("k", lambda s: {"n": (s or {"n": 0})["n"] + 10}),
            ]
            with stopped(server):
                for call in calls:
                    with pytest.raises(TimeoutError):
                        await asyncio.wait_for(call(), 0.05)
            gc.collect()  # an unretrieved exception is reported when its future is collected
            assert await store.load("other") == {"n": 100}  # its own reply, not a dropped one
            assert await store.load("k") in ({"n": 0}, {"n": 1})  # whole or absent
            assert await store.update("k", lambda s: {"n": -1}) == {"n": -1}

    asyncio.run(main())
    gc.collect()
    noisy = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert noisy == [], noisy
