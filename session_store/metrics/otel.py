"""OpenTelemetry export: observable instruments over a store's counters (extra ``otel``).

::

    from opentelemetry import metrics
    from session_store.metrics.otel import instrument_otel

    instrument_otel(store, name="sessions")          # once, at start-up

Only the OpenTelemetry API is needed here; the SDK (or any other implementation) the
application installed decides where the numbers go. Every collection reads the live counters
through callbacks: nothing runs on the hot path. Instruments (attributes ``store``, ``tier``:
``0``, ``1``, ... or ``chain``, and ``backend``: the redacted description):

* ``session_store.<counter>`` (observable counters): hits, misses, writes, deletes, errors,
  evictions, fallbacks, promotions;
* ``session_store.operations`` (observable counter, attribute ``operation``): calls timed per tier;
* ``session_store.operation.duration`` (observable gauge, seconds, attributes ``operation`` and
  ``quantile`` = ``p50`` / ``p90`` / ``p99``): latency percentiles per tier, exact to a factor
  of two (OpenTelemetry has no asynchronous histogram; the Prometheus exporter gives the buckets);
* ``session_store.tier.up`` (observable gauge): 1 while a tier serves, 0 while it is down;
* for a :class:`~session_store.dataroom.SessionManager`: ``session_store.sessions.created``,
  ``.updated``, ``.deleted``, ``.with_vision_data`` and ``session_store.processing_cost`` (USD);
* ``session_store.legacy.<counter>`` (observable counters, attribute ``store`` only): the legacy
  JSON reader's process-wide counters (:data:`session_store.metrics.LEGACY_HELP`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Instrument, Meter, Observation

from session_store.counters import COUNTER_NAMES
from session_store.metrics import (
    LEGACY_COUNTERS,
    LEGACY_HELP,
    SESSIONS,
    Source,
    resolve_backend,
    sources,
)

__all__ = ["OtelInstruments", "instrument_otel"]

_QUANTILES = ("p50", "p90", "p99")
_SESSION_COUNTERS = {
    "sessions_created": "sessions.created",
    "sessions_updated": "sessions.updated",
    "sessions_deleted": "sessions.deleted",
    "sessions_with_vision_data": "sessions.with_vision_data",
}


@dataclass
class OtelInstruments:
    """The instruments :func:`instrument_otel` created (kept alive while this object is)."""

    meter: Meter
    instruments: list[Instrument] = field(default_factory=list)


def instrument_otel(
    target: Any,
    *,
    name: str = "default",
    meter: Meter | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> OtelInstruments:
    """Create observable instruments reading ``target``'s counters.

    Args:
        target: a :class:`SessionStore`, a :class:`SessionManager` or a backend.
        name: the ``store`` attribute, to tell several stores in one process apart.
        meter: the meter to create them on (default: ``session_store`` from ``meter_provider``,
            else from the global provider).
    """
    resolve_backend(target)  # fail now, not at the first collection
    if meter is None:
        provider = meter_provider or metrics.get_meter_provider()
        meter = provider.get_meter("session_store")

    def attributes(source: Source, **more: str) -> dict[str, str]:
        return {"store": name, "tier": source.tier, "backend": source.backend, **more}

    def tiers() -> list[Source]:
        return [s for s in sources(target) if s.tier != SESSIONS]

    def counter_callback(counter: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(source.counters.as_dict().get(counter, 0), attributes(source))
                for source in tiers()
            ]

        return observe

    def operations(_options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(int(stats["count"]), attributes(source, operation=op))
            for source in tiers()
            for op, stats in sorted(source.counters.latency().items())
        ]

    def durations(_options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(stats[q], attributes(source, operation=op, quantile=q))
            for source in tiers()
            for op, stats in sorted(source.counters.latency().items())
            for q in _QUANTILES
        ]

    def up(_options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(1 if source.up else 0, attributes(source))
            for source in tiers()
            if source.up is not None
        ]

    made = OtelInstruments(meter)
    for counter in COUNTER_NAMES:
        made.instruments.append(
            meter.create_observable_counter(
                f"session_store.{counter}", [counter_callback(counter)], unit="1"
            )
        )
    made.instruments.append(
        meter.create_observable_counter("session_store.operations", [operations], unit="1")
    )
    made.instruments.append(
        meter.create_observable_gauge("session_store.operation.duration", [durations], unit="s")
    )
    made.instruments.append(meter.create_observable_gauge("session_store.tier.up", [up]))

    def legacy_callback(counter: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(LEGACY_COUNTERS.get(counter), {"store": name})]

        return observe

    for counter, doc in LEGACY_HELP.items():
        made.instruments.append(
            meter.create_observable_counter(
                f"session_store.legacy.{counter}",
                [legacy_callback(counter)],
                unit="1",
                description=doc,
            )
        )

    session_sources = [s for s in sources(target) if s.tier == SESSIONS]
    if session_sources:
        session = session_sources[0]
        labels = {"store": name, "backend": session.backend}

        def session_callback(counter: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
            def observe(_options: CallbackOptions) -> Iterable[Observation]:
                return [Observation(session.counters.get(counter), labels)]

            return observe

        for counter, instrument in _SESSION_COUNTERS.items():
            made.instruments.append(
                meter.create_observable_counter(
                    f"session_store.{instrument}", [session_callback(counter)], unit="1"
                )
            )

        def cost(_options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(session.counters.get("processing_cost_nano_usd") / 1e9, labels)]

        made.instruments.append(
            meter.create_observable_counter("session_store.processing_cost", [cost], unit="USD")
        )
    return made
