"""The Prometheus collector, scraped through the real prometheus_client."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from session_store import SessionStore
from session_store.dataroom import SessionManager
from session_store.metrics.prometheus import register_prometheus
from session_store.samples import legacy_sessions
from session_store.schema import EnhancedSessionData


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    matches = [
        value
        for (found, found_labels), value in samples.items()
        if found == name and labels.items() <= dict(found_labels).items()
    ]
    assert len(matches) == 1, (name, labels, matches)
    return matches[0]


def test_scrape_shows_per_tier_counters_latency_and_sessions(tmp_path: Path) -> None:
    url = f"memory://?max_entries=2 | diskcache://{tmp_path}"
    store = SessionStore(url, EnhancedSessionData)
    manager = SessionManager(store, size_sample_every=1)
    registry = CollectorRegistry()
    register_prometheus(manager, name="rooms", registry=registry)
    sessions = legacy_sessions()
    for user_id, data in sessions.items():
        manager.store_enhanced_session(user_id, data)
    for user_id in sessions:
        manager.get_enhanced_session(user_id)

    samples = _samples(registry)
    memory = tier_counts = {"store": "rooms", "tier": "0"}
    assert _value(samples, "session_store_evictions_total", **memory) >= 2
    disk = {"store": "rooms", "tier": "1"}
    assert _value(samples, "session_store_hits_total", **disk) >= 2
    assert _value(samples, "session_store_promotions_total", store="rooms", tier="chain") >= 2
    assert _value(samples, "session_store_tier_up", **tier_counts) == 1.0
    reads = {**disk, "operation": "get_with_ttl"}
    count = _value(samples, "session_store_operation_duration_seconds_count", **reads)
    assert count >= len(sessions)
    assert (
        _value(samples, "session_store_operation_duration_seconds_bucket", **reads, le="+Inf")
        == count
    )
    assert _value(samples, "session_store_operation_duration_seconds_sum", **reads) > 0
    assert _value(samples, "session_store_sessions_created_total", store="rooms") == len(sessions)
    assert _value(samples, "session_store_session_size_bytes_count", store="rooms") == len(sessions)
    assert _value(samples, "session_store_processing_cost_usd_total", store="rooms") >= 0
    backend_label = dict(next(k[1] for k in samples if k[0] == "session_store_hits_total"))
    assert backend_label["backend"].startswith(("memory://", "diskcache://", "memory:// |"))
    store.close()


def test_scrapes_follow_the_live_counters(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    with SessionStore(f"diskcache://{tmp_path}", dict) as store:
        collector = register_prometheus(store, registry=registry)
        before = _value(_samples(registry), "session_store_writes_total", tier="0")
        store.save("a", {"x": 1})
        after = _value(_samples(registry), "session_store_writes_total", tier="0")
        registry.unregister(collector)
    assert (before, after) == (0, 1)
    assert "session_store_writes_total" not in generate_latest(registry).decode()


def test_secrets_never_reach_the_labels(tmp_path: Path, redis_url: str) -> None:
    url = redis_url.replace("redis://", "redis://:hunter2@")
    registry = CollectorRegistry()
    store = SessionStore(f"memory:// | {url}", dict)
    register_prometheus(store, registry=registry)
    text = generate_latest(registry).decode()
    assert "hunter2" not in text and "session_store_tier_up" in text
    store.close()
