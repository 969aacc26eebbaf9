"""Memory backend specifics: bounds, LRU order, eviction reports, URL parameters."""

from __future__ import annotations

import threading

import pytest

from session_store import ConfigurationError, Evicted, MemoryBackend, open_backend


class FakeClock:
    """A settable monotonic clock: TTL logic without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_least_recently_used_goes_first() -> None:
    evicted: list[Evicted] = []
    backend = MemoryBackend(max_entries=3, on_evict=evicted.extend)
    for key in "abc":
        backend.set(key, key.encode())
    assert backend.get("a") == b"a"  # a is now the most recent
    backend.set("d", b"d")
    assert [e.key for e in evicted] == ["b"]
    assert sorted(backend.scan()) == ["a", "c", "d"]
    assert backend.counters.get("evictions") == 1


def test_get_many_and_touch_refresh_recency() -> None:
    evicted: list[Evicted] = []
    backend = MemoryBackend(max_entries=2, on_evict=evicted.extend)
    backend.set("a", b"1")
    backend.set("b", b"2")
    backend.touch("a", 30)
    backend.set("c", b"3")
    assert [e.key for e in evicted] == ["b"]
    backend.get_many(["a"])
    backend.set("d", b"4")
    assert [e.key for e in evicted] == ["b", "c"]


def test_byte_bound_evicts_until_it_fits() -> None:
    evicted: list[Evicted] = []
    backend = MemoryBackend(max_entries=100, max_bytes=100, on_evict=evicted.extend)
    backend.set("a", b"x" * 40)
    backend.set("b", b"x" * 40)
    backend.set("c", b"x" * 40)  # 3 * 41 > 100: a goes
    assert [e.key for e in evicted] == ["a"]
    assert backend.size_bytes == 82
    assert backend.get("b") is not None


def test_value_larger_than_the_cache_is_reported_not_kept() -> None:
    evicted: list[Evicted] = []
    backend = MemoryBackend(max_entries=10, max_bytes=50, on_evict=evicted.extend)
    backend.set("small", b"s")
    backend.set("big", b"x" * 100)
    assert backend.get("big") is None
    assert backend.get("small") == b"s"  # nothing else was pushed out for it
    assert [e.key for e in evicted] == ["big"]
    assert evicted[0].value == b"x" * 100


def test_eviction_report_carries_remaining_ttl() -> None:
    clock = FakeClock()
    evicted: list[Evicted] = []
    backend = MemoryBackend(max_entries=1, on_evict=evicted.extend, clock=clock)
    backend.set("a", b"1", ttl=10)
    clock.now += 4
    backend.set("b", b"2")
    assert [(e.key, e.value) for e in evicted] == [("a", b"1")]
    assert evicted[0].ttl == pytest.approx(6.0)


def test_expired_entries_are_not_reported_as_evicted() -> None:
    clock = FakeClock()
    evicted: list[Evicted] = []
    backend = MemoryBackend(max_entries=1, on_evict=evicted.extend, clock=clock)
    backend.set("a", b"1", ttl=1)
    clock.now += 2
    backend.set("b", b"2")
    assert evicted == []
    assert backend.counters.get("evictions") == 0


def test_on_evict_runs_outside_the_lock() -> None:
    """A callback that uses the backend again would deadlock if it ran under the lock."""
    backend = MemoryBackend(max_entries=1)
    seen: list[bytes | None] = []

    def reenter(entries: list[Evicted]) -> None:
        seen.append(backend.get(entries[0].key))
        if len(seen) == 1:
            backend.set("from-callback", b"ok")  # evicts "b": the callback runs once more

    backend.on_evict = reenter
    backend.set("a", b"1")
    done = threading.Event()

    def write() -> None:
        backend.set("b", b"2")
        done.set()

    threading.Thread(target=write).start()
    assert done.wait(5), "on_evict deadlocked: it ran while the lock was held"
    assert seen == [None, None]
    assert backend.get("from-callback") == b"ok"


def test_a_failing_callback_does_not_fail_the_write(caplog: pytest.LogCaptureFixture) -> None:
    def boom(entries: list[Evicted]) -> None:
        raise RuntimeError("callback bug")

    backend = MemoryBackend(max_entries=1, on_evict=boom)
    backend.set("a", b"1")
    backend.set("b", b"2")
    assert backend.get("b") == b"2"
    assert backend.counters.get("errors") == 1
    assert "on_evict callback failed" in caplog.text


def test_default_ttl_applies_when_none_given() -> None:
    clock = FakeClock()
    backend = MemoryBackend(default_ttl=5, clock=clock)
    backend.set("k", b"v")
    assert backend.ttl("k") == pytest.approx(5)
    clock.now += 5.001
    assert backend.get("k") is None


def test_sub_millisecond_ttl_rounds_up_not_to_zero() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)
    backend.set("k", b"v", ttl=0.0001)
    assert backend.ttl("k") == pytest.approx(0.001)
    assert backend.get("k") == b"v"


def test_from_url_parameters() -> None:
    backend = open_backend("memory://?max_entries=5&max_bytes=none&default_ttl=2.5")
    assert isinstance(backend, MemoryBackend)
    assert (backend.max_entries, backend.max_bytes, backend.default_ttl) == (5, None, 2.5)


def test_keyword_arguments_override_url_parameters() -> None:
    backend = open_backend("memory://?max_entries=5", max_entries=7)
    assert isinstance(backend, MemoryBackend)
    assert backend.max_entries == 7


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("memory://?max_entries=banana", "max_entries"),
        ("memory://?max_entries=0", "max_entries"),
        ("memory://?max_bytes=-3", "max_bytes"),
        ("memory://?default_ttl=0", "default_ttl"),
        ("memory://?default_ttl=soon", "default_ttl"),
        ("memory://?max_entrys=10", "max_entrys"),
        ("memory://somewhere", "no host"),
        ("memory://?max_entries=1&max_entries=2", "max_entries"),
    ],
)
def test_bad_parameters_are_named(url: str, named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        open_backend(url)


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ConfigurationError):
        MemoryBackend(max_entries=0)
    with pytest.raises(ConfigurationError):
        MemoryBackend(max_bytes=0)
    with pytest.raises(ConfigurationError):
        MemoryBackend(max_entries=True)
