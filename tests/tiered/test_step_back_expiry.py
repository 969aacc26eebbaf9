"""A compare-and-set that steps back for a write that went around the arbiter restores that
write on the arbiter with an expiry, never forever.

``cas_steps.step_back``: the chain's compare-and-set won on the arbiter (Redis), then found in a
lower tier a newer copy written after its read by a process that could not reach Redis; it
gives the arbiter that copy back. The repair's TTL was the copy's own recorded TTL, and a copy
that records none (``copy``/``migrate`` of a session saved with its store's TTL write such
copies since the chain-touch fix; so does a plain ``set`` with the backend's default) got **no
expiry** on the arbiter: a session that was due to expire lived forever in Redis. Real
redis-server (the suite's) and a real diskcache directory.
"""

from __future__ import annotations

from pathlib import Path

from session_store import TieredBackend, open_backend, stamps

TTL = 600.0


def test_the_arbiter_repair_of_a_copy_without_own_ttl_still_expires(
    redis_url: str, tmp_path: Path
) -> None:
    chain = open_backend(f"memory:// | {redis_url} | diskcache://{tmp_path / 'disk'}")
    assert isinstance(chain, TieredBackend)
    with chain:
        _memory, redis, disk = chain.tiers
        chain.set("k", b"v1", TTL)
        read = chain.get_versioned("k")
        assert read is not None
        # after that read, a process that could not reach Redis wrote the disk tier: a newer
        # copy that records no own TTL (as copy/migrate write a store-TTL session), expiring
        around = stamps.frame(b"v2", stamps.clock.now(), None)
        disk.set("k", around, TTL)
        assert chain.set_if("k", b"v3", read.token, TTL) is False  # stepped back for v2
        assert redis.get("k") == around  # the arbiter got the newer copy back ...
        left = redis.ttl("k")
        assert left is not None and 0 < left <= TTL, f"... expiring in {left} s"
