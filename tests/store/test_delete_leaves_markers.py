"""``SessionStore.delete`` removes a session and answers ``True`` only then: a key holding no
session (a retired id's marker, a chain's tombstone read through one tier, nothing) answers
``False`` and keeps what it holds, with its expiry, on memory, a real redis-server and a real
diskcache directory, through a chain (memory, Redis, diskcache), and through the async stores
and the async chain. A web logout with the old cookie leaves a rotation's marker alone, while
the rotation itself still ends its own marker (through a chain, with a tombstone in every
tier, so a lagging tier's old copy cannot come back).

Before (retired10): ``delete`` answered ``True`` for a retired id and a chain's tombstone and
removed them; a web logout with the old cookie removed the rotation's marker.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from session_store import SessionStore, open_backend
from session_store.aio import open_async_backend
from session_store.aio.store import AsyncSessionStore
from session_store.stamps import is_tombstone, session_bytes, tombstone
from session_store.tiered import TieredBackend
from session_store.websession import Action, ServerSession, commit, read_session
from session_store.websession.steps import RETIRED

SID = "R" * 43
DELETED = tombstone(bytes(range(12)))  # a chain's tombstone, as one tier holds it


def test_delete_answers_for_a_session_only_on_every_backend(single_url: str) -> None:
    with SessionStore(single_url, dict) as store:
        store.backend.set("retired", RETIRED, 60)
        store.backend.set("deleted", DELETED, 3600)
        store.save("session", {"user": "alice"})
        store.backend.set("plain", b'{"documents": 3}')
        assert store.delete("retired") is False
        assert store.delete("deleted") is False
        assert store.delete("absent") is False
        assert store.backend.get("retired") == RETIRED
        assert 0 < (store.backend.ttl("retired") or 0) <= 60  # its expiry kept
        assert store.backend.get("deleted") == DELETED
        assert 3500 < (store.backend.ttl("deleted") or 0) <= 3600
        assert store.delete("session") is True
        assert store.delete("plain") is True  # what load reads is deleted, as the CLI does
        assert store.backend.get("session") is None and store.backend.get("plain") is None
        assert store.delete("session") is False


@pytest.fixture
def chain_url(redis_url: str, tmp_path: Path) -> str:
    return f"memory:// | {redis_url} | diskcache://{tmp_path / 'lower'}"


def test_through_a_chain_a_marker_is_left_and_a_session_buried(chain_url: str) -> None:
    with SessionStore(chain_url, dict) as store:
        chain = store.backend
        assert isinstance(chain, TieredBackend)
        chain.set(SID, RETIRED, 60)  # a rotation's marker, written through the chain
        assert store.delete(SID) is False
        for tier in chain.tiers[1:]:
            held = tier.get(SID)
            assert held is not None and session_bytes(held) is None and not is_tombstone(held)
            assert 0 < (tier.ttl(SID) or 0) <= 60  # the marker's own minute, not tombstone_ttl
        store.save("live", {"user": "carol"})
        assert store.delete("live") is True
        assert all(is_tombstone(tier.get("live") or b"") for tier in chain.tiers[1:])
        left = [tier.ttl("live") for tier in chain.tiers[1:]]
        assert store.delete("live") is False  # a tombstone: nothing written again
        again = [tier.ttl("live") for tier in chain.tiers[1:]]
        assert all(
            a is not None and b is not None and b <= a for a, b in zip(left, again, strict=True)
        )


def test_the_async_stores_answer_the_same(single_url: str, chain_url: str) -> None:
    async def run(url: str) -> None:
        async with AsyncSessionStore(open_async_backend(url), dict) as store:
            await store.backend.set(SID, RETIRED, 60)
            assert await store.delete(SID) is False
            assert await store.exists(SID) is False
            await store.save("live", {"user": "alice"})
            assert await store.delete("live") is True
            assert await store.load("live") is None
            assert await store.delete("live") is False
            assert await store.delete("absent") is False
            held = await store.backend.get(SID)  # the marker is still there
            assert held is not None and session_bytes(held) is None

    for url in (single_url, chain_url):
        asyncio.run(run(url))


@pytest.mark.parametrize("kind", ["memory", "chain"])
def test_a_logout_with_the_old_cookie_leaves_the_rotations_marker(
    kind: str, tmp_path: Path
) -> None:
    """A request that read the old id before a login retired it clears its session (a logout
    in another tab) after the retire: the old id's marker stays, as the rotation left it."""
    url = "memory://" if kind == "memory" else f"memory:// | diskcache://{tmp_path}"
    with SessionStore(open_backend(url), dict) as store:
        store.save(SID, {"user": "alice"})
        logout = ServerSession(SID, lambda key: read_session(store, key))
        assert logout["user"] == "alice"  # read before the rotation
        found = store.backend.get_versioned(SID)
        assert found is not None  # the rotation's retire, as websession.steps makes it
        assert store.backend.set_if(SID, RETIRED, found.token, 60)
        logout.clear()
        assert commit(store, logout, None).action is Action.DELETE
        held = store.backend.get(SID)
        assert held is not None and session_bytes(held) is None


@pytest.mark.parametrize("kind", ["memory", "chain"])
def test_a_login_still_ends_its_own_marker(kind: str, tmp_path: Path) -> None:
    url = "memory://" if kind == "memory" else f"memory:// | diskcache://{tmp_path}"
    with SessionStore(open_backend(url), dict) as store:
        store.save(SID, {"cart": []})
        login = ServerSession(SID, lambda key: read_session(store, key))
        login["user"] = "alice"
        login.regenerate()
        moved = commit(store, login, None)
        assert moved.action is Action.MOVE and moved.sid not in (None, SID)
        if kind == "memory":
            assert store.backend.get(SID) is None  # the marker ended at once
        else:  # a tombstone in the durable tier, not the one-minute marker
            lower = store.backend.tiers[1]  # type: ignore[attr-defined]
            assert is_tombstone(lower.get(SID) or b"")
            assert (lower.ttl(SID) or 0) > 60
