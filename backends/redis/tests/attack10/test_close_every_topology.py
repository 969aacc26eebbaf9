"""Attack (attack10): ``close()`` / ``aclose()`` twice, a use after it, then ``close()`` again, on
the sync and asyncio backends of one server, a Cluster and a Sentinel set-up (the suite's
fixtures' real servers). What is counted is this process's own TCP connections to the servers'
ports (``/proc/self/fd`` and ``/proc/net/tcp``), so the shared fixtures' other clients do not
count. The promise (``RedisBackend.close``): every call closes, a use after it reopens, and the
next close releases what that use opened."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

from session_store.backend import SessionBackend
from session_store_redis import RedisBackend, RedisClusterBackend, RedisSentinelBackend
from session_store_redis.aio import AsyncRedisBackend, AsyncRedisSentinelBackend
from session_store_redis.aio_cluster import AsyncRedisClusterBackend
from session_store_redis.testing import RedisClusterServers, RedisSentinelSet, RedisServer
from session_store_redis.testing.checks import own_sockets, sockets_opened_since, sockets_settled


def _sync_cycle(backend: SessionBackend, ports: list[int]) -> list[int]:
    """This backend's connections (the sockets it opened: :func:`sockets_opened_since`) after:
    a write, close, close again, a use after close, close."""
    base = own_sockets(ports)
    counts = []
    backend.set("k", b"v")
    counts.append(sockets_opened_since(ports, base))
    backend.close()
    backend.close()
    counts.append(sockets_settled(ports, base))
    assert backend.get("k") == b"v"
    counts.append(sockets_opened_since(ports, base))
    backend.close()
    counts.append(sockets_settled(ports, base))
    return counts


def test_sync_server_close_twice_and_after_use(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    backend = RedisBackend.from_url(redis_server.url_for(prefix=f"{redis_namespace}c:"))
    counts = _sync_cycle(backend, [redis_server.port])
    assert counts[0] >= 1 and counts[2] >= 1
    assert counts[1] == 0 and counts[3] == 0, counts


def test_the_count_ignores_a_socket_open_before_it_that_closes_meanwhile(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """What made the async cluster cycle fail once (see :func:`sockets_opened_since`), on
    purpose: sockets to the server open at the baseline, closed after the backend's first
    write."""
    others = [socket.create_connection(("127.0.0.1", redis_server.port)) for _ in range(3)]

    class ClosingOthers(RedisBackend):
        def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
            super().set(key, value, ttl)
            for other in others:
                other.close()

    backend = ClosingOthers.from_url(redis_server.url_for(prefix=f"{redis_namespace}c:"))
    counts = _sync_cycle(backend, [redis_server.port])
    assert all(other.fileno() == -1 for other in others)
    assert counts[0] >= 1 and counts[2] >= 1
    assert counts[1] == 0 and counts[3] == 0, counts


def test_sync_cluster_close_releases_its_connections(
    redis_cluster: RedisClusterServers, redis_cluster_namespace: str
) -> None:
    backend = RedisClusterBackend.from_url(
        redis_cluster.url_for(prefix=f"{redis_cluster_namespace}c:")
    )
    base = own_sockets(redis_cluster.ports)
    backend.set("k", b"v")
    count = sockets_opened_since(redis_cluster.ports, base)
    backend.close()
    assert count >= 1
    assert sockets_settled(redis_cluster.ports, base) == 0, "close() kept them open"


def test_sync_cluster_use_after_close_reopens(
    redis_cluster: RedisClusterServers, redis_cluster_namespace: str
) -> None:
    failures = []
    for trial in range(16):
        backend = RedisClusterBackend.from_url(
            redis_cluster.url_for(prefix=f"{redis_cluster_namespace}u{trial}:")
        )
        backend.set("k", b"v")
        backend.close()
        try:
            assert backend.get("k") == b"v"
        except Exception as exc:  # recorded, all asserted below
            failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            backend.close()
    assert failures == [], f"{len(failures)} of 16 uses after close() failed: {failures[:2]}"


def test_sync_cluster_close_twice_and_after_use(
    redis_cluster: RedisClusterServers, redis_cluster_namespace: str
) -> None:
    backend = RedisClusterBackend.from_url(
        redis_cluster.url_for(prefix=f"{redis_cluster_namespace}c:")
    )
    counts = _sync_cycle(backend, redis_cluster.ports)
    assert counts[0] >= 1 and counts[2] >= 1
    assert counts[1] == 0 and counts[3] == 0, counts


def test_sync_sentinel_close_twice_and_after_use(
    redis_sentinel: RedisSentinelSet, redis_sentinel_namespace: str
) -> None:
    backend = RedisSentinelBackend.from_url(
        redis_sentinel.url_for(prefix=f"{redis_sentinel_namespace}c:")
    )
    ports = [s.port for s in redis_sentinel.servers] + [s.port for s in redis_sentinel.sentinels]
    counts = _sync_cycle(backend, ports)
    assert counts[0] >= 1 and counts[2] >= 1
    assert counts[1] == 0 and counts[3] == 0, counts


async def _async_cycle(backend: AsyncRedisBackend, ports: list[int]) -> list[int]:
    """:func:`_sync_cycle` with ``aclose``."""
    base = own_sockets(ports)
    counts = []
    await backend.set("k", b"v")
    counts.append(sockets_opened_since(ports, base))
    await backend.aclose()
    await backend.aclose()
    for _ in range(3):
        await asyncio.sleep(0)
    counts.append(await asyncio.to_thread(sockets_settled, ports, base))
    assert await backend.get("k") == b"v"
    counts.append(sockets_opened_since(ports, base))
    await backend.aclose()
    for _ in range(3):
        await asyncio.sleep(0)
    counts.append(await asyncio.to_thread(sockets_settled, ports, base))
    return counts


def test_async_server_close_twice_and_after_use(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    backend = AsyncRedisBackend.from_url(redis_server.url_for(prefix=f"{redis_namespace}c:"))
    counts = asyncio.run(_async_cycle(backend, [redis_server.port]))
    assert counts[0] >= 1 and counts[2] >= 1
    assert counts[1] == 0 and counts[3] == 0, counts


def test_async_cluster_close_twice_and_after_use(
    redis_cluster: RedisClusterServers, redis_cluster_namespace: str
) -> None:
    backend = AsyncRedisClusterBackend.from_url(
        redis_cluster.url_for(prefix=f"{redis_cluster_namespace}c:")
    )
    counts = asyncio.run(_async_cycle(backend, redis_cluster.ports))
    assert counts[0] >= 1 and counts[2] >= 1
    assert counts[1] == 0 and counts[3] == 0, counts


def test_async_sentinel_close_twice_and_after_use(
    redis_sentinel: RedisSentinelSet, redis_sentinel_namespace: str
) -> None:
    backend = AsyncRedisSentinelBackend.from_url(
        redis_sentinel.url_for(prefix=f"{redis_sentinel_namespace}c:")
    )
    ports = [s.port for s in redis_sentinel.servers] + [s.port for s in redis_sentinel.sentinels]
    counts = asyncio.run(_async_cycle(backend, ports))
    assert counts[0] >= 1 and counts[2] >= 1
    assert counts[1] == 0 and counts[3] == 0, counts


def _close_from_another_running_loop(
    backend: AsyncRedisBackend, ports: list[int]
) -> tuple[int, int]:
    """The backend's connections left (over the baseline) after: a write on loop A, running in
    a thread, a read and ``aclose()`` twice on loop B (``asyncio.run``, A still running); then
    after ``aclose()`` on loop A itself."""
    base = own_sockets(ports)
    loop_a = asyncio.new_event_loop()
    thread = threading.Thread(target=loop_a.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(backend.set("k", b"v"), loop_a).result(10)
        assert sockets_opened_since(ports, base) > 0

        async def on_b() -> None:
            assert await backend.get("k") == b"v"
            await backend.aclose()
            await backend.aclose()

        asyncio.run(on_b())
        left = sockets_settled(ports, base)
        asyncio.run_coroutine_threadsafe(backend.aclose(), loop_a).result(10)
        after_a = sockets_settled(ports, base)
    finally:
        loop_a.call_soon_threadsafe(loop_a.stop)
        thread.join(10)
        loop_a.close()
    return left, after_a


def test_async_aclose_from_another_running_loop_releases_every_connection(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """One backend serving two loops that both still run (a server loop in a thread, and the
    loop of a shutdown hook or of a second thread): ``aclose()`` on one of them must not leave
    the other's connections open and forgotten, where no later ``aclose()`` can find them.
    (Before mend10: (1, 1), the loop A's connection open after both.)"""
    backend = AsyncRedisBackend.from_url(redis_server.url_for(prefix=f"{redis_namespace}c:"))
    left, after_a = _close_from_another_running_loop(backend, [redis_server.port])
    assert (left, after_a) == (0, 0), (
        f"{left} connection(s) of the still-running loop A left open by aclose() on loop B; "
        f"{after_a} still open after aclose() on loop A itself"
    )


def test_async_sentinel_aclose_from_another_running_loop_releases_every_connection(
    redis_sentinel: RedisSentinelSet, redis_sentinel_namespace: str
) -> None:
    """The Sentinel variant: loop A's connections to the primary *and* to the sentinels (its
    own sentinel manager's) are released by ``aclose()`` on loop B."""
    backend = AsyncRedisSentinelBackend.from_url(
        redis_sentinel.url_for(prefix=f"{redis_sentinel_namespace}c:")
    )
    ports = [s.port for s in redis_sentinel.servers] + [s.port for s in redis_sentinel.sentinels]
    assert _close_from_another_running_loop(backend, ports) == (0, 0)


def test_async_cluster_aclose_from_another_running_loop_releases_every_connection(
    redis_cluster: RedisClusterServers, redis_cluster_namespace: str
) -> None:
    """The async Cluster variant (one ``redis.asyncio`` cluster client per loop)."""
    backend = AsyncRedisClusterBackend.from_url(
        redis_cluster.url_for(prefix=f"{redis_cluster_namespace}c:")
    )
    assert _close_from_another_running_loop(backend, redis_cluster.ports) == (0, 0)


def test_async_aclose_from_another_loop_closes_a_stopped_loops_connection_when_it_runs_again(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """Loop A is stopped, not closed (``run_until_complete`` per request): ``aclose()`` on loop
    B cannot close A's connection there and then, nor forget it; A closes it on its next turn,
    and A's next use reopens one, which A's own ``aclose()`` releases."""
    backend = AsyncRedisBackend.from_url(redis_server.url_for(prefix=f"{redis_namespace}c:"))
    ports = [redis_server.port]
    base = own_sockets(ports)

    async def settle() -> int:
        """The count, once the loop has had turns to close what it was handed (or 3 s)."""
        deadline = time.monotonic() + 3
        while sockets_opened_since(ports, base) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return sockets_opened_since(ports, base)

    loop_a = asyncio.new_event_loop()
    try:
        loop_a.run_until_complete(backend.set("k", b"v"))
        assert sockets_opened_since(ports, base) == 1
        asyncio.run(backend.aclose())
        assert sockets_opened_since(ports, base) == 1  # A has not run since: still open
        assert loop_a.run_until_complete(settle()) == 0
        assert loop_a.run_until_complete(backend.get("k")) == b"v"  # reopens
        assert sockets_opened_since(ports, base) == 1
        loop_a.run_until_complete(backend.aclose())
        assert loop_a.run_until_complete(settle()) == 0
    finally:
        loop_a.close()


def test_async_aclose_does_not_wait_on_a_loop_that_waits_on_it(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """Loop A, blocked until ``aclose()`` on loop B returns, still gets its connection closed,
    once it runs again; ``aclose()`` on B must not wait for A meanwhile (it never would)."""
    backend = AsyncRedisBackend.from_url(redis_server.url_for(prefix=f"{redis_namespace}c:"))
    ports = [redis_server.port]
    base = own_sockets(ports)
    loops = [asyncio.new_event_loop(), asyncio.new_event_loop()]
    threads = [threading.Thread(target=loop.run_forever, daemon=True) for loop in loops]
    for thread in threads:
        thread.start()
    loop_a, loop_b = loops
    try:

        async def on_a() -> None:
            await backend.set("k", b"v")
            # A blocks its own thread on B's aclose (no await: A cannot run meanwhile)
            asyncio.run_coroutine_threadsafe(backend.aclose(), loop_b).result(10)

        asyncio.run_coroutine_threadsafe(on_a(), loop_a).result(20)
        assert sockets_settled(ports, base) == 0
    finally:
        for loop, thread in zip(loops, threads, strict=True):
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
