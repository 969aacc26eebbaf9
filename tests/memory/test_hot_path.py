"""The memory backend's flattened hot path (issue 17) keeps every check of the full one."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from session_store import MemoryBackend
from session_store.errors import InvalidKeyError, SerializationError
from session_store.memory import Evicted


class Sneaky(str):
    """A str subclass: hashes and compares like the plain key it spells."""


@pytest.mark.parametrize("key", ["", "x" * 1025, "\ud800", 5, b"k", Sneaky("k"), None])
def test_bad_keys_are_refused_on_get_and_set(key: Any) -> None:
    backend = MemoryBackend()
    backend.set("k", b"v")
    with pytest.raises(InvalidKeyError):
        backend.get(key)
    with pytest.raises(InvalidKeyError):
        backend.set(key, b"v")


def test_non_ascii_keys_still_work_and_are_measured_in_utf8() -> None:
    backend = MemoryBackend()
    backend.set("ключ", b"v")
    assert backend.get("ключ") == b"v"
    with pytest.raises(InvalidKeyError):
        backend.set("é" * 513, b"v")  # 1026 UTF-8 bytes


def test_values_must_be_bytes_like() -> None:
    backend = MemoryBackend()
    backend.set("a", bytearray(b"v"))  # type: ignore[arg-type]
    assert backend.get("a") == b"v"
    with pytest.raises(SerializationError):
        backend.set("a", "text")  # type: ignore[arg-type]


def test_expired_entry_is_a_miss_and_is_dropped() -> None:
    now = [0.0]
    backend = MemoryBackend(clock=lambda: now[0])
    backend.set("k", b"v", ttl=1.0)
    assert backend.get("k") == b"v"
    now[0] = 2.0
    assert backend.get("k") is None
    assert backend.entry_count == 0 and backend.size_bytes == 0


def test_counters_are_exact_under_threads() -> None:
    backend = MemoryBackend()
    backend.set("k", b"v")

    def work() -> None:
        for _ in range(2000):
            backend.get("k")
            backend.get("missing")
            backend.set("k", b"v")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = backend.counters.as_dict()
    assert counts["hits"] == 8000 and counts["misses"] == 8000 and counts["writes"] == 8001


def test_a_replacement_in_place_keeps_recency_and_bytes_exact() -> None:
    # set's inline replacement: the entry moves to the recent end, the bytes follow the value
    evicted: list[Evicted] = []
    backend = MemoryBackend(max_entries=3, max_bytes=100, on_evict=evicted.extend)
    for key in "abc":
        backend.set(key, b"x" * 10)
    backend.set("a", b"y" * 30)  # a replaced: now the most recent
    assert backend.size_bytes == 3 + 30 + 20 and backend.get("a") == b"y" * 30
    backend.set("d", b"z")  # b is the least recent: evicted, a is kept
    assert [e.key for e in evicted] == ["b"]
    assert set(backend.scan()) == {"a", "c", "d"} and backend.size_bytes == 3 + 30 + 10 + 1
    versions = [backend.get_versioned(key) for key in "aa"]
    backend.set("a", b"y" * 30)  # the same bytes again: a new version all the same
    assert versions[0] == versions[1] != backend.get_versioned("a")


def test_a_replacement_past_a_bound_evicts_as_a_new_entry_does() -> None:
    evicted: list[Evicted] = []
    backend = MemoryBackend(max_entries=10, max_bytes=60, on_evict=evicted.extend)
    backend.set("a", b"x" * 20)
    backend.set("b", b"x" * 20)
    backend.set("b", b"x" * 40)  # 21 + 41 > 60: a, the least recent, goes
    assert [e.key for e in evicted] == ["a"] and backend.size_bytes == 41
    backend.set("b", b"x" * 80)  # larger than the whole cache: reported, not kept
    assert [e.key for e in evicted] == ["a", "b"]
    assert backend.get("b") is None and backend.size_bytes == 0 and backend.entry_count == 0
    for key in "cde":
        backend.set(key, b"v")
    backend.max_entries = 2  # a bound lowered at run time: the next write restores it
    backend.set("e", b"w")
    assert [e.key for e in evicted][2:] == ["c"] and set(backend.scan()) == {"d", "e"}


def test_counters_read_the_hot_path_tally_as_the_rest() -> None:
    backend = MemoryBackend(max_entries=1)
    backend.set("a", b"1")
    backend.set("b", b"2")  # a evicted
    backend.get("b")
    backend.get_with_ttl("a")
    backend.counters.add("hits", 2)  # what the add paths count lands in the same places
    backend.counters.add("errors")
    backend.delete("b")
    expected = {"hits": 3, "misses": 1, "writes": 2, "deletes": 1, "errors": 1, "evictions": 1}
    assert {k: v for k, v in backend.counters.as_dict().items() if v} == expected
    assert {name: backend.counters.get(name) for name in expected} == expected
    assert backend.counters.names == MemoryBackend().counters.names
    assert "'hits': 3" in repr(backend.counters)


def test_the_lock_free_hit_reader_counts_in_the_same_tally() -> None:
    backend = MemoryBackend()
    backend.set("k", b"v")
    read = backend.hit_reader()
    assert read("k") == b"v" and read("missing") is None  # a miss is left to get, uncounted
    assert backend.counters.get("hits") == 1 and backend.counters.get("misses") == 0
