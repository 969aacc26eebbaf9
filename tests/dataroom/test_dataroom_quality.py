"""Quality scores and vision data on hand-built sessions, with the expected numbers worked out
by hand from the plan's formula (not by calling the code under test):

    overall = min(1, documents / 5) * 0.2 + (1.0 if enhanced else 0.5) * 0.3
            + average(extraction_quality_score, 0.7 when absent) * 0.3 + completeness * 0.2
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from session_store.dataroom import SessionManager, session_quality
from session_store.samples import legacy_sessions
from session_store.schema.dataroom import EnhancedSessionData

from .support import assert_whole


def _vision(page: int, kind: str) -> dict[str, Any]:
    return {
        "page_number": page,
        "content_type": kind,
        "description": f"{kind} on page {page}",
        "data_points": {"revenue_2024": 1.5},
        "confidence": 0.9,
    }


def _result(doc_id: str, method: str, **more: Any) -> dict[str, Any]:
    return {
        "document_id": doc_id,
        "filename": f"{doc_id}.pdf",
        "extraction_method": method,
        "text_content": f"text of {doc_id}",
        "text_extraction_metadata": {},
        **more,
    }


#: Three documents: one with two vision extractions and a processing summary, one text only,
#: one hybrid whose vision work is only in its processing summary. Summary, market research
#: and insights present; no analysis result.
SESSION_A: dict[str, Any] = {
    "extraction_results": {
        "d1": _result(
            "d1",
            "vision_enhanced",
            extraction_quality_score=0.9,
            vision_extractions=[_vision(1, "chart"), _vision(2, "table")],
            vision_processing_summary={"total_estimated_cost": 0.03, "pages_analyzed": 2},
            processing_cost=0.05,
            comprehensive_insights=["ARR grows 3x"],
        ),
        "d2": _result("d2", "text_only", extraction_quality_score=0.6),
        "d3": _result(
            "d3",
            "hybrid_text_vision",
            extraction_quality_score=0.75,
            vision_processing_summary={"total_estimated_cost": 0.04, "pages_analyzed": 4},
            processing_cost=0.07,
        ),
    },
    "document_summary": {"total_documents": 3},
    "market_research_data": {"tam_usd": 1_000_000},
    "cross_document_insights": {"pricing": "consistent across decks"},
    "drive_link": "https://drive.example.com/x",
}

#: Two vision documents, one score above 1 (the plan does not clamp), one result without a
#: score (0.7); no document summary (None), market research or insights; the legacy
#: analysis_result key.
SESSION_B: dict[str, Any] = {
    "extraction_results": {
        "e1": _result(
            "e1",
            "vision_enhanced",
            extraction_quality_score=1.4,
            vision_extractions=[_vision(1, "chart")],
        ),
        "e2": _result(
            "e2", "text_only", vision_extractions=[_vision(p, "diagram") for p in (1, 2, 3)]
        ),
    },
    "document_summary": None,
    "analysis_result": {"executive_summary": ["a"]},
}


def test_session_a_quality_by_hand(manager: SessionManager) -> None:
    manager.store_enhanced_session("a", SESSION_A)
    quality = manager.get_comprehensive_analysis_data("a")["session_quality"]
    # 3 documents, enhanced, mean quality 0.75, 4 of 5 parts (no analysis result)
    overall = 0.6 * 0.2 + 1.0 * 0.3 + ((0.9 + 0.6 + 0.75) / 3) * 0.3 + (4 / 5) * 0.2
    assert overall == pytest.approx(0.805)
    assert quality == {
        "document_count": 3,
        "has_enhanced_extraction": True,
        "average_extraction_quality": pytest.approx(0.75),
        "total_processing_cost": pytest.approx(0.12),
        "session_completeness": pytest.approx(0.8),
        "overall_quality_score": pytest.approx(overall),
    }


def test_session_b_quality_by_hand_absent_score_is_0_7_and_nothing_clamped(
    manager: SessionManager,
) -> None:
    manager.store_enhanced_session("b", SESSION_B)
    quality = manager.get_comprehensive_analysis_data("b")["session_quality"]
    # 2 documents, enhanced (e1), mean of 1.4 and 0.7, 2 of 5 parts (documents, analysis)
    overall = 0.4 * 0.2 + 1.0 * 0.3 + ((1.4 + 0.7) / 2) * 0.3 + (2 / 5) * 0.2
    assert overall == pytest.approx(0.775)
    assert quality["average_extraction_quality"] == pytest.approx(1.05)
    assert quality["overall_quality_score"] == pytest.approx(overall)


@pytest.mark.parametrize(
    ("user_id", "parts"),
    [
        ("U095822412", 2),  # documents, summary
        ("U063826716", 3),  # documents, summary, analysis result
        ("U071780854", 4),  # documents, summary, analysis result, legacy market research
        ("U080651318", 2),
    ],
)
def test_legacy_session_quality_by_hand(manager: SessionManager, user_id: str, parts: int) -> None:
    """A legacy session has no extraction results: 0 documents, not enhanced, quality 0."""
    manager.store_enhanced_session(user_id, legacy_sessions()[user_id])
    quality = manager.get_comprehensive_analysis_data(user_id)["session_quality"]
    overall = 0.0 * 0.2 + 0.5 * 0.3 + 0.0 * 0.3 + (parts / 5) * 0.2
    assert quality["overall_quality_score"] == pytest.approx(overall)
    assert quality["document_count"] == 0 and quality["average_extraction_quality"] == 0.0


def test_the_issue_numbers() -> None:
    """Issue 14: the plan scores U095822412 0.23 (our old formula said 0.41)."""
    session = EnhancedSessionData.from_dict({"user_id": "u", **legacy_sessions()["U095822412"]})
    assert session_quality(session)["overall_quality_score"] == pytest.approx(0.23)


def test_empty_session_scores_the_plan_minimum() -> None:
    quality = session_quality(EnhancedSessionData("u"))
    assert quality["overall_quality_score"] == pytest.approx(0.5 * 0.3)
    assert quality["document_count"] == 0 and quality["session_completeness"] == 0.0


def test_misfit_scores_count_as_absent() -> None:
    session = EnhancedSessionData(
        "u",
        extraction_results={
            "a": {"extraction_quality_score": "high", "processing_cost": None},
            "b": {"extraction_quality_score": float("nan")},
            "c": "not a dict",  # type: ignore[dict-item]
        },
    )
    quality = session_quality(session)
    assert quality["average_extraction_quality"] == pytest.approx(0.7)
    assert quality["total_processing_cost"] == 0.0
    assert quality["document_count"] == 3


def test_session_a_read_apis(manager: SessionManager) -> None:
    manager.store_enhanced_session("a", SESSION_A)
    data = manager.get_comprehensive_analysis_data("a")
    assert list(data) == [
        "user_id",
        "session_created",
        "last_accessed",
        "documents",
        "document_summary",
        "vision_insights",
        "processing_summary",
        "market_research",
        "cross_document_insights",
        "session_quality",
    ]
    d1_content = "text of d1\n\n[page 1 chart]\nchart on page 1\n\n[page 2 table]\ntable on page 2"
    assert data["documents"]["d1"] == {
        "document_id": "d1",
        "filename": "d1.pdf",
        "extraction_method": "vision_enhanced",
        "has_vision_data": True,
        "content_length": len(d1_content),
        "quality_score": 0.9,
        "processing_cost": 0.05,
        "insights_count": 1,
    }
    assert data["documents"]["d2"]["content_length"] == len("text of d2")
    assert data["documents"]["d3"]["has_vision_data"] is False  # no vision extractions
    assert [(v["document_id"], v["page_number"]) for v in data["vision_insights"]] == [
        ("d1", 1),
        ("d1", 2),
    ]
    assert data["market_research"] == SESSION_A["market_research_data"]
    assert data["cross_document_insights"] == SESSION_A["cross_document_insights"]
    assert data["processing_summary"] == {}
    json.dumps(data)  # JSON-ready
    session = manager.get_enhanced_session("a")
    assert session is not None
    assert_whole(SESSION_A, session.to_dict())


def test_session_a_vision_data_follows_the_plan_loop(manager: SessionManager) -> None:
    manager.store_enhanced_session("a", SESSION_A)
    vision = manager.get_vision_specific_data("a")
    assert vision["has_vision_data"] is True
    assert len(vision["vision_insights"]) == 2
    assert vision["visual_elements_summary"] == {}
    # only results with vision extractions count: d1's summary, not d3's
    assert vision["cost_summary"] == {"total_cost": pytest.approx(0.03), "pages_processed": 2}


def test_session_b_vision_data(manager: SessionManager) -> None:
    manager.store_enhanced_session("b", SESSION_B)
    vision = manager.get_vision_specific_data("b")
    assert [i["content_type"] for i in vision["vision_insights"]] == ["chart"] + ["diagram"] * 3
    assert vision["cost_summary"] == {"total_cost": 0.0, "pages_processed": 0}


def test_missing_user_shapes(manager: SessionManager) -> None:
    assert manager.get_comprehensive_analysis_data("nobody") == {
        "error": "No session found for user"
    }
    missing = manager.get_vision_specific_data("nobody")
    assert missing == {"has_vision_data": False, "vision_insights": []}
    missing["vision_insights"].append("mine")  # a fresh dict each time
    assert manager.get_vision_specific_data("nobody")["vision_insights"] == []


def test_the_plans_helper_names_give_the_reference_results(manager: SessionManager) -> None:
    """The helpers the plan names (with or without a body) exist on the manager under its
    names and agree with the transcribed plan on the same session."""
    from . import plan_reference as plan

    theirs = plan.EnhancedSessionManager.__new__(plan.EnhancedSessionManager)
    for data in (SESSION_A, SESSION_B, legacy_sessions()["U071780854"]):
        session = manager.store_enhanced_session("u", data)
        reference = plan.EnhancedSessionData("u")
        for name in plan._KNOWN:
            if name in data:
                setattr(reference, name, data[name])
        if "analysis_result" in data:
            reference.analysis_result = data["analysis_result"]  # type: ignore[attr-defined]
        if "market_research" in data:
            reference.market_research = data["market_research"]  # type: ignore[attr-defined]
        assert manager._assess_session_quality(session) == theirs._assess_session_quality(reference)
        results = session.extraction_results
        assert manager._format_document_data(results) == theirs._format_document_data(results)
        assert manager._extract_vision_insights(results) == theirs._extract_vision_insights(results)
        for result in results.values():
            visions = result.get("vision_extractions") or []
            assert manager._format_vision_insights(visions) == theirs._format_vision_insights(
                visions
            )
        assert manager._has_vision_extractions(session) == theirs._has_vision_extractions(reference)
