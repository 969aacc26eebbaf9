"""attack9c: aio18's inline resume (session_store.aio.reply.Reply, resolved inside the Redis
connection's protocol callback) attacked through asyncio's own combinators, cancellation,
contextvars, a task that raises or closes inside its inline step, fairness, and a command sent
but never awaited; on real redis-servers, on asyncio and on uvloop where it applies."""

from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from session_store.aio import ThreadedBackend, open_async_backend
from session_store.errors import BackendError
from session_store.memory import MemoryBackend
from session_store_redis.testing import RedisServer

_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("attack9c", default="unset")


def _stored(backend: Any, key: str) -> str:
    return str(backend.namespace.encode(key))


async def _group_of_gets(backend: Any, numbers: range) -> None:
    async with asyncio.TaskGroup() as group:
        for i in numbers:
            group.create_task(backend.get(f"k{i}"))


@pytest.mark.anyio
async def test_a_reply_through_every_asyncio_combinator_then_the_next_reads_its_own(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """wait_for, asyncio.timeout, shield, TaskGroup, as_completed, gather: replies arrive, a
    timeout on a stopped server abandons its reply, and every later command reads its own."""
    server = redis_server_factory()
    backend: Any = open_async_backend(server.url_for(socket_timeout="60"), retries=0)
    try:
        await backend.set_many({f"k{i}": b"%d" % i for i in range(20)})
        driver = backend.driver
        keys = [_stored(backend, f"k{i}") for i in range(20)]
        assert await asyncio.wait_for(driver.call("GET", keys[1]), 10) == b"1"
        async with asyncio.timeout(10):
            assert await driver.call("GET", keys[2]) == b"2"
        assert await asyncio.shield(driver.call("GET", keys[3])) == b"3"
        async with asyncio.TaskGroup() as group:
            made = [group.create_task(backend.get(f"k{i}")) for i in range(20)]
        assert [t.result() for t in made] == [b"%d" % i for i in range(20)]
        got = {await f for f in asyncio.as_completed([driver.call("GET", k) for k in keys])}
        assert got == {b"%d" % i for i in range(20)}

        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(driver.call("GET", keys[4]), 0.05)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await driver.call("GET", keys[5])
            shielded = driver.call("GET", keys[6])
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.shield(shielded), 0.05)
            gathered = asyncio.gather(*(driver.call("GET", k) for k in keys[7:12]))
            await asyncio.sleep(0.02)
            gathered.cancel()
            with pytest.raises(asyncio.CancelledError):  # (hung: see the test below)
                await asyncio.wait_for(gathered, 10)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(_group_of_gets(backend, range(12, 16)), 0.05)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        assert await shielded == b"6"  # the shielded reply still arrives, to its own future
        for i in range(20):  # every abandoned reply was dropped: each reads its own
            assert await backend.get(f"k{i}") == b"%d" % i
    finally:
        await backend.aclose()


@pytest.mark.anyio
async def test_a_gather_of_replies_cancelled_ends_instead_of_hanging(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Any
) -> None:
    """asyncio.gather asks a cancelled child for ``_make_cancelled_error()`` (and, with
    ``return_exceptions``, its ``_cancel_message``): private asyncio.Future API a Reply lacked,
    so the callback raised AttributeError and the gather never completed. Both places a Reply
    is handed out: a Redis command (``backend.driver.call``) and ``ThreadedBackend.run``."""
    server = redis_server_factory()
    backend: Any = open_async_backend(server.url_for(socket_timeout="60"), retries=0)
    threaded = ThreadedBackend(MemoryBackend(), threads=1)
    try:
        await backend.set("k", b"v")
        driver = backend.driver
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)
        try:
            for return_exceptions in (False, True):
                gathered = asyncio.gather(
                    *(driver.call("GET", _stored(backend, "k")) for _ in range(3)),
                    return_exceptions=return_exceptions,
                )
                await asyncio.sleep(0.02)
                gathered.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await asyncio.wait_for(gathered, 10)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        assert await backend.get("k") == b"v"

        release = threading.Event()
        holding = threaded.run(release.wait, 20)
        queued = [threaded.run(lambda: 1) for _ in range(3)]
        for reply in queued:
            reply.cancel("not needed")
        outcome = await asyncio.wait_for(asyncio.gather(*queued, return_exceptions=True), 10)
        assert [type(o) for o in outcome] == [asyncio.CancelledError] * 3
        assert [o.args for o in outcome if isinstance(o, BaseException)] == [("not needed",)] * 3
        release.set()
        assert await holding is True
    finally:
        await threaded.aclose()
        await backend.aclose()


