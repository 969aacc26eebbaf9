"""Tiered backend rules: versions, promotion, ordered writes, outages, reconciliation, the
arbiter, evictions."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from session_store import (
    BackendError,
    BackendUnavailableError,
    MemoryBackend,
    TieredBackend,
    stamps,
)
from session_store.backend import Scope
from session_store.stamps import unframe
from session_store.testing.faults import SwitchableBackend as Switchable
from session_store.tiered.writes import write_if_newer
from tests.tiered.support import Clock


def chain(
    n: int = 3, *, clock: Clock | None = None, **options: object
) -> tuple[TieredBackend, list[Switchable]]:
    """``n`` memory tiers behind switches; the first is process scope, the rest pose as shared."""
    tiers = [
        Switchable(MemoryBackend(), scope=Scope.PROCESS if i == 0 else Scope.HOST) for i in range(n)
    ]
    backend = TieredBackend(tiers, clock=clock or Clock(100.0), **options)  # type: ignore[arg-type]
    return backend, tiers


def raw(tier: Switchable, key: str) -> bytes | None:
    """What a tier holds for ``key``, the chain's frame read through (a tombstone: ``None``)."""
    data = tier.inner.get(key)
    return None if data is None else unframe(data)


def test_read_through_promotes_with_remaining_ttl() -> None:
    backend, (top, mid, low) = chain()
    low.inner.set("k", b"v", ttl=50)
    assert backend.get("k") == b"v"
    assert raw(top, "k") == b"v"
    assert raw(mid, "k") == b"v"
    left = top.inner.ttl("k")
    assert left is not None and 45 < left <= 50
    assert backend.counters.get("promotions") == 2  # into the shared tier and the near cache


def test_promotion_never_overwrites_a_newer_copy() -> None:
    backend, (_top, mid, _low) = chain()
    older = stamps.frame(b"old", stamps.clock.now(), None)
    backend.set("k", b"new")
    assert write_if_newer(mid, "k", older, None) is False  # a racing reader's late promotion
    assert raw(mid, "k") == b"new"
    assert backend.get("k") == b"new"


def test_promotion_keeps_no_expiry() -> None:
    backend, (top, _mid, low) = chain()
    low.inner.set("k", b"v")
    backend.get("k")
    assert top.inner.ttl("k") == math.inf


def test_writes_reach_every_tier_and_deletes_leave_tombstones() -> None:
    backend, tiers = chain()
    backend.set("k", b"v", ttl=30)
    backend.set_many({"a": b"1", "b": b"2"})
    for tier in tiers:
        assert {key: raw(tier, key) for key in ("k", "a", "b")} == {"k": b"v", "a": b"1", "b": b"2"}
    assert backend.delete("k") is True
    assert backend.delete("k") is False
    assert all(raw(tier, "k") is None for tier in tiers)
    assert all(stamps.is_tombstone(tier.inner.get("k") or b"") for tier in tiers[1:])
    assert backend.delete_many(["a", "b", "zz"]) == 2
    assert list(backend.scan()) == []  # tombstones are not keys


def test_a_failing_durable_tier_acknowledges_nothing() -> None:
    class Broken(MemoryBackend):
        def set_if(self, key: str, value: bytes, token: object, ttl: float | None = None) -> bool:
            raise BackendError("disk full", key=key)

    top = MemoryBackend()
    backend = TieredBackend([top, Broken()])
    top.set("k", b"old")
    with pytest.raises(BackendError, match="disk full"):
        backend.set("k", b"new")
    assert top.get("k") is None  # the near cache keeps nothing no durable tier holds


def test_a_failing_near_cache_does_not_fail_a_durable_write() -> None:
    class Broken(MemoryBackend):
        def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
            raise BackendError("quota", key=key)

    low = Switchable(MemoryBackend(), scope=Scope.HOST)
    backend = TieredBackend([Broken(), low])
    backend.set("k", b"new")
    assert raw(low, "k") == b"new"
    assert backend.get("k") == b"new"


def test_scan_is_a_union_without_duplicates() -> None:
    backend, (top, mid, low) = chain()
    top.inner.set("a", b"1")
    mid.inner.set("a", b"1")
    mid.inner.set("b", b"2")
    low.inner.set("c", b"3")
    keys = list(backend.scan())
    assert sorted(keys) == ["a", "b", "c"]


