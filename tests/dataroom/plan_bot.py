"""A data-room bot written in the style of the enhanced session manager plan.

It runs against the plan's code as transcribed (``plan_reference``). The acceptance test
(test_plan_bot.py) runs it a second time against session-store with only the lines marked
``# MIGRATE`` changed, and compares what the two runs print.
"""
# mypy: ignore-errors

import json
from dataclasses import asdict

from plan_reference import DocumentExtractionResult, EnhancedSessionManager  # MIGRATE

session_manager = EnhancedSessionManager()
user_sessions = {}  # MIGRATE


def handle_upload(user_id, documents):
    """What the bot did before the plan: keep the processed documents in user_sessions."""
    user_sessions[user_id] = {
        "processed_documents": documents,
        "document_summary": {
            "total_documents": len(documents),
            "successful_processing": len(documents),
            "document_types": {"pdf": len(documents)},
        },
    }


def add_document(user_id, document):
    user_sessions[user_id]["processed_documents"].append(document)
    user_sessions[user_id]["document_summary"]["total_documents"] += 1
    user_sessions[user_id]["document_summary"]["document_types"]["xlsx"] = 1


def add_vision_results(user_id):
    session = session_manager.get_enhanced_session(user_id)
    deck = DocumentExtractionResult(
        document_id="deck.pdf",
        filename="deck.pdf",
        extraction_method="hybrid_text_vision",
        text_content="ACME raises a Series A. ARR 2.4M EUR, growing 3x.",
        text_extraction_metadata={"pages": 12, "language": "en"},
        vision_extractions=[
            {
                "page_number": 4,
                "content_type": "chart",
                "description": "ARR by quarter",
                "data_points": {"q1": 0.4, "q4": 2.4},
                "confidence": 0.92,
            },
            {"page_number": 7, "content_type": "table", "extracted_text": "CAC 1.2k / LTV 9k"},
        ],
        vision_processing_summary={"total_estimated_cost": 0.042, "pages_analyzed": 12},
        comprehensive_insights=["ARR tripled in a year", "LTV/CAC above 7"],
        confidence_scores={"text": 0.9, "vision": 0.85},
        processing_time=8.5,
        processing_cost=0.061,
        extraction_quality_score=0.88,
        completeness_score=0.9,
    )
    model = DocumentExtractionResult(
        document_id="model.xlsx",
        filename="model.xlsx",
        extraction_method="text_only",
        text_content="Revenue 2024: 2.4M; 2025: 6.1M",
        text_extraction_metadata={"sheets": 3},
        processing_cost=0.002,
        extraction_quality_score=0.7,
    )
    session.extraction_results[deck.document_id] = asdict(deck)
    session.extraction_results[model.document_id] = asdict(model)
    # a result from an older extractor, stored as a dict without a quality score
    session.extraction_results["memo.pdf"] = {
        "document_id": "memo.pdf",
        "filename": "memo.pdf",
        "extraction_method": "vision_enhanced",
        "text_content": "Investment memo",
        "text_extraction_metadata": {},
        "vision_extractions": [{"page": 1, "type": "diagram", "description": "org chart"}],
        "vision_processing_summary": {"total_estimated_cost": 0.01, "pages_analyzed": 1},
    }
    session.cross_document_insights = {"revenue": "deck and model agree on 2.4M ARR"}
    session.processing_metadata = {"strategy": "hybrid", "pages_total": 13}
    session.market_research_data = {"tam_eur": 4_000_000_000}
    session_manager.store_enhanced_session(user_id, session.to_dict())
    return deck


def show(label, value):
    print(f"{label}: {json.dumps(value, sort_keys=True)}")


def without_times(data):
    times = ("session_created", "last_accessed", "created_at")
    return {k: v for k, v in data.items() if k not in times}


def main():
    handle_upload(
        "U100",
        [{"name": "deck.pdf", "type": "pdf", "content": "ACME raises a Series A."}],
    )
    add_document("U100", {"name": "model.xlsx", "type": "xlsx", "content": "Revenue 2024"})
    show("documents", user_sessions["U100"]["processed_documents"])
    show("summary", user_sessions["U100"]["document_summary"])

    session_manager.store_enhanced_session("U100", user_sessions["U100"])
    first = session_manager.get_comprehensive_analysis_data("U100")
    print(f"quality before vision: {first['session_quality']['overall_quality_score']:.3f}")
    show("quality report before vision", first["session_quality"])

    deck = add_vision_results("U100")
    show("deck summary", deck.get_extraction_summary())
    show("deck content", deck.get_all_content())

    analysis = session_manager.get_comprehensive_analysis_data("U100")
    show("analysis", without_times(analysis))
    print(f"quality: {analysis['session_quality']['overall_quality_score']:.3f}")
    show("vision", session_manager.get_vision_specific_data("U100"))

    session = session_manager.get_enhanced_session("U100")
    show("stored session", without_times(session.to_dict()))
    print("created_at is text in to_dict:", isinstance(session.to_dict()["created_at"], str))

    handle_upload("U200", [{"name": "teaser.pdf", "type": "pdf", "content": "Teaser"}])
    session_manager.store_enhanced_session("U200", user_sessions["U200"])
    other = session_manager.get_comprehensive_analysis_data("U200")
    print(f"U200 quality: {other['session_quality']['overall_quality_score']:.3f}")

    show("no session", session_manager.get_comprehensive_analysis_data("U404"))
    show("no vision", session_manager.get_vision_specific_data("U404"))
    print("documents kept:", len(user_sessions["U100"]["processed_documents"]))
    print("U200 in user_sessions:", "U200" in user_sessions, "U404" in user_sessions)


if __name__ == "__main__":
    main()
