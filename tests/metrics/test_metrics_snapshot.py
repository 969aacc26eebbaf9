"""The plain-dict view of per-tier counters and latency, on real chains."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from session_store import MemoryBackend, SessionStore, open_backend
from session_store.counters import COUNTER_NAMES, LATENCY_BUCKETS, Counters
from session_store.dataroom import SessionManager
from session_store.metrics import CHAIN, format_seconds, snapshot, sources
from session_store.samples import legacy_sessions
from session_store.schema import EnhancedSessionData
from session_store_redis.testing import RedisServer


def _chain(tmp_path: Path) -> str:
    return f"memory://?max_entries=2 | diskcache://{tmp_path / 'disk'}"


def test_snapshot_of_a_chain_counts_per_tier(tmp_path: Path) -> None:
    with SessionStore(_chain(tmp_path), dict) as store:
        for n in range(4):
            store.save(f"k{n}", {"n": n})
        assert store.load("k0") == {"n": 0}  # evicted from memory: a disk hit, promoted
        assert store.load("missing") is None
        snap = snapshot(store)
    assert json.loads(json.dumps(snap)) == snap  # JSON-ready
    memory, disk = snap["tiers"]
    assert memory["backend"].startswith("memory://") and disk["backend"].startswith("diskcache://")
    assert set(memory["counters"]) == set(COUNTER_NAMES)
    assert memory["counters"]["evictions"] >= 2
    assert disk["counters"]["hits"] >= 1
    assert snap["chain"]["promotions"] == 1
    assert snap["chain"]["hits"] == 1 and snap["chain"]["misses"] == 1
    assert memory["up"] is True and memory["down"] is False and memory["missed"] == 0
    stats = disk["latency"]["get_with_ttl"]
    assert stats["count"] == 2  # k0 (memory missed it) and "missing"
    assert stats["p50"] in LATENCY_BUCKETS and stats["p50"] <= stats["p99"]


def test_snapshot_of_a_plain_backend_and_a_manager(tmp_path: Path) -> None:
    backend = MemoryBackend()
    backend.set("a", b"1")
    backend.get("a")
    snap = snapshot(backend)
    assert snap["chain"] is None
    assert snap["tiers"][0]["counters"]["hits"] == 1 and snap["tiers"][0]["tier"] == 0

    store = SessionStore(_chain(tmp_path), EnhancedSessionData)
    manager = SessionManager(store, size_sample_every=1)
    for user_id, data in legacy_sessions().items():
        manager.store_enhanced_session(user_id, data)
    snap = snapshot(manager)
    assert snap["sessions"]["total_sessions_created"] == len(legacy_sessions())
    assert snap["sessions"] == manager.metrics.as_dict()
    assert [s.tier for s in sources(manager)] == ["0", "1", CHAIN, "sessions"]
    store.close()


def test_snapshot_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="SessionStore"):
        snapshot(object())


def test_a_down_tier_shows_as_down_with_fallbacks(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    server = redis_server_factory(password="pw-not-shown")
    url = f"memory:// | {server.url_for(prefix='m:', retries='0')} | diskcache://{tmp_path}"
    backend = open_backend(url)
    try:
        backend.set("a", b"1")
        server.kill()
        backend.set("b", b"2")
        snap = snapshot(backend)
    finally:
        backend.close()
    redis_tier = snap["tiers"][1]
    assert redis_tier["up"] is False and redis_tier["down"] is True
    assert redis_tier["missed"] == 1
    assert snap["chain"]["fallbacks"] >= 1
    assert "unavailable" in redis_tier["latency"]
    assert "pw-not-shown" not in json.dumps(snap)


def test_counters_keep_their_api_and_gain_sums() -> None:
    counters = Counters()
    counters.observe("get", 0.000003)
    counters.observe("get", 0.000005)
    counts, total = counters.latency_histograms()["get"]
    assert sum(counts) == 2 and total == pytest.approx(0.000008)
    assert counters.latency_buckets()["get"] == counts
    assert counters.latency()["get"]["count"] == 2
    assert counters.names == COUNTER_NAMES
    custom = Counters(names=("a", "b"))
    custom.add("b", 3)
    assert custom.as_dict() == {"a": 0, "b": 3}


def test_format_seconds() -> None:
    assert format_seconds(0) == "-"
    assert format_seconds(5e-7) == "500 ns"
    assert format_seconds(1.6e-5) == "16.0 µs"
    assert format_seconds(0.0034) == "3.40 ms"
    assert format_seconds(2) == "2.00 s"


def test_nothing_at_info_on_the_hot_path(
    tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"memory://?max_entries=3 | {redis_url} | diskcache://{tmp_path}"
    with caplog.at_level(logging.DEBUG), SessionStore(url, dict) as store:
        for n in range(10):
            store.save(f"k{n}", {"n": n})
            store.load(f"k{n}")
            store.update(f"k{n}", lambda d: {**(d or {}), "m": 1})
        store.load_many([f"k{n}" for n in range(10)])
        store.delete("k0")
        snapshot(store)
    loud = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert loud == [], [r.getMessage() for r in loud]
