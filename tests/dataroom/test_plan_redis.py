"""Issue 14 acceptance on a real redis-server: sessions the plan's code wrote
(``session:{user_id}`` holding ``json.dumps(to_dict(), default=str)``) load through ours, and
during a rolling deploy (``SESSION_STORE_WRITE_FORMAT=plan-json``) the plan's code reads what
ours writes."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from datetime import datetime
from typing import Any

import pytest
import redis

from session_store.dataroom import DocumentExtractionResult, EnhancedSessionManager
from session_store.samples import legacy_sessions

from . import plan_reference as plan

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")

TIMES = ("session_created", "last_accessed")


def _uid() -> str:
    return f"U{uuid.uuid4().hex[:10]}"


def _vision_result(doc_id: str) -> dict[str, Any]:
    return asdict(
        plan.DocumentExtractionResult(
            document_id=doc_id,
            filename=f"{doc_id}.pdf",
            extraction_method="hybrid_text_vision",
            text_content="ARR 2.4M",
            text_extraction_metadata={"pages": 3},
            vision_extractions=[{"page_number": 2, "content_type": "chart"}],
            vision_processing_summary={"total_estimated_cost": 0.02, "pages_analyzed": 3},
            comprehensive_insights=["ARR tripled"],
            processing_cost=0.03,
            extraction_quality_score=0.9,
        )
    )


def _plan_sessions(manager: plan.EnhancedSessionManager) -> dict[str, dict[str, Any]]:
    """Sessions the plan's code stores: legacy dicts, and one with vision results."""
    written: dict[str, dict[str, Any]] = {}
    for legacy in legacy_sessions().values():
        uid = _uid()
        manager.store_enhanced_session(uid, dict(legacy))
        written[uid] = legacy
    uid = _uid()
    manager.store_enhanced_session(
        uid,
        {
            "processed_documents": [{"name": "deck.pdf"}],
            "document_summary": {"total_documents": 1},
            "extraction_results": {"deck": _vision_result("deck")},
            "cross_document_insights": {"pricing": "consistent"},
        },
    )
    written[uid] = {}
    return written


def test_sessions_the_plan_wrote_load(redis_env: redis.Redis) -> None:
    writer = plan.EnhancedSessionManager()
    assert writer.redis_enabled
    written = _plan_sessions(writer)
    for uid in written:  # the plan's layout and format, as it wrote them
        raw = redis_env.get(f"session:{uid}")
        assert raw is not None and json.loads(raw)["user_id"] == uid
    reader = plan.EnhancedSessionManager()  # a fresh plan process: memory empty, reads Redis
    with EnhancedSessionManager() as ours:
        assert ours.redis_enabled and ours.session_ttl_hours == 2
        for uid in written:
            session = ours.get_enhanced_session(uid)
            assert session is not None, uid
            expected = reader.get_enhanced_session(uid)
            assert expected is not None
            # the plan's to_dict, field for field (its naive timestamps are UTC)
            assert session.to_dict() == expected.to_dict() | {
                "last_accessed": session.to_dict()["last_accessed"]
            }
            assert session.created_at is not None and session.created_at.tzinfo is not None
            ours_data = ours.get_comprehensive_analysis_data(uid)
            theirs = reader.get_comprehensive_analysis_data(uid)
            assert {k: v for k, v in ours_data.items() if k not in TIMES} == {
                k: v for k, v in theirs.items() if k not in TIMES
            }
            assert ours.get_vision_specific_data(uid) == reader.get_vision_specific_data(uid)
    # nothing was written under another layout
    assert not [k for k in redis_env.scan_iter() if not k.startswith(b"session:")]


def test_the_plan_reads_what_ours_writes_in_rolling_deploy_mode(
    redis_env: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_STORE_WRITE_FORMAT", "plan-json")
    stored: dict[str, Any] = {}
    with EnhancedSessionManager() as ours:
        user_sessions = ours.user_sessions()
        legacy_uid, typed_uid, mapped_uid = _uid(), _uid(), _uid()
        ours.store_enhanced_session(legacy_uid, legacy_sessions()["U071780854"])
        ours.store_enhanced_session(
            typed_uid,
            {
                "processed_documents": [{"name": "deck.pdf"}],
                "extraction_results": {
                    "deck": asdict(
                        DocumentExtractionResult(
                            "deck",
                            "deck.pdf",
                            "vision_enhanced",
                            "text",
                            {},
                            vision_extractions=[{"page_number": 1, "content_type": "table"}],
                            extraction_quality_score=0.8,
                        )
                    )
                },
            },
        )
        user_sessions[mapped_uid] = {"processed_documents": [], "document_summary": {}}
        user_sessions[mapped_uid]["processed_documents"].append({"name": "late.pdf"})
        for uid in (legacy_uid, typed_uid, mapped_uid):
            stored[uid] = ours.get_comprehensive_analysis_data(uid)
        # the bytes are the plan's JSON, with the plan's TTL
        raw = redis_env.get(f"session:{typed_uid}")
        assert isinstance(raw, bytes) and raw.startswith(b"{")
        assert 7000 < redis_env.ttl(f"session:{typed_uid}") <= 7200

    old = plan.EnhancedSessionManager()  # an old process during the deploy
    for uid, ours_data in stored.items():
        session = old.get_enhanced_session(uid)
        assert session is not None, uid
        assert session.created_at.tzinfo is None  # what the plan's code reads: naive UTC
        assert (datetime.utcnow() - session.created_at).total_seconds() >= 0
        theirs = old.get_comprehensive_analysis_data(uid)
        if uid == legacy_uid:
            # the plan's from_dict keeps only its nine keys: an old process does not see the
            # legacy analysis_result and market_research, so it scores the session lower
            assert theirs["documents"] == ours_data["documents"] == {}
            assert theirs["document_summary"] == ours_data["document_summary"]
            assert (
                session.processed_documents
                == legacy_sessions()["U071780854"]["processed_documents"]
            )
            continue
        assert {k: v for k, v in theirs.items() if k not in TIMES} == {
            k: v for k, v in ours_data.items() if k not in TIMES
        }
    mapped = old.get_enhanced_session(mapped_uid)
    assert mapped is not None
    assert mapped.processed_documents == [{"name": "late.pdf"}]  # the in-place append
    typed = old.get_enhanced_session(typed_uid)
    assert typed is not None
    assert typed.extraction_results["deck"]["extraction_quality_score"] == 0.8
