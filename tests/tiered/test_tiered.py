"""Tiered backend rules: promotion, write order, outages, recovery, compare-and-set."""

from __future__ import annotations

import logging
import math
import time

import pytest

from session_store import BackendError, BackendUnavailableError, MemoryBackend, TieredBackend
from session_store.backend import Scope
from session_store.testing.faults import SwitchableBackend as Switchable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def chain(
    n: int = 3, *, clock: Clock | None = None, **options: object
) -> tuple[TieredBackend, list[Switchable]]:
    """``n`` memory tiers behind switches; the first is process scope, the rest pose as shared."""
    tiers = [
        Switchable(MemoryBackend(), scope=Scope.PROCESS if i == 0 else Scope.HOST) for i in range(n)
    ]
    backend = TieredBackend(tiers, clock=clock or Clock(), **options)  # type: ignore[arg-type]
    return backend, tiers


def test_read_through_promotes_with_remaining_ttl() -> None:
    backend, (top, mid, low) = chain()
    low.inner.set("k", b"v", ttl=50)
    assert backend.get("k") == b"v"
    assert top.inner.get("k") == b"v"
    assert mid.inner.get("k") == b"v"
    left = top.inner.ttl("k")
    assert left is not None and 45 < left <= 50
    assert backend.counters.get("promotions") == 2


def test_promotion_never_overwrites_a_newer_upper_copy() -> None:
    backend, (top, _mid, low) = chain()
    low.inner.set("k", b"old")
    top.inner.set("k", b"new")
    assert backend.get("k") == b"new"
    backend._promote(2, "k", b"old", math.inf)  # a racing reader promoting what it read earlier
    assert top.inner.get("k") == b"new"


def test_promotion_keeps_no_expiry() -> None:
    backend, (top, _mid, low) = chain()
    low.inner.set("k", b"v")
    backend.get_many(["k"])
    assert top.inner.ttl("k") == math.inf


def test_writes_reach_every_tier() -> None:
    backend, tiers = chain()
    backend.set("k", b"v", ttl=30)
    backend.set_many({"a": b"1", "b": b"2"})
    for tier in tiers:
        assert tier.inner.get_many(["k", "a", "b"]) == {"k": b"v", "a": b"1", "b": b"2"}
    assert backend.delete("k") is True
    assert all(tier.inner.get("k") is None for tier in tiers)
    assert backend.delete_many(["a", "b", "zz"]) == 2


def test_a_failing_durable_tier_writes_nothing_above_it() -> None:
    class Broken(MemoryBackend):
        def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
            raise BackendError("disk full", key=key)

    top = MemoryBackend()
    backend = TieredBackend([top, Broken()])
    top.set("k", b"old")
    with pytest.raises(BackendError, match="disk full"):
        backend.set("k", b"new")
    assert top.get("k") == b"old"


def test_an_upper_tier_failing_after_the_durable_write_is_fenced_for_the_key() -> None:
    class Broken(MemoryBackend):
        def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
            raise BackendError("quota", key=key)

    upper = Broken()
    upper_inner_set = MemoryBackend.set
    upper_inner_set(upper, "k", b"old")
    low = MemoryBackend()
    backend = TieredBackend([upper, low], retry_after=0.001)
    backend.set("k", b"new")  # durable write succeeded: no error for the caller
    assert low.get("k") == b"new"
    assert backend.get("k") == b"new"  # the upper tier is out of service meanwhile
    time.sleep(0.01)  # past retry_after: the next call heals the upper tier first
    assert backend.get("k") == b"new"
    assert MemoryBackend.get(upper, "k") != b"old"  # the stale copy was invalidated


def test_scan_is_a_union_without_duplicates() -> None:
    backend, (top, mid, low) = chain()
    top.inner.set("a", b"1")
    mid.inner.set("a", b"1")
    mid.inner.set("b", b"2")
    low.inner.set("c", b"3")
    keys = list(backend.scan())
    assert sorted(keys) == ["a", "b", "c"]


def test_a_down_tier_is_skipped_logged_once_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    backend, (_top, mid, low) = chain(clock=clock, retry_after=10)
    mid.down = True
    with caplog.at_level(logging.WARNING, logger="session_store.tiered"):
        for i in range(5):
            backend.set(f"k{i}", b"v")
            assert backend.get(f"k{i}") == b"v"
    assert low.inner.get("k4") == b"v"
    assert caplog.text.count("is down") == 1
    assert backend.counters.get("fallbacks") >= 5
    assert mid.calls == 1  # the breaker kept it out until retry_after passed
    assert backend.tier_states()[1]["down"] is True


