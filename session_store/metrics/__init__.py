"""Metrics: per-tier counters and latency percentiles, as a plain dict, and their exporters.

Every backend keeps a :class:`~session_store.counters.Counters` (hits, misses, writes, deletes,
errors, evictions, fallbacks, promotions); a tiered backend keeps one for the chain as a whole
and times every call it makes to a tier into that tier's latency histogram. This module reads
them; it never changes what is counted, and costs nothing until it is called.

* :func:`snapshot` ``(store | backend | manager) -> dict``: everything, JSON-ready, for logs,
  health endpoints and the ``session-store stats`` command.
* :func:`sources`: the same, as labelled :class:`Source` objects, for exporters.
* :data:`LEGACY_HELP`: the process-wide counters of the legacy JSON reader
  (:data:`session_store.codec.legacyjson.LEGACY_COUNTERS`: values it repaired or kept), which
  :func:`snapshot` and both exporters give beside the tiers.
* :mod:`session_store.metrics.prometheus` (extra ``prometheus``): a collector for
  ``prometheus_client``.
* :mod:`session_store.metrics.otel` (extra ``otel``): observable instruments on an OpenTelemetry
  meter.

Latency percentiles are the upper bounds of power-of-two buckets from 1 µs (see
:meth:`Counters.latency`): exact to a factor of two.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from session_store.backend import SessionBackend
from session_store.codec.legacyjson import LEGACY_COUNTERS
from session_store.counters import Counters

__all__ = [
    "CHAIN",
    "LEGACY_COUNTERS",
    "LEGACY_HELP",
    "SESSIONS",
    "Source",
    "format_seconds",
    "resolve_backend",
    "snapshot",
    "sources",
]

log = logging.getLogger(__name__)

#: The ``tier`` label of a tiered backend's own counters (the chain as a whole).
CHAIN = "chain"
#: The ``tier`` label of a session manager's data-room counters.
SESSIONS = "sessions"

#: The legacy reader's counters (process-wide: every store of the process reads legacy JSON
#: through the same reader), each with what it counts. Non-zero ``ints_beyond_64_bits`` means
#: sessions whose save is refused until the application converts the value.
LEGACY_HELP = {
    "non_finite_floats": "Legacy NaN or infinity values read as None.",
    "sessions_with_non_finite": "Legacy payloads that held NaN or infinity.",
    "lone_surrogates": "Legacy strings whose lone surrogates were read as U+FFFD.",
    "sessions_with_lone_surrogates": "Legacy payloads that held a lone surrogate.",
    "ints_beyond_64_bits": "Legacy ints beyond 64 bits, read exactly (a save of them is refused).",
    "sessions_with_ints_beyond_64_bits": "Legacy payloads that held an int beyond 64 bits.",
}


@dataclass(frozen=True)
class Source:
    """One set of counters and the labels that say whose they are.

    Attributes:
        tier: ``"0"``, ``"1"``, ... for the tiers (fastest first; a plain backend is tier
            ``"0"``), :data:`CHAIN` for a tiered backend's totals, :data:`SESSIONS` for the
            data-room counters of a session manager.
        backend: the redacted description (never a password or a key).
        counters: the live counters.
        up: whether the tier is serving (``None`` where that does not apply).
        state: the tiered backend's view of the tier (``down``, ``fenced``, ``missed``), if any.
    """

    tier: str
    backend: str
    counters: Counters
    up: bool | None = None
    state: Mapping[str, Any] | None = None


def resolve_backend(target: Any) -> SessionBackend:
    """The backend behind a :class:`SessionStore`, a :class:`SessionManager` or a backend.

    Raises:
        TypeError: ``target`` is none of those.
    """
    if isinstance(target, SessionBackend):
        return target
    store = getattr(target, "store", None)  # a SessionManager
    backend = getattr(store if store is not None else target, "backend", None)
    if isinstance(backend, SessionBackend):
        return backend
    raise TypeError(
        f"expected a SessionStore, SessionManager or SessionBackend, got {type(target).__name__}"
    )


def sources(target: Any) -> list[Source]:
    """The counters of ``target``: one :class:`Source` per tier, the chain, the sessions."""
    from session_store.tiered import TieredBackend

    backend = resolve_backend(target)
    found: list[Source] = []
    if isinstance(backend, TieredBackend):
        states = backend.tier_states()
        for index, (tier, state) in enumerate(zip(backend.tiers, states, strict=True)):
            view: dict[str, Any] = {
                name: state[name] for name in ("down", "fenced", "missed") if name in state
            }
            up = not (view.get("down") or view.get("fenced"))
            found.append(Source(str(index), tier.describe(), tier.counters, up, view))
        found.append(Source(CHAIN, backend.describe(), backend.counters))
    else:
        found.append(Source("0", backend.describe(), backend.counters, True))
    metrics = getattr(target, "metrics", None)  # a SessionManager's SessionMetrics
    counters = getattr(metrics, "counters", None)
    if isinstance(counters, Counters):
        found.append(Source(SESSIONS, backend.describe(), counters))
    return found


def _tier_entry(source: Source) -> dict[str, Any]:
    entry: dict[str, Any] = {"tier": int(source.tier), "backend": source.backend, "up": source.up}
    if source.state is not None:
        entry.update(source.state)
    entry["counters"] = source.counters.as_dict()
    entry["latency"] = source.counters.latency()
    return entry


def snapshot(target: Any) -> dict[str, Any]:
    """Every counter of ``target`` as a plain, JSON-ready dict.

    Keys: ``backend`` (redacted), ``tiers`` (per tier, fastest first: ``tier``, ``backend``,
    ``up``, for a chain ``down`` / ``fenced`` / ``missed``, then ``counters`` and ``latency``
    per operation with ``count`` / ``p50`` / ``p90`` / ``p99`` in seconds), ``chain`` (a tiered
    backend's own counters, else ``None``) and, for a session manager, ``sessions`` (its
    data-room counters, as ``SessionMetrics.as_dict``) and ``legacy`` (the legacy JSON reader's
    process-wide counters: :data:`LEGACY_HELP`).
    """
    backend = resolve_backend(target)
    result: dict[str, Any] = {"backend": backend.describe(), "tiers": [], "chain": None}
    for source in sources(target):
        if source.tier == CHAIN:
            result["chain"] = source.counters.as_dict()
        elif source.tier == SESSIONS:
            as_dict = getattr(getattr(target, "metrics", None), "as_dict", None)
            result["sessions"] = as_dict() if callable(as_dict) else source.counters.as_dict()
        else:
            result["tiers"].append(_tier_entry(source))
    result["legacy"] = LEGACY_COUNTERS.as_dict()
    return result


def format_seconds(seconds: float) -> str:
    """A duration for people: ``850 ns``, ``12.0 µs``, ``3.40 ms``, ``1.20 s``."""
    if seconds <= 0:
        return "-"
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"
