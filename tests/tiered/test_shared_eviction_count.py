"""The chain's ``evictions`` counter follows a *shared* tier's evictions after every save. The
straight-line save (session_store.tiered.straight) calls the breakers' eviction check only when
the tier's count read through ``Breakers.eviction_reads`` moved (a Redis tier never counts one:
the check was two Python calls per save for nothing); this pins that the chain's count still
follows the tier's after every single save, so a skipped check would show. The readers
themselves (``breakers.eviction_reader``) answer what ``counters.get("evictions")`` answers,
whichever kind of counters a tier keeps."""

from __future__ import annotations

import random
import threading
from typing import Any

from session_store import MemoryBackend
from session_store.counters import Counters
from session_store.memory_counts import MemoryCounters
from session_store.tiered import TieredBackend
from session_store.tiered.breakers import eviction_reader
from tests.tiered.support import SharedMemory


def test_chain_evictions_follow_a_shared_tier_after_every_save() -> None:
    shared = SharedMemory(max_entries=3)
    chain = TieredBackend([MemoryBackend(), shared], invalidation=False)
    rng = random.Random(12)
    with chain:
        for step in range(300):
            chain.set(f"k{rng.randrange(9)}", b"v%d" % step, 60)
            assert chain.counters.get("evictions") == shared.counters.get("evictions"), step
        assert shared.counters.get("evictions") > 50  # (the bound was hit, often)


class _Tier:
    """Anything with ``counters`` (what the breakers read a tier's evictions from)."""

    def __init__(self, counters: Any) -> None:
        self.counters = counters


class _OwnGet(Counters):
    """Counters whose ``get`` is their own (the reader must go through it)."""

    __slots__ = ()

    def get(self, name: str) -> int:
        return super().get(name) * 10


class _NotCounters:
    """A plugin's counters: only ``get``."""

    def __init__(self) -> None:
        self.n = 0

    def get(self, name: str) -> int:
        assert name == "evictions"
        return self.n


def test_each_reader_answers_as_get_does() -> None:
    memory = MemoryBackend(max_entries=1)
    plain, own, other = Counters(), _OwnGet(), _NotCounters()
    tiers: list[Any] = [memory, _Tier(plain), _Tier(own), _Tier(other)]
    tiers.append(_Tier(MemoryCounters(threading.Lock())))
    readers = [eviction_reader(tier) for tier in tiers]
    for step in range(5):
        memory.set(f"k{step}", b"v")  # evicts the one before
        plain.add("evictions", 2)
        own.add("evictions")
        other.n += 3
        tiers[-1].counters.add("evictions")
        for tier, read in zip(tiers, readers, strict=True):
            assert read() == tier.counters.get("evictions"), (step, tier)
    assert readers[0]() == 4 and readers[1]() == 10 and readers[2]() == 50
