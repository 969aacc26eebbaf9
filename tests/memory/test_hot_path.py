"""The memory backend's flattened hot path (issue 17) keeps every check of the full one."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from session_store import MemoryBackend
from session_store.errors import InvalidKeyError, SerializationError


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
