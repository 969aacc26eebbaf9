"""The lean async client's reply futures (session_store.aio.reply): a task awaiting a
reply resumes in the loop pass that reads it, and is still a well-behaved asyncio future
(cancellation at once, error replies raised, gather / wait_for / ensure_future), on asyncio and
on uvloop, against real redis-servers."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
from redis.exceptions import ResponseError

from session_store.aio import open_async_backend
from session_store.aio.reply import Reply
from session_store_redis.testing import RedisServer

pytestmark = pytest.mark.anyio


async def test_a_reply_resolved_by_a_loop_callback_resumes_its_task_before_it_returns() -> None:
    loop = asyncio.get_running_loop()
    reply: Reply[int] = Reply(loop)
    order: list[str] = []

    async def waiter() -> None:
        order.append(f"resumed with {await reply}")

    task = asyncio.ensure_future(waiter())
    await asyncio.sleep(0)  # the task now waits on the reply

    def callback() -> None:  # what a protocol callback is: no task running
        reply.resolve(7)
        order.append("resolve returned")

    loop.call_soon(callback)
    await task
    assert order == ["resumed with 7", "resolve returned"]


async def test_a_reply_completed_otherwise_schedules_its_task_as_a_future_does() -> None:
    reply: Reply[int] = Reply(asyncio.get_running_loop())
    order: list[str] = []

    async def waiter() -> None:
        order.append(f"resumed with {await reply}")

    task = asyncio.ensure_future(waiter())
    await asyncio.sleep(0)
    reply.set_result(8)  # from a task: never inline (a task's step cannot run inside ours)
    order.append("set_result returned")
    await task
    assert order == ["set_result returned", "resumed with 8"]
    failed: Reply[int] = Reply(asyncio.get_running_loop())
    failed.set_exception(ResponseError("no"))
    with pytest.raises(ResponseError):
        await failed
    assert isinstance(failed.exception(), ResponseError)


async def test_a_task_cancelled_while_its_reply_is_due_ends_at_once_and_the_next_reads_its_own(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """Cancelled on a stopped server, a waiting ``get`` ends without its reply (not when the
    60 s socket timeout closes the connection); the late reply is dropped, so the next
    commands read their own."""
    server = redis_server_factory()
    backend: Any = open_async_backend(server.url_for(socket_timeout="60"), retries=0)
    try:
        await backend.set("a", b"1")
        await backend.set("b", b"2")
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)
        try:
            waiting = asyncio.ensure_future(backend.get("a"))
            await asyncio.sleep(0.05)
            waiting.cancel()
            done, _ = await asyncio.wait([waiting], timeout=20)
            assert waiting in done  # ended without the reply (the server is stopped)
            assert waiting.cancelled()
        finally:
            os.kill(server.pid, signal.SIGCONT)
        assert await backend.get("b") == b"2"
        assert await backend.get("a") == b"1"
    finally:
        await backend.aclose()


async def test_an_error_reply_is_raised_where_it_is_awaited_and_the_connection_stays_in_step(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory()
    backend: Any = open_async_backend(server.url_for(), retries=0)
    try:
        await backend.set("k", b"not a number")
        driver = backend.driver
        with pytest.raises(ResponseError, match="not an integer"):
            await driver.call("INCR", backend.namespace.encode("k"))
        assert await backend.get("k") == b"not a number"
    finally:
        await backend.aclose()


async def test_replies_through_gather_wait_for_and_ensure_future(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory()
    backend: Any = open_async_backend(server.url_for(), retries=0)
    try:
        await backend.set_many({f"k{i}": b"%d" % i for i in range(10)})
        driver = backend.driver
        stored = [backend.namespace.encode(f"k{i}") for i in range(10)]
        replies = await asyncio.gather(*(driver.call("GET", key) for key in stored))
        assert replies == [b"%d" % i for i in range(10)]
        assert await asyncio.wait_for(driver.call("GET", stored[3]), 10) == b"3"
        assert await asyncio.ensure_future(driver.call("GET", stored[4])) == b"4"
        mixed = await asyncio.gather(
            driver.call("INCR", stored[0]),
            driver.call("HGET", stored[1], "f"),
            return_exceptions=True,
        )
        assert mixed[0] == 1 and isinstance(mixed[1], ResponseError)
    finally:
        await backend.aclose()
