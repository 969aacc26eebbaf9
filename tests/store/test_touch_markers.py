"""``SessionStore.touch(key, ttl)`` over a single backend, given a TTL (what every web
integration's sliding expiry calls), touches a session only, never a key that holds none.

A key can hold a value that is *no session*: the marker a login's id rotation leaves on the old
id (``websession.steps.RETIRED``, a tombstone frame, for up to ``RETIRED_TTL``), or a chain's
tombstone read through one tier (a process opening ``redis://`` alone beside processes that run
a chain over the same Redis). ``exists`` and ``load`` call both absent, and so must ``touch``
with a TTL: it used to touch blindly, answer ``True`` and restart the marker's expiry with the
session's TTL, so a chain's tombstone, which must live ``tombstone_ttl`` (guarantees, "delete":
no racing read brings the key back until then), was cut to the touch's TTL (a 3600 s tombstone
lived 4.98 s). Now the backend's ``touch_session`` judges the value's head in the same atomic
step as the touch (one round trip on Redis, as the ``PEXPIRE`` it replaces).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from session_store import SessionStore, open_backend, stamps
from session_store.aio import AsyncSessionStore
from session_store.websession.steps import RETIRED


def test_touch_with_a_ttl_answers_false_for_a_retired_id(single_url: str) -> None:
    store: SessionStore[dict[str, object]] = SessionStore(single_url, dict, ttl=600)
    try:
        store.backend.set("old", RETIRED, 60)
        assert store.exists("old") is False and store.touch("old") is False  # held
        assert store.touch("old", 600) is False, "a retired id reported as a live session"
    finally:
        store.close()


def test_async_touch_with_a_ttl_answers_false_for_a_retired_id(shared_url: str) -> None:
    async def scenario() -> bool:
        store: AsyncSessionStore[dict[str, object]] = AsyncSessionStore(shared_url, dict)
        try:
            await store.backend.set("old", RETIRED, 60)
            assert await store.exists("old") is False  # held
            return await store.touch("old", 600)
        finally:
            await store.aclose()

    assert asyncio.run(scenario()) is False, "a retired id reported as a live session"


def test_a_single_tier_touch_leaves_a_chains_tombstone_its_full_life(
    redis_url: str, tmp_path: Path
) -> None:
    """A chain deletes ``k`` (a tombstone in Redis living ``tombstone_ttl``, 3600 s here); a
    store opened on the chain's Redis alone touches ``k`` with a TTL of 5 s: the tombstone then
    lives 5 s, and ``touch`` answered True."""
    chain = open_backend(
        f"tiered://?tombstone_ttl=3600 | memory:// | {redis_url} | diskcache://{tmp_path / 'd'}"
    )
    alone: SessionStore[dict[str, object]] = SessionStore(redis_url, dict)
    try:
        chain.set("k", b"session", 60)
        assert chain.delete("k")
        answered = alone.touch("k", 5)
        held = alone.backend.get("k")
        assert held is not None and stamps.is_tombstone(held)
        left = alone.backend.ttl("k")
        assert left is not None and left > 3600 - 60, f"the tombstone now lives {left} s"
        assert answered is False
    finally:
        chain.close()
        alone.close()
