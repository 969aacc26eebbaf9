"""Sliding expiry outside a chain: ``touch_on_load=True`` on a store over one
backend (memory, a real redis-server, a real diskcache directory), sync and async.

The promises (README, "Sessions expire by default" and the store's bullet list; issue 12's
acceptance): "a session saved with its own TTL keeps it however often it is read. Sliding expiry
is ``touch(key)`` (it keeps the session's own TTL) or ``SessionStore(..., touch_on_load=True)``";
and (session_store/store.py) "a tier that refuses the touch (read-only, down) does not fail the
load". ``AsyncSessionStore`` has "the same methods ... with the same rules".
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from session_store import SessionStore
from session_store.aio import AsyncSessionStore
from tests.tiered.test_tier_regressions import disk_locked

Session = dict[str, Any]


def _ttls_after_reads_sync(url: str) -> float | None:
    with SessionStore(url, dict, touch_on_load=True) as store:
        store.save("short", {"purpose": "password reset"}, ttl=30)
        for _ in range(3):
            assert store.load("short") == {"purpose": "password reset"}
        return store.backend.ttl("short")


def _ttls_after_reads_async(url: str) -> float | None:
    async def main() -> float | None:
        async with AsyncSessionStore(url, dict, touch_on_load=True) as store:
            await store.save("short", {"purpose": "password reset"}, ttl=30)
            for _ in range(3):
                assert await store.load("short") == {"purpose": "password reset"}
            return await store.backend.ttl("short")

    return asyncio.run(main())


@pytest.mark.parametrize("twin", ["sync", "async"])
def test_touch_on_load_keeps_a_sessions_own_ttl_on_a_single_backend(
    single_url: str, twin: str
) -> None:
    left = (_ttls_after_reads_sync if twin == "sync" else _ttls_after_reads_async)(single_url)
    assert left is not None and left <= 30, f"ttl after three reads: {left}"


@pytest.mark.parametrize("twin", ["sync", "async"])
def test_touch_on_load_keeps_a_sessions_own_ttl_through_a_chain(tmp_path: Path, twin: str) -> None:
    """What held: through a chain (``memory:// | diskcache://``), whose frames record each
    write's TTL, three loads leave the session its own 30 s."""
    url = f"memory:// | diskcache://{tmp_path / 'disk'}"
    left = (_ttls_after_reads_sync if twin == "sync" else _ttls_after_reads_async)(url)
    assert left is not None and left <= 30, f"ttl after three reads: {left}"


def test_a_refused_touch_on_load_does_not_fail_the_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """While another process holds the diskcache's write lock (SQLite ``BEGIN EXCLUSIVE``, WAL
    mode: reads go on), the touch after a load is refused: the load still returns the session,
    and the refusal is a warning, through the sync store and the async one alike (before the
    fix the async ``load`` raised ``BackendUnavailableError``: its twin of the sync store's
    ``_touch_after_load`` neither caught the refusal nor passed the session's own TTL)."""
    directory = tmp_path / "disk"
    url = f"diskcache://{directory}?timeout=0.2"
    with SessionStore(url, dict) as writer:
        writer.save("k", {"a": 1})
    caplog.set_level(logging.WARNING)

    async def main() -> None:
        async with AsyncSessionStore(url, dict, touch_on_load=True) as store:
            with disk_locked(directory):
                assert await store.load("k") == {"a": 1}

    with SessionStore(url, dict, touch_on_load=True) as store, disk_locked(directory):
        assert store.load("k") == {"a": 1}
    asyncio.run(main())
    warned = [r for r in caplog.records if "touch after loading" in r.getMessage()]
    assert len(warned) == 2, [r.getMessage() for r in caplog.records]
