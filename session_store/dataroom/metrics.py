"""``SessionMetrics``: what the data-room plan monitors, counted correctly.

The plan counted every store as a created session and added a session's whole processing cost
again on each update. Here a store is counted as **created** when no session was stored under
the key before it, and as **updated** otherwise, and the other counters measure changes, so a
session stored ten times is counted once where it should be:

``total_sessions_created`` / ``total_sessions_updated`` / ``total_sessions_deleted``
    Stores that created a session, stores that replaced one, deletes that removed one.
``sessions_with_vision_data``
    Stores after which the session held vision extractions while it held none before (a session
    created with vision data, or an update that brought the first vision data). A session that
    keeps its vision data through many updates is counted once.
``total_processing_cost``
    Money spent on extraction, in USD: per store, for each document, how much its
    ``processing_cost`` grew over the stored one (a new document: its whole cost; an
    unchanged one: nothing; a lower cost: nothing).
``average_session_size``
    Mean size in bytes of stored payloads (what the backend holds: compressed, encrypted).
    Measuring needs the payload's length, and ``SessionStore`` encodes inside ``update``
    without reporting it, so a size costs a second encode. To keep that off the hot path, one
    store in ``size_sample_every`` (the first one included) is measured; ``size_samples`` says
    how many were. ``size_sample_every=1`` measures every store, ``0`` none.

Every counter covers the stores made through one :class:`~session_store.dataroom.SessionManager` in
this process since it was made, through any of its paths: ``store_enhanced_session`` and the
:class:`~session_store.SessionMapping` it hands out (``manager.user_sessions()``), whose writes
that create a session count as created. ``session_stats`` is the plan's attribute: the same
snapshot as :meth:`SessionMetrics.as_dict`. The counts live in a
:class:`~session_store.counters.Counters` (``SessionMetrics.counters``, names in
:data:`DATAROOM_COUNTER_NAMES`), the machinery the backends count with, so
:func:`session_store.metrics.snapshot` and the Prometheus and OpenTelemetry exporters serve them
beside the per-tier counters. Money is counted in whole nano-dollars
(``processing_cost_nano_usd``), so that every counter is an exact integer; the
``total_processing_cost`` of :meth:`SessionMetrics.as_dict` is that in USD. Thread-safe: one lock
guards all counters (shared with the ``Counters``), and nothing slow runs under it.
"""

from __future__ import annotations

import threading
from typing import Any

from session_store import forksafe
from session_store.counters import Counters
from session_store.dataroom.quality import extraction_results, has_vision_extractions, number
from session_store.schema.dataroom import EnhancedSessionData

__all__ = ["DATAROOM_COUNTER_NAMES", "NANO_USD", "SessionMetrics", "cost_added"]

#: The counters a :class:`SessionMetrics` keeps (all monotonic integers).
DATAROOM_COUNTER_NAMES = (
    "sessions_created",
    "sessions_updated",
    "sessions_deleted",
    "sessions_with_vision_data",
    "processing_cost_nano_usd",
    "stores_seen",
    "size_bytes_sampled",
    "size_samples",
)

#: Nano-dollars per US dollar: the unit ``processing_cost_nano_usd`` counts in.
NANO_USD = 1_000_000_000


def cost_added(previous: EnhancedSessionData | None, stored: EnhancedSessionData) -> float:
    """The processing cost ``stored`` adds over ``previous``: per document id, the growth of
    ``processing_cost`` (never negative), summed."""
    before = {} if previous is None else extraction_results(previous)
    total = 0.0
    for doc_id, result in extraction_results(stored).items():
        old = before.get(doc_id)
        growth = number(result.get("processing_cost")) - (
            0.0 if old is None else number(old.get("processing_cost"))
        )
        total += max(0.0, growth)
    return total


class SessionMetrics:
    """Counters of the stores, updates and deletes made through one session manager.

    Args:
        size_sample_every: measure the payload size of one store in this many (``0``: never).

    Attributes:
        counters: the raw counts (:data:`DATAROOM_COUNTER_NAMES`), what exporters read.
    """

    def __init__(self, *, size_sample_every: int = 16) -> None:
        if isinstance(size_sample_every, bool) or not isinstance(size_sample_every, int):
            raise TypeError("size_sample_every must be an int")
        if size_sample_every < 0:
            raise ValueError("size_sample_every must be >= 0")
        self.size_sample_every = size_sample_every
        self._lock = threading.Lock()
        self.counters = Counters(self._lock, names=DATAROOM_COUNTER_NAMES)
        forksafe.register(self)

    def _reset_locks(self) -> None:
        """In a forked child: a new, released lock, shared again with the counters."""
        self._lock = threading.Lock()
        self.counters._lock = self._lock

    def __repr__(self) -> str:
        return f"SessionMetrics({self.as_dict()!r})"

    def claim_size_sample(self) -> bool:
        """Whether the next store should have its payload size measured (one in
        ``size_sample_every``, counting every call)."""
        with self._lock:
            seen = self.counters.get("stores_seen")
            self.counters.add_held("stores_seen")
        return self.size_sample_every > 0 and seen % self.size_sample_every == 0

    def record_store(
        self,
        previous: EnhancedSessionData | None,
        stored: EnhancedSessionData,
        *,
        size_bytes: int | None = None,
    ) -> None:
        """Count one store that replaced ``previous`` (``None``: created) with ``stored``.

        Args:
            size_bytes: the stored payload's length, if it was measured.
        """
        gained_vision = has_vision_extractions(stored) and not (
            previous is not None and has_vision_extractions(previous)
        )
        cost = round(cost_added(previous, stored) * NANO_USD)
        counters = self.counters
        with self._lock:
            counters.add_held("sessions_created" if previous is None else "sessions_updated")
            if gained_vision:
                counters.add_held("sessions_with_vision_data")
            if cost:
                counters.add_held("processing_cost_nano_usd", cost)
            if size_bytes is not None:
                counters.add_held("size_bytes_sampled", size_bytes)
                counters.add_held("size_samples")

    def record_delete(self) -> None:
        """Count one delete that removed a session."""
        self.counters.add("sessions_deleted")

    @property
    def session_stats(self) -> dict[str, Any]:
        """The plan's ``session_stats``: its four keys (``total_sessions_created``,
        ``sessions_with_vision_data``, ``total_processing_cost``, ``average_session_size``)
        and ours (updated and deleted sessions, size samples), a fresh snapshot each read."""
        return self.as_dict()

    def as_dict(self) -> dict[str, Any]:
        """A consistent snapshot of every counter (the plan's key names, plus the new ones)."""
        raw = self.counters.as_dict()
        samples = raw["size_samples"]
        return {
            "total_sessions_created": raw["sessions_created"],
            "total_sessions_updated": raw["sessions_updated"],
            "total_sessions_deleted": raw["sessions_deleted"],
            "sessions_with_vision_data": raw["sessions_with_vision_data"],
            "total_processing_cost": raw["processing_cost_nano_usd"] / NANO_USD,
            "average_session_size": raw["size_bytes_sampled"] / samples if samples else 0.0,
            "size_samples": samples,
        }
