"""A coherent near cache: ``TieredBackend(max_staleness=1.0)`` over a shared tier.

The promise: a process's memory tier never serves a value more than ``max_staleness`` seconds
older than another process's write, and a process reads its own writes back at once. Proved with
two real processes on a real redis-server; the time of a write is when its writer saw it
acknowledged, the time of a read is when the reader asked, both on the system-wide monotonic
clock. Unit tests with a hand-driven clock pin the rule down exactly.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from typing import Any

import pytest

from session_store import MemoryBackend, TieredBackend, open_backend
from session_store.tiered.policy import Copy
from tests.tiered.support import Clock, SharedMemory

MAX_STALENESS = 1.0
WRITE_SECONDS = 2.5

# The other process: writes "hot" = 1, 2, 3, ... every 2 ms and reports when each write was
# acknowledged (time.monotonic() is CLOCK_MONOTONIC: one clock for every process on the host).
WRITER = r"""
import json, sys, time
from session_store import open_backend
url, seconds = sys.argv[1], float(sys.argv[2])
chain = open_backend(url, stamps=True, max_staleness=1.0)
chain.set("hot", b"0")
print("ready", flush=True)
acks, n = [], 0
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    n += 1
    chain.set("hot", str(n).encode())
    acks.append(time.monotonic())
    time.sleep(0.002)
