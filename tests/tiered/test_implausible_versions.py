"""A copy whose version is far ahead of every honest clock (a forged or corrupted frame, or a
host whose clock is off by more than a day): the process's hybrid clock does not jump to it, and
a versioned operation on that key refuses with a typed error before writing anything.

Before the fix the clock followed any version it read: one such frame dragged every later write
of every key of the process to the frame's clock, and at the clock's last value every write
raised a bare ``OverflowError`` (``tests/tiered/test_hostile_frames.py``)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from session_store import CorruptPayloadError, open_backend, stamps


def _version_ahead(ms: int) -> bytes:
    clock = (time.time_ns() // 1_000_000 + ms) << 16
    return clock.to_bytes(8, "big") + bytes(4)


def _now_ms() -> int:
    return int.from_bytes(stamps.clock.now()[:8], "big") >> 16


def test_an_update_of_a_copy_two_days_ahead_refuses_typed_and_the_clock_stays(
    tmp_path: Path,
) -> None:
    disk = f"diskcache://{tmp_path}"
    forged = stamps.frame(b"forged", _version_ahead(2 * 86_400_000), None)
    raw = open_backend(disk)
    raw.set("k", forged)
    chain = open_backend(f"memory:// | {disk}")
    try:
        with pytest.raises(CorruptPayloadError, match="far ahead"):
            chain.get_versioned("k")
        assert raw.get("k") == forged  # nothing written
        assert _now_ms() - time.time_ns() // 1_000_000 < 60_000  # not dragged two days ahead
        chain.set("other", b"v")
        assert chain.get("other") == b"v"
    finally:
        chain.close()
        raw.close()


def test_a_copy_a_minute_ahead_is_followed() -> None:
    """A host whose clock runs a minute ahead is honest: its version is followed."""
    ahead = _version_ahead(60_000)
    stamps.clock.observe(ahead)
    assert stamps.clock.now()[:8] > ahead[:8]
