"""The async Redis Cluster backend on a real 3-primary cluster (a replica each, started once per
test session by session-store-redis's ``redis_cluster`` fixture): the async conformance kit,
sessions shared with the sync cluster backend, a cancelled ``update``, slots that move."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from redis.crc import key_slot

from session_store import BackendUnavailableError, ConfigurationError, SessionStore, open_backend
from session_store.aio import (
    AsyncSessionBackend,
    AsyncSessionStore,
    AsyncTieredBackend,
    open_async_backend,
)
from session_store.testing import cancelled_updates
from session_store.testing.async_conformance import AsyncBackendConformance
from session_store_redis import RedisClusterBackend
from session_store_redis.aio_cluster import AsyncRedisClusterBackend
from session_store_redis.aio_listing import AsyncClusterListing
from session_store_redis.listing import ListingIncompleteWarning
from session_store_redis.testing import RedisClusterServers
from session_store_redis.testing.checks import open_async_as
from session_store_redis.testing.cluster_reshard import SlotMigrator

pytestmark = pytest.mark.anyio


class TestAsyncRedisClusterConformance(AsyncBackendConformance):
    @pytest.fixture
    def backend_factory(
        self, redis_cluster: RedisClusterServers, redis_cluster_namespace: str
    ) -> Callable[..., AsyncSessionBackend]:
        return lambda prefix="t:": open_async_as(
            AsyncRedisClusterBackend, redis_cluster.url, prefix=f"{redis_cluster_namespace}{prefix}"
        )


class TestAsyncRedisClusterAcknowledgedConformance(AsyncBackendConformance):
    """Every write also waits for a replica (``wait_replicas=1``): the same contract holds."""

    @pytest.fixture
    def backend_factory(
        self, redis_cluster: RedisClusterServers, redis_cluster_namespace: str
    ) -> Callable[..., AsyncSessionBackend]:
        return lambda prefix="t:": open_async_as(
            AsyncRedisClusterBackend,
            redis_cluster.url_for(wait_replicas="1"),
            prefix=f"{redis_cluster_namespace}{prefix}",
        )


@pytest.fixture
async def backend(
    redis_cluster: RedisClusterServers, redis_cluster_namespace: str
) -> AsyncIterator[AsyncRedisClusterBackend]:
    opened = open_async_as(
        AsyncRedisClusterBackend, redis_cluster.url, prefix=redis_cluster_namespace
    )
    yield opened
    await opened.aclose()


def test_registered_for_the_cluster_scheme() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="session_store.async_backends")}
    assert names["redis+cluster"].startswith("session_store_redis.aio_cluster:")


def test_the_sync_url_rules_apply() -> None:
    with pytest.raises(ConfigurationError, match="database 0"):
        open_async_backend("redis+cluster://127.0.0.1:1/3")
    with pytest.raises(ConfigurationError, match="scan_rounds"):
        open_async_backend("redis+cluster://127.0.0.1:1/?scan_rounds=-1")


async def test_too_few_replicas_acknowledging_is_an_error(
    redis_cluster: RedisClusterServers, redis_cluster_namespace: str
) -> None:
    """One replica per primary: waiting for two fails, typed and counted, on every write. (The
    one replica may miss the 50 ms too on a loaded machine: "only 0 of 2" was seen once.)"""
    url = redis_cluster.url_for(wait_replicas="2", wait_timeout="0.05")
    backend = open_async_as(AsyncRedisClusterBackend, url, prefix=redis_cluster_namespace)
    try:
        with pytest.raises(BackendUnavailableError, match=r"only [01] of 2"):
            await backend.set("k", b"v")
        with pytest.raises(BackendUnavailableError, match=r"only [01] of 2"):
            await backend.set_many({f"k{n}": b"v" for n in range(20)})
        assert backend.counters.as_dict()["unacknowledged"] == 2
        assert await backend.get("k") == b"v"  # written on the primary all the same
    finally:
        await backend.aclose()


async def test_sync_and_async_share_keys_bytes_and_versions(
    redis_cluster: RedisClusterServers, redis_cluster_namespace: str
) -> None:
    """Same URL, same stored keys and bytes: each reads what the other wrote (spread over the
    three primaries), and a compare-and-set token of one is honoured by the other."""
    url = redis_cluster.url_for(prefix=redis_cluster_namespace)
    sync = open_backend(url)
    assert isinstance(sync, RedisClusterBackend)
    aio = open_async_as(AsyncRedisClusterBackend, url)
    try:
        items = {f"s{n}": f"v{n}".encode() for n in range(60)}
        sync.set_many(items)
        assert await aio.get_many(items) == items
        await aio.set_many({k: v + b"!" for k, v in items.items()}, ttl=600)
        assert sync.get_many(items) == {k: v + b"!" for k, v in items.items()}
        assert sorted([key async for key in aio.scan()]) == sorted(items)
        assert sorted(sync.scan()) == sorted(items)
        read = sync.get_versioned("s1")
        assert read is not None
        assert await aio.set_if("s1", b"async", read.token) is True
        assert sync.set_if("s1", b"sync", read.token) is False
        aread = await aio.get_versioned("s1")
        assert aread is not None and aread.token == sync.get_versioned("s1").token  # type: ignore[union-attr]
        assert await aio.delete_many(list(items)) == 60
        assert sync.get_many(items) == {}
    finally:
        sync.close()
        await aio.aclose()


async def test_stores_share_sessions(
    redis_cluster: RedisClusterServers, redis_cluster_namespace: str
) -> None:
    url = redis_cluster.url_for(prefix=redis_cluster_namespace)
    sync: SessionStore[dict[str, Any]] = SessionStore(url, dict, ttl=600)
    aio: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(url, dict, ttl=600)
    try:
        sync.save("u1", {"cart": ["book"]})
        assert await aio.update("u1", lambda s: {**(s or {}), "paid": True}) == {
            "cart": ["book"],
            "paid": True,
        }
        assert sync.load("u1") == {"cart": ["book"], "paid": True}
    finally:
        sync.close()
        await aio.aclose()


def test_one_key_transactions_stay_on_the_callers_loop(
    redis_cluster: RedisClusterServers, redis_cluster_namespace: str
) -> None:
    """``get_with_ttl`` and ``touch`` (one-key ``MULTI``/``EXEC``) as the first calls of a fresh
    backend, many at once, on one event loop after another. redis-py's transactional cluster
    pipeline runs each queued command through ``asyncio.run`` in a thread of its own, so the
    client got its connections on that short-lived loop, and every later call met "a Future
    attached to a different loop" or "Event loop is closed"."""
    backend = open_async_as(
        AsyncRedisClusterBackend, redis_cluster.url, prefix=redis_cluster_namespace
    )
    keys = [f"k{n}" for n in range(40)]

    async def round_of_calls(value: bytes) -> None:
        got = await asyncio.gather(*(backend.get_with_ttl(key) for key in keys))
        assert all(found is None or found[0] != value for found in got)
        await backend.set_many(dict.fromkeys(keys, value), ttl=600)
        got = await asyncio.gather(*(backend.get_with_ttl(key) for key in keys))
        assert all(found is not None and found[0] == value for found in got)
        assert all(await asyncio.gather(*(backend.touch(key) for key in keys)))

    try:
        for n in range(3):  # a loop each, as asyncio.run in a worker or a test does
            asyncio.run(round_of_calls(b"v%d" % n))
    finally:
        asyncio.run(backend.aclose())


