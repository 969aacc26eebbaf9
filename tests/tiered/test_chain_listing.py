"""A chain's listing says when it cannot be proven whole (issue 15: ``copy`` and ``migrate``
over a cluster mid-resharding, through a chain, reported "complete" without those sessions).

Real redis-server and diskcache tiers; the disk tier is switched off with the testing kit's
fault switch (every call raises ``BackendUnavailableError``, as a dead disk does).
"""

from __future__ import annotations

from pathlib import Path

from session_store import MemoryBackend, TieredBackend, open_backend
from session_store.backend import Scope
from session_store.testing.faults import SwitchableBackend
from session_store.tiered.backend import ChainListing


def _chain(redis_url: str, disk: Path) -> tuple[TieredBackend, SwitchableBackend]:
    switch = SwitchableBackend(open_backend(f"diskcache://{disk}"))
    chain = TieredBackend([MemoryBackend(), open_backend(redis_url), switch])
    return chain, switch


def test_a_listing_with_every_tier_up_is_complete(redis_url: str, tmp_path: Path) -> None:
    chain, _ = _chain(redis_url, tmp_path)
    chain.set("a", b"1")
    listing = chain.scan("")
    assert sorted(listing) == ["a"]
    assert listing.complete is True
    chain.close()


def test_a_listing_with_a_shared_tier_down_is_not_proven_complete(
    redis_url: str, tmp_path: Path
) -> None:
    chain, disk = _chain(redis_url, tmp_path)
    chain.set("a", b"1")
    disk.down = True
    listing = chain.scan("")
    assert sorted(listing) == ["a"]
    assert listing.complete is False  # a key only the disk holds would be missing
    chain.close()


class _ReshardingTier(MemoryBackend):
    """A shared tier whose listing reports itself unproven, as a Redis Cluster's does while a
    slot migrates (``session_store_redis.ClusterListing``; its own tests make that happen)."""

    scope = Scope.HOST

    def scan(self, prefix: str = "") -> ChainListing:
        return ChainListing(iter(list(super().scan(prefix))), complete=False)


def test_a_tiers_unproven_listing_makes_the_chains_unproven(tmp_path: Path) -> None:
    chain = TieredBackend(
        [MemoryBackend(), _ReshardingTier(), open_backend(f"diskcache://{tmp_path}")]
    )
    chain.set("a", b"1")
    listing = chain.scan("")
    assert sorted(listing) == ["a"]
    assert listing.complete is False
    chain.close()
