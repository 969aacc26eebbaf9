"""Metrics count created and updated sessions apart, vision sessions once, cost spent once, and
the size of what is stored."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from session_store.dataroom import SessionManager, SessionMetrics
from session_store.samples import legacy_sessions
from session_store.schema.dataroom import EnhancedSessionData
from session_store.store import SessionStore

from .test_dataroom_quality import SESSION_A

LEGACY = legacy_sessions()["U080651318"]


def test_create_then_update_counts_one_of_each(manager: SessionManager) -> None:
    manager.store_enhanced_session("u1", LEGACY)
    manager.store_enhanced_session("u1", LEGACY)
    metrics = manager.get_metrics()
    assert metrics["total_sessions_created"] == 1
    assert metrics["total_sessions_updated"] == 1
    assert metrics["sessions_with_vision_data"] == 0
    assert "memory://" in metrics["backend"]


def test_vision_and_cost_counted_once(manager: SessionManager) -> None:
    manager.store_enhanced_session("a", SESSION_A)  # d1 costs 0.05, d3 0.07
    manager.store_enhanced_session("a", SESSION_A)  # the same results again: nothing spent
    more: dict[str, Any] = dict(SESSION_A)
    more["extraction_results"] = dict(
        SESSION_A["extraction_results"],
        d4={"document_id": "d4", "filename": "d4.pdf", "processing_cost_usd": 0.03},
    )
    manager.store_enhanced_session("a", more)
    manager.store_enhanced_session("b", LEGACY)  # no vision, no cost
    metrics = manager.get_metrics()
    assert metrics["total_sessions_created"] == 2
    assert metrics["total_sessions_updated"] == 2
    assert metrics["sessions_with_vision_data"] == 1
    assert metrics["total_processing_cost"] == pytest.approx(0.05 + 0.07 + 0.03)


def test_average_size_is_the_stored_payload_size(
    manager: SessionManager, store: SessionStore[EnhancedSessionData]
) -> None:
    sizes = []
    for user_id, session in legacy_sessions().items():
        manager.store_enhanced_session(user_id, session)
        sizes.append(len(store.backend.get(user_id) or b""))
    metrics = manager.get_metrics()
    assert metrics["size_samples"] == len(sizes)
    assert metrics["average_session_size"] == pytest.approx(sum(sizes) / len(sizes))


def test_size_is_sampled(store: SessionStore[EnhancedSessionData]) -> None:
    manager = SessionManager(store, size_sample_every=3)
    for n in range(5):
        manager.store_enhanced_session(f"u{n}", LEGACY)
    assert manager.get_metrics()["size_samples"] == 2  # stores 0 and 3
    unmeasured = SessionManager(store, size_sample_every=0)
    unmeasured.store_enhanced_session("u0", LEGACY)
    assert unmeasured.get_metrics()["size_samples"] == 0
    assert unmeasured.get_metrics()["average_session_size"] == 0.0


def test_concurrent_stores_create_once(manager: SessionManager) -> None:
    threads = 8
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def store(n: int) -> None:
        try:
            barrier.wait()
            manager.store_enhanced_session("shared", dict(LEGACY, writer=n))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=store, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    metrics = manager.get_metrics()
    assert metrics["total_sessions_created"] == 1
    assert metrics["total_sessions_updated"] == threads - 1


def test_metrics_are_thread_safe() -> None:
    metrics = SessionMetrics(size_sample_every=1)
    session = EnhancedSessionData(user_id="u")

    def record() -> None:
        for _ in range(500):
            metrics.record_store(None, session, size_bytes=10)
            metrics.record_store(session, session)
            metrics.record_delete()

    workers = [threading.Thread(target=record) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    snapshot = metrics.as_dict()
    assert snapshot["total_sessions_created"] == 2000
    assert snapshot["total_sessions_updated"] == 2000
    assert snapshot["total_sessions_deleted"] == 2000
    assert snapshot["average_session_size"] == 10.0


def test_bad_sample_rate() -> None:
    with pytest.raises(ValueError, match="size_sample_every"):
        SessionMetrics(size_sample_every=-1)