def test_recovery_invalidates_what_the_tier_missed(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    backend, (top, mid, _low) = chain(clock=clock, retry_after=10)
    backend.set("k", b"v1")
    mid.down = True
    backend.set("k", b"v2")  # mid still holds v1
    backend.delete("gone")
    mid.down = False
    top.inner.delete("k")  # the fast copy is gone (evicted, or a new process)
    clock.now += 11
    with caplog.at_level(logging.WARNING, logger="session_store.tiered"):
        assert backend.get("k") == b"v2"  # never the stale v1
    assert "is back" in caplog.text
    assert mid.inner.get("k") == b"v2"  # promoted again after the stale copy was dropped
    assert backend.tier_states()[1]["missed"] == 0


def test_a_tier_that_missed_too_much_is_fenced() -> None:
    clock = Clock()
    backend, (top, mid, _low) = chain(clock=clock, retry_after=10, max_missed=3)
    backend.set("k", b"v1")
    mid.down = True
    for i in range(5):
        backend.set(f"x{i}", b"v")
    backend.set("k", b"v2")
    mid.down = False
    clock.now += 11
    top.inner.delete("k")
    assert backend.get("k") == b"v2"
    assert backend.tier_states()[1]["fenced"] is True
    assert mid.inner.get("k") == b"v1"  # stale, but a fenced tier never serves it
    backend.set("k", b"v3")
    assert mid.inner.get("k") == b"v3"  # writes still reach it


def test_every_tier_down_is_a_typed_error() -> None:
    backend, tiers = chain(2)
    for tier in tiers:
        tier.down = True
    with pytest.raises(BackendUnavailableError):
        backend.get("k")
    with pytest.raises(BackendUnavailableError):
        backend.set("k", b"v")
    with pytest.raises(BackendUnavailableError):
        list(backend.scan())


def test_compare_and_set_is_arbitrated_by_the_first_shared_tier() -> None:
    backend, (top, mid, low) = chain()
    backend.set("k", b"v1")
    read = backend.get_versioned("k")
    assert read is not None
    mid.inner.set("k", b"other-process")  # another process wrote through the shared tier
    assert backend.set_if("k", b"mine", read.token) is False
    assert top.inner.get("k") is None  # our stale fast copy was dropped
    assert backend.get("k") == b"other-process"
    read = backend.get_versioned("k")
    assert read is not None and read.value == b"other-process"
    assert backend.set_if("k", b"mine", read.token) is True
    assert [t.inner.get("k") for t in (top, mid, low)] == [b"mine"] * 3


def test_compare_and_set_falls_back_to_the_next_shared_tier() -> None:
    backend, (_top, mid, low) = chain()
    backend.set("k", b"v1")
    mid.down = True
    read = backend.get_versioned("k")
    assert read is not None
    assert backend.set_if("k", b"v2", read.token) is True
    assert low.inner.get("k") == b"v2"


def test_process_only_chain_arbitrates_on_the_lowest_tier() -> None:
    top, low = MemoryBackend(), MemoryBackend()
    backend = TieredBackend([top, low])
    assert backend.set_if("k", b"v", None) is True
    low.set("k", b"changed")
    read = backend.get_versioned("k")
    assert read is not None and read.value == b"changed"


def test_scope_is_the_widest_tier() -> None:
    backend, _ = chain()
    assert backend.scope is Scope.HOST
    assert TieredBackend([MemoryBackend()]).scope is Scope.PROCESS


def test_needs_tiers() -> None:
    with pytest.raises(ValueError, match="at least one tier"):
        TieredBackend([])


def test_fallbacks_and_promotions_are_counted_on_the_tier_too() -> None:
    backend, (top, mid, low) = chain(retry_after=10)
    low.inner.set("k", b"v")
    backend.get("k")
    assert top.counters.get("promotions") == 1 and mid.counters.get("promotions") == 1
    mid.down = True
    backend.set("x", b"y")
    backend.set("z", b"y")
    assert mid.counters.get("fallbacks") == 2
    assert top.counters.get("fallbacks") == low.counters.get("fallbacks") == 0


def test_a_chain_string_can_set_the_chain_options() -> None:
    from session_store import open_backend

    backend = open_backend(
        "tiered://?stamps=true&max_staleness=1.5&retry_after=2 | memory:// | memory://"
    )
    assert isinstance(backend, TieredBackend)
    assert backend.stamps is True and backend.max_staleness == 1.5
    assert backend.retry_after == 2
    assert len(backend.tiers) == 2
    single = open_backend("tiered://?stamps=true | memory://")
    assert isinstance(single, TieredBackend) and len(single.tiers) == 1


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("tiered://?stamps=maybe | memory://", "stamps"),
        ("tiered://?stamp=true | memory://", "stamp"),
        ("tiered://host | memory://", "no host"),
        ("tiered://?stamps=true", "at least one tier"),
    ],
)
def test_bad_chain_options_are_named(url: str, named: str) -> None:
    from session_store import ConfigurationError, open_backend

    with pytest.raises(ConfigurationError, match=named):
        open_backend(url)
