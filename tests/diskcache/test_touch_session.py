"""``touch_session`` on diskcache reads only the value's head inside its write transaction
(:meth:`SessionCache.head`), except for a value held in a file, or under an eviction policy
that records accesses, which it reads in full as ``get`` does: the decision is the same in
every case (a marker refused and left at its own expiry, a frame's own TTL kept)."""

from __future__ import annotations

from pathlib import Path

import pytest

from session_store.stamps import frame, tombstone
from session_store.websession.steps import RETIRED
from session_store_diskcache import DiskcacheBackend

BIG = 200_000  # above diskcache's in-row limit: held in a file


@pytest.mark.parametrize("policy", ["least-recently-stored", "least-recently-used"])
@pytest.mark.parametrize("size", [10, BIG])
def test_touch_session_decides_the_same_on_a_row_a_file_and_under_lru(
    tmp_path: Path, policy: str, size: int
) -> None:
    disk = DiskcacheBackend(tmp_path / "disk", eviction_policy=policy)
    try:
        disk.set("own", frame(b"\xa7SS\x01" + b"s" * size, bytes(12), 30.0), 3600)
        disk.set("plain", b"\xa7SS\x01" + b"p" * size, 3600)
        disk.set("gone", tombstone(bytes(12)), 3600)
        disk.set("retired", RETIRED, 60)
        assert disk.touch_session("own", 600, keep_own=True) is True
        assert disk.touch_session("plain", 600, keep_own=True) is True
        assert disk.touch_session("gone", 5) is False
        assert disk.touch_session("retired", 600, keep_own=True) is False
        left = {key: disk.ttl(key) or 0.0 for key in ("own", "plain", "gone", "retired")}
        assert 20 < left["own"] <= 30 and 590 < left["plain"] <= 600, left
        assert left["gone"] > 3500 and 50 < left["retired"] <= 60, left
        assert disk.get("own") == frame(b"\xa7SS\x01" + b"s" * size, bytes(12), 30.0)
    finally:
        disk.close()
