"""The chain's ``evictions`` counter carries its near cache's evictions at each put, whether the
put is a save's copy or a read's fill. The near cache calls the breakers' eviction check only
when the tier's count moved since its last call (cheaper per save); this pins that the chain's
count still follows the tier's after every single operation, so a skipped check would show."""

from __future__ import annotations

import random
from pathlib import Path

from session_store import open_backend
from session_store.tiered import TieredBackend


def test_chain_evictions_follow_the_near_tier_after_every_put(tmp_path: Path) -> None:
    chain = open_backend(f"memory://?max_entries=3 | diskcache://{tmp_path / 'disk'}")
    assert isinstance(chain, TieredBackend)
    near = chain.tiers[0]
    rng = random.Random(7)
    with chain:
        for step in range(300):
            key = f"k{rng.randrange(9)}"
            if rng.random() < 0.6:
                chain.set(key, b"v%d" % step, 60)
            else:
                chain.get(key)  # a fill (a promotion) when the near copy was evicted
            assert chain.counters.get("evictions") == near.counters.get("evictions"), step
        assert near.counters.get("evictions") > 50  # (the bound was hit, often)
        assert chain.counters.get("promotions") > 0  # (fills were put, too)
