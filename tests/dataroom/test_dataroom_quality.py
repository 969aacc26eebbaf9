"""Quality scores and vision data on hand-built sessions, with the expected numbers worked out
by hand from the definitions (not by calling the code under test)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from session_store.dataroom import SessionManager, session_quality
from session_store.samples import legacy_sessions
from session_store.schema.dataroom import EnhancedSessionData

from .support import assert_whole


def _vision(page: int, kind: str, cost: float) -> dict[str, Any]:
    return {
        "page_number": page,
        "content_type": kind,
        "description": f"{kind} on page {page}",
        "data_points": {"revenue_2024": 1.5},
        "confidence": 0.9,
        "model": "vision-model",
        "cost_usd": cost,
    }


def _result(doc_id: str, method: str, quality: float, completeness: float, **more: Any) -> Any:
    return {
        "document_id": doc_id,
        "filename": f"{doc_id}.pdf",
        "extraction_method": method,
        "text_content": f"text of {doc_id}",
        "quality_score": quality,
        "completeness_score": completeness,
        **more,
    }


#: Three documents: one with two vision extractions, one text only, one hybrid whose vision
#: work is only in its processing summary. Summary, market research and insights present;
#: no analysis result.
SESSION_A: dict[str, Any] = {
    "extraction_results": {
        "d1": _result(
            "d1",
            "vision_enhanced",
            0.9,
            0.8,
            vision_extractions=[_vision(1, "chart", 0.01), _vision(2, "table", 0.02)],
            processing_cost_usd=0.05,
            processing_time_s=3.0,
            processing_strategy="charts",
            insights=["ARR grows 3x"],
        ),
        "d2": _result("d2", "text_only", 0.6, 1.0, processing_time_s=0.5),
        "d3": _result(
            "d3",
            "hybrid_text_vision",
            0.75,
            0.5,
            vision_processing_summary={"total_estimated_cost": 0.04, "pages_analyzed": 4},
            processing_cost_usd=0.07,
            processing_time_s=2.0,
        ),
    },
    "document_summary": {"total_documents": 3},
    "market_research_data": {"tam_usd": 1_000_000},
    "cross_document_insights": ["pricing is consistent across decks"],
    "drive_link": "https://drive.example.com/x",
}

#: Two vision documents with out-of-range scores (clamped), no document summary (None), no
#: market research or insights, and the legacy analysis_result key.
SESSION_B: dict[str, Any] = {
    "extraction_results": {
        "e1": _result(
            "e1", "vision_enhanced", 1.4, 0.6, vision_extractions=[_vision(1, "chart", 0.1)]
        ),
        "e2": _result(
            "e2",
            "vision_enhanced",
            0.2,
            -0.1,
            vision_extractions=[_vision(p, "diagram", 0.05) for p in (1, 2, 3)],
        ),
    },
    "document_summary": None,
    "analysis_result": {"executive_summary": ["a"]},
}


def test_session_a_quality_by_hand(manager: SessionManager) -> None:
    manager.store_enhanced_session("a", SESSION_A)
    data = manager.get_comprehensive_analysis_data("a")
    assert data is not None
    quality = data["session_quality"]

    document_completeness = (0.8 + 1.0 + 0.5) / 3  # mean completeness_score
    enhancement_usage = 2 / 3  # d1 (vision extractions) and d3 (hybrid method)
    average_extraction_quality = (0.9 + 0.6 + 0.75) / 3  # mean quality_score
    session_completeness = 4 / 5  # documents, summary, market research, insights; no analysis
    overall = (
        0.2 * document_completeness
        + 0.3 * enhancement_usage
        + 0.3 * average_extraction_quality
        + 0.2 * session_completeness
    )
    assert overall == pytest.approx(0.7383333333)
    assert quality["document_completeness"] == pytest.approx(document_completeness)
    assert quality["enhancement_usage"] == pytest.approx(enhancement_usage)
    assert quality["average_extraction_quality"] == pytest.approx(average_extraction_quality)
    assert quality["session_completeness"] == pytest.approx(session_completeness)
    assert quality["overall_quality_score"] == pytest.approx(overall)
    assert quality["document_count"] == 3
    assert quality["has_enhanced_extraction"] is True
    assert quality["total_processing_cost"] == pytest.approx(0.05 + 0.07)


def test_session_b_quality_by_hand_clamps_scores(manager: SessionManager) -> None:
    manager.store_enhanced_session("b", SESSION_B)
    data = manager.get_comprehensive_analysis_data("b")
    assert data is not None
    quality = data["session_quality"]

    document_completeness = (0.6 + 0.0) / 2  # -0.1 clamped to 0
    enhancement_usage = 2 / 2
    average_extraction_quality = (1.0 + 0.2) / 2  # 1.4 clamped to 1
    session_completeness = 2 / 5  # documents and analysis_result only
    overall = (
        0.2 * document_completeness
        + 0.3 * enhancement_usage
        + 0.3 * average_extraction_quality
        + 0.2 * session_completeness
    )
    assert overall == pytest.approx(0.62)
    assert quality["overall_quality_score"] == pytest.approx(overall)
    assert quality["session_completeness"] == pytest.approx(session_completeness)
    assert quality["parts_present"] == {
        "documents": True,
        "document_summary": False,
        "analysis_result": True,
        "market_research": False,
        "cross_document_insights": False,
    }


def test_legacy_session_quality_by_hand(manager: SessionManager) -> None:
    manager.store_enhanced_session("legacy", legacy_sessions()["U071780854"])
    quality = manager.get_comprehensive_analysis_data("legacy")["session_quality"]  # type: ignore[index]
    # six processed documents, one an error without content; no cross-document insights
    overall = 0.2 * (5 / 6) + 0.3 * 0.0 + 0.3 * (5 / 6) + 0.2 * (4 / 5)
    assert quality["overall_quality_score"] == pytest.approx(overall)
    assert quality["document_source"] == "processed_documents"


def test_empty_session_scores_zero_without_dividing_by_zero() -> None:
    quality = session_quality(EnhancedSessionData(user_id="empty"))
    assert quality["overall_quality_score"] == 0.0
    assert quality["document_count"] == 0
    assert quality["document_source"] == "none"


def test_misfit_scores_count_as_zero() -> None:
    session = EnhancedSessionData(user_id="m")
    session.processed_documents = [{"name": "x", "content": "text", "type": "pdf"}]
    quality = session_quality(session)
    assert quality["average_extraction_quality"] == 1.0
    assert 0.0 <= quality["overall_quality_score"] <= 1.0


def test_session_a_read_apis(manager: SessionManager) -> None:
    stored = manager.store_enhanced_session("a", SESSION_A)
    assert stored.extra == {"drive_link": "https://drive.example.com/x"}
    data = manager.get_comprehensive_analysis_data("a")
    assert data is not None
    json.dumps(data)
    assert [d["document_id"] for d in data["documents"]] == ["d1", "d2", "d3"]
    assert {d["source"] for d in data["documents"]} == {"extraction_results"}
    assert data["documents"][1]["content"] == "text of d2"
    assert [(v["document_id"], v["page_number"]) for v in data["vision_insights"]] == [
        ("d1", 1),
        ("d1", 2),
    ]
    summary = data["processing_summary"]
    assert summary["document_count"] == 3
    assert summary["vision_documents"] == 2
    assert summary["vision_extractions"] == 2
    assert summary["total_processing_time_s"] == pytest.approx(5.5)
    assert summary["total_processing_cost_usd"] == pytest.approx(0.12)
    assert summary["methods_used"] == {
        "vision_enhanced": 1,
        "text_only": 1,
        "hybrid_text_vision": 1,
    }
    assert summary["strategies_used"] == ["charts"]
    assert data["market_research"] == {"tam_usd": 1_000_000}
    assert data["cross_document_insights"] == SESSION_A["cross_document_insights"]

    # the stored session reads back whole: typed results written back as the given dicts
    loaded = manager.get_enhanced_session("a")
    assert loaded is not None
    written = manager.store.codec.to_data(loaded)
    for doc_id, given in SESSION_A["extraction_results"].items():
        result = written["extraction_results"][doc_id]
        assert_whole({k: v for k, v in given.items() if k != "vision_extractions"}, result)
        visions = given.get("vision_extractions", [])
        assert len(result["vision_extractions"]) == len(visions)
        for given_vision, written_vision in zip(visions, result["vision_extractions"], strict=True):
            assert_whole(given_vision, written_vision)
    assert_whole({k: v for k, v in SESSION_A.items() if k != "extraction_results"}, written)


def test_session_a_vision_data(manager: SessionManager) -> None:
    manager.store_enhanced_session("a", SESSION_A)
    vision = manager.get_vision_specific_data("a")
    assert vision is not None
    json.dumps(vision)
    assert vision["has_vision_data"] is True
    assert sorted(vision["documents"]) == ["d1", "d3"]
    assert vision["documents"]["d1"]["pages"] == [1, 2]
    assert vision["documents"]["d1"]["insights"] == ["ARR grows 3x"]
    assert vision["visual_elements_summary"] == {"chart": 1, "table": 1}
    cost = vision["cost_summary"]
    # d1: its extractions' costs; d3: no extractions, so its summary's estimated cost
    assert cost["per_document"] == pytest.approx({"d1": 0.01 + 0.02, "d3": 0.04})
    assert cost["total_cost"] == pytest.approx(0.07)
    assert cost["vision_extractions"] == 2
    assert cost["pages_processed"] == 2 + 4


def test_session_b_vision_data(manager: SessionManager) -> None:
    manager.store_enhanced_session("b", SESSION_B)
    vision = manager.get_vision_specific_data("b")
    assert vision is not None
    assert vision["visual_elements_summary"] == {"chart": 1, "diagram": 3}
    assert vision["cost_summary"]["total_cost"] == pytest.approx(0.1 + 3 * 0.05)
    assert vision["cost_summary"]["vision_extractions"] == 4
    assert vision["cost_summary"]["pages_processed"] == 1 + 3
