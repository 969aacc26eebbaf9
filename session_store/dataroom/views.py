"""The data-room read views: the plan's cross-command APIs, and the helpers it names without a
body, defined here (each definition is its docstring).

Every function takes what the plan's helper takes and never raises on stored data of an
unexpected shape: a part that is not what the plan expects reads as empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from session_store.dataroom.quality import (
    assess_session_quality,
    extraction_results,
    has_vision_extractions,
    market_research,
    number,
)
from session_store.schema.dataroom import (
    DocumentExtractionResult,
    EnhancedSessionData,
    format_vision_extraction,
    naive_utc,
)

__all__ = [
    "NO_SESSION_ANALYSIS",
    "NO_SESSION_VISION",
    "compile_processing_summary",
    "comprehensive_analysis_data",
    "extract_vision_insights",
    "format_document_data",
    "format_vision_insights",
    "plan_iso",
    "vision_specific_data",
]

#: What ``get_comprehensive_analysis_data`` returns for a user without a session (a copy).
NO_SESSION_ANALYSIS: Mapping[str, Any] = {"error": "No session found for user"}
#: What ``get_vision_specific_data`` returns for a user without a session (a copy).
NO_SESSION_VISION: Mapping[str, Any] = {"has_vision_data": False, "vision_insights": []}


def plan_iso(value: object) -> Any:
    """A timestamp as the plan's ``.isoformat()`` of ``datetime.utcnow()`` wrote it (naive
    UTC); a value that is not a datetime as it is."""
    return naive_utc(value).isoformat() if isinstance(value, datetime) else value


def format_document_data(results: Mapping[str, Any]) -> dict[str, Any]:
    """The plan's ``_format_document_data(session.extraction_results)``: per document id, its
    ``document_id`` and ``filename`` followed by the keys of its
    :meth:`DocumentExtractionResult.get_extraction_summary`. A stored entry that does not read
    as a result (not a dict, no ``document_id`` / ``filename``) gives
    ``{"document_id": id, "error": "unreadable extraction result"}``."""
    documents: dict[str, Any] = {}
    if not isinstance(results, Mapping):
        return documents
    for doc_id, raw in results.items():
        try:
            result = DocumentExtractionResult.from_dict(raw)
            summary = result.get_extraction_summary()
        except Exception:  # a misfit kept from stored data: say so, do not fail the read
            documents[doc_id] = {"document_id": doc_id, "error": "unreadable extraction result"}
            continue
        documents[doc_id] = {
            "document_id": result.document_id,
            "filename": result.filename,
            **summary,
        }
    return documents


def format_vision_insights(vision_extractions: Any) -> list[dict[str, Any]]:
    """The plan's ``_format_vision_insights(extraction_result['vision_extractions'])``: one
    insight per vision extraction, in order::

        {"page_number": ..., "content_type": ..., "description": ..., "extracted_text": ...,
         "data_points": ..., "confidence": ..., "text": format_vision_extraction(item)}

    read from the extraction's dict (``page`` and ``type`` are accepted for ``page_number``
    and ``content_type``; absent parts are ``None``, ``"unknown"``, ``""``, ``""``, ``{}``,
    ``None``). A string item is an insight with that ``description`` and ``content_type``
    ``"text"``; anything else is left out."""
    insights: list[dict[str, Any]] = []
    if not isinstance(vision_extractions, list | tuple):
        return insights
    for item in vision_extractions:
        if isinstance(item, str):
            item = {"content_type": "text", "description": item}
        if not isinstance(item, Mapping):
            continue
        insights.append(
            {
                "page_number": item.get("page_number", item.get("page")),
                "content_type": item.get("content_type", item.get("type", "unknown")),
                "description": item.get("description", ""),
                "extracted_text": item.get("extracted_text", ""),
                "data_points": item.get("data_points", {}),
                "confidence": item.get("confidence"),
                "text": format_vision_extraction(item),
            }
        )
    return insights


def extract_vision_insights(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The plan's ``_extract_vision_insights(session.extraction_results)``: for every result
    with vision extractions, in order, its :func:`format_vision_insights`, each insight
    starting with the ``document_id`` it came from."""
    if not isinstance(results, Mapping):
        return []
    return [
        {"document_id": doc_id, **insight}
        for doc_id, result in results.items()
        if isinstance(result, Mapping) and result.get("vision_extractions")
        for insight in format_vision_insights(result["vision_extractions"])
    ]


def compile_processing_summary(processing_metadata: Any) -> dict[str, Any]:
    """The plan's ``_compile_processing_summary(session.processing_metadata)``: a shallow copy
    of the processing metadata the app stored (``{}`` if it is not a dict). The plan gives it
    nothing else to compile; per-document counts and costs are in ``documents`` and
    ``session_quality``."""
    return dict(processing_metadata) if isinstance(processing_metadata, Mapping) else {}


def comprehensive_analysis_data(session: EnhancedSessionData) -> dict[str, Any]:
    """The plan's ``get_comprehensive_analysis_data`` for a session: its keys, its order."""
    return {
        "user_id": session.user_id,
        "session_created": plan_iso(session.created_at),
        "last_accessed": plan_iso(session.last_accessed),
        "documents": format_document_data(session.extraction_results),
        "document_summary": session.document_summary,
        "vision_insights": extract_vision_insights(session.extraction_results),
        "processing_summary": compile_processing_summary(session.processing_metadata),
        "market_research": market_research(session),
        "cross_document_insights": session.cross_document_insights,
        "session_quality": assess_session_quality(session),
    }


def vision_specific_data(session: EnhancedSessionData) -> dict[str, Any]:
    """The plan's ``get_vision_specific_data`` for a session: its keys, its loop.

    For each result with vision extractions: its :func:`format_vision_insights`, and from its
    ``vision_processing_summary`` the ``total_estimated_cost`` and ``pages_analyzed`` added to
    ``cost_summary`` (a summary that is ``None`` or not a dict, or a value that is not a
    number, adds 0; the plan's code raises there). ``visual_elements_summary`` stays ``{}``,
    as in the plan.
    """
    cost_summary: dict[str, Any] = {"total_cost": 0.0, "pages_processed": 0}
    vision_data: dict[str, Any] = {
        "has_vision_data": has_vision_extractions(session),
        "vision_insights": [],
        "visual_elements_summary": {},
        "cost_summary": cost_summary,
    }
    for result in extraction_results(session).values():
        if result.get("vision_extractions"):
            vision_data["vision_insights"].extend(
                format_vision_insights(result["vision_extractions"])
            )
            summary = result.get("vision_processing_summary", {})
            if not isinstance(summary, Mapping):
                summary = {}
            cost_summary["total_cost"] += number(summary.get("total_estimated_cost", 0))
            pages = summary.get("pages_analyzed", 0)
            cost_summary["pages_processed"] += (
                pages if isinstance(pages, int) and not isinstance(pages, bool) else 0
            )
    return vision_data
