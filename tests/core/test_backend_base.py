"""BackendBase: a backend written as hooks gets the protocol's checks, counters and errors once.

The backend under test is a dict with expiry times, the smallest store a hook set can describe;
it relies on the base for everything else, including compare-and-set (``cas = "lock"``).
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from session_store import backend_base
from session_store import keys as keys_module
from session_store.memory import MemoryBackend
from session_store.plugin import (
    BackendBase,
    BackendConformance,
    BackendError,
    BackendUnavailableError,
    InvalidKeyError,
    Scope,
    SessionBackend,
    VersionToken,
    make_state_machine,
    trusted,
)


class DictBackend(BackendBase):
    """Values in a dict of ``key -> (value, monotonic deadline)``; process scope."""

    scope = Scope.PROCESS

    def __init__(self, *, prefix: str = "t:", default_ttl: float | None = None) -> None:
        super().__init__(prefix=prefix, default_ttl=default_ttl)
        self.data: dict[str, tuple[bytes, float]] = {}
        self.fail_with: Exception | None = None

    def _live(self, skey: str) -> tuple[bytes, float] | None:
        if self.fail_with is not None:
            raise self.fail_with
        entry = self.data.get(skey)
        return entry if entry is not None and entry[1] > time.monotonic() else None

    def _deadline(self, ttl: float | None) -> float:
        return math.inf if ttl is None else time.monotonic() + ttl

    def _get(self, skey: str) -> bytes | None:
        entry = self._live(skey)
        return None if entry is None else entry[0]

    def _set(self, skey: str, value: bytes, ttl: float | None) -> None:
        self._live(skey)
        self.data[skey] = (value, self._deadline(ttl))

    def _delete(self, skey: str) -> bool:
        found = self._live(skey) is not None
        self.data.pop(skey, None)
        return found

    def _touch(self, skey: str, ttl: float | None) -> bool:
        entry = self._live(skey)
        if entry is not None:
            self.data[skey] = (entry[0], self._deadline(ttl))
        return entry is not None

    def _ttl(self, skey: str) -> float | None:
        entry = self._live(skey)
        return None if entry is None else max(entry[1] - time.monotonic(), 0.001)

    def _scan(self, head: str) -> Iterator[str]:
        return iter([k for k in list(self.data) if k.startswith(head) and self._live(k)])


class TestDictBackendConformance(BackendConformance):
    shares_storage = False  # a process-local store: each instance is its own storage

    @pytest.fixture
    def backend_factory(self) -> Callable[..., SessionBackend]:
        return lambda prefix="t:": DictBackend(prefix=prefix)


TestDictBackendModel = make_state_machine(DictBackend).TestCase


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every key the base validates, recorded (the real check still runs)."""
    seen: list[object] = []
    real = keys_module.validate_key

    def counting(key: object, *, backend: str | None = None) -> str:
        seen.append(key)
        return real(key, backend=backend)

    monkeypatch.setattr(backend_base, "validate_key", counting)
    return seen


def test_public_calls_validate_each_key_once(validations: list[object]) -> None:
    backend = DictBackend()
    backend.set("k", b"v", ttl=60)
    backend.get("k")
    read = backend.get_versioned("k")
    assert read is not None
    assert backend.set_if("k", b"w", read.token) is True
    backend.touch("k", 30)
    backend.delete("k")
    assert validations == ["k"] * 6
    validations.clear()
    backend.set_many({"a": b"1", "b": b"2"})
    assert backend.get_many(["a", "b"]) == {"a": b"1", "b": b"2"}
    assert validations == ["a", "b", "a", "b"]


def test_trusted_calls_do_not_validate_again(validations: list[object]) -> None:
    backend = DictBackend()
    calls = trusted(backend)
    calls.set("k", b"v", 60.0)
    assert calls.get("k") == b"v"
    read = calls.get_versioned("k")
    assert read is not None
    assert calls.set_if("k", b"w", read.token) is True
    assert calls.get_many(["k"]) == {"k": b"w"}
    assert sorted(calls.scan("")) == ["k"]
    assert validations == []
    # still namespaced and counted: the public view sees the same data and the hits
    assert backend.get("k") == b"w"
    assert backend.counters.get("hits") >= 3


def test_trusted_of_another_backend_is_the_backend_itself() -> None:
    class Other(MemoryBackend):
        trusted_calls = None  # type: ignore[assignment]  # offers no unchecked calls

    other = Other()
    assert trusted(other) is other
    memory = MemoryBackend()  # the built-in backends offer theirs (unchecked_calls)
    assert trusted(memory) is memory.trusted_calls is not memory


