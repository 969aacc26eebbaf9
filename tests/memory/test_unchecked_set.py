"""The memory tier's unchecked ``set`` (what a chain's near cache writes every save through)
decides the common case inline, as the public ``set`` does, with a body of its own: the two must
stay alike. Each operation sequence runs through both on two backends with the same bounds and a
shared fake clock, and every observable result is compared: entries and their deadlines, the
byte count, the counters, and what was evicted (reported through ``on_evict``)."""

from __future__ import annotations

import random

import pytest

from session_store import MemoryBackend
from session_store.backend_base import trusted
from session_store.memory_entries import Evicted


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _pair(
    max_entries: int, max_bytes: int | None, default_ttl: float | None
) -> tuple[list[MemoryBackend], list[list[Evicted]], _Clock]:
    clock = _Clock()
    reports: list[list[Evicted]] = [[], []]
    backends = [
        MemoryBackend(
            max_entries=max_entries,
            max_bytes=max_bytes,
            default_ttl=default_ttl,
            on_evict=reports[n].extend,
            clock=clock,
        )
        for n in range(2)
    ]
    return backends, reports, clock


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(
    ("max_entries", "max_bytes", "default_ttl"),
    [(4, None, None), (4, 60, None), (8, 45, 5.0), (3, None, 2.0), (1000, 10_000, None)],
)
def test_unchecked_set_matches_set(
    seed: int, max_entries: int, max_bytes: int | None, default_ttl: float | None
) -> None:
    rng = random.Random(seed)
    (public, unchecked), reports, clock = _pair(max_entries, max_bytes, default_ttl)
    fast_set = trusted(unchecked).set
    for _ in range(300):
        key = f"k{rng.randrange(7)}"
        value = bytes(rng.randrange(30)) if rng.random() < 0.9 else bytes(70)
        ttl = rng.choice([None, 0.5, 3.0, float("inf")])
        public.set(key, value, ttl)
        fast_set(key, value, ttl)
        if rng.random() < 0.2:
            clock.now += rng.choice([0.1, 1.0, 4.0])
        if rng.random() < 0.1:
            probe = f"k{rng.randrange(7)}"
            assert public.get(probe) == unchecked.get(probe)
        assert list(public._data.items()) == list(unchecked._data.items())
        assert public.size_bytes == unchecked.size_bytes
        assert reports[0] == reports[1]
    assert public.counters.as_dict() == unchecked.counters.as_dict()
