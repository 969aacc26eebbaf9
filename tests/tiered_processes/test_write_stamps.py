"""Version frames (every chain): the newest copy wins across the shared tiers.

In-process tiers here (memory backends posing as shared ones, behind switches); the real thing,
a redis-server restarted from its append-only file, is in test_recovery_aof.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from session_store import (
    MemoryBackend,
    SessionBackend,
    SessionStore,
    TieredBackend,
    open_backend,
    stamps,
)
from session_store.backend import Scope
from session_store.testing import BackendConformance
from session_store.testing.faults import SwitchableBackend as Switchable


class Shared:
    """Two shared stores (a "redis" and a "disk") that several process-like chains sit on."""

    def __init__(self) -> None:
        self.redis = Switchable(MemoryBackend(), scope=Scope.NETWORK)
        self.disk = Switchable(MemoryBackend(), scope=Scope.HOST)

    def process(self, **options: Any) -> TieredBackend:
        """A chain as one process has it: its own memory tier over the shared ones."""
        options.setdefault("stamps", True)
        return TieredBackend([MemoryBackend(), self.redis, self.disk], **options)


# -- the header ---------------------------------------------------------------------------------
def test_frame_round_trip_and_order() -> None:
    first = stamps.clock.now()
    second = stamps.clock.now()
    assert second > first and len(second) == 12
    stored = stamps.frame(b"value", second, 30.0)
    assert len(stored) == stamps.HEADER_SIZE + 5
    assert stamps.parse(stored) == stamps.Frame(second, False, 30.0, b"value")
    assert stamps.unframe(stored) == b"value"
    assert stamps.version_of(stored) == second
    assert stamps.own_ttl(stored) == 30.0
    dead = stamps.tombstone(second)
    assert stamps.parse(dead) == stamps.Frame(second, True, None, b"")
    assert stamps.unframe(dead) is None and stamps.is_tombstone(dead)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{}",
        b'{"legacy": true}',
        b"\xa7SS\x01\x00{}",
        b"\xa7SF\x01",
        b"\xa7SF\x01" + bytes(30),
    ],
    ids=["empty", "json", "legacy", "codec-header", "short", "unknown-kind"],
)
def test_values_without_a_frame_pass_through(raw: bytes) -> None:
    assert stamps.parse(raw) == stamps.Frame(stamps.UNVERSIONED, False, None, raw)
    assert stamps.unframe(raw) == raw
    assert stamps.version_of(raw) == stamps.UNVERSIONED


@pytest.mark.parametrize(
    "value",
    [b"", b"\xa7SF\x01", b"\xa7SF\x01\x02" + bytes(30), b"\xa7ST\x01" + bytes(20)],
    ids=["empty", "magic", "magic-tombstone-like", "old-stamp-magic"],
)
def test_any_value_round_trips_through_a_frame(value: bytes) -> None:
    stored = stamps.frame(value, stamps.clock.now(), None)
    assert stamps.unframe(stored) == value
    assert stamps.session_bytes(stored) == value


def test_single_tier_readers_understand_earlier_stamps() -> None:
    old_value = b"\xa7ST\x01" + bytes(12) + b"payload"
    old_tombstone = b"\xa7ST\x02" + bytes(12)
    assert stamps.session_bytes(old_value) == b"payload"
    assert stamps.session_bytes(old_tombstone) is None


def test_clock_moves_past_what_it_observes() -> None:
    now = int.from_bytes(stamps.clock.now()[:8], "big")
    ahead = (now + (3_600_000 << 16)).to_bytes(8, "big") + bytes(4)  # an hour ahead
    stamps.clock.observe(ahead)
    assert stamps.clock.now() > ahead


def test_a_forked_child_gets_a_node_of_its_own() -> None:
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its node number and leave at once
        os.close(reader)
        os.write(writer, str(stamps.clock.node).encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        child_node = int(pipe.read())
    os.waitpid(pid, 0)
    assert child_node != stamps.clock.node


# -- frames never leak --------------------------------------------------------------------------
def test_stamps_are_stored_but_never_returned() -> None:
    shared = Shared()
    chain = shared.process()
    chain.set("k", b"value", ttl=60)
    chain.set_many({"a": b"1", "b": b""})
    for tier in (shared.redis.inner, shared.disk.inner):
        raw = tier.get("k")
        assert raw is not None and raw.startswith(stamps.MAGIC) and raw.endswith(b"value")
    assert chain.tiers[0].get("k") == b"value"  # the near cache holds the caller's bytes
    assert chain.get("k") == b"value"
    found = chain.get_with_ttl("k")
    assert found is not None and found[0] == b"value" and 0 < found[1] <= 60
    assert chain.get_many(["k", "a", "b", "zz"]) == {"k": b"value", "a": b"1", "b": b""}
    read = chain.get_versioned("k")
    assert read is not None and read.value == b"value"
    assert chain.set_if("k", b"next", read.token) is True
    assert shared.process().get("k") == b"next"


def test_a_session_store_sees_exactly_what_its_codec_wrote() -> None:
    shared = Shared()
    store: SessionStore[dict[str, Any]] = SessionStore(shared.process(), dict)
    saved = store.save("user-1", {"n": 1, "text": "héllo"})
    assert store.load("user-1") == saved
    assert store.update("user-1", lambda s: {**(s or {}), "n": 2}) == {**saved, "n": 2}
    payload = store.backend.get("user-1")
    assert payload is not None and payload[:3] == b"\xa7SS"  # the codec's header, not ours
    fresh: SessionStore[dict[str, Any]] = SessionStore(shared.process(), dict)
    assert fresh.load("user-1") == {**saved, "n": 2}


def test_values_written_without_stamps_still_load() -> None:
    shared = Shared()
    codec_store: SessionStore[dict[str, Any]] = SessionStore(MemoryBackend(), dict)
    legacy = codec_store.codec.encode("old", {"legacy": True})
    shared.disk.inner.set("old", legacy)  # written by a version without stamps
    shared.disk.inner.set("raw", b'{"bare": "json"}')
    store: SessionStore[dict[str, Any]] = SessionStore(shared.process(), dict)
    assert store.load("old") == {"legacy": True}
    assert store.backend.get("raw") == b'{"bare": "json"}'
    read = store.backend.get_versioned("old")
    assert read is not None and read.value == legacy
    assert store.update("old", lambda s: {**(s or {}), "more": 1}) == {"legacy": True, "more": 1}


def test_a_chain_reads_what_a_plain_backend_wrote(tmp_path: Path) -> None:
    with open_backend(f"diskcache://{tmp_path}") as disk:
        disk.set("plain", b"p")
    with open_backend(f"memory:// | diskcache://{tmp_path}") as chain:
        chain.set("k", b"v")
        assert chain.get("plain") == b"p"
        assert chain.get("k") == b"v"
    with open_backend(f"diskcache://{tmp_path}") as disk:
        raw = disk.get("k")
    assert raw is not None and stamps.parse(raw).value == b"v"


# -- the newest copy wins -----------------------------------------------------------------------
def test_an_older_copy_in_a_shared_tier_never_wins_and_is_repaired() -> None:
    shared = Shared()
    writer, reader = shared.process(), shared.process()
    writer.set("k", b"v1")
    shared.redis.down = True
    writer.set("k", b"v2")  # only the disk took it
    shared.redis.down = False  # back with v1 in it, and the reader never saw it go
    assert stamps.parse(shared.redis.inner.get("k") or b"").value == b"v1"
    assert reader.get("k") == b"v2"
    assert reader.counters.get("repairs") == 1
    assert stamps.parse(shared.redis.inner.get("k") or b"").value == b"v2"
    assert reader.get_many(["k"]) == {"k": b"v2"}
    assert reader.ttl("k") is not None


def test_compare_and_set_works_on_the_newest_copy() -> None:
    shared = Shared()
    writer, updater = shared.process(), shared.process()
    writer.set("n", b"1")
    shared.redis.down = True
    writer.set("n", b"2")
    shared.redis.down = False
    read = updater.get_versioned("n")  # the arbiter (redis) held "1": repaired first
    assert read is not None and read.value == b"2"
    assert updater.set_if("n", b"3", read.token) is True
    assert shared.process().get("n") == b"3"
    assert stamps.parse(shared.disk.inner.get("n") or b"").value == b"3"


def test_a_delete_while_a_tier_is_down_leaves_a_tombstone() -> None:
    shared = Shared()
    deleter, reader = shared.process(), shared.process()
    deleter.set_many({"gone": b"v1", "kept": b"k"})
    shared.redis.down = True
    assert deleter.delete("gone") is True
    assert deleter.delete_many(["kept", "never"]) == 1
    deleter.set("kept", b"k2")
    shared.redis.down = False
    assert deleter.counters.get("tombstones") == 3
    assert reader.get("gone") is None  # redis still holds v1, the tombstone is newer
    assert reader.get_many(["gone", "kept"]) == {"kept": b"k2"}
    assert reader.ttl("gone") is None
    assert reader.touch("gone") is False
    assert reader.get_versioned("gone") is None
    assert reader.delete("gone") is False
    assert reader.set_if("gone", b"reborn", None) is True  # a tombstone counts as absent
    assert shared.process().get("gone") == b"reborn"
    assert {"gone", "kept"} <= set(reader.scan())


def test_compare_and_set_over_a_tombstone_in_the_arbiter() -> None:
    shared = Shared()
    chain = shared.process()
    chain.set("k", b"v")
    shared.disk.down = True
    chain.delete("k")  # the disk missed it: redis holds a tombstone
    shared.disk.down = False
    other = shared.process()
    assert other.get_versioned("k") is None
    assert other.set_if("k", b"again", None) is True
    assert other.set_if("k", b"twice", None) is False
    assert shared.process().get("k") == b"again"


def test_unstamped_copies_rank_below_stamped_ones() -> None:
    shared = Shared()
    chain = shared.process()
    chain.set("k", b"stamped")
    shared.redis.inner.set("k", b"unstamped, written by an older version")
    assert shared.process().get("k") == b"stamped"


# -- the whole kit, with stamps and a coherent near cache ---------------------------------------
class TestStampedChainConformance(BackendConformance):
    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> Any:
        def factory(prefix: str = "t:") -> SessionBackend:
            return open_backend(
                f"memory://?max_entries=50 | diskcache://{tmp_path}?prefix={prefix}",
                stamps=True,
                max_staleness=1.0,
            )

        return factory
