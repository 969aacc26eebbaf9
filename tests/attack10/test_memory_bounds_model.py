"""Attack (attack10) on small17's ``MemoryBackend`` changes (replacement in place within the
bounds, the slotted tally): its byte and entry bounds, TTLs and eviction order against a plain
model, under replacement by larger and smaller values, on a hand-driven clock (Hypothesis state
machine); and real threads racing set/get/delete/expiry, checked afterwards against the table's
own invariants (bytes held == the sum of the entries', both bounds, counts)."""

from __future__ import annotations

import threading
from collections import OrderedDict

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from session_store.memory import Evicted, MemoryBackend

KEYS = st.sampled_from(["a", "bb", "ccc", "dddd", "e"])
SIZES = st.integers(min_value=0, max_value=40)
TTLS = st.sampled_from([None, 1.0, 5.0])


class MemoryModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.evicted: list[Evicted] = []
        self.backend = MemoryBackend(
            max_entries=3, max_bytes=60, clock=lambda: self.now, on_evict=self.evicted.extend
        )
        self.model: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self.n = 0

    def _bytes(self) -> int:
        return sum(len(k) + len(v) for k, (v, _) in self.model.items())

    def _model_set(self, key: str, value: bytes, ttl: float | None) -> list[str]:
        deadline = float("inf") if ttl is None else self.now + ttl
        if len(key) + len(value) > 60:
            self.model.pop(key, None)
            return [key]
        self.model[key] = (value, deadline)
        self.model.move_to_end(key)
        out = []
        while len(self.model) > 3 or self._bytes() > 60:
            old, (_, expires) = self.model.popitem(last=False)
            if expires > self.now:
                out.append(old)
        return out

    @rule(key=KEYS, size=SIZES, ttl=TTLS, inline=st.booleans())
    def set(self, key: str, size: int, ttl: float | None, inline: bool) -> None:
        self.n += 1
        value = bytes([self.n % 256]) * size
        self.evicted.clear()
        if inline:
            self.backend.set(key, value, ttl)
        else:
            self.backend.set_many({key: value}, ttl)
        expected = self._model_set(key, value, ttl)
        assert [e.key for e in self.evicted] == expected

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        entry = self.model.get(key)
        want = None
        if entry is not None:
            if entry[1] > self.now:
                want = entry[0]
                self.model.move_to_end(key)
            else:
                del self.model[key]
        assert self.backend.get(key) == want

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        entry = self.model.pop(key, None)
        assert self.backend.delete(key) == (entry is not None and entry[1] > self.now)

    @rule(key=KEYS, ttl=TTLS)
    def touch(self, key: str, ttl: float | None) -> None:
        entry = self.model.get(key)
        live = entry is not None and entry[1] > self.now
        if entry is not None and not live:
            del self.model[key]
        assert self.backend.touch(key, ttl) == live
        if live:
            assert entry is not None
            self.model[key] = (entry[0], float("inf") if ttl is None else self.now + ttl)
            self.model.move_to_end(key)

    @rule(seconds=st.sampled_from([0.5, 1.0, 3.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @invariant()
    def bounds_and_order(self) -> None:
        held = list(self.backend._data.items())
        assert [k for k, _ in held] == list(self.model), "eviction/recency order differs"
        assert self.backend.size_bytes == sum(len(k) + len(e[0]) for k, e in held)
        assert self.backend.size_bytes == self._bytes() <= 60
        assert self.backend.entry_count <= 3
        for key, entry in held:
            assert entry[0] == self.model[key][0]
            assert entry[1] == self.model[key][1]


TestMemoryModel = MemoryModel.TestCase
TestMemoryModel.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


def test_threads_racing_set_get_delete_expiry_keep_the_bounds() -> None:
    """4 threads x 3,000 random operations on 6 keys (values 0-200 bytes, TTLs of 0-2 ms so
    entries expire mid-run), bounds 4 entries / 400 bytes; both bounds hold between operations
    and afterwards the table's bytes equal the sum of its entries', both bounds hold, and writes
    counted equal writes made.

    "Between operations" is read under the backend's lock (flaky11): a write inserts, then
    evicts, inside the lock, so a lock-free read of ``entry_count`` / ``size_bytes`` by another
    thread may land between the two and see one entry or a value's bytes over a bound, an
    instant no operation ever returns in. The check without the lock failed this test about 1
    run in 10 of ``-n 2`` runs on a loaded machine (``assert (326 <= 400 and 5 <= 4)``), and 25
    of 100 runs with the thread switch interval at 10 us (set below, to make the threads
    interleave often); 0 of 100 under the lock."""
    import random
    import sys
    import time

    backend = MemoryBackend(max_entries=4, max_bytes=400)
    keys = [f"k{i}" for i in range(6)]
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []
    writes = [0] * 4
    reader = backend.hit_reader()

    def work(index: int) -> None:
        rng = random.Random(index)
        barrier.wait()
        try:
            for _ in range(3000):
                key, op = rng.choice(keys), rng.random()
                if op < 0.45:
                    ttl = rng.choice([None, 0.001, 0.002])
                    backend.set(key, b"x" * rng.randrange(0, 200), ttl)
                    writes[index] += 1
                elif op < 0.7:
                    backend.get(key)
                elif op < 0.8:
                    reader(key)
                elif op < 0.9:
                    backend.delete(key)
                else:
                    backend.touch(key, 0.001)
                with backend._lock:  # between two operations, not inside another thread's
                    assert backend.size_bytes <= 400 and backend.entry_count <= 4
        except BaseException as exc:  # recorded, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    start = time.monotonic()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: more interleavings to find
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        sys.setswitchinterval(interval)
    assert time.monotonic() - start < 60
    assert errors == []
    held = list(backend._data.items())
    assert backend.size_bytes == sum(len(k) + len(e[0]) for k, e in held)
    assert backend.size_bytes <= 400 and len(held) <= 4
    assert backend.counters.get("writes") == sum(writes)
