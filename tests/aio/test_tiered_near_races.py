"""The near cache's races on the async chain: the sync chain's fix of 91f2e29 holds in the twin.

A write whose key was invalidated while it was in flight keeps its near copy *unchecked*: the
next read asks the shared tiers (so another process's later write is not hidden behind it), yet
the copy still serves when no shared tier answers. The disk write is held by :class:`Gate` (a
real diskcache behind a switch that holds the next write until released: the delay a slow disk
gives for free), so that the invalidations arrive while the write is in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from session_store.aio import AsyncMemoryBackend, ThreadedBackend, open_async_backend
from session_store.aio.tiered import AsyncTieredBackend
from session_store_diskcache import DiskcacheBackend
from session_store_redis.aio import AsyncRedisBackend
from session_store_redis.testing import RedisServer
from tests.tiered import test_tier_regressions as tiered_gate

pytestmark = pytest.mark.anyio


class Gate(tiered_gate.Gate):
    """A real backend whose next write, once armed, waits until released."""

    armed = False

    def _holds(self) -> bool:
        armed, self.armed = self.armed, False
        return armed


def gated_chain(redis_url: str, gate: Gate, retry_after: float = 5.0) -> AsyncTieredBackend:
    tiers = [AsyncMemoryBackend(), AsyncRedisBackend.from_url(redis_url), ThreadedBackend(gate)]
    return AsyncTieredBackend(tiers, retry_after=retry_after)


async def until(condition: Callable[[], bool], what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.001)


async def test_own_write_racing_another_processs_write_is_not_served_stale(
    redis_url: str, tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    gate = Gate(DiskcacheBackend(disk))
    a = gated_chain(redis_url, gate)
    b = open_async_backend(f"memory:// | {redis_url} | diskcache://{disk}")
    assert isinstance(b, AsyncTieredBackend)
    try:
        await until(lambda: a.coherent and b.coherent, "the invalidation streams did not connect")
        await a.set("k", b"a0")
        await b.set("k", b"b0")
        deadline = time.monotonic() + 10
        while await a.get("k") != b"b0":  # A heard of b0 (and of its own a0)
            assert time.monotonic() < deadline, "A never heard of b0"
            await asyncio.sleep(0.001)
        seen = a.counters.get("invalidations")
        gate.armed = True
        writing = asyncio.ensure_future(a.set("k", b"a1"))  # the arbiter, then the held disk
        assert await asyncio.to_thread(gate.reached.wait, 10)
        await b.set("k", b"b1")  # newer, on the arbiter after a1
        await until(lambda: a.counters.get("invalidations") >= seen + 2, "A never heard of b1")
        gate.release.set()
        await writing
        assert await a.get("k") == b"b1"
        assert await b.get("k") == b"b1"
    finally:
        gate.release.set()
        await a.aclose()
        await b.aclose()


async def test_own_write_keeps_its_near_copy_for_an_outage(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    server = redis_server_factory()
    gate = Gate(DiskcacheBackend(tmp_path / "disk"))
    chain = gated_chain(server.url_for(socket_timeout="0.5"), gate, retry_after=60)
    try:
        await until(lambda: chain.coherent, "the invalidation stream did not connect")
        seen = chain.counters.get("invalidations")
        gate.armed = True
        writing = asyncio.ensure_future(chain.set("k", b"mine"))
        assert await asyncio.to_thread(gate.reached.wait, 10)  # on Redis; the disk write held
        await until(lambda: chain.counters.get("invalidations") >= seen + 1, "no own invalidation")
        gate.release.set()
        await writing
        server.kill()
        gate.down = True
        assert await chain.get("k") == b"mine"
    finally:
        gate.release.set()
        await chain.aclose()
