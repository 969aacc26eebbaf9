"""Each test here starts with a process clock that reads the wall clock.

These tests compare this process's writes with other processes' (real ones, with clocks of their
own). The chain's clock is process-wide and never goes back, and tests elsewhere in the same
worker move it ahead on purpose (``tests/tiered`` plays a host whose clock is up to an hour
ahead); carried over, that skew makes this process's older writes look newer than another
process's later ones, which is what the chain must then (rightly) prefer.
"""

from __future__ import annotations

import pytest

from session_store import stamps


@pytest.fixture(autouse=True)
def wall_clock(monkeypatch: pytest.MonkeyPatch) -> stamps.HybridClock:
    """A fresh clock for the chains of this test (every chain reads ``stamps.clock``)."""
    fresh = stamps.HybridClock()
    monkeypatch.setattr(stamps, "clock", fresh)
    return fresh
