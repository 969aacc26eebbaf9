"""Attack (attack10b) on mend10's ``aclose`` across event loops (``aio_close``): ``aclose()`` on
loop B hands loop A's connections to A, closed there on A's next turn, not waited for. Loop A
keeps serving meanwhile (a server loop in a thread, B a shutdown hook's). A real redis-server of
the test's own, held by ``SIGSTOP`` so that the close lands at a known point of A's work (no
sleep decides the interleaving: each step waits for a condition it can see).

* A connection A is still opening when the close runs (the ``SELECT`` of ``db=1`` waiting on
  the stopped server): ``LeanClient.aclose`` sees no connection yet and does nothing; the open
  then completes on a client the backend already forgot, so no later ``aclose()`` (A's own
  included) finds it: the socket stays open as long as loop A runs. A churn of 2,000
  set/delete_session pairs on A against a tight loop of ``aclose()`` on B left 130-318 sockets
  open after A's own final ``aclose()`` (every one a client closed, then reopened).
* A ``delete_session`` in flight when the close runs: the server runs the script (the session
  is gone), the reply is lost to the close, the call is retried on a new connection, finds
  nothing and answers ``False``: a logout that removed a session says it removed none (the
  same churn: 7-16 of 2,000 deletes answered ``False`` with the key gone, no other writer).
  The maintainers keep the retry; the answer's bound is now stated (docs/guarantees.md) and
  tested here instead of an xfail.

The first is fixed (mend10b): the backend's ``aclose`` tells each client it forgets
(``LeanClient.forget``), which then opens nothing more and closes an open under way when done.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from functools import partial
from typing import Any

import pytest

from session_store_redis.aio import AsyncRedisBackend
from session_store_redis.aioconn import ClientClosed
from session_store_redis.testing import RedisServer
from session_store_redis.testing.checks import (
    own_sockets,
    sockets_opened_since,
    sockets_settled,
    through_closes,
)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.005)


@pytest.fixture
def loop_a() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def on(loop: asyncio.AbstractEventLoop, coro: Any) -> Future[Any]:
    return asyncio.run_coroutine_threadsafe(coro, loop)


def turns(loop: asyncio.AbstractEventLoop) -> None:
    """Let ``loop`` run what was scheduled on it before now (the handed-over close's task)."""

    async def a_few() -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    on(loop, a_few()).result(10)


class Stopped:
    """The server held by SIGSTOP until the block ends (SIGCONT)."""

    def __init__(self, server: RedisServer) -> None:
        assert server.pid is not None
        self.pid = server.pid

    def __enter__(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def __exit__(self, *exc: object) -> None:
        os.kill(self.pid, signal.SIGCONT)


def test_a_connection_opening_when_the_close_runs_is_not_left_open(
    redis_server_factory: Callable[..., RedisServer], loop_a: asyncio.AbstractEventLoop
) -> None:
    server = redis_server_factory()
    backend = AsyncRedisBackend.from_url(server.url_for(db=1))  # SELECT on every open
    ports = [server.port]
    base = own_sockets(ports)
    with Stopped(server):
        write = on(loop_a, backend.set("k", b"v"))
        wait_for(
            lambda: sockets_opened_since(ports, base) == 1, "loop A connects (its SELECT waits)"
        )
        asyncio.run(backend.aclose())  # loop B: A's close is handed to A
        turns(loop_a)  # ... and has run there, the open still waiting on the server
        assert not write.done()
    write.result(10)  # the open completes, the write lands
    on(loop_a, backend.aclose()).result(10)  # loop A's own close, after everything
    turns(loop_a)
    assert sockets_settled(ports, base) == 0, "a connection left open after aclose() on both loops"


@pytest.mark.parametrize("held", [True, False], ids=["a-session", "nothing"])
def test_a_delete_whose_reply_the_close_lost_answers_within_its_stated_bound(
    redis_server_factory: Callable[..., RedisServer],
    loop_a: asyncio.AbstractEventLoop,
    held: bool,
) -> None:
    """attack10b: a ``delete_session`` whose reply is lost (here to ``aclose()`` on another
    loop; a reset or a dropped idle connection loses it the same way) after the server ran it
    is retried, as the maintainers keep it (a logout must not fail on a stale connection). The
    bound docs/guarantees.md states: the session is gone either way; ``True`` only if a session
    was removed (never for a key that held none, a lost reply or not); ``False`` means the
    final attempt found none, which after a lost reply may follow this call's own removal."""
    server = redis_server_factory()
    backend = AsyncRedisBackend.from_url(server.url_for())
    ports = [server.port]
    base = own_sockets(ports)
    if held:
        on(loop_a, backend.set("k", b'{"user": 1}', 60)).result(10)
    on(loop_a, backend.delete_session("absent")).result(10)  # the script cached: one EVALSHA
    assert sockets_opened_since(ports, base) == 1
    with Stopped(server):
        delete = on(loop_a, backend.delete_session("k"))
        turns(loop_a)  # the script is sent, its reply awaited
        asyncio.run(backend.aclose())  # loop B: A's connection closed on A, the reply lost
        turns(loop_a)
        assert not delete.done()  # waiting on the stopped server, not failed
    answer = delete.result(10)  # a lost reply is retried, not raised
    try:
        gone = on(loop_a, backend.get("k")).result(10) is None
        on(loop_a, backend.aclose()).result(10)
    finally:
        turns(loop_a)
    assert gone, "the session is still there"
    assert isinstance(answer, bool)
    if not held:
        assert answer is False, "True for a key that held no session"
    # held: True or False (here False: the retry ran after this call's own removal), both
    # within the bound; what the bound excludes is a True without a removal, checked above


def test_a_churn_of_writes_on_a_against_aclose_on_b_leaves_no_connection_open(
    redis_server_factory: Callable[..., RedisServer], loop_a: asyncio.AbstractEventLoop
) -> None:
    """attack10b's churn: 2,000 set/delete_session pairs on loop A while loop B calls
    ``aclose()`` as fast as it can; after A's own final ``aclose()`` no socket is left (it left
    130-318 before the fix: closed clients whose open completed after their close). Every
    pair's session is gone after its delete, whatever the delete answered."""
    server = redis_server_factory()
    backend = AsyncRedisBackend.from_url(server.url_for(db=1))  # SELECT: a longer open
    ports = [server.port]
    base = own_sockets(ports)
    done, started = threading.Event(), threading.Event()

    async def churn() -> list[str]:
        left = []
        try:
            for n in range(2000):
                key = f"k{n}"
                await through_closes(partial(backend.set, key, b'{"user": 1}', 60))
                await through_closes(partial(backend.delete_session, key))
                if await through_closes(partial(backend.get, key)) is not None:
                    left.append(key)
                started.set()
            return left
        finally:
            started.set()
            done.set()

    async def closes() -> int:
        # from A's first pair on: before it, every open of A's first connection (connect and
        # SELECT) met a close and A never got going (a livelock of the test's making, not a leak)
        await asyncio.to_thread(started.wait, 30)
        count = 0
        while not done.is_set():
            await backend.aclose()
            count += 1
            await asyncio.sleep(0)
        return count

    work = on(loop_a, churn())
    closed = asyncio.run(closes())
    assert work.result(60) == [], "sessions still there after their delete"
    assert closed > 100, "loop B's closes did not overlap A's work"
    on(loop_a, backend.aclose()).result(10)
    turns(loop_a)
    assert sockets_settled(ports, base) == 0, "connections left open after aclose() on both loops"


def test_a_driver_kept_after_aclose_does_not_reopen_a_connection_nobody_closes(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """A caller holding the driver of a closed backend (``backend.driver`` kept, or a call in
    flight across the close) gets a typed connection error instead of a new connection on a
    client the backend forgot; the backend itself reopens on its next use, and its next
    ``aclose()`` finds that connection."""
    server = redis_server_factory()
    backend = AsyncRedisBackend.from_url(server.url_for())
    ports = [server.port]
    base = own_sockets(ports)

    async def scenario() -> None:
        kept = backend.driver
        assert await kept.call("PING") == b"PONG"
        await backend.aclose()
        with pytest.raises(ClientClosed):
            await kept.call("PING")
        with pytest.raises(ClientClosed):
            await kept.call_many([["PING"]])
        for _ in range(5):  # the transport closes on a later turn
            await asyncio.sleep(0)
        assert sockets_opened_since(ports, base) == 0
        await backend.set("k", b"v")  # a use after aclose: a new driver the backend knows
        assert backend.driver is not kept
        assert sockets_opened_since(ports, base) == 1
        await backend.aclose()

    asyncio.run(scenario())
    assert sockets_settled(ports, base) == 0
