"""Redis Cluster under an ACL that refuses ``MULTI`` (issue 12): ``get_with_ttl`` and ``touch``
without a TTL, one-key ``MULTI``/``EXEC`` on a cluster too, run as one script on the key's
primary once ``MULTI`` is refused (routed and redirected by redis-py as any one-key command), sync
and async, and through a chain. The ACL user is made on every node of the suite's shared cluster
and deleted after the test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from redis.crc import key_slot

from session_store import NO_EXPIRY, SessionStore
from session_store.errors import BackendError
from session_store_redis import RedisClusterBackend
from session_store_redis.aio_cluster import AsyncRedisClusterBackend
from session_store_redis.testing import RedisClusterServers

#: Keys enough to land on every primary (16384 slots over 3).
KEYS = [f"k{i}" for i in range(12)]


@pytest.fixture
def no_multi_url(redis_cluster: RedisClusterServers, redis_cluster_namespace: str) -> Iterator[str]:
    """A cluster URL of a user allowed every command but ``MULTI``, on the test's namespace."""
    name = f"acl-{uuid.uuid4().hex[:12]}"
    nodes = [node for node in redis_cluster.nodes if node.running]
    for node in nodes:
        with node.client() as admin:
            admin.execute_command(
                "ACL", "SETUSER", name, "on", ">secret", "~*", "&*", "+@all", "-multi"
            )
    port = redis_cluster.primary_nodes()[0].port
    try:
        yield f"redis+cluster://{name}:secret@127.0.0.1:{port}/?prefix={redis_cluster_namespace}"
    finally:
        for node in nodes:
            with node.client() as admin:
                admin.execute_command("ACL", "DELUSER", name)


def _refused_multi(cluster: RedisClusterServers) -> int:
    total = 0
    for node in cluster.primary_nodes():
        with node.client() as admin:
            stats = admin.info("commandstats")
        total += int(stats.get("cmdstat_multi", {}).get("rejected_calls", 0))
    return total


def test_sync_cluster_reads_with_ttl_and_touches_without_one(
    redis_cluster: RedisClusterServers, no_multi_url: str
) -> None:
    before = _refused_multi(redis_cluster)
    with RedisClusterBackend.from_url(no_multi_url, default_ttl=None) as backend:
        for key in KEYS:
            backend.set(key, key.encode(), ttl=600)
        for key in KEYS:
            read = backend.get_with_ttl(key)
            assert read is not None and read[0] == key.encode() and 590 < read[1] <= 600
            assert backend.touch(key)
            assert backend.get_with_ttl(key) == (key.encode(), NO_EXPIRY)
        assert backend.get_with_ttl("absent") is None
        assert not backend.touch("absent")
    assert _refused_multi(redis_cluster) - before == 1, "MULTI tried on every call"


def test_async_cluster_reads_with_ttl_and_touches_without_one(
    redis_cluster: RedisClusterServers, no_multi_url: str
) -> None:
    async def run() -> None:
        backend = AsyncRedisClusterBackend.from_url(no_multi_url, default_ttl=None)
        try:
            await backend.set_many({key: key.encode() for key in KEYS}, ttl=600)
            for key in KEYS:
                read = await backend.get_with_ttl(key)
                assert read is not None and read[0] == key.encode() and 590 < read[1] <= 600
                assert await backend.touch(key)
                assert await backend.get_with_ttl(key) == (key.encode(), NO_EXPIRY)
            assert await backend.get_with_ttl("absent") is None
            assert not await backend.touch("absent")
        finally:
            await backend.aclose()

    before = _refused_multi(redis_cluster)
    asyncio.run(run())
    assert _refused_multi(redis_cluster) - before == 1, "MULTI tried on every call"


def test_a_chain_over_the_cluster_works_under_the_acl(no_multi_url: str) -> None:
    url = f"memory:// | {no_multi_url}"
    with SessionStore(url, dict, ttl=600) as store:
        for key in KEYS:
            store.save(key, {"v": key})
        assert all(store.load(key) == {"v": key} for key in KEYS)
        assert store.touch(KEYS[0])
        assert store.delete(KEYS[1])
    fresh: SessionStore[dict[str, Any]]
    with SessionStore(url, dict, ttl=600) as fresh:  # a cold near tier: the cluster's copies
        assert [fresh.load(key) for key in KEYS[2:]] == [{"v": key} for key in KEYS[2:]]
        assert fresh.load(KEYS[1]) is None


