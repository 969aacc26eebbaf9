"""What the legacy reader repaired or kept (``legacyjson.LEGACY_COUNTERS``: non-finite floats
read as ``None``, lone surrogates read as U+FFFD, ints beyond 64 bits that cannot be saved) is
exported with every other counter: ``snapshot`` / ``SessionStore.metrics()``, the Prometheus
collector and the OpenTelemetry instruments. Before, only the process's own code could read
them, and an operator had no way to see legacy sessions that will refuse a save."""

from __future__ import annotations

import json
import math
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from session_store import MemoryBackend, SessionStore
from session_store.codec import Codec, legacyjson
from session_store.metrics import snapshot
from session_store.metrics.otel import instrument_otel
from session_store.metrics.prometheus import register_prometheus


def _store_with_legacy_sessions() -> SessionStore[Any]:
    backend = MemoryBackend()
    backend.set("nan", json.dumps({"score": math.nan, "rate": math.inf}).encode())
    backend.set("cut", json.dumps({"title": "deck \ud83d"}).encode())
    backend.set("big", json.dumps({"id": 2**100}).encode())
    return SessionStore(backend, codec=Codec(encryption=None, legacy_schema="dict"))


def _load_all(store: SessionStore[Any]) -> dict[str, int]:
    """Load the three legacy sessions; the counters' increase."""
    before = legacyjson.LEGACY_COUNTERS.as_dict()
    for key in ("nan", "cut", "big"):
        assert store.load(key) is not None
    after = legacyjson.LEGACY_COUNTERS.as_dict()
    increase = {name: after[name] - before[name] for name in after}
    assert increase == {
        "non_finite_floats": 2,
        "sessions_with_non_finite": 1,
        "lone_surrogates": 1,
        "sessions_with_lone_surrogates": 1,
        "ints_beyond_64_bits": 1,
        "sessions_with_ints_beyond_64_bits": 1,
    }
    return after


def test_the_snapshot_and_store_metrics_hold_the_legacy_counters() -> None:
    store = _store_with_legacy_sessions()
    after = _load_all(store)
    assert snapshot(store)["legacy"] == after
    assert store.metrics()["legacy"] == after


def test_prometheus_exports_the_legacy_counters() -> None:
    store = _store_with_legacy_sessions()
    registry = CollectorRegistry()
    register_prometheus(store, name="app", registry=registry)
    after = _load_all(store)
    text = generate_latest(registry).decode()
    samples = {
        sample.name: (sample.value, sample.labels)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("session_store_legacy_")
    }
    for name, value in after.items():
        assert samples[f"session_store_legacy_{name}_total"] == (value, {"store": "app"})


def test_opentelemetry_exports_the_legacy_counters() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    store = _store_with_legacy_sessions()
    instrument_otel(store, name="app", meter_provider=provider)
    after = _load_all(store)
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[tuple[Any, dict[str, Any]]]] = {
        metric.name: [(p.value, dict(p.attributes or {})) for p in metric.data.data_points]  # type: ignore[union-attr]
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    for name, value in after.items():
        assert found[f"session_store.legacy.{name}"] == [(value, {"store": "app"})]


def test_the_async_store_reports_the_legacy_counters_too() -> None:
    """``AsyncSessionStore.metrics()`` carries the same ``legacy`` entry as the sync store's:
    the counters are process-wide, so an async app sees what its loads repaired or kept."""
    import asyncio

    from session_store.aio import AsyncSessionStore

    async def main() -> dict[str, Any]:
        store: AsyncSessionStore[Any] = AsyncSessionStore(
            "memory://", codec=Codec(encryption=None, legacy_schema="dict")
        )
        await store.backend.set("nan", json.dumps({"score": math.nan}).encode())
        assert await store.load("nan") == {"score": None}
        return store.metrics()

    metrics = asyncio.run(main())
    assert metrics["legacy"] == legacyjson.LEGACY_COUNTERS.as_dict()
    assert metrics["legacy"]["non_finite_floats"] >= 1
