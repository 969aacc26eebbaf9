"""The async chain keeps the sync chain's promises (issue 12's scenarios, on the event loop).

Real redis-server (the suite's fixtures), real diskcache directories, real concurrency: tasks on
one loop interleave at every ``await`` (each a real round trip to Redis or a disk call in a
worker thread), and a second process writes through its own chain. Each test names the sync
regression it mirrors (tests/tiered/test_tier_regressions.py); how each was seen failing is in
the commit that added it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from session_store import BackendUnavailableError, Codec, SessionStore, open_backend, stamps
from session_store.aio import AsyncSessionStore, AsyncTieredBackend, open_async_backend
from session_store.tiered import TieredBackend
from session_store.tiered.writes import write_after
from session_store_diskcache import DiskcacheBackend
from session_store_redis import RedisBackend
from tests.tiered.test_tier_regressions import disk_locked

pytestmark = pytest.mark.anyio


def chain_of(redis_url: str, disk: Path, **options: Any) -> AsyncTieredBackend:
    chain = open_async_backend(f"memory:// | {redis_url} | diskcache://{disk}", **options)
    assert isinstance(chain, AsyncTieredBackend)
    return chain


def dict_store(chain: AsyncTieredBackend) -> AsyncSessionStore[dict[str, Any]]:
    return AsyncSessionStore(chain, dict, codec=Codec(encryption=None, compression=None))


def bump(current: dict[str, Any] | None) -> dict[str, Any]:
    return {"n": (current or {"n": 0})["n"] + 1}


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    return tmp_path / "disk"


async def test_a_chain_string_opens_the_async_chain_with_its_options(
    redis_url: str, disk: Path
) -> None:
    chain = open_async_backend(
        f"tiered://?max_staleness=0.5&retry_after=2 | memory:// | {redis_url} | diskcache://{disk}"
    )
    assert isinstance(chain, AsyncTieredBackend)
    assert (chain.max_staleness, chain.retry_after) == (0.5, 2.0)
    assert [state["role"] for state in chain.tier_states()] == ["near cache", "arbiter", "durable"]
    await chain.aclose()


@pytest.mark.parametrize("same_chain", [False, True], ids=["two-chains", "one-chain"])
async def test_1_delete_racing_a_promotion_stays_deleted(
    redis_url: str, disk: Path, same_chain: bool
) -> None:
    """A delete racing a read that promotes the disk's copy into Redis and the near cache (in
    another chain, or the same one): the key never comes back."""
    reader = chain_of(redis_url, disk)
    deleter = reader if same_chain else chain_of(redis_url, disk)
    keys = [f"k{i}" for i in range(300)]
    for key in keys:  # only the disk holds them (Redis lost them): a read promotes into Redis
        await deleter.set(key, b"session", 3600)
        await deleter.tiers[1].delete(key)
        await deleter.tiers[0].delete(key)
    for key in keys:
        await asyncio.gather(reader.get(key), deleter.delete(key))
    fresh = chain_of(redis_url, disk)
    resurrected = [key for key in keys if await fresh.get(key) is not None]
    assert resurrected == [], f"{len(resurrected)} of {len(keys)} deleted keys read back"
    assert [key for key in keys if await reader.get(key) is not None] == []
    for chain in {reader, deleter, fresh}:
        await chain.aclose()


async def test_4_update_reads_the_durable_copy_when_redis_lost_the_key(
    redis_url: str, disk: Path
) -> None:
    chain = chain_of(redis_url, disk)
    store = dict_store(chain)
    for _ in range(5):
        await store.update("counter", bump)
    await chain.tiers[1].delete("counter")  # Redis restarted without persistence / evicted it
    await chain.tiers[0].delete("counter")
    seen: list[Any] = []

    def record(current: dict[str, Any] | None) -> dict[str, Any]:
        seen.append(current)
        return bump(current)

    assert await store.update("counter", record) == {"n": 6}
    assert None not in seen
    await chain.aclose()


async def test_9_acknowledged_sessions_survive_eviction_while_the_disk_is_locked(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "disk"
    chain = open_async_backend(f"memory://?max_entries=3 | diskcache://{directory}?timeout=0.05")
    await chain.set("warm", b"x")  # the database exists
    acked: list[str] = []
    with disk_locked(directory):
        for i in range(6):
            with contextlib.suppress(BackendUnavailableError):
                await chain.set(f"s{i}", b"session %d" % i)
                acked.append(f"s{i}")
    for i in range(6, 8):  # the disk is back: more traffic, recovery runs
        await chain.set(f"s{i}", b"session %d" % i)
        acked.append(f"s{i}")
    await chain.aclose()
    restarted = open_async_backend(f"memory://?max_entries=3 | diskcache://{directory}")
    lost = [key for key in acked if await restarted.get(key) is None]
    assert lost == [], f"{len(lost)} acknowledged sessions lost: {lost}"
    await restarted.aclose()


async def test_a_cancelled_write_is_on_every_tier_or_none(redis_url: str, disk: Path) -> None:
    """Cancel ``set`` / ``delete`` / ``update`` after 0, 1, 2, ... loop steps: afterwards Redis
    and the disk hold the same version (the write went through every tier or none), and the
    chain reads what they hold."""
    chain = chain_of(redis_url, disk)
    store = dict_store(chain)
    redis_tier, disk_tier = chain.tiers[1], chain.tiers[2]
    for steps in range(40):
        await chain.set("k", b"old")
        writes: list[Callable[[], Awaitable[object]]] = [
            lambda: chain.set("k", b"new"),
            lambda: chain.delete("k"),
            lambda: store.update("k", bump),
        ]
        task = asyncio.ensure_future(writes[steps % 3]())
        for _ in range(steps // 3):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        on_redis = await redis_tier.get("k")
        on_disk = await disk_tier.get("k")
        assert on_redis is not None and on_disk is not None
        assert stamps.version_of(on_redis) == stamps.version_of(on_disk), f"half after {steps}"
        assert await chain.get("k") == stamps.unframe(on_redis)
    await chain.aclose()


def _ahead(seconds: float) -> bytes:
    now = int.from_bytes(stamps.clock.now()[:8], "big")
    return (now + (int(seconds * 1000) << 16)).to_bytes(8, "big") + bytes(4)


@pytest.mark.parametrize("redis_kept_it", [True, False], ids=["redis-holds-it", "redis-lost-it"])
async def test_an_update_racing_a_delete_from_a_clock_ahead_is_not_undone_by_its_tombstone(
    redis_url: str, disk: Path, redis_kept_it: bool
) -> None:
    """The sync chain's fix of 91f2e29 in the twin: ``set_if`` over "absent" moves past the
    tombstone it replaces (a delete from a clock ahead of this one), so the value wins."""
    chain = chain_of(redis_url, disk)
    await chain.set("k", b"v0")
    await chain.delete("k")
    assert await chain.get_versioned("k") is None  # the update reads "absent"
    tombstone = stamps.tombstone(_ahead(0.05))  # the other process's delete lands now
    raw_redis, raw_disk = RedisBackend.from_url(redis_url), DiskcacheBackend(disk)
    write_after(raw_disk, "k", tombstone, 3600)
    if redis_kept_it:
        write_after(raw_redis, "k", tombstone, 3600)
    else:
        raw_redis.delete("k")
    assert await chain.set_if("k", b"updated", None)
    assert await chain.get("k") == b"updated"
    fresh = chain_of(redis_url, disk)
    try:
        assert await fresh.get("k") == b"updated"
        read = await fresh.get_versioned("k")
        assert read is not None and read.value == b"updated"
    finally:
        await fresh.aclose()
        await chain.aclose()
        raw_redis.close()
        raw_disk.close()


async def test_sync_and_async_chains_read_each_others_sessions(redis_url: str, disk: Path) -> None:
    chain = chain_of(redis_url, disk)
    sync_chain = open_backend(f"memory:// | {redis_url} | diskcache://{disk}")
    assert isinstance(sync_chain, TieredBackend)
    try:
        await dict_store(chain).save("a", {"from": "async"})
        sync_store: SessionStore[dict[str, Any]] = SessionStore(
            sync_chain, dict, codec=Codec(encryption=None, compression=None)
        )
        assert sync_store.load("a") == {"from": "async"}
        sync_store.save("b", {"from": "sync"})
        deadline = time.monotonic() + 2
        while await dict_store(chain).load("b") != {"from": "sync"}:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert sync_chain.delete("a")
        deadline = time.monotonic() + 2
        while await chain.get("a") is not None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
    finally:
        await chain.aclose()
        sync_chain.close()


async def test_6_touch_keeps_the_sessions_own_ttl(redis_url: str, disk: Path) -> None:
    """Issue 12 (6) through the async store: a session saved with ``ttl=30`` keeps it when
    touched without a TTL (the chain restarts each session's own), however many reads."""
    chain = chain_of(redis_url, disk)
    store = AsyncSessionStore(chain, dict, ttl=86_400, touch_on_load=True)
    try:
        await store.save("short", {"n": 1}, ttl=30)
        for _ in range(3):
            assert await store.load("short") == {"n": 1}  # touches on load
        assert await store.touch("short")
        left = await chain.ttl("short")
        assert left is not None and 25 < left <= 30
    finally:
        await chain.aclose()