def test_a_down_tier_is_skipped_logged_once_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(100.0)
    backend, (_top, mid, low) = chain(clock=clock, retry_after=10)
    mid.down = True
    with caplog.at_level(logging.WARNING, logger="session_store.tiered"):
        for i in range(5):
            backend.set(f"k{i}", b"v")
            assert backend.get(f"k{i}") == b"v"
    assert raw(low, "k4") == b"v"
    assert caplog.text.count("is down") == 1
    assert backend.counters.get("fallbacks") >= 5
    assert mid.calls == 1  # the breaker kept it out until retry_after passed
    assert backend.tier_states()[1]["down"] is True


def test_a_tier_that_comes_back_is_brought_up_to_date(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(100.0)
    backend, (top, mid, _low) = chain(clock=clock, retry_after=10)
    backend.set("k", b"v1")
    mid.down = True
    backend.set("k", b"v2")  # mid still holds v1
    backend.set("gone", b"x")
    backend.delete("gone")
    mid.down = False
    clock.now += 11
    with caplog.at_level(logging.WARNING, logger="session_store.tiered"):
        backend.set("other", b"probe")  # the probe finds it back: what it missed is repaired
    assert "is back" in caplog.text
    assert raw(mid, "k") == b"v2"  # repaired, never deleted
    assert stamps.is_tombstone(mid.inner.get("gone") or b"")
    top.inner.delete("k")
    assert backend.get("k") == b"v2"
    assert backend.tier_states()[1]["missed"] == 0


def test_a_read_repairs_an_older_copy_with_the_newest() -> None:
    backend, (top, mid, _low) = chain()
    backend.set("k", b"v1")
    older = mid.inner.get("k")
    backend.set("k", b"v2")
    assert older is not None
    mid.inner.set("k", older)  # Redis restarted from an older append-only file
    top.inner.delete("k")
    assert backend.get("k") == b"v2"
    assert raw(mid, "k") == b"v2"
    assert backend.counters.get("repairs") >= 1


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
    other = TieredBackend([MemoryBackend(), mid, low], clock=Clock(100.0))  # another process
    backend.set("k", b"v1")
    read = backend.get_versioned("k")
    assert read is not None
    other.set("k", b"other-process")
    assert backend.set_if("k", b"mine", read.token) is False
    assert top.inner.get("k") is None  # our stale fast copy was dropped
    assert backend.get("k") == b"other-process"
    read = backend.get_versioned("k")
    assert read is not None and read.value == b"other-process"
    assert backend.set_if("k", b"mine", read.token) is True
    assert [raw(t, "k") for t in (top, mid, low)] == [b"mine"] * 3


def test_an_unreachable_arbiter_fails_versioned_operations_and_writes_nothing() -> None:
    backend, (_top, mid, low) = chain()
    backend.set("k", b"v1")
    read = backend.get_versioned("k")
    assert read is not None
    mid.down = True
    with pytest.raises(BackendUnavailableError, match="arbiter"):
        backend.get_versioned("k")
    with pytest.raises(BackendUnavailableError, match="arbiter"):
        backend.set_if("k", b"v2", read.token)
    assert raw(low, "k") == b"v1"
    assert backend.get("k") == b"v1"  # plain reads stay available


def test_update_starts_from_the_newest_durable_copy_when_the_arbiter_lost_it() -> None:
    backend, (top, mid, low) = chain()
    backend.set("k", b"v1")
    mid.inner.delete("k")  # Redis restarted without persistence
    read = backend.get_versioned("k")
    assert read is not None and read.value == b"v1"
    assert backend.set_if("k", b"v2", read.token) is True
    assert [raw(t, "k") for t in (top, mid, low)] == [b"v2"] * 3


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
    assert mid.counters.get("promotions") == 1
    mid.down = True
    backend.set("x", b"y")
    backend.set("z", b"y")
    assert mid.counters.get("fallbacks") == 2
    assert top.counters.get("fallbacks") == low.counters.get("fallbacks") == 0


def test_evictions_of_every_tier_reach_the_chain(caplog: pytest.LogCaptureFixture) -> None:
    low = Switchable(MemoryBackend(max_entries=5), scope=Scope.HOST)
    backend = TieredBackend([MemoryBackend(max_entries=2), low])
    with caplog.at_level(logging.WARNING, logger="session_store.tiered"):
        for i in range(10):
            backend.set(f"k{i}", b"v")
    assert backend.counters.get("evictions") == 8 + 5  # the near cache's and the durable tier's
    assert caplog.text.count("evicted") == 1  # the durable tier's, rate-limited
    assert all(backend.get(f"k{i}") == b"v" for i in range(5, 10))


def test_a_chain_string_can_set_the_chain_options() -> None:
    from session_store import open_backend

    backend = open_backend(
        "tiered://?stamps=true&max_staleness=1.5&retry_after=2 | memory:// | memory://"
    )
    assert isinstance(backend, TieredBackend)
    assert backend.max_staleness == 1.5
    assert backend.retry_after == 2
    assert len(backend.tiers) == 2
    single = open_backend("tiered://?stamps=true | memory://")
    assert isinstance(single, TieredBackend) and len(single.tiers) == 1
    default = open_backend("memory:// | memory://")
    assert isinstance(default, TieredBackend) and default.max_staleness == 1.0


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


def test_diskcaches_own_size_limit_evictions_reach_the_chain(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 15, item 4 (the chain's side): a disk tier evicting past its size_limit is counted
    by the chain (so ``metrics()`` and ``stats`` show it) and logged once."""
    from session_store import open_backend

    chain = open_backend(f"memory://?max_entries=10 | diskcache://{tmp_path}?size_limit=200000")
    assert isinstance(chain, TieredBackend)
    with caplog.at_level(logging.WARNING, logger="session_store.tiered"):
        for i in range(200):
            chain.set(f"k{i}", b"x" * 5000)
    disk = chain.tiers[1].counters.get("evictions")
    assert disk > 0
    assert chain.counters.get("evictions") == disk + chain.tiers[0].counters.get("evictions")
    assert caplog.text.count("evicted") == 1
    assert "diskcache://" in caplog.text
    chain.close()


@given(
    value=st.one_of(
        st.binary(max_size=64),
        st.builds(
            lambda head, tail: head + tail,
            st.sampled_from([stamps.MAGIC, b"\xa7ST\x01", b"\xa7ST\x02", b"\xa7SS"]),
            st.binary(max_size=40),
        ),
    )
)
def test_every_byte_string_round_trips_through_a_chain(value: bytes) -> None:
    backend, (_top, mid, low) = chain()
    backend.set("k", value)
    assert backend.get("k") == value
    assert backend.get_many(["k"]) == {"k": value}
    other = TieredBackend([MemoryBackend(), mid, low], clock=Clock(100.0))  # another process
    assert other.get("k") == value
    read = other.get_versioned("k")
    assert read is not None and read.value == value
    assert other.set_if("k", value + b"!", read.token) is True
    assert mid.inner.get("k") is not None
    assert TieredBackend([MemoryBackend(), mid, low], clock=Clock(100.0)).get("k") == value + b"!"


def test_a_new_write_at_the_arbiter_is_ordered_by_arrival() -> None:
    """A save or delete made after another, by a writer whose clock is behind (another host, or
    the same millisecond), still lands: the arbiter moves its version past what it holds."""
    backend, (_top, mid, low) = chain()
    ahead = (int.from_bytes(stamps.clock.now()[:8], "big") + (60_000 << 16)).to_bytes(8, "big")
    future = stamps.frame(b"from a clock a minute ahead", ahead + bytes(4), None)
    mid.inner.set("k", future)
    low.inner.set("k", future)
    backend.set("k", b"later")
    assert backend.get("k") == b"later"
    stored = mid.inner.get("k")
    assert stored is not None and stamps.version_of(stored) > stamps.version_of(future)
    assert raw(low, "k") == b"later"  # the lower tier took the moved-on version
    assert backend.delete("k") is True
    other = TieredBackend([MemoryBackend(), mid, low], clock=Clock(100.0))
    assert other.get("k") is None


def test_a_new_write_is_not_hidden_behind_a_lower_copy_from_a_clock_ahead() -> None:
    """A host whose clock runs a minute ahead wrote a copy; the arbiter lost the key; a save
    and then a delete from a host with a correct clock must still be what everyone reads."""
    backend, (_top, mid, low) = chain()
    ahead = (int.from_bytes(stamps.clock.now()[:8], "big") + (60_000 << 16)).to_bytes(8, "big")
    low.inner.set("k", stamps.frame(b"from the future", ahead + bytes(4), None))
    low.inner.set("j", stamps.frame(b"from the future", ahead + bytes(4), None))
    backend.set("k", b"now")  # the arbiter (mid) lacks "k": the disk copy is newer than ours
    other = TieredBackend([MemoryBackend(), mid, low], clock=Clock(100.0))
    assert other.get("k") == b"now"
    assert backend.delete("j") is True
    assert TieredBackend([MemoryBackend(), mid, low], clock=Clock(100.0)).get("j") is None
