"""The async store's ``update`` of bytes it just wrote or read compare-and-sets without reading
them again, as the sync store's does (``tests/store/test_update_without_read.py``), and never
builds on an old copy. Real redis-server, real directories."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from session_store.aio import AsyncSessionStore

pytestmark = pytest.mark.anyio

Session = dict[str, Any]
Stores = tuple[AsyncSessionStore[Session], AsyncSessionStore[Session]]


@pytest.fixture
async def stores(shared_url: str) -> AsyncIterator[Stores]:
    mine: AsyncSessionStore[Session] = AsyncSessionStore(shared_url, dict, access_interval=None)
    theirs: AsyncSessionStore[Session] = AsyncSessionStore(shared_url, dict, access_interval=None)
    try:
        yield mine, theirs
    finally:
        await mine.aclose()
        await theirs.aclose()


def _reads(store: AsyncSessionStore[Session]) -> int:
    counters = store.backend.counters
    return counters.get("hits") + counters.get("misses")


async def test_an_update_after_a_save_reads_nothing(stores: Stores) -> None:
    mine, _ = stores
    await mine.save("u1", {"n": 0})
    before = _reads(mine)
    for _ in range(5):
        await mine.update("u1", lambda s: {"n": (s or {})["n"] + 1})
    assert _reads(mine) == before
    assert await mine.load("u1") == {"n": 5}


async def test_an_update_builds_on_another_stores_write(stores: Stores) -> None:
    mine, theirs = stores
    await mine.save("u1", {"n": 0})
    await theirs.save("u1", {"n": 10})
    assert await mine.update("u1", lambda s: {"n": (s or {})["n"] + 1}) == {"n": 11}


async def test_an_update_after_another_stores_delete_starts_from_nothing(stores: Stores) -> None:
    mine, theirs = stores
    await mine.save("u1", {"n": 3})
    await theirs.delete("u1")
    assert await mine.update("u1", lambda s: {"n": (s or {"n": 0})["n"] + 1}) == {"n": 1}


async def test_fn_failing_on_the_old_copy_runs_again_on_the_current_one(stores: Stores) -> None:
    mine, theirs = stores
    await mine.save("u1", {"a": 1})
    await theirs.save("u1", {"a": 1, "b": 2})
    changed = await mine.update("u1", lambda s: {**(s or {}), "c": (s or {})["b"]})
    assert changed == {"a": 1, "b": 2, "c": 2}


async def test_fn_writing_nothing_returns_what_is_stored_now(stores: Stores) -> None:
    mine, theirs = stores
    await mine.save("u1", {"v": "old"})
    await theirs.save("u1", {"v": "new"})
    assert await mine.update("u1", lambda s: None) == {"v": "new"}


async def test_fn_changing_its_copy_and_writing_nothing_returns_what_is_stored(
    stores: Stores,
) -> None:
    mine, theirs = stores
    await mine.save("u1", {"v": "old"})
    await theirs.save("u1", {"v": "new"})

    def meddle(current: Session | None) -> None:
        assert current is not None
        current["v"] = "changed in fn's copy"

    assert await mine.update("u1", meddle) == {"v": "new"}
    assert await mine.update("u1", meddle) == {"v": "new"}
