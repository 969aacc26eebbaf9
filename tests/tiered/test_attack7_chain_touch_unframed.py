"""Sliding expiry through a chain of a session the chain did not write: it must keep expiring.

A chain frames every copy it writes and records in the frame the TTL the write asked for;
``SessionStore.touch(key)`` and ``touch_on_load`` over a chain pass ``ttl=None`` and the chain
restarts each copy's expiry with that record. A copy without a frame records nothing: a session
the previous release (or any single-tier store, the data-room plan's own code writing
``session:{user_id}`` with ``SETEX``) wrote into the Redis or the directory the chain now sits
on, which the chain reads as an unversioned value. Its ``own_ttl`` is ``None``, and the chain's
``touch`` (``session_store.tiered.steps.touch``) then calls each tier's conditional touch with
``ttl=None``, "the backend's default TTL", which is no expiry unless a ``default_ttl`` was set:
one read-only request made the session, due to expire in 10 minutes, **never expire**, in
every tier (TTL ``inf`` everywhere). README: "Sessions expire by default ... keeping sessions
forever is an explicit choice". The async store over an async chain does the same.

Found by attack7 (round 7), real redis-server and diskcache directory. Strict xfail: the chain
cannot know the store's TTL from an unframed copy; the store must tell it. A fix: the chain's
``touch`` takes the TTL to use when the newest copy records none (``SessionStore.touch`` and
``touch_on_load`` over a chain pass the store's TTL), in ``session_store/tiered`` and the
async chain (other helpers' files this session).
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from session_store import AsyncSessionStore, SessionStore, TieredBackend, open_backend

STORE_TTL = 86400.0
LEFT = 600.0


@pytest.fixture(params=["memory|diskcache", "memory|redis|diskcache"])
def shape(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(the chain's URL, the URL of its tier that the earlier, single-tier writer used)."""
    disk = f"diskcache://{tmp_path / 'disk'}"
    if request.param == "memory|diskcache":
        return f"memory:// | {disk}", disk
    redis_url = str(request.getfixturevalue("redis_url"))
    return f"memory:// | {redis_url} | {disk}", redis_url


def _written_before_the_chain(tier_url: str) -> None:
    """A session and a legacy plain-JSON session with 10 minutes left, written by a single-tier
    store and by the plan's own code (a bare ``SETEX``), before the chain was deployed."""
    earlier: SessionStore[dict[str, object]] = SessionStore(tier_url, dict, ttl=STORE_TTL)
    with earlier:
        earlier.save("ann", {"user": "ann"})
        earlier.backend.touch("ann", LEFT)  # saved a while ago
        earlier.backend.set("U1", b'{"user_id": "U1", "processed_documents": []}', LEFT)


@pytest.mark.parametrize("key", ["ann", "U1"])
def test_a_touch_through_a_chain_never_makes_a_session_immortal(
    shape: tuple[str, str], key: str
) -> None:
    chain_url, tier_url = shape
    _written_before_the_chain(tier_url)
    store: SessionStore[dict[str, object]] = SessionStore(chain_url, dict, ttl=STORE_TTL)
    with store:
        assert store.load(key) is not None
        assert store.touch(key)  # sliding expiry, as documented: the session's own TTL
        chain = store.backend
        assert isinstance(chain, TieredBackend)
        lefts = [tier.ttl(key) for tier in chain.tiers]
    assert all(left is None or left <= STORE_TTL for left in lefts), (
        f"after one touch the session expires in {lefts} s (store TTL {STORE_TTL:g} s)"
    )


def test_touch_on_load_through_a_chain_never_makes_a_session_immortal(
    shape: tuple[str, str],
) -> None:
    chain_url, tier_url = shape
    _written_before_the_chain(tier_url)
    store: SessionStore[dict[str, object]] = SessionStore(
        chain_url, dict, ttl=STORE_TTL, touch_on_load=True
    )
    with store:
        assert store.load("ann") == {"user": "ann"}  # a read-only request
    tier = open_backend(tier_url)
    with tier:
        left = tier.ttl("ann")
    assert left is not None and not math.isinf(left), "the session no longer expires"


def test_an_async_touch_through_a_chain_never_makes_a_session_immortal(
    shape: tuple[str, str],
) -> None:
    chain_url, tier_url = shape
    _written_before_the_chain(tier_url)

    async def scenario() -> float | None:
        store: AsyncSessionStore[dict[str, object]] = AsyncSessionStore(
            chain_url, dict, ttl=STORE_TTL
        )
        try:
            assert await store.touch("ann")
            return await store.backend.ttl("ann")
        finally:
            await store.aclose()

    left = asyncio.run(scenario())
    assert left is not None and left <= STORE_TTL, f"after one touch: {left} s"
