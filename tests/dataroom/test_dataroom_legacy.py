"""Every fixture session survives whole through the manager, and legacy sessions (stored as the
app's raw JSON) load and answer the read APIs meaningfully."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import pytest

from session_store.dataroom import SessionManager
from session_store.errors import ConfigurationError, InvalidKeyError, SerializationError
from session_store.samples import legacy_sessions
from session_store.schema.dataroom import (
    DocumentExtractionResult,
    EnhancedSessionData,
    ExtractionMethod,
)
from session_store.store import SessionStore

from .support import assert_session_whole

SESSIONS = legacy_sessions()


def test_samples_cover_the_legacy_keys() -> None:
    keys = {k for session in SESSIONS.values() for k in session}
    assert keys >= {
        "processed_documents",
        "document_summary",
        "analysis_result",
        "market_profile",
        "market_research",
        "drive_link",
        "analysis_timestamp",
        "test_mode",
    }


@pytest.mark.parametrize("user_id", sorted(SESSIONS))
def test_fixture_session_survives_whole(manager: SessionManager, user_id: str) -> None:
    original = SESSIONS[user_id]
    stored = manager.store_enhanced_session(user_id, original)
    assert_session_whole(original, stored, manager.store.codec)

    loaded = manager.get_enhanced_session(user_id)
    assert loaded is not None
    assert_session_whole(original, loaded, manager.store.codec)
    assert loaded.user_id == user_id
    # the legacy timestamp (naive, as the app wrote it) becomes the aware UTC creation time
    stamp = datetime.fromisoformat(original["analysis_timestamp"]).replace(tzinfo=UTC)
    assert loaded.created_at == stamp
    assert loaded.last_accessed is not None and loaded.last_accessed.tzinfo is not None


def test_every_fixture_session_listed(manager: SessionManager) -> None:
    for user_id, session in SESSIONS.items():
        manager.store_enhanced_session(user_id, session)
    assert manager.list_sessions() == sorted(SESSIONS)


def _write_raw(store: SessionStore[EnhancedSessionData]) -> None:
    for user_id, session in SESSIONS.items():
        store.backend.set(user_id, json.dumps(session).encode())


def test_raw_legacy_json_loads_whole(
    manager: SessionManager, store: SessionStore[EnhancedSessionData]
) -> None:
    _write_raw(store)
    for user_id, original in SESSIONS.items():
        assert store.codec.inspect(store.backend.get(user_id) or b"").legacy
        loaded = manager.get_enhanced_session(user_id)
        assert loaded is not None
        assert_session_whole(original, loaded, store.codec)


@pytest.mark.parametrize("user_id", sorted(SESSIONS))
def test_read_apis_on_legacy_sessions(
    manager: SessionManager, store: SessionStore[EnhancedSessionData], user_id: str
) -> None:
    _write_raw(store)
    original = SESSIONS[user_id]
    data = manager.get_comprehensive_analysis_data(user_id)
    json.dumps(data)  # JSON-ready
    # the plan's documents come from extraction results, which a legacy session has none of
    assert data["documents"] == {}
    assert data["document_summary"] == original["document_summary"]
    assert data["market_research"] == original.get("market_research", {})
    assert data["vision_insights"] == []
    assert data["processing_summary"] == {}
    assert data["cross_document_insights"] == {}
    assert data["user_id"] == user_id
    # the legacy analysis timestamp is the session's creation, in the plan's naive ISO form
    assert data["session_created"] == original["analysis_timestamp"]

    quality = data["session_quality"]
    assert quality["document_count"] == 0
    assert quality["has_enhanced_extraction"] is False
    assert quality["average_extraction_quality"] == 0.0

    vision = manager.get_vision_specific_data(user_id)
    assert vision == {
        "has_vision_data": False,
        "vision_insights": [],
        "visual_elements_summary": {},
        "cost_summary": {"total_cost": 0.0, "pages_processed": 0},
    }
    session = manager.get_enhanced_session(user_id)
    assert session is not None
    assert session.extra["drive_link"] == original["drive_link"]


def test_market_research_data_wins_over_the_legacy_key(manager: SessionManager) -> None:
    session = dict(SESSIONS["U071780854"], market_research_data={"tam_usd": 5})
    manager.store_enhanced_session("u1", session)
    data = manager.get_comprehensive_analysis_data("u1")
    assert data["market_research"] == {"tam_usd": 5}
    loaded = manager.get_enhanced_session("u1")
    assert loaded is not None
    assert loaded.extra["market_research"] == SESSIONS["U071780854"]["market_research"]


def test_created_at_survives_updates(manager: SessionManager) -> None:
    first = manager.store_enhanced_session("u1", SESSIONS["U080651318"])
    second = manager.store_enhanced_session("u1", {"processed_documents": [], "step": 2})
    assert second.created_at == first.created_at
    loaded = manager.get_enhanced_session("u1")
    assert loaded is not None
    assert loaded.created_at == first.created_at
    assert loaded.extra == {"step": 2}  # a store replaces the session's data
    assert loaded.last_accessed is not None and first.last_accessed is not None
    assert loaded.last_accessed >= first.last_accessed


def test_typed_extraction_results_are_accepted(manager: SessionManager) -> None:
    typed = DocumentExtractionResult(
        "d1", "a.pdf", ExtractionMethod.VISION_ENHANCED, extraction_quality_score=0.5
    )
    as_dict: dict[str, Any] = {"document_id": "d2", "filename": "b.pdf", "quality": 1.0}
    stored = manager.store_enhanced_session(
        "u1", {"extraction_results": {"d1": typed, "d2": as_dict}}
    )
    # stored as the plan stores them: asdict, the method as its text; dicts as they are
    assert stored.extraction_results["d1"] == asdict(typed)
    assert stored.extraction_results["d1"]["extraction_method"] == "vision_enhanced"
    assert stored.extraction_results["d2"] == as_dict
    assert stored.extraction_result("d1") == typed
    assert manager.get_enhanced_session("u1") == stored


def test_bad_input_writes_nothing(manager: SessionManager) -> None:
    before = manager.store_enhanced_session("u1", SESSIONS["U063826716"])
    with pytest.raises(SerializationError):
        manager.store_enhanced_session("u1", {"processed_documents": [object()]})
    with pytest.raises(SerializationError):
        manager.store_enhanced_session("u1", {"score": float("nan")})
    with pytest.raises(SerializationError):
        manager.store_enhanced_session("u1", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        manager.store_enhanced_session("", {})
    assert manager.get_enhanced_session("u1") == before
    assert manager.get_metrics()["total_sessions_updated"] == 0


def test_missing_and_deleted_sessions(manager: SessionManager) -> None:
    assert manager.get_enhanced_session("nobody") is None
    assert manager.get_comprehensive_analysis_data("nobody") == {
        "error": "No session found for user"
    }
    assert manager.get_vision_specific_data("nobody") == {
        "has_vision_data": False,
        "vision_insights": [],
    }
    assert manager.delete_session("nobody") is False
    manager.store_enhanced_session("u1", SESSIONS["U063826716"])
    assert manager.delete_session("u1") is True
    assert manager.get_enhanced_session("u1") is None
    assert manager.list_sessions() == []
    assert manager.get_metrics()["total_sessions_deleted"] == 1


def test_manager_needs_a_typed_store() -> None:
    untyped: SessionStore[Any] = SessionStore("memory://")
    with untyped, pytest.raises(ConfigurationError, match="EnhancedSessionData"):
        SessionManager(untyped)


def test_loaded_extraction_result_reads_typed(manager: SessionManager) -> None:
    result = {"document_id": "d", "filename": "d.pdf", "extraction_method": "vision_enhanced"}
    manager.store_enhanced_session("u1", {"extraction_results": {"d": result}})
    loaded = manager.get_enhanced_session("u1")
    assert loaded is not None
    assert loaded.extraction_results["d"] == result  # the plan's dict, as stored
    typed = loaded.extraction_result("d")
    assert typed is not None and typed.extraction_method == ExtractionMethod.VISION_ENHANCED
    assert typed.get_extraction_summary()["has_vision_data"] is False  # no vision extractions
