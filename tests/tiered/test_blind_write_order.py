"""A write that starts after another one returned wins, whatever the writers' clocks say.

Found by the history checker (tests/consistency): the chain ordered blind writes (``set``,
``delete``) by each writer's hybrid clock, so a save made right after another process's save
returned was dropped as "older" whenever that process's clock was ahead (the same millisecond
with a larger node number, or a host whose clock runs ahead): 1 of 200 on one host, every one
with a skewed host. These tests put such a copy in the shared tiers directly, as a process on a
host whose clock is ten seconds ahead would have written it, then write through the chain.
"""

from __future__ import annotations

import time
from pathlib import Path

from session_store import TieredBackend, open_backend, stamps

AHEAD_S = 10


def _version_ahead() -> bytes:
    """The version a writer on a host whose clock is ``AHEAD_S`` seconds ahead hands out now."""
    ms = time.time_ns() // 1_000_000 + AHEAD_S * 1000
    return ((ms << 16) | 7).to_bytes(8, "big") + (0xFFFFFFFF).to_bytes(4, "big")


def _chain(redis_url: str, disk: Path) -> TieredBackend:
    chain = open_backend(f"memory:// | {redis_url} | diskcache://{disk}")
    assert isinstance(chain, TieredBackend)
    return chain


def _plant_ahead(chain: TieredBackend, key: str, data: bytes) -> None:
    """Store ``data`` in every shared tier, as the skewed writer's chain did."""
    for tier in chain.tiers[1:]:
        tier.set(key, data, 60)


def test_a_set_after_a_skewed_writers_set_wins(redis_url: str, tmp_path: Path) -> None:
    writer = _chain(redis_url, tmp_path / "disk")
    _plant_ahead(writer, "k", stamps.frame(b"theirs", _version_ahead(), 60))
    writer.set("k", b"mine", 60)
    assert writer.get("k") == b"mine"
    reader = _chain(redis_url, tmp_path / "disk")  # another process's view
    assert reader.get("k") == b"mine"
    for tier in reader.tiers[1:]:  # every durable copy agrees, so no later repair undoes it
        raw = tier.get("k")
        assert raw is not None and stamps.unframe(raw) == b"mine"
    writer.close()
    reader.close()


def test_a_delete_after_a_skewed_writers_set_deletes(redis_url: str, tmp_path: Path) -> None:
    chain = _chain(redis_url, tmp_path / "disk")
    _plant_ahead(chain, "k", stamps.frame(b"theirs", _version_ahead(), 60))
    assert chain.delete("k") is True
    assert chain.get("k") is None
    other = _chain(redis_url, tmp_path / "disk")
    assert other.get("k") is None
    chain.close()
    other.close()
