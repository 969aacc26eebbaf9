"""Compression per tier, Redis (issue 17): a store over a Redis backend alone (standalone,
Sentinel, Cluster; sync and async) writes uncompressed by default and still reads zstd payloads
(``ZstdStage.read_only()``), as cachelib, dogpile.cache and Flask-Session store on Redis;
``compression=True`` on the store opts into zstd level 1 above 1 KiB; a chain keeps zstd; a
codec passed to a store is used as it is.

On loopback, zstd's CPU costs more than the bytes it keeps off the wire (+36-49 % end to end,
benchmarks/bench_e2e.py); what it buys is Redis memory (about 4.6x less), which a deployment
chooses explicitly (docs/performance.md, "Per tier").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from session_store import Codec, SessionStore
from session_store.aio import AsyncSessionStore, open_async_backend
from session_store.aio.threaded import ThreadedBackend
from session_store.codec import ZstdStage
from session_store.codec.stages import WRITE_NEVER
from session_store.errors import ConfigurationError
from session_store.registry import open_backend

#: Above the 1 KiB threshold: a compressing store does compress it.
BIG = {"notes": ["word " * 40 for _ in range(20)], "n": 1}


def _stages(store: SessionStore[Any]) -> tuple[str, ...]:
    store.save("k", BIG)
    raw = store.backend.get("k")
    assert raw is not None
    return store.codec.inspect(raw).stages


@pytest.fixture
def opened() -> Iterator[list[SessionStore[Any]]]:
    stores: list[SessionStore[Any]] = []
    yield stores
    for store in stores:
        store.close()


def test_a_redis_store_writes_uncompressed_and_reads_zstd(
    redis_url: str, opened: list[SessionStore[Any]]
) -> None:
    """Default: written uncompressed, read either way; the same bytes as before for what a
    compressing store (the old default, or an explicit opt-in) wrote."""
    store: SessionStore[dict[str, Any]] = SessionStore(redis_url, dict)
    opened.append(store)
    assert isinstance(store.codec.compression, ZstdStage)
    assert store.codec.compression.threshold == WRITE_NEVER
    assert _stages(store) == ()
    assert store.load("k") == BIG
    zstd: SessionStore[dict[str, Any]] = SessionStore(store.backend, dict, compression=True)
    zstd.save("z", BIG)
    assert store.codec.inspect(store.backend.get("z") or b"").stages == ("zstd",)
    for _ in range(2):  # cold, then through the near cache
        assert store.load("z") == BIG
        assert zstd.load("k") == BIG


def test_compression_true_opts_into_zstd_keeping_the_store_defaults(
    redis_url: str, opened: list[SessionStore[Any]]
) -> None:
    """``compression=True``: zstd level 1 above 1 KiB, with the store's own legacy schema
    (``dict`` for a dict store), unlike a hand-built ``Codec()``."""
    store: SessionStore[dict[str, Any]] = SessionStore(redis_url, dict, compression=True)
    opened.append(store)
    assert _stages(store) == ("zstd",)
    assert store.codec.legacy_schema == "dict"
    level3 = SessionStore(redis_url, dict, compression=ZstdStage(level=3))
    opened.append(level3)
    assert level3.codec.compression is not None and level3.codec.compression.level == 3
    plain = SessionStore("memory://", dict, compression=False)
    opened.append(plain)
    assert plain.codec.compression is not None
    assert plain.codec.compression.threshold == WRITE_NEVER  # never written, still read


def test_a_codec_is_used_as_it_is_and_not_with_compression(redis_url: str) -> None:
    codec = Codec(legacy_schema="dict")
    with SessionStore(redis_url, dict, codec=codec) as store:
        assert _stages(store) == ("zstd",)
    with pytest.raises(ConfigurationError, match="compression"):
        SessionStore(redis_url, dict, codec=codec, compression=True)


def test_a_chain_over_redis_keeps_zstd(redis_url: str, opened: list[SessionStore[Any]]) -> None:
    """A chain's tiers share one payload, its memory tier included: zstd stays."""
    store: SessionStore[dict[str, Any]] = SessionStore(f"memory:// | {redis_url}", dict)
    opened.append(store)
    assert _stages(store) == ("zstd",)


def test_sentinel_writes_uncompressed(
    redis_sentinel_url: str, opened: list[SessionStore[Any]]
) -> None:
    store: SessionStore[dict[str, Any]] = SessionStore(redis_sentinel_url, dict)
    opened.append(store)
    assert _stages(store) == ()


def test_cluster_writes_uncompressed(
    redis_cluster_url: str, opened: list[SessionStore[Any]]
) -> None:
    store: SessionStore[dict[str, Any]] = SessionStore(redis_cluster_url, dict)
    opened.append(store)
    assert _stages(store) == ()


def test_async_redis_stores_write_uncompressed(redis_url: str) -> None:
    """The async store decides as the sync one: its own Redis backend, or a sync one run in
    threads."""

    async def stages(make: Callable[[], AsyncSessionStore[dict[str, Any]]]) -> tuple[str, ...]:
        store = make()
        try:
            await store.save("k", BIG)
            raw = await store.backend.get("k")
            assert raw is not None and await store.load("k") == BIG
            return store.codec.inspect(raw).stages
        finally:
            await store.backend.aclose()  # opened here or by the store: closed either way

    async def run() -> None:
        assert await stages(lambda: AsyncSessionStore(open_async_backend(redis_url), dict)) == ()
        threaded = ThreadedBackend(open_backend(redis_url))
        assert await stages(lambda: AsyncSessionStore(threaded, dict)) == ()
        zstd = await stages(lambda: AsyncSessionStore(redis_url, dict, compression=True))
        assert zstd == ("zstd",)

    asyncio.run(run())
