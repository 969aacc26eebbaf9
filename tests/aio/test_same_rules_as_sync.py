"""The async twin's promise to be the sync store "with the same rules"
(docs/async.md): the same question asked of both stores over the same real diskcache directory,
holding what a chain and the web integrations leave in one tier: a chain's tombstone (a deleted
session) and the marker a login's id rotation leaves on the old id
(``session_store.websession.steps.RETIRED``, "a value every reader takes for a deleted
session", kept up to 60 s if the process dies before its delete).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from session_store import SessionStore, open_backend
from session_store.aio import AsyncSessionStore
from session_store.websession.steps import RETIRED


def _leave_deleted_sessions(directory: Path) -> None:
    with SessionStore(f"memory:// | diskcache://{directory}", dict) as chain:
        chain.save("logged-out", {"user": "ann"})
        chain.delete("logged-out")  # a tombstone in the disk tier
    raw = open_backend(f"diskcache://{directory}")
    try:
        raw.set("rotated-away", RETIRED, ttl=60)  # an old id a login moved away from
    finally:
        raw.close()


def test_exists_agrees_with_load_in_both_twins_over_one_tier(tmp_path: Path) -> None:
    """Over the disk tier alone, ``load`` of either key is ``None`` in both stores and the
    sync ``exists`` is ``False``; the async ``exists`` must say the same (before the fix it
    asked the backend's ``ttl``, which a tombstone or the marker has: ``True`` for a deleted
    session)."""
    directory = tmp_path / "disk"
    _leave_deleted_sessions(directory)
    url = f"diskcache://{directory}"
    keys = ("logged-out", "rotated-away")
    with SessionStore(url, dict) as sync_store:
        sync_view = {key: (sync_store.load(key), sync_store.exists(key)) for key in keys}

    async def main() -> dict[str, tuple[object, bool]]:
        async with AsyncSessionStore(url, dict) as store:
            return {key: (await store.load(key), await store.exists(key)) for key in keys}

    async_view = asyncio.run(main())
    assert sync_view == {key: (None, False) for key in keys}
    assert async_view == sync_view


def test_keys_of_one_tier_lists_no_deleted_session(tmp_path: Path) -> None:
    directory = tmp_path / "disk"
    _leave_deleted_sessions(directory)
    url = f"diskcache://{directory}"
    with SessionStore(url, dict) as sync_store:
        sync_store.save("live", {"user": "bob"})
        listed_sync = sorted(sync_store.keys())

    async def main() -> list[str]:
        async with AsyncSessionStore(url, dict) as store:
            return sorted([key async for key in store.keys()])  # noqa: SIM118 - a store, no dict

    assert (listed_sync, asyncio.run(main())) == (["live"], ["live"])
