"""``HybridClock.frame(value, ttl)``, what every chain save frames its bytes with in one call
(save12c; before, ``frame(value, clock.now(), ttl)``), makes the same bytes: the magic, a new
version of this clock (newer than every version it handed out, through ``now`` or ``frame``,
and past every one it observed), the value's kind and the TTL, the value as it is. Its tails
come from a table made on first use, cleared when it fills: every TTL gets its own."""

from __future__ import annotations

import math

from session_store import stamps
from session_store.stamps import HybridClock, parse


def test_frame_is_frame_of_a_new_version() -> None:
    clock = HybridClock()
    last = clock.now()
    for step, ttl in enumerate([None, 60.0, 60, 0.001, math.inf, 86400.0 * 365 * 100]):
        value = b"\xa7SF\x01" + b"x" * step  # (even one that begins with the magic)
        data = clock.frame(value, ttl)
        version = data[stamps.VERSION_START : stamps.VERSION_END]
        assert data == stamps.frame(value, version, ttl), step
        assert version > last and version[8:] == last[8:], step  # newer, this clock's node
        assert parse(data) == (version, False, None if ttl is None else float(ttl), value)
        last = clock.now()
        assert last > version


def test_frame_follows_what_the_clock_observed() -> None:
    clock = HybridClock()
    ahead = ((int.from_bytes(clock.now()[:8], "big") + (5_000 << 16)).to_bytes(8, "big")) + bytes(4)
    clock.observe(ahead)
    assert clock.frame(b"v", 60)[stamps.VERSION_START : stamps.VERSION_END] > ahead


def test_each_ttl_gets_its_own_tail_across_the_table_clearing() -> None:
    clock = HybridClock()
    cleared = False
    for n in range(1, 2500):
        before = len(stamps._VALUE_TAILS)
        for _ in range(2):  # made, then from the table
            data = clock.frame(b"v", n / 1000)
            assert parse(data).ttl == n / 1000, n
        cleared = cleared or len(stamps._VALUE_TAILS) < before
    assert cleared
