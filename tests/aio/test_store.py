"""AsyncSessionStore: the sync store's API as coroutines, on real backends, sharing its rules."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from session_store import (
    ConfigurationError,
    ConflictError,
    MemoryBackend,
    SerializationError,
    SessionStore,
)
from session_store.aio import AsyncMemoryBackend, AsyncSessionStore, open_async_backend
from session_store.codec import Codec
from session_store.schema import EnhancedSessionData
from session_store.testing import cancelled_updates
from session_store.testing.strategies import json_objects, sessions
from session_store_redis.testing import RedisServer
from tests.store.test_decoded_cache import CountingCodec, _mutate

pytestmark = pytest.mark.anyio


@pytest.fixture
async def redis_store(
    redis_server: RedisServer, redis_namespace: str
) -> AsyncIterator[AsyncSessionStore[dict[str, Any]]]:
    store: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(
        open_async_backend(redis_server.url, prefix=redis_namespace), dict, ttl=600
    )
    yield store
    await store.backend.aclose()


async def test_every_method(redis_store: AsyncSessionStore[dict[str, Any]]) -> None:
    s = redis_store
    assert await s.load("u1") is None
    assert await s.save("u1", {"a": 1}) == {"a": 1}
    assert await s.load("u1") == {"a": 1}
    assert await s.exists("u1") and not await s.exists("u2")
    await s.save_many({"u2": {"b": 2}, "u3": {"c": 3}}, ttl=60)
    assert await s.load_many(["u1", "u2", "nobody"]) == {"u1": {"a": 1}, "u2": {"b": 2}}
    assert sorted([k async for k in s.keys("")]) == ["u1", "u2", "u3"]
    assert sorted([k async for k in s.keys("u")]) == ["u1", "u2", "u3"]
    assert await s.touch("u1", 30) is True
    ttl = await s.backend.ttl("u1")
    assert ttl is not None and 0 < ttl <= 30
    assert await s.update("u1", lambda cur: {**(cur or {}), "n": 1}) == {"a": 1, "n": 1}
    assert await s.update("u1", lambda cur: None) == {"a": 1, "n": 1}  # None writes nothing
    assert await s.delete("u1") is True
    assert await s.delete("u1") is False
    assert await s.touch("u1") is False


async def test_sync_and_async_stores_read_each_others_sessions(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """One codec, one key layout: what one API writes the other reads, both directions."""
    url = redis_server.url_for(prefix=redis_namespace)
    sync: SessionStore[EnhancedSessionData] = SessionStore(url, EnhancedSessionData)
    aio: AsyncSessionStore[EnhancedSessionData] = AsyncSessionStore(url, EnhancedSessionData)
    try:
        written = sync.save("s", EnhancedSessionData("s", document_summary="from sync"))
        assert await aio.load("s") == written
        back = await aio.save("a", EnhancedSessionData("a", document_summary="from async"))
        assert sync.load("a") == back
        assert await aio.backend.get("a") == sync.backend.get("a")
    finally:
        sync.close()
        await aio.aclose()


async def test_rules_are_the_sync_stores(redis_store: AsyncSessionStore[dict[str, Any]]) -> None:
    typed: AsyncSessionStore[EnhancedSessionData] = AsyncSessionStore(
        AsyncMemoryBackend(), EnhancedSessionData, codec=Codec(encryption=None)
    )
    with pytest.raises(SerializationError):
        await typed.save("k", {"not": "a data room"})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        await redis_store.save("k", {}, ttl=0)
    with pytest.raises(ConfigurationError):
        AsyncSessionStore(AsyncMemoryBackend(), dict, ttl=-1)
    old = datetime(2020, 1, 1, tzinfo=UTC)
    saved = await typed.save("u", EnhancedSessionData("u", last_accessed=old))
    assert saved.last_accessed is not None
    assert saved.last_accessed > old  # stamped, as the sync store does


async def test_reads_never_write_and_touch_on_load_keeps_the_payload() -> None:
    """As the sync store (issue 12): a load never rewrites the session, however old its
    ``last_accessed``; ``touch_on_load`` restarts the expiry without rewriting it."""
    backend = AsyncMemoryBackend()
    store: AsyncSessionStore[EnhancedSessionData] = AsyncSessionStore(
        backend, EnhancedSessionData, codec=Codec(encryption=None), access_interval=60
    )
    stale = EnhancedSessionData("u", last_accessed=datetime.now(UTC) - timedelta(hours=1))
    payload = store.codec.encode("u", stale)
    await backend.set("u", payload, ttl=30)
    writes = backend.counters.get("writes")
    loaded = await store.load("u")
    assert loaded is not None and loaded.last_accessed == stale.last_accessed
    assert backend.counters.get("writes") == writes and await backend.get("u") == payload
    touching: AsyncSessionStore[EnhancedSessionData] = AsyncSessionStore(
        backend, EnhancedSessionData, codec=Codec(encryption=None), touch_on_load=True, ttl=300
    )
    assert await touching.load("u") is not None
    left = await backend.ttl("u")
    assert left is not None and 30 < left <= 300 and await backend.get("u") == payload


async def test_concurrent_updates_lose_nothing(
    redis_store: AsyncSessionStore[dict[str, Any]],
) -> None:
    """50 tasks, one session, each adds its own key through update: all 50 land."""

    async def add(i: int) -> None:
        await redis_store.update("shared", lambda cur: {**(cur or {}), f"k{i}": i})

    await asyncio.gather(*(add(i) for i in range(50)))
    assert await redis_store.load("shared") == {f"k{i}": i for i in range(50)}


async def test_update_gives_up_with_conflict_error() -> None:
    backend = AsyncMemoryBackend()
    store: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(backend, dict, update_timeout=0.05)
    await store.save("k", {"n": 0})

    def meddle(cur: dict[str, Any] | None) -> dict[str, Any]:
        backend.sync.set("k", store.codec.encode("k", {"n": -1}))  # another writer, every time
        return {"n": 1}

    with pytest.raises(ConflictError):
        await store.update("k", meddle)
    assert await store.load("k") == {"n": -1}


@pytest.fixture(params=["redis", "diskcache"])
async def any_store(
    request: pytest.FixtureRequest, redis_server: RedisServer, redis_namespace: str, tmp_path: Path
) -> AsyncIterator[AsyncSessionStore[dict[str, Any]]]:
    if request.param == "redis":
        url = redis_server.url_for(prefix=redis_namespace)
    else:
        url = f"diskcache://{tmp_path / 'sessions'}"
    store: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(url, dict)
    yield store
    await store.aclose()


async def test_cancel_mid_update_never_half_applies(
    any_store: AsyncSessionStore[dict[str, Any]],
) -> None:
    """:func:`session_store.testing.cancelled_updates` on Redis and diskcache: an ``update``
    cancelled at any step past its read is applied whole or not at all.

    (redis-py lets a command that has started finish even if its task is cancelled,
    redis/redis-py#2666; a worker thread finishes its call too. Either way: whole or nothing.)"""
    outcomes = await cancelled_updates(any_store)
    assert outcomes  # (cancelled?, written?) pairs seen; every one of them left a whole session


async def test_open_async_backend_errors() -> None:
    with pytest.raises(ConfigurationError, match="empty tier"):
        open_async_backend("memory:// | ")  # a chain string opens a chain: a broken one raises
    with pytest.raises(ConfigurationError, match="no backend is installed"):
        open_async_backend("nosuch://x")
    with pytest.raises(ConfigurationError):
        open_async_backend("memory://?max_entries=0")


# -- the decoded-object cache (the sync store's, session_store.decoded) ----------------------
async def test_a_warm_load_of_unchanged_bytes_undoes_no_stage(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """Saved, then loaded five times: no payload is decompressed (the cache holds the checked
    body of what was saved), and each load gets an object of its own (parsed from the body,
    then, from the second hit on, copied from the master)."""
    codec = CountingCodec(encryption=None)
    url = redis_server.url_for(prefix=redis_namespace)
    store: AsyncSessionStore[EnhancedSessionData] = AsyncSessionStore(
        url, EnhancedSessionData, codec=codec
    )
    try:
        await store.save("u", EnhancedSessionData("u", extra={"n": 1, "text": "word " * 500}))
        assert codec.inspect(await store.backend.get("u") or b"").stages == ("zstd",)
        CountingCodec.unwraps = CountingCodec.parses = 0
        loads = [await store.load("u") for _ in range(5)]
        assert all(s is not None and s.extra["n"] == 1 for s in loads)
        assert len({id(s) for s in loads}) == 5
        # two parsed from the kept body, three copies of the master (session_store.codec.clone)
        assert CountingCodec.unwraps == 0 and CountingCodec.parses == 2
        assert len({id(s.extra) for s in loads if s is not None}) == 5
        # another process's write: other bytes, decoded once, then served from the cache
        other = SessionStore(url, EnhancedSessionData, codec=Codec(encryption=None))
        written = other.save("u", EnhancedSessionData("u", extra={"n": 2, "text": "x " * 900}))
        other.close()
        assert await store.load("u") == written and await store.load("u") == written
        assert CountingCodec.unwraps == 1
        assert (store._decoded.hits, store._decoded.misses) == (6, 1)
        await store.delete("u")
        assert await store.load("u") is None and store._decoded.entry_count == 0
    finally:
        await store.aclose()


async def test_update_feeds_the_cache_and_a_cache_of_zero_bytes_is_off() -> None:
    codec = CountingCodec(encryption=None)
    store: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(
        AsyncMemoryBackend(), dict, codec=codec
    )
    await store.update("k", lambda cur: {"n": 1, "text": "word " * 500})
    CountingCodec.unwraps = 0
    assert await store.load("k") == {"n": 1, "text": "word " * 500}
    assert CountingCodec.unwraps == 0
    off: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(
        store.backend, dict, codec=codec, decoded_cache_bytes=0
    )
    assert await off.load("k") == await off.load("k")
    assert CountingCodec.unwraps == 2 and off._decoded.entry_count == 0


@settings(deadline=None, max_examples=60)
@given(session=sessions(), data=st.data())
def test_mutating_a_loaded_session_never_leaks(
    session: EnhancedSessionData, data: st.DataObject
) -> None:
    """What ``save`` returned, what the caller passed in and what ``load`` returned may all be
    changed in place by the caller: no other load, and nothing stored, ever sees it."""

    async def run() -> None:
        store: AsyncSessionStore[EnhancedSessionData] = AsyncSessionStore(
            AsyncMemoryBackend(), EnhancedSessionData, codec=Codec(encryption=None)
        )
        saved = await store.save("u", session)
        expected = copy.deepcopy(saved)
        first = await store.load("u")
        assert first == expected
        _mutate(first, data)
        assert await store.load("u") == expected
        assert store.codec.decode("u", await store.backend.get("u") or b"").obj == expected
        _mutate(saved, data)
        _mutate(session, data)
        assert await store.load("u") == expected
        assert store._decoded.hits >= 2  # the loads above came from the cache

    asyncio.run(run())


@settings(deadline=None, max_examples=60)
@given(legacy=json_objects(), data=st.data())
def test_mutating_a_loaded_dict_session_never_leaks(
    legacy: dict[str, Any], data: st.DataObject
) -> None:
    async def run() -> None:
        store: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(
            AsyncMemoryBackend(), dict, codec=Codec(encryption=None)
        )
        await store.update("u", lambda cur: legacy)
        expected = copy.deepcopy(legacy)
        first = await store.load("u")
        assert first == expected
        if first:
            _mutate(first, data)
        _mutate(legacy, data)
        assert await store.load("u") == expected
        assert store.codec.decode("u", await store.backend.get("u") or b"").obj == expected

    asyncio.run(run())


async def test_compression_per_tier_is_the_sync_stores(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """A bare memory store writes uncompressed while its near cache is on (the sync store's
    rule, ``tiercompression.default_compression``), and so does a Redis store; a memory store
    without it writes zstd above 1 KiB."""
    big = {"notes": ["word " * 40 for _ in range(20)]}

    async def stages(store: AsyncSessionStore[dict[str, Any]]) -> tuple[str, ...]:
        await store.save("k", big)
        raw = await store.backend.get("k")
        assert raw is not None
        return store.codec.inspect(raw).stages

    shared = AsyncMemoryBackend(backend=MemoryBackend())  # a sync and an async view
    assert await stages(AsyncSessionStore("memory://", dict)) == ()
    assert await stages(AsyncSessionStore(shared, dict)) == ()
    assert await stages(AsyncSessionStore("memory://", dict, decoded_cache_bytes=0)) == ("zstd",)
    redis = AsyncSessionStore(open_async_backend(redis_server.url, prefix=redis_namespace), dict)
    try:
        assert await stages(redis) == ()
    finally:
        await redis.backend.aclose()
