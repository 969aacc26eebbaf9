"""The backend conformance suite, as a pytest base class.

A subclass provides one fixture, ``backend_factory``: a callable ``factory(prefix: str = "t:")``
returning a backend over storage that is fresh for each test and shared between calls within
one test (two calls with different prefixes are two namespaces of the same store). Process-local
backends that cannot share storage set ``shares_storage = False``; the namespace tests then
check each instance alone.

Class attributes tune the suite for slow stores: ``ttl_short`` (seconds a short-lived key
lives) and ``ttl_wait`` (how long to wait for it to be gone).

A test of short-lived keys checks what a live key shows (its TTL, a ``touch``) only in a round
that did all of it before the keys' TTL could have passed, by this process's clock
(:func:`short_lived`): the contract says nothing of a key read after its expiry, and a loaded
machine may take longer than ``ttl_short`` between two calls. A round that was too slow is done
again with a TTL four times longer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import pytest

from session_store.backend import SessionBackend
from session_store.errors import ConfigurationError, InvalidKeyError, SerializationError
from session_store.testing.conformance_cas import BackendFactory, CompareAndSetConformance
from session_store.testing.conformance_session_delete import SessionDeleteConformance
from session_store.testing.conformance_session_touch import SessionTouchConformance
from session_store.testing.conformance_touch import ConditionalTouchConformance
from session_store.testing.hostile import HOSTILE_KEYS, HOSTILE_PREFIXES, INVALID_KEYS

__all__ = [
    "HOSTILE_KEYS",
    "HOSTILE_PREFIXES",
    "INVALID_KEYS",
    "BackendConformance",
    "ShortLived",
    "short_lived",
]


class ShortLived:
    """One round of a test of short-lived keys: the TTL its keys are written with, and the
    moment it began (before its first write, so no key of the round expires before
    ``began + ttl``)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.began = time.monotonic()

    def in_time(self) -> bool:
        """Whether everything done so far was done before any key of this round could expire:
        what it read of them is what a live key must show."""
        return time.monotonic() - self.began < self.ttl


def short_lived(ttl: float, rounds: int = 3) -> Iterator[ShortLived]:
    """Rounds with TTLs ``ttl``, ``4 ttl``, ``16 ttl``, ...: the caller stops at the first round
    :meth:`ShortLived.in_time` after its checks of live keys, and fails if none was."""
    for _ in range(rounds):
        yield ShortLived(ttl)
        ttl *= 4
    pytest.fail(f"no round of {rounds} wrote and read its keys within their TTL (last {ttl / 4} s)")


