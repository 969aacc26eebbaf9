"""The async Sentinel and Cluster backends after ``aclose()`` (flaky11): a driver the backend
forgot opens nothing again, as the standalone backend's lean client (mend10b).

``aclose()`` forgets every driver of the backend (each loop's), closing those of the running loop
and handing the others to their own loops. A caller may still hold one: ``backend.driver`` kept
(the documented way to send other commands), or a call in flight across the close, whose
retry or redirection runs on the driver it started with. The standalone backend's
:class:`~session_store_redis.aioconn.LeanClient` then raises
:class:`~session_store_redis.aioconn.ClientClosed` (a retryable connection error: the backend
retries on the driver it has now) instead of opening a connection no later ``aclose()`` would
find. The Sentinel backend's driver is a ``redis.asyncio`` client of the primary (its pool reopens
on the next command, and asks the sentinels again), the Cluster backend's a ``redis.asyncio``
cluster client (``aclose`` marks it for re-initialization: the next command opens a connection to
every node). What is counted is this process's own sockets to the deployment's ports
(:func:`~session_store_redis.testing.checks.sockets_opened_since`), so the shared fixtures' other
clients do not count.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from session_store.errors import BackendUnavailableError
from session_store_redis.aio import AsyncRedisBackend, AsyncRedisSentinelBackend
from session_store_redis.aio_cluster import AsyncRedisClusterBackend
from session_store_redis.aioconn import ClientClosed
from session_store_redis.testing import RedisClusterServers, RedisSentinelSet
from session_store_redis.testing.checks import (
    own_sockets,
    sockets_opened_since,
    sockets_settled,
    through_closes,
)

Opened = tuple[AsyncRedisBackend, list[int]]


@pytest.fixture(params=["sentinel", "cluster"])
def opened(request: pytest.FixtureRequest) -> Opened:
    """A backend of the kind on the suite's shared deployment (a fresh namespace), and the
    ports its connections may go to (the sentinels' too)."""
    if request.param == "sentinel":
        sentinel: RedisSentinelSet = request.getfixturevalue("redis_sentinel")
        namespace = request.getfixturevalue("redis_sentinel_namespace")
        backend: AsyncRedisBackend = AsyncRedisSentinelBackend.from_url(
            sentinel.url_for(prefix=f"{namespace}f:")
        )
        ports = [s.port for s in sentinel.servers] + [s.port for s in sentinel.sentinels]
        return backend, ports
    cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
    namespace = request.getfixturevalue("redis_cluster_namespace")
    backend = AsyncRedisClusterBackend.from_url(cluster.url_for(prefix=f"{namespace}f:"))
    return backend, list(cluster.ports)


@pytest.fixture
def loop_a() -> Iterator[asyncio.AbstractEventLoop]:
    """A loop running in a thread of its own (a server's), beside the test's ``asyncio.run``."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def on(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    """``coro`` run on ``loop`` (another thread's), its result."""
    return asyncio.run_coroutine_threadsafe(coro, loop).result(30)


async def turns() -> None:
    """A few turns of the running loop (an asyncio transport closes on a later one)."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_driver_kept_after_aclose_opens_nothing(opened: Opened) -> None:
    """``backend.driver`` kept across ``aclose()`` on its own loop: a typed connection error
    (nothing sent, nothing opened); the backend itself reopens on its next use, on a driver its
    next ``aclose()`` finds."""
    backend, ports = opened
    base = own_sockets(ports)

    async def scenario() -> None:
        stored = backend.namespace.encode("k")
        kept = backend.driver
        assert await kept.call("EXISTS", stored) == 0
        await backend.aclose()
        with pytest.raises(ClientClosed):
            await kept.call("EXISTS", stored)
        with pytest.raises(ClientClosed):
            await kept.call_many([["EXISTS", stored]])
        await turns()
        left = await asyncio.to_thread(sockets_settled, ports, base)
        assert left == 0, "the kept driver reopened"
        await backend.set("k", b"v")  # a use after aclose: a new driver the backend knows
        assert backend.driver is not kept
        assert await backend.get("k") == b"v"
        await backend.aclose()
        await turns()

    asyncio.run(scenario())
    assert sockets_settled(ports, base) == 0


def test_a_driver_kept_on_another_loop_opens_nothing_after_aclose_there(
    opened: Opened, loop_a: asyncio.AbstractEventLoop
) -> None:
    """Loop A's driver kept; ``aclose()`` on loop B hands A's close to A; A's kept driver then
    opens nothing, and nothing of A's is left open."""
    backend, ports = opened
    base = own_sockets(ports)
    stored = backend.namespace.encode("k")

    async def keep() -> Any:
        await backend.set("k", b"v")
        return backend.driver

    kept = on(loop_a, keep())
    assert sockets_opened_since(ports, base) > 0
    asyncio.run(backend.aclose())  # loop B: A's driver closed on A, not waited for

    async def use_kept() -> None:
        await turns()  # the handed-over close runs on A
        with pytest.raises(ClientClosed):
            await kept.call("GET", stored)
        await turns()

    on(loop_a, use_kept())
    assert sockets_settled(ports, base) == 0, "loop A's kept driver reopened after aclose()"


def test_calls_in_flight_across_aclose_leave_no_connection_open(opened: Opened) -> None:
    """Calls started before ``aclose()`` on the same loop and still waiting when it runs: each
    answers or fails typed, and once all are done no connection is left open (a call in flight
    must not reopen on the driver the close forgot)."""
    backend, ports = opened
    base = own_sockets(ports)

    async def scenario() -> list[BaseException]:
        await backend.set("k", b"v")
        await backend.aclose()  # a fresh driver below: the first calls open connections
        calls = [asyncio.ensure_future(backend.get("k")) for _ in range(20)]
        await asyncio.sleep(0)  # the calls are under way (connecting, or sent)
        await backend.aclose()
        results = await asyncio.gather(*calls, return_exceptions=True)
        await turns()
        return [r for r in results if isinstance(r, BaseException)]

    failures = asyncio.run(scenario())
    assert all(isinstance(f, BackendUnavailableError) for f in failures), failures
    assert sockets_settled(ports, base) == 0, "a call in flight across aclose() reopened"


def test_a_churn_on_a_against_aclose_on_b_leaves_no_connection_open(
    opened: Opened, loop_a: asyncio.AbstractEventLoop
) -> None:
    """attack10b's churn on these backends: set/get pairs on loop A while loop B calls
    ``aclose()`` over and over; after A's own final ``aclose()`` no socket is left."""
    backend, ports = opened
    base = own_sockets(ports)
    done, started = threading.Event(), threading.Event()

    async def churn() -> list[str]:
        wrong = []
        try:
            for n in range(150):
                key = f"k{n}"
                await through_closes(partial(backend.set, key, b"v", 60))
                if await through_closes(partial(backend.get, key)) != b"v":
                    wrong.append(key)
                started.set()
            return wrong
        finally:
            started.set()
            done.set()

    async def closes() -> int:
        await asyncio.to_thread(started.wait, 30)
        count = 0
        while not done.is_set():
            await backend.aclose()
            count += 1
            await asyncio.sleep(0.001)
        return count

    work = asyncio.run_coroutine_threadsafe(churn(), loop_a)
    closed = asyncio.run(closes())
    assert work.result(120) == []
    assert closed > 10, "loop B's closes did not overlap A's work"
    on(loop_a, backend.aclose())

    async def settle() -> None:
        await turns()

    on(loop_a, settle())
    assert sockets_settled(ports, base) == 0, "connections left open after aclose() on both loops"