@pytest.mark.anyio
async def test_a_context_variable_stays_the_tasks_own_across_inline_resumes(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory()
    backend: Any = open_async_backend(server.url_for(), retries=0)
    try:
        await backend.set("k", b"v")

        async def worker(name: str) -> list[str]:
            seen = []
            for step in range(30):
                _VAR.set(f"{name}-{step}")
                await backend.get("k")  # resumed inline by the protocol callback
                seen.append(_VAR.get())
                assert asyncio.current_task() is not None
            return seen

        results = await asyncio.gather(*(worker(f"t{n}") for n in range(8)))
        for n, seen in enumerate(results):
            assert seen == [f"t{n}-{step}" for step in range(30)]
        assert _VAR.get() == "unset"  # nothing leaked into this task

        async def fresh() -> str:
            await backend.get("k")
            return _VAR.get()

        assert await asyncio.ensure_future(fresh()) == "unset"
    finally:
        await backend.aclose()


@pytest.mark.anyio
async def test_a_reply_done_callback_runs_in_the_context_it_was_added_in(
    redis_server_factory: Callable[..., RedisServer], anyio_backend: Any
) -> None:
    """asyncio.Future.add_done_callback without ``context=`` runs the callback in a copy of the
    context current when it was added; a Reply runs it in whatever context resolves it (the
    transport's, a copy of the context that opened the connection), and a variable such a
    callback sets stays in the transport's context for every later callback."""
    server = redis_server_factory()
    backend: Any = open_async_backend(server.url_for(), retries=0)
    try:
        await backend.set("k", b"v")  # the connection opens here, in the "unset" context
        driver = backend.driver
        seen: list[str] = []

        async def one(name: str) -> None:
            _VAR.set(name)
            reply = driver.call("GET", _stored(backend, "k"))
            reply.add_done_callback(lambda _: seen.append(_VAR.get()))
            reply.add_done_callback(lambda _: _VAR.set("set-by-" + name + "-callback"))
            await reply
            await asyncio.sleep(0)  # a scheduled callback has run by now

        await asyncio.ensure_future(one("first"))
        await asyncio.ensure_future(one("second"))
        assert seen == ["first", "second"]
    finally:
        await backend.aclose()


@pytest.mark.anyio
async def test_a_resumed_task_that_raises_leaves_the_other_replies_of_that_read_in_order(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory()
    backend: Any = open_async_backend(server.url_for(socket_timeout="30"), retries=0)
    try:
        await backend.set_many({f"k{i}": b"%d" % i for i in range(40)})
        driver = backend.driver

        async def reader(i: int) -> bytes:
            value = await driver.call("GET", _stored(backend, f"k{i}"))
            if i % 3 == 0:
                raise ValueError(f"task {i} fails in its inline step")
            return bytes(value)

        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)  # every command queued, the replies in one read
        try:
            tasks = [asyncio.ensure_future(reader(i)) for i in range(40)]
            await asyncio.sleep(0.05)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for i, result in enumerate(results):
            if i % 3 == 0:
                assert isinstance(result, ValueError)
            else:
                assert result == b"%d" % i
        assert await backend.get("k7") == b"7"
    finally:
        await backend.aclose()


@pytest.mark.anyio
async def test_a_resumed_task_that_closes_the_connection_fails_the_others_never_strands_them(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory()
    backend: Any = open_async_backend(server.url_for(socket_timeout="30"), retries=0)
    try:
        await backend.set_many({f"k{i}": b"%d" % i for i in range(10)})
        driver = backend.driver

        async def closer() -> None:
            await driver.call("GET", _stored(backend, "k0"))
            await driver.aclose()  # inside the inline step

        async def reader(i: int) -> Any:
            return await driver.call("GET", _stored(backend, f"k{i}"))

        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)
        try:
            first = asyncio.ensure_future(closer())
            others = [asyncio.ensure_future(reader(i)) for i in range(1, 10)]
            await asyncio.sleep(0.05)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        _, pending = await asyncio.wait([first, *others], timeout=10)
        assert not pending  # none stranded until the 30 s socket timeout
        for i, task in enumerate(others, 1):
            error = task.exception()
            assert (error is None and task.result() == b"%d" % i) or isinstance(
                error, RedisConnectionError
            )
        assert await backend.get("k5") == b"5"  # a new connection, in step
    finally:
        await backend.aclose()


@pytest.mark.anyio
async def test_a_command_sent_and_never_awaited_is_never_read_as_another_ones_reply(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """LeanClient.call sends when called: replies of calls nobody awaits (or awaits late)
    pair with their own commands; no session ever reads another's value."""
    server = redis_server_factory()
    backend: Any = open_async_backend(server.url_for(), retries=0)
    try:
        await backend.set_many({f"s{i}": b"value-of-s%d" % i for i in range(50)})
        driver = backend.driver
        late = []
        for i in range(50):
            unawaited = driver.call("GET", _stored(backend, f"s{(i + 1) % 50}"))
            if i % 5 == 0:
                late.append((i, unawaited))
            del unawaited
            assert await backend.get(f"s{i}") == b"value-of-s%d" % i
        await asyncio.sleep(0.01)
        for i, reply in late:
            assert await reply == b"value-of-s%d" % ((i + 1) % 50)
    finally:
        await backend.aclose()


@pytest.mark.anyio
async def test_many_tasks_on_one_connection_leave_the_loops_timers_running(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """Inline resume must not turn the loop's read callback into a loop of its own: a timer
    coroutine keeps ticking while 50 tasks hammer one connection."""
    server = redis_server_factory()
    backend: Any = open_async_backend(server.url_for(), retries=0)
    try:
        await backend.set("k", b"v")
        ticks: list[int] = []
        busy = True

        async def ticker() -> None:
            while busy:
                await asyncio.sleep(0.001)
                ticks.append(1)

        async def hammer() -> None:
            for _ in range(200):
                assert await backend.get("k") == b"v"

        timer = asyncio.ensure_future(ticker())
        await asyncio.sleep(0.01)
        before = len(ticks)
        await asyncio.gather(*(hammer() for _ in range(50)))
        during = len(ticks) - before
        busy = False
        await timer
        assert during > 0  # the timer fired while 10,000 replies were resumed inline
    finally:
        await backend.aclose()


@pytest.mark.anyio
async def test_a_server_killed_mid_reply_fails_every_waiter_and_gives_none_a_wrong_value(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory()
    backend: Any = open_async_backend(server.url_for(socket_timeout="20"), retries=0)
    try:
        big = os.urandom(8 << 20)
        await backend.set("big", big)
        await backend.set("small", b"small")
        tasks = []
        for _ in range(4):
            tasks.append(asyncio.ensure_future(backend.get("big")))
            tasks.append(asyncio.ensure_future(backend.get("small")))
        await asyncio.sleep(0.003)
        server.kill()  # kill -9, replies part read
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        for n, result in enumerate(results):
            assert isinstance(result, BackendError) or result == (big if n % 2 == 0 else b"small")
    finally:
        await backend.aclose()


def test_a_task_escaping_with_keyboardinterrupt_strands_no_reply_parsed_with_its_own(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """A KeyboardInterrupt (or SystemExit) a task raises escapes the loop, as asyncio lets it.
    With futures, replies parsed in the same read were already handed to their tasks, and a
    loop run again delivers them; resumed inline, those parsed after the raising task's must
    not be stranded in the reader until the socket timeout fails them."""
    server = redis_server_factory()
    loop = asyncio.new_event_loop()
    try:
        backend: Any = open_async_backend(server.url_for(socket_timeout="3"), retries=0)

        async def setup() -> Any:
            await backend.set_many({"a": b"A", "b": b"B"})
            return backend.driver

        driver = loop.run_until_complete(setup())

        async def interrupted() -> None:
            await driver.call("GET", _stored(backend, "a"))
            raise KeyboardInterrupt

        async def other() -> Any:
            return await driver.call("GET", _stored(backend, "b"))

        made: list[asyncio.Task[Any]] = []

        async def start() -> None:
            os.kill(pid, signal.SIGSTOP)  # both commands reach the server, answered in one write
            try:
                made.append(asyncio.ensure_future(interrupted()))
                made.append(asyncio.ensure_future(other()))
                await asyncio.sleep(0.05)
            finally:
                os.kill(pid, signal.SIGCONT)
            await asyncio.sleep(1)

        assert server.pid is not None
        pid = server.pid
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(start())
        assert made[0].done()
        # the app goes on (as after a KeyboardInterrupt caught around run_until_complete):
        # the second reply, read with the first, reaches its task (it timed out after 3 s)
        assert loop.run_until_complete(asyncio.wait_for(made[1], 10)) == b"B"
        loop.run_until_complete(backend.aclose())
    finally:
        loop.close()
