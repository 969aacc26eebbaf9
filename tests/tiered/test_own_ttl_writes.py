"""A chain write that expires with one TTL and records another as the session's own
(``set_with_own_ttl``, ``set_if_with_own_ttl``, sync and async): what ``copy`` and ``migrate``
need to carry a session with the time it has *left* while ``touch`` keeps sliding it by the TTL
it was saved with.

Checked in every shared tier's own bytes (a real redis-server, a diskcache directory): the
frame records the own TTL, the tier's expiry is the write's TTL, and a ``touch`` without a TTL
restarts the copy with the recorded one. A compare-and-set's token says what the copy it read
records (``own_ttl``), and a stale token still loses.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from session_store import TieredBackend, open_async_backend, open_backend, stamps
from session_store.aio.tiered import AsyncTieredBackend
from session_store.backend import SessionBackend
from session_store.errors import InvalidTTLError
from session_store.tiered.cas_steps import ChainToken

OWN = 600.0
LEFT = 30.0


def _tiers(redis_url: str, disk: Path) -> tuple[SessionBackend, SessionBackend]:
    return open_backend(redis_url), open_backend(f"diskcache://{disk}")


def _held(tier: SessionBackend, key: str) -> tuple[float | None, float]:
    """The own TTL the tier's copy records, and the expiry the tier keeps for it."""
    found = tier.get_with_ttl(key)
    assert found is not None
    return stamps.own_ttl(found[0]), found[1]


def _assert_recorded(tiers: tuple[SessionBackend, ...], key: str, expiry: float) -> None:
    for tier in tiers:
        own, left = _held(tier, key)
        assert own == OWN, tier.describe()
        assert expiry - 10 < left <= expiry, (tier.describe(), left)


def test_a_sync_chain_write_expires_with_the_time_left_and_records_its_own_ttl(
    redis_url: str, tmp_path: Path
) -> None:
    chain = open_backend(f"memory:// | {redis_url} | diskcache://{tmp_path / 'disk'}")
    assert isinstance(chain, TieredBackend)
    tiers = _tiers(redis_url, tmp_path / "disk")
    try:
        chain.set_with_own_ttl("k", b"one", LEFT, OWN)
        assert chain.get("k") == b"one"
        _assert_recorded(tiers, "k", LEFT)
        read = chain.get_versioned("k")
        assert read is not None and isinstance(read.token, ChainToken)
        assert read.token.own_ttl == OWN
        assert chain.set_if_with_own_ttl("k", b"two", read.token, LEFT, OWN)
        assert not chain.set_if_with_own_ttl("k", b"three", read.token, LEFT, OWN)  # stale
        assert chain.get("k") == b"two"
        _assert_recorded(tiers, "k", LEFT)
        assert chain.touch("k")  # restarts with the recorded TTL, not the write's
        _assert_recorded(tiers, "k", OWN)
        chain.set("k", b"plain", LEFT)  # a plain write records its own TTL, as before
        assert _held(tiers[0], "k")[0] == LEFT
    finally:
        chain.close()
        for tier in tiers:
            tier.close()


def test_an_absent_only_write_with_its_own_ttl_leaves_a_held_key_alone(
    redis_url: str, tmp_path: Path
) -> None:
    chain = open_backend(f"memory:// | {redis_url} | diskcache://{tmp_path / 'disk'}")
    assert isinstance(chain, TieredBackend)
    try:
        assert chain.set_if_with_own_ttl("k", b"one", None, LEFT, OWN)
        assert not chain.set_if_with_own_ttl("k", b"two", None, LEFT, OWN)
        assert chain.get("k") == b"one"
        chain.delete("k")  # a tombstone is "absent": the write lands past it
        assert chain.set_if_with_own_ttl("k", b"three", None, LEFT, OWN)
        assert chain.get("k") == b"three"
    finally:
        chain.close()


@pytest.mark.parametrize("bad", [0, -1, float("nan")])
def test_a_bad_own_ttl_is_refused_before_anything_is_written(bad: float) -> None:
    chain = open_backend("memory:// | memory://")
    assert isinstance(chain, TieredBackend)
    with pytest.raises(InvalidTTLError, match="own_ttl must be"):
        chain.set_with_own_ttl("k", b"v", LEFT, bad)
    assert chain.get("k") is None
    chain.close()


def test_an_async_chain_write_expires_with_the_time_left_and_records_its_own_ttl(
    redis_url: str, tmp_path: Path
) -> None:
    url = f"memory:// | {redis_url} | diskcache://{tmp_path / 'disk'}"

    async def run() -> tuple[bytes | None, bool, float | None]:
        chain = open_async_backend(url)
        assert isinstance(chain, AsyncTieredBackend)
        try:
            await chain.set_with_own_ttl("k", b"one", LEFT, OWN)
            read = await chain.get_versioned("k")
            assert read is not None and isinstance(read.token, ChainToken)
            won = await chain.set_if_with_own_ttl("k", b"two", read.token, LEFT, OWN)
            assert won
            _assert_recorded(tiers, "k", LEFT)
            assert await chain.touch("k")
            return await chain.get("k"), won, read.token.own_ttl
        finally:
            await chain.aclose()

    tiers = _tiers(redis_url, tmp_path / "disk")
    try:
        assert asyncio.run(run()) == (b"two", True, OWN)
        _assert_recorded(tiers, "k", OWN)
    finally:
        for tier in tiers:
            tier.close()
