"""The kit's ``cancelled_updates`` check fails a store whose ``update`` a cancellation can cut
in half, and passes the real one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from session_store.aio import AsyncSessionStore
from session_store.testing import cancelled_updates

pytestmark = pytest.mark.anyio

Session = dict[str, Any]


class HalfWritingStore(AsyncSessionStore[Session]):
    """An ``update`` that writes the new session in two saves with a loop step between them:
    cancelled in that step, it leaves half of the change stored."""

    async def update(  # type: ignore[override]
        self, key: str, fn: Callable[[Session | None], Session], **_: Any
    ) -> Session:
        new = fn(await self.load(key))
        await self.save(key, {**new, "cart": []})  # the first half
        await asyncio.sleep(0)
        await self.save(key, new)
        return new


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_store_that_half_applies_a_cancelled_update_fails_the_check() -> None:
    with pytest.raises(AssertionError, match="half-applied"):
        await cancelled_updates(HalfWritingStore("memory://", dict))


async def test_the_memory_store_passes_it() -> None:
    store: AsyncSessionStore[Session] = AsyncSessionStore("memory://", dict)
    try:
        assert await cancelled_updates(store)
    finally:
        await store.aclose()