def test_the_script_follows_a_slot_that_moved_and_one_that_is_migrating(
    redis_cluster: RedisClusterServers, no_multi_url: str
) -> None:
    """As ``test_cluster_listing.py``'s one-key transactions: after the slot moved (``MOVED``)
    and while it migrates back with the key already on the other side (``ASK``), sync and async.
    The slot ends on the primary it started on."""
    with RedisClusterBackend.from_url(no_multi_url, default_ttl=None) as backend:
        backend.set("k", b"v", ttl=600)
        assert backend.get_with_ttl("k") is not None  # MULTI refused; slot map cached
        slot = key_slot(backend.namespace.encode("k").encode())
        source = redis_cluster.owner_of(slot)
        primaries = redis_cluster.primary_nodes()
        target = primaries[(primaries.index(source) + 1) % len(primaries)]
        assert redis_cluster.move_slot(slot, target) >= 1
        found = backend.get_with_ttl("k")  # MOVED
        assert found is not None and found[0] == b"v"
        assert backend.touch("k") is True
        backend.set("k", b"v", ttl=600)
        # Half-moved: the slot migrating back, the key already on the other side (ASK).
        assert redis_cluster.start_move(slot, source) is target
        try:
            assert redis_cluster.migrate_keys(slot, target, source) >= 1
            found = backend.get_with_ttl("k")
            assert found is not None and found[0] == b"v" and found[1] > 500
            assert _async_reads(no_multi_url) == (b"v", True)
            assert backend.touch("k") is True  # PERSIST + EXISTS
            assert backend.ttl("k") == NO_EXPIRY
        finally:
            redis_cluster.finish_move(slot, target, source)
        assert backend.get_with_ttl("k") == (b"v", NO_EXPIRY)


def _async_reads(url: str) -> tuple[bytes, bool]:
    """What a new async backend reads of ``k`` (and whether its touch found it)."""

    async def run() -> tuple[bytes, bool]:
        backend = AsyncRedisClusterBackend.from_url(url, default_ttl=None)
        try:
            found = await backend.get_with_ttl("k")
            assert found is not None and found[1] > 500
            return found[0], await backend.touch("k")
        finally:
            await backend.aclose()

    return asyncio.run(run())


def test_a_complete_listing_reads_each_node_state_in_one_script(no_multi_url: str) -> None:
    """The listing's proof reads a node's view and its keys of one instant: ``MULTI`` where
    allowed, one script (``multi_acl.NODE_STATE``) where refused; still proven complete."""
    with RedisClusterBackend.from_url(no_multi_url) as backend:
        for key in KEYS:
            backend.set(key, b"v", ttl=600)
        listing = backend.scan()
        assert sorted(listing) == sorted(KEYS)
        assert listing.complete is True

    async def run() -> tuple[list[str], bool | None]:
        backend = AsyncRedisClusterBackend.from_url(no_multi_url)
        try:
            listing = backend.scan()
            return sorted([key async for key in listing]), listing.complete
        finally:
            await backend.aclose()

    assert asyncio.run(run()) == (sorted(KEYS), True)


def test_a_listing_remembers_the_refusal_and_names_what_it_needs(
    redis_cluster: RedisClusterServers, no_multi_url: str
) -> None:
    """Review follow-up: each node-state read of a listing paid one refused ``MULTI``; the
    backend now remembers the refusal (one per backend). A user refused ``EVAL`` too is told
    the listing needs one of them, as the other one-instant reads say."""
    with RedisClusterBackend.from_url(no_multi_url) as backend:
        for key in KEYS:
            backend.set(key, b"v", ttl=600)
        before = _refused_multi(redis_cluster)
        for _ in range(2):
            assert sorted(backend.scan()) == sorted(KEYS)
        assert _refused_multi(redis_cluster) - before == 1, "MULTI tried on every node state"

    async def run() -> None:
        backend = AsyncRedisClusterBackend.from_url(no_multi_url)
        try:
            for _ in range(2):
                assert sorted([key async for key in backend.scan()]) == sorted(KEYS)
        finally:
            await backend.aclose()

    before = _refused_multi(redis_cluster)
    asyncio.run(run())
    assert _refused_multi(redis_cluster) - before == 1, "MULTI tried on every node state"
    for node in (node for node in redis_cluster.nodes if node.running):
        with node.client() as admin:
            user = no_multi_url.split("//")[1].split(":")[0]
            admin.execute_command("ACL", "SETUSER", user, "-eval")
    with (
        RedisClusterBackend.from_url(no_multi_url) as backend,
        pytest.raises(BackendError, match=r"neither MULTI nor EVAL\b"),
    ):
        list(backend.scan())
