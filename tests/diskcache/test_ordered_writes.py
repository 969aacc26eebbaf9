"""diskcache's ordered writes: the chain's versioned copies in one SQLite transaction.

``set_if_newer`` / ``set_after`` must decide exactly as the generic read-then-compare-and-set
path of :mod:`session_store.tiered.writes` does (that path is the reference: it is what every
backend without them gets), and stay atomic across processes (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from session_store import MemoryBackend, stamps
from session_store.errors import (
    BackendError,
    InvalidKeyError,
    InvalidTTLError,
    SerializationError,
)
from session_store.stamps import MAGIC, VERSION_END, VERSION_START
from session_store.tiered.writes import CLOCK_END, write_after_cas, write_if_newer
from session_store_diskcache import DiskcacheBackend

ORDER = {"head": len(MAGIC), "start": VERSION_START, "end": VERSION_END}


def _frame(clock: int, node: int, value: bytes, tombstone: bool) -> bytes:
    version = clock.to_bytes(8, "big") + node.to_bytes(4, "big")
    return stamps.tombstone(version) if tombstone else stamps.frame(value, version, None)


writes = st.lists(
    st.tuples(
        st.booleans(),  # a new write (set_after) or a copy (set_if_newer)
        st.integers(0, 6),  # clock: small, so that ties and equal versions are common
        st.integers(0, 2),  # node
        st.binary(max_size=8),
        st.booleans(),  # tombstone
    ),
    min_size=1,
    max_size=12,
)


@settings(deadline=None)
@given(ops=writes, plain_first=st.sampled_from([None, b"", b"plain bytes", MAGIC]))
def test_ordered_writes_decide_as_the_generic_path(
    tmp_path_factory: pytest.TempPathFactory,
    ops: list[tuple[bool, int, int, bytes, bool]],
    plain_first: bytes | None,
) -> None:
    """The generic path runs on a MemoryBackend, which has no ordered writes of its own."""
    directory = tmp_path_factory.mktemp("ordered")
    disk = DiskcacheBackend(directory)
    reference = MemoryBackend()
    try:
        if plain_first is not None:  # a value no chain wrote (unversioned), or a truncated one
            disk.set("k", plain_first)
            reference.set("k", plain_first)
        for new, clock, node, value, tombstone in ops:
            data = _frame(clock, node, value, tombstone)
            if new:
                stored = disk.set_after("k", data, None, clock_end=CLOCK_END, **ORDER)
                expected = write_after_cas(reference, "k", data, None)[VERSION_START:VERSION_END]
                assert stored == expected
            else:
                wrote = disk.set_if_newer("k", data, None, **ORDER)
                assert wrote == write_if_newer(reference, "k", data, None)
            assert disk.get("k") == reference.get("k")
    finally:
        disk.close()


def test_set_after_is_atomic_across_processes(tmp_path: Path) -> None:
    """Two processes each make 150 new writes carrying the same stale version: every write must
    take the clock after the one before it, so the last clock is the first plus 300."""
    directory = tmp_path / "disk"
    start = _frame(1_000, 0, b"start", False)
    with DiskcacheBackend(directory) as disk:
        disk.set("k", start)
    script = textwrap.dedent(
        f"""
        from session_store import stamps
        from session_store_diskcache import DiskcacheBackend
        stale = stamps.frame(b"w", (5).to_bytes(8, "big") + bytes(4), None)
        with DiskcacheBackend({str(directory)!r}) as disk:
            for _ in range(150):
                disk.set_after("k", stale, None, head=4, start=4, end=16, clock_end=12)
        """
    )
    workers = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(2)]
    assert [worker.wait(120) for worker in workers] == [0, 0]
    with DiskcacheBackend(directory) as disk:
        held = disk.get("k")
    assert held is not None
    assert int.from_bytes(stamps.version_of(held)[:8], "big") == 1_000 + 300


@pytest.mark.parametrize(
    ("key", "value", "ttl", "error"),
    [
        ("", b"v", None, InvalidKeyError),
        ("k", "text", None, SerializationError),
        ("k", b"v", 0, InvalidTTLError),
    ],
)
def test_ordered_writes_check_their_arguments_before_any_io(
    tmp_path: Path, key: str, value: bytes, ttl: float | None, error: type[Exception]
) -> None:
    """A closed backend fails any I/O with a ``BackendError``: the typed argument errors show
    that the checks ran first."""
    disk = DiskcacheBackend(tmp_path / "disk")
    disk.close()
    with pytest.raises(error):
        disk.set_if_newer(key, value, ttl, **ORDER)
    with pytest.raises(error):
        disk.set_after(key, value, ttl, clock_end=CLOCK_END, **ORDER)
    with pytest.raises(error):
        disk.set_if(key, value, None, ttl)
    with pytest.raises(error):
        disk.set(key, value, ttl)
    with pytest.raises(BackendError):  # what the same call with good arguments meets
        disk.set_if_newer("k", b"v", None, **ORDER)


@pytest.mark.parametrize("policy", ["least-recently-stored", "least-recently-used"])
@pytest.mark.parametrize("size", [10, 40_000])  # a row's value, or a value file (>= 32 KiB)
def test_ordered_writes_decide_as_the_generic_path_on_every_kind_of_row(
    tmp_path: Path, policy: str, size: int
) -> None:
    """The ordered writes read only the frame's head of a row holding bytes; a value kept in
    a file, and a policy whose reads write, take the full read: every kind decides alike."""
    disk = DiskcacheBackend(tmp_path / "disk", eviction_policy=policy)
    reference = MemoryBackend()
    try:
        for new, clock, node in [(1, 5, 1), (0, 4, 2), (0, 5, 1), (1, 3, 0), (0, 9, 0), (1, 9, 0)]:
            data = _frame(clock, node, bytes([clock]) * size, False)
            if new:
                stored = disk.set_after("k", data, None, clock_end=CLOCK_END, **ORDER)
                expected = write_after_cas(reference, "k", data, None)[VERSION_START:VERSION_END]
                assert stored == expected
            else:
                wrote = disk.set_if_newer("k", data, None, **ORDER)
                assert wrote == write_if_newer(reference, "k", data, None)
            assert disk.get("k") == reference.get("k")
    finally:
        disk.close()