chain.close()
print(json.dumps(acks), flush=True)
"""


def wait_for_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "the other process said nothing in time"
    return process.stdout.readline().strip()


@pytest.fixture
def chain_url(redis_url: str) -> str:
    return f"memory://?max_entries=1000 | {redis_url}"


def staleness(last_read: dict[int, float], acks: list[float]) -> float:
    """The most any read lagged behind: a read at ``t`` that returned value ``n`` while write
    ``n + 1`` had been acknowledged at ``a < t`` was ``t - a`` seconds stale."""
    worst = 0.0
    for n, read_at in last_read.items():
        if n < len(acks):  # acks[n] is when write n + 1 was acknowledged
            worst = max(worst, read_at - acks[n])
    return worst


def test_two_processes_a_read_is_never_more_than_max_staleness_behind(chain_url: str) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, chain_url, str(WRITE_SECONDS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for_line(writer, 30) == "ready"
        chain = open_backend(chain_url, stamps=True, max_staleness=MAX_STALENESS)
        assert isinstance(chain, TieredBackend)
        last_read: dict[int, float] = {}
        reads = own = 0
        with chain:
            while writer.poll() is None:
                asked = time.monotonic()
                value = chain.get("hot")
                assert value is not None
                last_read[int(value)] = asked
                reads += 1
                if reads % 1000 == 0:  # our own writes are read back at once, every time
                    chain.set("mine", str(reads).encode())
                    assert chain.get("mine") == str(reads).encode()
                    own += 1
            revalidations = chain.counters.get("revalidations")
            hits = chain.tiers[0].counters.get("hits")
        acks = json.loads(wait_for_line(writer, 30))
    finally:
        writer.kill()
        writer.wait()
    worst = staleness(last_read, acks)
    assert len(acks) > 20 and own > 0  # enough writes to sample (96 seen at load 10+)
    assert len(last_read) >= 2  # the reader did see the writes come in
    assert worst < MAX_STALENESS + 0.1, worst
    print(
        f"\nMEASURED near cache, 2 processes: {reads} reads ({hits} near-cache hits, "
        f"{revalidations} revalidations) of {len(acks)} writes; the worst read was "
        f"{worst * 1000:.0f} ms behind the other process's write (bound "
        f"{MAX_STALENESS * 1000:.0f} ms); {own} own writes all read back at once"
    )


# -- the rule, on a hand-driven clock -----------------------------------------------------------
@pytest.fixture
def pair() -> tuple[TieredBackend, TieredBackend, Clock]:
    """Two "processes": each its own memory tier, one shared tier below."""
    clock = Clock()
    shared = SharedMemory(clock=clock)

    def process(**options: Any) -> TieredBackend:
        return TieredBackend(
            [MemoryBackend(clock=clock), shared], clock=clock, max_staleness=1.0, **options
        )

    return process(), process(stamps=True), clock


def test_a_cached_copy_is_served_until_max_staleness_then_refreshed(
    pair: tuple[TieredBackend, TieredBackend, Clock],
) -> None:
    mine, theirs, clock = pair
    mine.set("k", b"v1")
    assert mine.get("k") == b"v1"
    theirs.set("k", b"v2")
    clock.now += 0.949  # copies are re-checked at 95 % of max_staleness (STALENESS_MARGIN)
    assert mine.get("k") == b"v1"  # within the bound: the near cache may serve it
    assert mine.get_many(["k"]) == {"k": b"v1"}
    clock.now += 0.002
    assert mine.get("k") == b"v2"  # past 95 % of a second after its check: asks the shared tier
    assert mine.counters.get("revalidations") == 1
    theirs.delete("k")
    clock.now += 1.0
    assert mine.get_many(["k"]) == {}
    assert mine.get("k") is None
    assert mine.tiers[0].get("k") is None  # the stale copy was dropped
    assert list(mine.scan()) == []


def test_own_writes_are_read_back_at_once(
    pair: tuple[TieredBackend, TieredBackend, Clock],
) -> None:
    mine, theirs, _clock = pair
    theirs.set("k", b"theirs")
    assert mine.get("k") == b"theirs"
    mine.set("k", b"mine")
    assert mine.get("k") == b"mine"
    mine.set_many({"k": b"again", "j": b"j"})
    assert mine.get_many(["k", "j"]) == {"k": b"again", "j": b"j"}
    read = mine.get_versioned("k")
    assert read is not None
    assert mine.set_if("k", b"cas", read.token) is True
    assert mine.get("k") == b"cas"
    mine.delete("k")
    assert mine.get("k") is None


def test_a_lost_compare_and_set_drops_the_cached_copy(
    pair: tuple[TieredBackend, TieredBackend, Clock],
) -> None:
    mine, theirs, _clock = pair
    mine.set("k", b"base")
    read = mine.get_versioned("k")
    assert read is not None
    theirs.set("k", b"theirs")
    assert mine.set_if("k", b"mine", read.token) is False
    assert mine.get("k") == b"theirs"  # at once, not after max_staleness


def test_a_fill_that_began_before_an_invalidation_is_not_installed(
    pair: tuple[TieredBackend, TieredBackend, Clock],
) -> None:
    """A slow reader that fetched a copy before another process's write was announced must not
    put that copy in the near cache (it would be served as checked)."""
    mine, theirs, clock = pair
    theirs.set("k", b"old")
    began = mine.near.begin()
    old = theirs.tiers[1].get_with_ttl("k")  # the slow reader's fetch
    assert old is not None
    theirs.set("k", b"new")
    mine.on_invalidate(["k"])  # the stream announces the write
    mine.nearcache.install("k", Copy(1, old[0], old[1]), began, clock())
    assert mine.tiers[0].get("k") is None
    assert mine.get("k") == b"new"


def test_the_near_cache_serves_when_no_shared_tier_answers() -> None:
    class Down(SharedMemory):
        down = False

        def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
            if self.down:
                from session_store import BackendUnavailableError

                raise BackendUnavailableError("down", backend="down")
            return super().get_with_ttl(key)

    clock = Clock()
    shared = Down(clock=clock)
    chain = TieredBackend([MemoryBackend(clock=clock), shared], clock=clock, max_staleness=1.0)
    chain.set("k", b"v")
    shared.down = True
    clock.now += 5
    assert chain.get("k") == b"v"  # a counted fallback: better than failing the read
    assert chain.counters.get("fallbacks") >= 1