def test_an_async_chain_with_a_cluster_arbiter_serves_every_loop(
    redis_cluster: RedisClusterServers, redis_cluster_namespace: str, tmp_path: Path
) -> None:
    """``memory:// | redis+cluster:// | diskcache://``: concurrent saves, updates and loads, on
    one event loop after another, lose nothing and never take the arbiter down."""
    url = redis_cluster.url_for(prefix=redis_cluster_namespace)
    store: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(
        f"memory:// | {url} | diskcache://{tmp_path}", dict, ttl=600
    )
    users = [f"u{n}" for n in range(20)]

    def _bump(session: dict[str, Any] | None) -> dict[str, Any]:
        assert session is not None  # every session was saved in the first round
        return {"n": session["n"] + 1}

    async def round_of_calls(n: int) -> None:
        if n == 0:
            await asyncio.gather(*(store.save(user, {"n": 0}) for user in users))
        await asyncio.gather(*(store.update(user, _bump) for user in users))
        loaded = await asyncio.gather(*(store.load(user) for user in users))
        assert loaded == [{"n": n + 1}] * len(users)

    try:
        for n in range(3):
            asyncio.run(round_of_calls(n))
        chain = store.backend
        assert isinstance(chain, AsyncTieredBackend)
        assert [state["down"] for state in chain.tier_states()] == [False, False, False]
        assert chain.tiers[1].counters.as_dict()["errors"] == 0
    finally:
        asyncio.run(store.aclose())


async def test_a_complete_listing_says_so(backend: AsyncRedisClusterBackend) -> None:
    await backend.set_many({f"k{n}": b"v" for n in range(300)})
    listing = backend.scan()
    assert isinstance(listing, AsyncClusterListing) and listing.complete is None
    assert len({key async for key in listing}) == 300
    assert listing.complete is True and listing.unproven_slots == frozenset()


async def test_a_cancelled_set_many_finishes_then_says_cancelled(
    backend: AsyncRedisClusterBackend,
) -> None:
    """``set_many`` spans the three primaries: cancelled mid-way, it still writes every key
    (never half of them) and then raises ``CancelledError`` to its caller."""
    items = {f"c{n}": b"new" for n in range(60)}
    for steps in range(1, 4):
        await backend.delete_many(items)
        task = asyncio.ensure_future(backend.set_many(items))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        result = (await asyncio.gather(task, return_exceptions=True))[0]
        assert isinstance(result, asyncio.CancelledError)
        assert await backend.get_many(items) == items


