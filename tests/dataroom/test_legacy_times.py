"""A legacy session's ``created_at`` and ``last_accessed`` are what its data records, never the
time it happened to be loaded (issue: "a legacy ``created_at`` is invented").

The rule (``session_store.schema.builtin.legacy_times``): ``created_at`` is the oldest event
time the legacy data records, ``last_accessed`` the newest; a legacy session that records none
has both unknown, ``None``, kept so by every later write (a write stamps ``last_accessed``
only). A session the application creates now (a dict handed to the manager) is created now.

Before the fix a legacy session without ``analysis_timestamp`` got the time of loading, a
different one at every load, and stored it as its creation time at the first write (see the
commit message for the run that showed these tests failing).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from session_store import MemoryBackend, SessionStore
from session_store.codec import Codec
from session_store.codec.legacy import PlanJsonCodec
from session_store.dataroom import SessionManager
from session_store.samples import legacy_sessions
from session_store.schema.builtin import dataroom_v0_to_v1, legacy_times
from session_store.schema.dataroom import EnhancedSessionData, naive_utc

from . import plan_reference as plan


def _manager(backend: MemoryBackend) -> SessionManager:
    return SessionManager(SessionStore(backend, EnhancedSessionData, codec=Codec(encryption=None)))


def _untimed() -> dict[str, Any]:
    """A real-shaped legacy session that records no time: the fixture without its
    ``analysis_timestamp`` (the app stored documents before any analysis ran)."""
    session = legacy_sessions()["U095822412"]
    del session["analysis_timestamp"]
    return session


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_legacy_session_without_a_time_has_an_unknown_creation_time() -> None:
    backend = MemoryBackend()
    backend.set("U1", json.dumps(_untimed()).encode())
    manager = _manager(backend)
    first = manager.get_enhanced_session("U1")
    second = manager.get_enhanced_session("U1")
    assert first is not None and second is not None
    assert first.created_at is None and first.last_accessed is None
    assert first == second  # the same at every load, not the time of loading
    report = manager.get_comprehensive_analysis_data("U1")
    assert report["session_created"] is None  # no false creation date in a report


def test_the_unknown_creation_time_survives_the_stores_writes() -> None:
    """``save``, ``update`` and the mapping store what they loaded: unknown stays unknown;
    a write is an access, so ``last_accessed`` is stamped (and true)."""
    backend = MemoryBackend()
    backend.set("U1", json.dumps(_untimed()).encode())
    manager = _manager(backend)
    session = manager.get_enhanced_session("U1")
    assert session is not None
    assert session.to_dict()["created_at"] is None  # the session's dict says it is unknown
    saved = manager.store.save("U1", session)
    assert saved.created_at is None and saved.last_accessed is not None
    manager.user_sessions()["U1"]["test_mode"] = True
    updated = manager.store.update("U1", lambda current: current)
    assert updated is not None and updated.created_at is None
    reloaded = manager.get_enhanced_session("U1")
    assert reloaded is not None and reloaded.created_at is None
    assert reloaded.extra["test_mode"] is True


def test_the_plans_store_gives_an_unknown_creation_time_the_oldest_recorded_or_now() -> None:
    """``store_enhanced_session`` keeps the plan's contract (every session it stores has a
    ``created_at``, "from the dict or now"): an unknown one becomes the oldest time the
    app's dict records, else the time of that store; later stores keep it."""
    backend = MemoryBackend()
    backend.set("U1", json.dumps(_untimed()).encode())
    backend.set("U2", json.dumps(_untimed()).encode())
    manager = _manager(backend)
    before = datetime.now(UTC)
    session = manager.get_enhanced_session("U1")
    assert session is not None
    stored = manager.store_enhanced_session("U1", session.to_dict())
    assert stored.created_at is not None and before <= stored.created_at <= datetime.now(UTC)
    again = manager.store_enhanced_session("U1", {"processed_documents": []})
    assert again.created_at == stored.created_at
    dated = manager.store_enhanced_session("U2", {"analysis_timestamp": "2025-03-01T10:00:00"})
    assert dated.created_at == _at("2025-03-01T10:00:00")


def test_created_at_is_the_oldest_recorded_time_and_last_accessed_the_newest() -> None:
    session = legacy_sessions()["U071780854"]
    analysed = session["analysis_timestamp"]  # 2025-06-15
    researched = session["market_research"]["timestamp"]  # 2025-09-16
    session["processed_documents"][0]["processed_at"] = "2025-06-14T09:00:00"
    backend = MemoryBackend()
    backend.set("U2", json.dumps(session).encode())
    loaded = _manager(backend).get_enhanced_session("U2")
    assert loaded is not None
    assert loaded.created_at == _at("2025-06-14T09:00:00")
    assert loaded.last_accessed == _at(researched)
    assert loaded.created_at < _at(analysed) < loaded.last_accessed


