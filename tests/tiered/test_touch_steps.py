"""The chain's ``touch`` touches only the version it read (``steps.touch``, ``policy.touch_head``,
``NearCache.after_touch``), in process, with the interleaving forced: another chain sharing the
tiers writes between the touch's reads and its tier touches, as another process can.

The chain tests (all but the first) failed before the conditional touch: the newer write was
extended to the touch's TTL, the older copy below was re-expired, and the tier without a
``touch_if`` of its own had its tombstone re-expired.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from session_store import MemoryBackend, TieredBackend, stamps
from session_store.backend import SessionBackend
from session_store.testing.faults import SwitchableBackend
from session_store.tiered import policy, steps
from tests.tiered.support import Clock, SharedMemory


def test_the_head_is_the_frame_of_a_framed_copy_and_a_legacy_copy_whole() -> None:
    value = stamps.frame(b"payload", stamps.clock.now(), 30.0)
    assert policy.touch_head(value) == value[: stamps.HEADER_SIZE]
    tomb = stamps.tombstone(stamps.clock.now())
    assert policy.touch_head(tomb) == tomb
    assert policy.touch_head(b'{"legacy": 1}') == b'{"legacy": 1}'
    # an unframed copy that could be the start of a frame has no head that tells them apart
    for ambiguous in (b"", b"\xa7", b"\xa7SF", stamps.MAGIC + b"short"):
        assert policy.touch_head(ambiguous) is None


class NoTouchIf(SwitchableBackend):
    """A third-party tier without a ``touch_if`` of its own: the protocol's default runs."""

    touch_if = SessionBackend.touch_if


@pytest.fixture
def tiers() -> tuple[SharedMemory, SharedMemory]:
    clock = Clock()
    return SharedMemory(clock=clock), SharedMemory(clock=clock)


def _chain(shared: tuple[SessionBackend, ...]) -> TieredBackend:
    return TieredBackend([MemoryBackend(), *shared], invalidation=False, tombstone_ttl=3600)


@pytest.fixture
def chains(tiers: tuple[SharedMemory, SharedMemory]) -> tuple[TieredBackend, ...]:
    return _chain(tiers), _chain(tiers)


def _touch_with(
    chain: TieredBackend, key: str, ttl: float | None, meanwhile: Callable[[], Any]
) -> bool:
    """``chain.touch(key, ttl)`` with ``meanwhile()`` run before its first tier touch."""
    sequence = steps.touch(chain, key, ttl)
    value: Any = None
    done = False
    while True:
        try:
            step = sequence.send(value)
        except StopIteration as stop:
            assert done, "the touch touched no tier"
            return bool(stop.value)
        if step.fn in ("touch", "touch_if") and not done:
            meanwhile()
            done = True
        value = chain._step(step)


def test_a_save_landing_after_the_read_is_not_extended_and_the_near_copy_goes(
    chains: tuple[TieredBackend, ...], tiers: tuple[SharedMemory, SharedMemory]
) -> None:
    reader, writer = chains
    reader.set("k", b"old", ttl=3600)
    assert reader.get("k") == b"old"  # the reader's near copy
    answered = _touch_with(reader, "k", 7200, lambda: writer.set("k", b"new", ttl=5))
    assert answered is False  # the version it read is gone from every shared tier
    for tier in tiers:
        left = tier.ttl("k")
        assert left is not None and left <= 5, left
    assert reader.get("k") == b"new"  # its near copy of "old" was dropped, not served


def test_a_tier_holding_an_older_copy_keeps_its_expiry(
    chains: tuple[TieredBackend, ...], tiers: tuple[SharedMemory, SharedMemory]
) -> None:
    reader, _ = chains
    arbiter, disk = tiers
    older = stamps.frame(b"older", stamps.clock.now(), 10.0)
    reader.set("k", b"newer", ttl=3600)
    disk.set("k", older, ttl=10)  # the disk missed the newer write (an outage, say)
    assert reader.touch("k", 7200) is True
    assert (arbiter.ttl("k") or 0) > 3600
    assert disk.get("k") == older and (disk.ttl("k") or 0) <= 10


def test_the_protocol_default_keeps_a_racing_delete_s_tombstone(
    tiers: tuple[SharedMemory, SharedMemory],
) -> None:
    shared = tuple(NoTouchIf(tier) for tier in tiers)
    reader, deleter = _chain(shared), _chain(shared)
    reader.set("k", b"session", ttl=30)
    answered = _touch_with(reader, "k", None, lambda: deleter.delete("k"))
    assert answered is False
    for tier in tiers:
        held, left = tier.get("k"), tier.ttl("k")
        assert held is not None and stamps.is_tombstone(held)
        assert left is not None and left > 3000, left
    assert reader.get("k") is None