class BackendConformance(
    ConditionalTouchConformance,
    SessionTouchConformance,
    SessionDeleteConformance,
    CompareAndSetConformance,
):
    """Every backend passes these. Subclass and provide the ``backend_factory`` fixture."""

    ttl_short: float = 0.3
    ttl_wait: float = 0.7

    @pytest.fixture
    def backend_factory(self) -> BackendFactory:  # pragma: no cover - must be overridden
        raise NotImplementedError("provide a backend_factory fixture")

    @pytest.fixture
    def backend(self, backend_factory: BackendFactory) -> Iterator[SessionBackend]:
        backend = backend_factory()
        try:
            yield backend
        finally:
            backend.close()

    # -- round trip ----------------------------------------------------------------------------
    @pytest.mark.parametrize(
        "value",
        [b"", b"x", bytes(range(256)), b"\x00" * 1000, b'{"json": true}'],
        ids=["empty", "one", "all-bytes", "nul", "json"],
    )
    def test_round_trip(self, backend: SessionBackend, value: bytes) -> None:
        backend.set("k", value)
        assert backend.get("k") == value

    def test_round_trip_multi_megabyte(self, backend: SessionBackend) -> None:
        value = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MB, not a power of two
        backend.set("big", value)
        assert backend.get("big") == value

    def test_missing_key_is_none(self, backend: SessionBackend) -> None:
        assert backend.get("absent") is None
        assert backend.ttl("absent") is None
        assert backend.delete("absent") is False
        assert backend.touch("absent", 10) is False

    def test_overwrite(self, backend: SessionBackend) -> None:
        backend.set("k", b"one")
        backend.set("k", b"two")
        assert backend.get("k") == b"two"
        assert list(backend.scan()) == ["k"]

    def test_bytes_like_values_are_stored_as_bytes(self, backend: SessionBackend) -> None:
        backend.set("k", bytearray(b"abc"))  # type: ignore[arg-type]
        assert backend.get("k") == b"abc"

    @pytest.mark.parametrize("value", ["text", 1, None, {"a": 1}], ids=repr)
    def test_non_bytes_value_is_serialization_error(
        self, backend: SessionBackend, value: object
    ) -> None:
        backend.set("k", b"kept")
        with pytest.raises(SerializationError):
            backend.set("k", value)  # type: ignore[arg-type]
        with pytest.raises(SerializationError):
            backend.set_many({"k": value})  # type: ignore[dict-item]
        assert backend.get("k") == b"kept"

    def test_delete(self, backend: SessionBackend) -> None:
        backend.set("k", b"v")
        assert backend.delete("k") is True
        assert backend.get("k") is None
        assert backend.delete("k") is False

    # -- keys ----------------------------------------------------------------------------------
    @pytest.mark.parametrize("key", HOSTILE_KEYS, ids=lambda k: repr(k)[:24])
    def test_hostile_key_round_trips(self, backend: SessionBackend, key: str) -> None:
        backend.set("plain", b"other")
        backend.set(key, b"value:" + key.encode())
        assert backend.get(key) == b"value:" + key.encode()
        assert backend.get_many([key]) == {key: b"value:" + key.encode()}
        assert sorted(backend.scan()) == sorted({key, "plain"})
        assert backend.delete(key) is True
        assert backend.get(key) is None
        assert backend.get("plain") == b"other"

    def test_unnormalised_keys_are_distinct(self, backend: SessionBackend) -> None:
        backend.set("e\u0301", b"decomposed")
        backend.set("\u00e9", b"composed")
        assert backend.get("e\u0301") == b"decomposed"
        assert backend.get("\u00e9") == b"composed"

    @pytest.mark.parametrize("key", INVALID_KEYS, ids=lambda k: repr(k)[:24])
    def test_invalid_key_refused_everywhere(self, backend: SessionBackend, key: object) -> None:
        backend.set("kept", b"v")
        bad = key
        calls: list[Callable[[], object]] = [
            lambda: backend.get(bad),  # type: ignore[arg-type]
            lambda: backend.set(bad, b"v"),  # type: ignore[arg-type]
            lambda: backend.delete(bad),  # type: ignore[arg-type]
            lambda: backend.touch(bad, 5),  # type: ignore[arg-type]
            lambda: backend.ttl(bad),  # type: ignore[arg-type]
            lambda: backend.get_versioned(bad),  # type: ignore[arg-type]
            lambda: backend.set_if(bad, b"v", None),  # type: ignore[arg-type]
            lambda: backend.get_many(["kept", bad]),  # type: ignore[list-item]
            lambda: backend.set_many({"kept": b"new", bad: b"v"}),  # type: ignore[dict-item]
            lambda: backend.delete_many(["kept", bad]),  # type: ignore[list-item]
        ]
        for call in calls:
            with pytest.raises(InvalidKeyError):
                call()
        # refused before any I/O: the valid key in the same bulk call was not touched
        assert backend.get("kept") == b"v"

    # -- TTL -----------------------------------------------------------------------------------
    def test_ttl_expiry(self, backend: SessionBackend) -> None:
        for short in short_lived(self.ttl_short):
            backend.set("short", b"v", ttl=short.ttl)
            backend.set("forever", b"v")
            got, left = backend.get("short"), backend.ttl("short")
            if short.in_time():
                break
        assert got == b"v"
        assert left is not None and 0 < left <= short.ttl
        assert backend.ttl("forever") == math.inf
        time.sleep(short.ttl + self.ttl_wait)
        assert backend.get("short") is None
        assert backend.ttl("short") is None
        assert "short" not in set(backend.scan())
        assert backend.get_many(["short", "forever"]) == {"forever": b"v"}

    def test_touch_extends_and_sets_expiry(self, backend: SessionBackend) -> None:
        for short in short_lived(self.ttl_short):
            backend.set("k", b"v", ttl=short.ttl)
            touched = backend.touch("k", 60)
            if short.in_time():
                break
        assert touched is True
        left = backend.ttl("k")
        assert left is not None and short.ttl < left <= 60
        time.sleep(short.ttl + self.ttl_wait)
        assert backend.get("k") == b"v"
        backend.set("forever", b"v")
        assert backend.touch("forever", 30) is True
        left = backend.ttl("forever")
        assert left is not None and 0 < left <= 30

    def test_set_without_ttl_clears_old_expiry(self, backend: SessionBackend) -> None:
        backend.set("k", b"v", ttl=self.ttl_short)
        backend.set("k", b"w")
        assert backend.ttl("k") == math.inf

    def test_fractional_ttl_keeps_milliseconds(self, backend: SessionBackend) -> None:
        backend.set("k", b"v", ttl=12.3456)
        left = backend.ttl("k")
        assert left is not None and 11.0 < left <= 12.346

    @pytest.mark.parametrize(
        "ttl",
        [
            0,
            -1,
            -0.5,
            math.nan,
            -math.inf,
            "10",
            True,
            pytest.param(10**400, id="1e400"),
            1e300,
            2e16,
        ],
    )
    def test_bad_ttl_is_configuration_error(self, backend: SessionBackend, ttl: object) -> None:
        backend.set("k", b"kept", ttl=60)
        for call in (
            lambda: backend.set("k", b"new", ttl=ttl),  # type: ignore[arg-type]
            lambda: backend.set_many({"k": b"new"}, ttl=ttl),  # type: ignore[arg-type]
            lambda: backend.touch("k", ttl),  # type: ignore[arg-type]
            lambda: backend.set_if("k", b"new", None, ttl=ttl),  # type: ignore[arg-type]
        ):
            with pytest.raises(ConfigurationError):
                call()
        assert backend.get("k") == b"kept"

    def test_no_expiry_ttl_means_never(self, backend: SessionBackend) -> None:
        """``ttl=NO_EXPIRY`` (``math.inf``, what ``ttl(key)`` answers for a key that never
        expires) stores without expiry, whatever the backend's default: ``set(k, v, ttl(k))``
        copies a key faithfully."""
        backend.set("a", b"v", ttl=60)
        backend.set("a", b"w", ttl=math.inf)
        assert backend.ttl("a") == math.inf
        backend.set_many({"b": b"v"}, ttl=60)
        backend.set_many({"b": b"w"}, ttl=math.inf)
        assert backend.ttl("b") == math.inf
        backend.set("c", b"v", ttl=60)
        assert backend.touch("c", math.inf) is True
        assert backend.ttl("c") == math.inf
        assert backend.set_if("d", b"v", None, ttl=math.inf) is True
        assert backend.ttl("d") == math.inf

    # -- scan ----------------------------------------------------------------------------------
    def test_scan_by_prefix(self, backend: SessionBackend) -> None:
        keys = ["user:1", "user:2", "user:10", "admin:1", "user", "usex:1"]
        for key in keys:
            backend.set(key, b"v")
        assert sorted(backend.scan()) == sorted(keys)
        assert sorted(backend.scan("user:")) == ["user:1", "user:10", "user:2"]
        assert sorted(backend.scan("user")) == ["user", "user:1", "user:10", "user:2"]
        assert list(backend.scan("nobody")) == []

    @pytest.mark.parametrize("prefix", HOSTILE_PREFIXES, ids=repr)
    def test_scan_prefix_is_literal(self, backend: SessionBackend, prefix: str) -> None:
        decoys = ["a", "b", "ab", "[a]", "x*", "\\x", "日x", "%x", "_x", "\n"]
        for key in decoys:
            backend.set(key, b"decoy")
        mine = [prefix + "1", prefix + "\n2", prefix + prefix]
        for key in mine:
            backend.set(key, b"mine")
        expected = sorted({k for k in [*decoys, *mine] if k.startswith(prefix)})
        assert sorted(backend.scan(prefix)) == expected

    def test_scan_many_keys(self, backend: SessionBackend) -> None:
        keys = {f"bulk:{i}" for i in range(1500)}
        backend.set_many(dict.fromkeys(keys, b"v"))
        found = list(backend.scan("bulk:"))
        assert len(found) == len(set(found)) == 1500
        assert set(found) == keys

    # -- bulk ----------------------------------------------------------------------------------
    def test_bulk_operations(self, backend: SessionBackend) -> None:
        items = {f"k{i}": f"v{i}".encode() for i in range(50)}
        backend.set_many(items)
        assert backend.get_many([*items, "absent"]) == items
        assert backend.get_many([]) == {}
        assert backend.delete_many(["k0", "k1", "absent"]) == 2
        assert backend.get_many(["k0", "k1", "k2"]) == {"k2": b"v2"}
        backend.set_many({})
        assert backend.delete_many([]) == 0

    def test_set_many_with_ttl(self, backend: SessionBackend) -> None:
        for short in short_lived(self.ttl_short):
            backend.set_many({"a": b"1", "b": b"2"}, ttl=short.ttl)
            left = backend.ttl("a")
            if short.in_time():
                break
        assert left is not None and 0 < left <= short.ttl
        time.sleep(short.ttl + self.ttl_wait)
        assert backend.get_many(["a", "b"]) == {}

    def test_get_many_accepts_duplicates_and_iterators(self, backend: SessionBackend) -> None:
        backend.set("a", b"1")
        assert backend.get_many(iter(["a", "a", "b"])) == {"a": b"1"}
