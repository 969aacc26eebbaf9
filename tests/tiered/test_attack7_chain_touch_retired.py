"""``touch`` through a chain of the marker a login's id rotation leaves on the old id.

``SessionStore.touch`` promises ``False``, changing nothing, "for a key holding no session
(absent, a deleted session's marker read through one tier of a chain, a retired id)", and the
README shows it on ``memory://``: a ``RETIRED`` marker written with 60 s keeps its 60 s when
``touch("old-id", 600)`` is asked. Through a chain the marker is a *value* the chain frames (a
value frame around a tombstone frame, 50 bytes): ``load``, ``exists``, ``keys()`` and the
single-tier ``touch_session`` call it absent, but the chain's own ``touch``
(``session_store.tiered.steps.touch``) only refuses a copy that *is* a tombstone
(``is_tombstone(best.data)``), so it answered ``True`` and gave the marker the touch's TTL
(600 s instead of its 60 s), sync and async, on every chain shape.

Found by attack7 (round 7). The fix belongs in ``session_store/tiered/steps.py`` (and the async
chain's steps, if it has its own): refuse ``stamps.session_bytes(best.data) is None`` instead of
``is_tombstone(best.data)``, as every other reader of sessions does. Strict xfail until then
(the file is another helper's this session).

Real backends: memory, a real redis-server (the suite's fixture) and a diskcache directory.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from session_store import AsyncSessionStore, SessionStore
from session_store.websession.steps import RETIRED


@pytest.fixture(params=["memory|memory", "memory|redis|diskcache"])
def chain_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory|memory":
        return "memory:// | memory://"
    redis_url = request.getfixturevalue("redis_url")
    return f"memory:// | {redis_url} | diskcache://{tmp_path / 'disk'}"


def test_a_chain_touch_of_a_retired_id_answers_false_and_keeps_its_expiry(chain_url: str) -> None:
    store: SessionStore[dict[str, object]] = SessionStore(chain_url, dict, ttl=3600)
    try:
        store.backend.set("old-id", RETIRED, 60)
        assert store.exists("old-id") is False and store.load("old-id") is None  # held
        touched = store.touch("old-id", 600)
        left = store.backend.ttl("old-id")
        assert left is not None and left <= 60, f"the marker's 60 s became {left:.0f} s"
        assert touched is False, "a retired id reported as a live session"
    finally:
        store.close()


def test_an_async_chain_touch_of_a_retired_id_answers_false_and_keeps_its_expiry(
    chain_url: str,
) -> None:
    async def scenario() -> tuple[bool, float | None]:
        store: AsyncSessionStore[dict[str, object]] = AsyncSessionStore(chain_url, dict)
        try:
            await store.backend.set("old-id", RETIRED, 60)
            assert await store.exists("old-id") is False  # held
            touched = await store.touch("old-id", 600)
            return touched, await store.backend.ttl("old-id")
        finally:
            await store.aclose()

    touched, left = asyncio.run(scenario())
    assert left is not None and left <= 60, f"the marker's 60 s became {left:.0f} s"
    assert touched is False, "a retired id reported as a live session"
