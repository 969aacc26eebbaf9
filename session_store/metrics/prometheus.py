"""Prometheus export: a ``prometheus_client`` collector over a store's counters (extra
``prometheus``).

::

    from prometheus_client import REGISTRY
    from session_store.metrics.prometheus import register_prometheus

    register_prometheus(store, name="sessions")          # once, at start-up

Every scrape reads the live counters (nothing is copied in between, nothing costs anything on
the hot path). Families, each labelled ``store`` (the ``name`` given), ``tier`` (``0``, ``1``,
..., or ``chain`` for a tiered backend's totals) and ``backend`` (the redacted description):

* ``session_store_<counter>_total`` for hits, misses, writes, deletes, errors, evictions,
  fallbacks, promotions;
* ``session_store_operation_duration_seconds``: a histogram per tier and ``operation``
  (``get_with_ttl``, ``write``, ``set_if``, ...), the tiered backend's timings of each tier call;
* ``session_store_tier_up``: 1 while the tier serves, 0 while it is down or fenced;
* for a :class:`~session_store.dataroom.SessionManager`: ``session_store_sessions_created_total``,
  ``..._updated_total``, ``..._deleted_total``, ``..._with_vision_data_total``,
  ``session_store_processing_cost_usd_total``, and ``session_store_session_size_bytes`` (the sum
  and count of the sampled payload sizes, as a summary);
* ``session_store_legacy_<counter>_total``, labelled ``store`` only: the legacy JSON reader's
  process-wide counters (:data:`session_store.metrics.LEGACY_HELP`), the same under every store.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import REGISTRY, CollectorRegistry

from session_store.counters import COUNTER_NAMES, LATENCY_BUCKETS
from session_store.metrics import (
    LEGACY_COUNTERS,
    LEGACY_HELP,
    SESSIONS,
    Source,
    resolve_backend,
    sources,
)

__all__ = ["SessionStoreCollector", "register_prometheus"]

_LABELS = ("store", "tier", "backend")
_HELP = {
    "hits": "Key lookups that found a value.",
    "misses": "Key lookups that found nothing.",
    "writes": "Values written.",
    "deletes": "Keys deleted.",
    "errors": "Operations that failed.",
    "evictions": "Entries dropped to respect a bound.",
    "fallbacks": "Operations served without a tier that was down.",
    "promotions": "Values copied into a faster tier.",
}
_SESSION_COUNTERS = {
    "sessions_created": "Stores that created a session.",
    "sessions_updated": "Stores that replaced a session.",
    "sessions_deleted": "Deletes that removed a session.",
    "sessions_with_vision_data": "Sessions that gained vision data.",
}
_NANO = 1_000_000_000
_BOUNDS = [repr(bound) for bound in LATENCY_BUCKETS]  # the `le` label values


class SessionStoreCollector:
    """A custom collector reading the counters of a store, session manager or backend.

    Args:
        target: a :class:`SessionStore`, a :class:`SessionManager` or a backend.
        name: the ``store`` label, to tell several stores in one process apart.
        namespace: the metric name prefix.
    """

    def __init__(self, target: Any, *, name: str = "default", namespace: str = "session_store"):
        resolve_backend(target)  # fail now, not at the first scrape
        self.target = target
        self.name = name
        self.namespace = namespace

    def describe(self) -> list[Metric]:
        """Nothing: the families depend on the tiers, so the registry collects to describe."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The families of the module docstring, read from the live counters."""
        found = sources(self.target)
        tiers = [s for s in found if s.tier != SESSIONS]
        yield from self._counters(tiers)
        yield self._latency(tiers)
        yield self._up(tiers)
        for source in found:
            if source.tier == SESSIONS:
                yield from self._sessions(source)
        yield from self._legacy()

    def _labels(self, source: Source) -> list[str]:
        return [self.name, source.tier, source.backend]

    def _counters(self, tiers: list[Source]) -> Iterator[Metric]:
        values = [(source, source.counters.as_dict()) for source in tiers]
        for counter in COUNTER_NAMES:
            family = CounterMetricFamily(
                f"{self.namespace}_{counter}", _HELP[counter], labels=_LABELS
            )
            for source, counts in values:
                family.add_metric(self._labels(source), counts.get(counter, 0))
            yield family

    def _latency(self, tiers: list[Source]) -> Metric:
        family = HistogramMetricFamily(
            f"{self.namespace}_operation_duration_seconds",
            "Time of each call to a tier, by operation.",
            labels=(*_LABELS, "operation"),
        )
        for source in tiers:
            for operation, (counts, total) in sorted(source.counters.latency_histograms().items()):
                cumulative, buckets = 0, []
                for bound, count in zip(_BOUNDS, counts, strict=False):
                    cumulative += count
                    buckets.append((bound, float(cumulative)))
                buckets.append(("+Inf", float(sum(counts))))
                family.add_metric([*self._labels(source), operation], buckets, total)
        return family

    def _up(self, tiers: list[Source]) -> Metric:
        family = GaugeMetricFamily(
            f"{self.namespace}_tier_up", "1 while the tier serves, 0 while down.", labels=_LABELS
        )
        for source in tiers:
            if source.up is not None:
                family.add_metric(self._labels(source), 1.0 if source.up else 0.0)
        return family

    def _legacy(self) -> Iterator[Metric]:
        counts = LEGACY_COUNTERS.as_dict()
        for counter, doc in LEGACY_HELP.items():
            family = CounterMetricFamily(
                f"{self.namespace}_legacy_{counter}", doc, labels=("store",)
            )
            family.add_metric([self.name], counts[counter])
            yield family

    def _sessions(self, source: Source) -> Iterator[Metric]:
        counts = source.counters.as_dict()
        labels = ("store", "backend")
        values = [self.name, source.backend]
        for counter, doc in _SESSION_COUNTERS.items():
            family = CounterMetricFamily(f"{self.namespace}_{counter}", doc, labels=labels)
            family.add_metric(values, counts[counter])
            yield family
        cost = CounterMetricFamily(
            f"{self.namespace}_processing_cost_usd", "Money spent on extraction.", labels=labels
        )
        cost.add_metric(values, counts["processing_cost_nano_usd"] / _NANO)
        yield cost
        size = SummaryMetricFamily(
            f"{self.namespace}_session_size_bytes",
            "Sizes of the sampled stored payloads.",
            labels=labels,
        )
        size.add_metric(values, counts["size_samples"], counts["size_bytes_sampled"])
        yield size


def register_prometheus(
    target: Any,
    *,
    name: str = "default",
    registry: CollectorRegistry | None = None,
    namespace: str = "session_store",
) -> SessionStoreCollector:
    """Register a :class:`SessionStoreCollector` for ``target`` (default: the global registry).

    Returns the collector, for ``registry.unregister(collector)``.
    """
    collector = SessionStoreCollector(target, name=name, namespace=namespace)
    (REGISTRY if registry is None else registry).register(collector)
    return collector