async def test_cancel_mid_update_never_half_applies(
    redis_cluster: RedisClusterServers, redis_cluster_namespace: str
) -> None:
    """:func:`session_store.testing.cancelled_updates` on a cluster: an ``update`` cancelled at
    any step past its read (between the read and the compare-and-set, and at each step of the
    write) is applied whole or not at all, and the store keeps answering correctly."""
    store: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(
        open_async_as(AsyncRedisClusterBackend, redis_cluster.url, prefix=redis_cluster_namespace),
        dict,
        ttl=600,
    )
    try:
        outcomes = await cancelled_updates(store)
    finally:
        await store.backend.aclose()
    assert outcomes  # (cancelled?, written?) pairs seen; every one left a whole session


@pytest.mark.parametrize("acked", [False, True], ids=["plain", "wait_replicas"])
async def test_operations_follow_a_slot_that_moves(
    redis_cluster: RedisClusterServers, redis_cluster_namespace: str, acked: bool
) -> None:
    """A backend whose slot map went stale follows ``MOVED``; while the slot is half-moved
    (``ASK``; multi-key commands refused with ``TRYAGAIN``) every operation still answers, and
    the listing is proven complete. The slot is moved back at the end (shared cluster). With
    ``wait_replicas`` the writes bounced by ``MOVED`` / ``ASK`` are sent again to the owner."""
    url = redis_cluster.url_for(wait_replicas="1") if acked else redis_cluster.url
    backend = open_async_as(AsyncRedisClusterBackend, url, prefix=redis_cluster_namespace)
    # keys of one slot (a hash tag), so that slot can be half-moved
    keys = {f"{{tag}}k{n}": f"v{n}".encode() for n in range(6)}
    slot = key_slot(backend.namespace.encode("{tag}k0").encode())
    assert {key_slot(backend.namespace.encode(k).encode()) for k in keys} == {slot}
    home = redis_cluster.owner_of(slot)
    primaries = redis_cluster.primary_nodes()
    away = primaries[(primaries.index(home) + 1) % len(primaries)]
    try:
        await backend.set_many(keys, ttl=600)
        assert await backend.get_many(keys) == keys  # slot map cached
        assert redis_cluster.move_slot(slot, away) == len(keys)
        await backend.set("{tag}k3", b"v3")  # MOVED
        found = await backend.get_with_ttl("{tag}k0")  # MOVED inside MULTI/EXEC
        assert found is not None and found[0] == b"v0"
        assert await backend.get_many(keys) == keys
        # half-moved back: three keys home again, three still away
        assert redis_cluster.start_move(slot, home) is away
        assert redis_cluster.migrate_keys(slot, away, home, limit=3) == 3
        assert await backend.get_many(keys) == keys
        found = await backend.get_with_ttl("{tag}k5")
        assert found is not None and found[0] == b"v5"
        assert await backend.touch("{tag}k0") is True  # PERSIST + EXISTS
        await backend.set_many({"{tag}k0": b"v0", "{tag}k5": b"v5"})  # one of each side: ASK
        read = await backend.get_versioned("{tag}k1")
        assert read is not None and await backend.set_if("{tag}k1", b"cas", read.token)
        listing = backend.scan()
        assert {key async for key in listing} == set(keys)
        assert listing.complete is True
        assert await backend.delete_many(["{tag}k2", "{tag}k4"]) == 2
        redis_cluster.migrate_keys(slot, away, home)
        redis_cluster.finish_move(slot, away, home)
        assert set(await backend.get_many(keys)) == set(keys) - {"{tag}k2", "{tag}k4"}
    finally:
        if redis_cluster.owner_of(slot) is not home:
            redis_cluster.move_slot(slot, home)
        await backend.aclose()


async def test_listings_are_proven_complete_while_slots_migrate(
    redis_cluster: RedisClusterServers, backend: AsyncRedisClusterBackend
) -> None:
    """Listings run while a thread migrates 8 slots there and back, key by key (each slot
    spends most of the time half-moved): every listing has every key and says it is complete."""
    expected = {f"plain-{n}": b"v" for n in range(400)}
    expected |= {f"{{m{n % 8}}}moving-{n}": b"m" for n in range(80)}
    await backend.set_many(expected)
    head = backend.namespace.scan_head()
    slots = sorted({key_slot(f"{head}{key}".encode()) for key in expected if "moving" in key})
    assert len(slots) == 8
    assert {key async for key in backend.scan()} == set(expected)  # slot map cached
    migrator = SlotMigrator(redis_cluster, slots, home_on_stop=True)
    listings = 0
    migrator.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ListingIncompleteWarning)
            while migrator.error is None and (migrator.rounds < 2 or listings < 5):
                listing = backend.scan()
                assert {key async for key in listing} == set(expected)
                assert listing.complete is True
                listings += 1
    finally:
        migrator.stop.set()
        await asyncio.to_thread(migrator.join, 60)
    assert migrator.error is None, migrator.error
    assert migrator.moved >= 80 and not migrator.is_alive()
