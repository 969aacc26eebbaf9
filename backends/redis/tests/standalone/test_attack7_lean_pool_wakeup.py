"""The lean client's blocking pool (:mod:`session_store_redis.leanconn`) must wake a thread that
waits for a connection as soon as one comes back.

``release`` appends the connection to the idle list and notifies a waiter only if it sees one
(``_waiting``, read without the lock: the hot path takes no lock). A thread that found the pool
full checked the idle list, and only *then* counted itself as waiting, both under the lock; a
release landing between the two (its append after the check, its look at ``_waiting`` before
the count) notified nobody, and the thread slept the pool's whole ``pool_timeout`` (5 s by
default) beside an idle connection: 10.0 s here before the fix, about 1 s after (the forced
release's own bounded wait). Now the waiter counts itself before it looks.

The window is a few bytecodes wide: 8 threads sharing ``max_connections=1`` for 15 s never hit
it (each of ~23 pool timeouts found the connection in use). The 3.0 s stalls those threads do
show (~50 per 20 s, before and after the fix) are barging, not this bug: a thread that just
released takes the connection back before the woken waiter runs, as with redis-py's own
``BlockingConnectionPool`` (which answers 42 of them with ``No connection available``, where
the backend's retry hides the lean client's).

Here the interleaving is forced, not hoped for: the idle list's length, read by the waiter's
check, lets the other thread release its connection right then. Found by attack7 (round 7).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.connection import BlockingConnectionPool

from session_store_redis.leanconn import LeanRedis
from session_store_redis.testing import RedisServer

POOL_TIMEOUT = 10.0


class _ReleaseDuringTheCheck(list[Any]):
    """An idle list whose first emptiness check, made under the pool's lock by the thread about
    to wait, lets another thread release a connection, then answers what it saw before."""

    def __init__(self, release: Callable[[], None]) -> None:
        super().__init__()
        self._release: Callable[[], None] | None = release

    def __len__(self) -> int:
        seen = super().__len__()
        release, self._release = self._release, None
        if release is not None and seen == 0:
            done = threading.Event()

            def run() -> None:
                release()
                done.set()

            threading.Thread(target=run, daemon=True).start()
            done.wait(1.0)  # a release that needs the pool's lock finishes after the wait
        return seen


def test_a_waiting_thread_gets_a_connection_released_while_it_checked(
    redis_server: RedisServer,
) -> None:
    pool = BlockingConnectionPool(  # type: ignore[no-untyped-call]
        host="127.0.0.1", port=redis_server.port, max_connections=1, timeout=POOL_TIMEOUT
    )
    client = redis.Redis(connection_pool=pool)
    lean = LeanRedis.of(client)
    assert lean is not None
    try:
        held = lean.get_connection()  # the pool is full
        lean._idle = _ReleaseDuringTheCheck(lambda: lean.release(held))
        started = time.monotonic()
        got = lean.get_connection()
        waited = time.monotonic() - started
        assert got is held
        lean.release(got)
        assert lean.call("PING") in (b"PONG", "PONG")
        assert waited < POOL_TIMEOUT / 2, (
            f"waited {waited:.1f} s beside an idle connection (pool_timeout {POOL_TIMEOUT:g} s)"
        )
    finally:
        lean.close()
        client.close()