def test_store_errors_become_typed_and_counted() -> None:
    backend = DictBackend()
    backend.set("k", b"v")
    backend.fail_with = OSError("disk on fire")
    with pytest.raises(BackendError, match="disk on fire") as failed:
        backend.get("k")
    assert failed.value.key == "k"
    assert failed.value.backend == backend.describe()
    backend.fail_with = ConnectionRefusedError("nobody home")
    with pytest.raises(BackendUnavailableError):
        backend.set("k", b"w")
    with pytest.raises(BackendUnavailableError):
        list(backend.scan())
    assert backend.counters.get("errors") == 3
    backend.fail_with = None
    assert backend.get("k") == b"v"  # the failed write wrote nothing


def test_bugs_are_not_disguised_as_backend_errors() -> None:
    backend = DictBackend()
    backend.fail_with = TypeError("a programming error")
    with pytest.raises(TypeError):
        backend.get("k")


def test_every_operation_is_timed() -> None:
    backend = DictBackend()
    backend.set("k", b"v")
    backend.get("k")
    backend.get_many(["k"])
    latency = backend.counters.latency()
    assert latency["set"]["count"] == latency["get"]["count"] == latency["get_many"]["count"] == 1


def test_invalid_key_is_refused_before_the_store_is_asked() -> None:
    backend = DictBackend()
    backend.fail_with = OSError("the store must not be reached")
    with pytest.raises(InvalidKeyError):
        backend.set_many({"fine": b"v", "": b"v"})


def test_shared_scope_without_compare_and_set_must_declare_it() -> None:
    with pytest.raises(TypeError, match="_set_if"):

        class Shared(DictBackend):
            scope = Scope.HOST

    class NoCas(DictBackend):
        scope = Scope.HOST
        cas = "none"

    backend = NoCas()
    backend.set("k", b"v")
    with pytest.raises(BackendError, match="compare-and-set"):
        backend.get_versioned("k")
    with pytest.raises(BackendError, match="compare-and-set"):
        backend.set_if("k", b"w", None)
    assert backend.get("k") == b"v"


def test_native_compare_and_set_is_detected() -> None:
    class Native(DictBackend):
        scope = Scope.NETWORK

        def _set_if(
            self, skey: str, value: bytes, token: VersionToken | None, ttl: float | None
        ) -> bool:
            return False

    assert Native.cas == "native"
    assert DictBackend.cas == "lock"


@pytest.fixture
def eager_thread_switches() -> Iterator[None]:
    """Switch threads every microsecond, so that an unlocked read-then-write does interleave
    (at the default 5 ms the test passes even without the lock)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@pytest.mark.usefixtures("eager_thread_switches")
def test_lock_compare_and_set_loses_no_update_across_threads() -> None:
    """Read-modify-write increments from 8 threads, racing plain writes and deletes of other
    keys: every increment that ``set_if`` acknowledged is in the final count. Fails with
    ``_write_lock`` replaced by a no-op."""
    backend = DictBackend()
    backend.set("n", b"0")
    acknowledged = [0] * 8

    def work(slot: int) -> None:
        for _ in range(500):
            while True:
                read = backend.get_versioned("n")
                assert read is not None
                if backend.set_if("n", str(int(read.value) + 1).encode(), read.token):
                    acknowledged[slot] += 1
                    break
            backend.set(f"other{slot}", b"x")
            backend.delete(f"other{slot}")

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert backend.get("n") == str(sum(acknowledged)).encode() == b"4000"


def test_lock_compare_and_set_is_atomic_against_a_plain_write() -> None:
    """A plain ``set`` that arrives between ``set_if``'s read and its write waits for it.

    The hook stops right after ``set_if``'s read, starts a writer and gives it a second to
    finish. With the base's lock the writer cannot: ``set_if`` wins, then the writer's value
    lands. Without it (``_write_lock`` a no-op) the writer finishes and ``set_if`` overwrites it
    from a stale read: both acknowledged, the plain write lost, which no order explains.
    """

    class Interleaved(DictBackend):
        armed = False
        writer: threading.Thread | None = None

        def _get(self, skey: str) -> bytes | None:
            value = super()._get(skey)
            if self.armed and self.writer is None:
                self.writer = threading.Thread(target=self.set, args=("k", b"theirs"))
                self.writer.start()
                self.writer.join(timeout=1.0)
            return value

    backend = Interleaved()
    backend.set("k", b"base")
    read = backend.get_versioned("k")
    assert read is not None
    backend.armed = True
    assert backend.set_if("k", b"mine", read.token) is True
    assert backend.writer is not None
    backend.writer.join()
    assert backend.get("k") == b"theirs"


def test_a_backend_without_scope_cannot_be_built() -> None:
    class Unscoped(BackendBase):
        pass

    with pytest.raises(TypeError, match="scope"):
        Unscoped()