def test_a_legacy_created_at_is_kept_and_times_inside_document_metadata_are_not_events() -> None:
    session = _untimed()
    session["processed_documents"][1]["metadata"]["creation_date"] = "2019-03-01T00:00:00"
    assert legacy_times(session) == (None, None)  # a PDF's own date is not the session's
    session["created_at"] = "2025-02-01T08:00:00"
    session["analysis_timestamp"] = "2025-01-01T08:00:00"
    upgraded = dataroom_v0_to_v1(session, "U3")
    assert upgraded["created_at"] == "2025-02-01T08:00:00"  # stored: kept as it is
    assert upgraded["last_accessed"] == "2025-02-01T08:00:00"


@pytest.mark.parametrize("user_id", sorted(legacy_sessions()))
def test_every_fixture_session_keeps_its_analysis_time_as_creation(user_id: str) -> None:
    session = legacy_sessions()[user_id]
    backend = MemoryBackend()
    backend.set(user_id, json.dumps(session).encode())
    loaded = _manager(backend).get_enhanced_session(user_id)
    assert loaded is not None
    assert loaded.created_at == _at(session["analysis_timestamp"])


def test_a_session_the_app_creates_now_is_created_now() -> None:
    manager = _manager(MemoryBackend())
    before = datetime.now(UTC)
    stored = manager.store_enhanced_session("U4", {"processed_documents": []})
    assert stored.created_at is not None and before <= stored.created_at <= datetime.now(UTC)
    untimed = manager.store_enhanced_session("U5", _untimed())
    assert untimed.created_at is not None and before <= untimed.created_at


def test_the_plan_json_writer_gives_the_plans_readers_a_time_for_an_unknown_creation() -> None:
    """During a rolling deploy the plan's ``from_dict`` reads what we write, and it cannot
    read ``null``: an unknown ``created_at`` is written as the write's ``last_accessed``."""
    backend = MemoryBackend()
    backend.set("U1", json.dumps(_untimed()).encode())
    store = SessionStore(backend, EnhancedSessionData, codec=PlanJsonCodec(encryption=None))
    session = store.load("U1")
    assert session is not None and session.created_at is None
    saved = store.save("U1", session)
    assert saved.last_accessed is not None
    raw = backend.get("U1")
    assert raw is not None
    theirs = plan.EnhancedSessionData.from_dict(json.loads(raw))
    assert theirs.created_at == theirs.last_accessed == naive_utc(saved.last_accessed)


def test_times_with_an_offset_are_ordered_as_instants() -> None:
    """Naive legacy times are UTC; one with an offset is compared as the instant it names."""
    data = {
        "analysis_timestamp": "2025-01-01T10:00:00+02:00",  # 08:00 UTC: the oldest
        "market_research": {"timestamp": "2025-01-01T09:00:00"},  # 09:00 UTC; the next is 09:30 UTC
        "processed_documents": [{"name": "a.pdf", "timestamp": "2025-01-01T08:30:00-01:00"}],
    }
    assert legacy_times(data) == ("2025-01-01T10:00:00+02:00", "2025-01-01T08:30:00-01:00")
    assert legacy_times({"analysis_timestamp": "not a time", "processed_documents": [3]}) == (
        None,
        None,
    )


def test_a_plan_json_save_with_its_own_ttl_writes_what_the_plans_readers_read() -> None:
    """During a rolling deploy a ``save`` with a TTL other than the store's (a "remember me"
    session, an admin's short one) still writes the plan's JSON: the plan's code reads the
    bytes as they are, so they carry no own-TTL frame (a ``touch`` then keeps the store's TTL,
    which is all the plan's layout has). Before: the frame's magic led the bytes and the plan's
    ``json.loads`` failed on them."""
    backend = MemoryBackend()
    backend.set("U1", json.dumps(_untimed()).encode())
    store = SessionStore(
        backend, EnhancedSessionData, codec=PlanJsonCodec(encryption=None), ttl=7200
    )
    session = store.load("U1")
    assert session is not None
    store.save("U1", session, ttl=600)
    raw = backend.get("U1")
    assert raw is not None
    assert raw.startswith(b"{"), raw[:16]
    plan.EnhancedSessionData.from_dict(json.loads(raw))
    left = backend.ttl("U1")
    assert left is not None and 590 < left <= 600  # the write's own TTL still sets the expiry
