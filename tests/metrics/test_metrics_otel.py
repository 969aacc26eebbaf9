"""The OpenTelemetry instruments, collected through the real SDK's InMemoryMetricReader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from session_store import SessionStore
from session_store.dataroom import SessionManager
from session_store.metrics.otel import instrument_otel
from session_store.samples import legacy_sessions
from session_store.schema import EnhancedSessionData


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def _one(points: dict[str, list[Any]], name: str, **attributes: str) -> Any:
    matches = [p for p in points[name] if attributes.items() <= dict(p.attributes).items()]
    assert len(matches) == 1, (name, attributes, matches)
    return matches[0].value


def test_instruments_report_tiers_latency_and_sessions(tmp_path: Path) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    store = SessionStore(f"memory://?max_entries=2 | diskcache://{tmp_path}", EnhancedSessionData)
    manager = SessionManager(store)
    instrument_otel(manager, name="rooms", meter_provider=provider)
    sessions = legacy_sessions()
    for user_id, data in sessions.items():
        manager.store_enhanced_session(user_id, data)
    for user_id in sessions:
        manager.get_enhanced_session(user_id)

    points = _points(reader)
    assert _one(points, "session_store.evictions", store="rooms", tier="0") >= 2
    assert _one(points, "session_store.hits", tier="1") >= 2
    assert _one(points, "session_store.promotions", tier="chain") >= 2
    assert _one(points, "session_store.tier.up", tier="1") == 1
    reads = {"tier": "1", "operation": "get_with_ttl"}
    assert _one(points, "session_store.operations", **reads) >= len(sessions)
    p50 = _one(points, "session_store.operation.duration", **reads, quantile="p50")
    p99 = _one(points, "session_store.operation.duration", **reads, quantile="p99")
    assert 0 < p50 <= p99
    assert _one(points, "session_store.sessions.created", store="rooms") == len(sessions)
    assert _one(points, "session_store.processing_cost", store="rooms") >= 0

    store.save("extra", manager.get_enhanced_session(next(iter(sessions))))  # type: ignore[arg-type]
    again = _points(reader)
    assert _one(again, "session_store.writes", tier="chain") == len(sessions) + 1
    provider.shutdown()
    store.close()
