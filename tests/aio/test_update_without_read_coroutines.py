"""The async store's ``update`` without a read
(``AsyncSessionStore._update_known``): many coroutines of two stores in one event loop, each
awaiting its compare-and-set while the others run ``fn`` on the same cached bytes. Real
redis-server (async client) and a real diskcache directory (threaded)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from session_store.aio import AsyncSessionStore

pytestmark = pytest.mark.anyio

Session = dict[str, Any]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_interleaved_coroutines_lose_no_increment(shared_url: str) -> None:
    """What held: 2 stores x 20 coroutines x 10 increments of one key, all coroutines of a
    store starting from the same cached bytes: the stored counter is the number of
    acknowledged increments (400)."""
    stores: list[AsyncSessionStore[Session]] = [
        AsyncSessionStore(shared_url, dict, access_interval=None, update_timeout=60.0)
        for _ in range(2)
    ]
    try:
        await stores[0].save("k", {"n": 0})
        await stores[1].load("k")  # both stores now hold the same bytes
        acked = 0

        async def worker(store: AsyncSessionStore[Session]) -> None:
            nonlocal acked
            for _ in range(10):
                await store.update("k", lambda s: {"n": (s or {"n": 0})["n"] + 1})
                acked += 1

        await asyncio.gather(*(worker(store) for store in stores for _ in range(20)))
        stored = await stores[0].load("k")
        assert stored == {"n": acked}
        assert acked == 400
    finally:
        for store in stores:
            await store.aclose()
