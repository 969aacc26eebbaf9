"""The data-room read views: JSON-ready dicts built from a session, typed or legacy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from session_store.dataroom.quality import (
    extraction_results,
    legacy_document_ok,
    legacy_documents,
    number,
    uses_vision,
    vision_extractions,
)
from session_store.schema.dataroom import (
    DocumentExtractionResult,
    EnhancedSessionData,
    ExtractionMethod,
)

__all__ = [
    "documents",
    "iso",
    "method_name",
    "pages_processed",
    "processing_summary",
    "vision_cost",
    "vision_insights",
]


def method_name(result: DocumentExtractionResult) -> Any:
    method: object = result.extraction_method
    return method.value if isinstance(method, ExtractionMethod) else method


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _content(result: DocumentExtractionResult) -> str:
    try:
        return result.get_all_content()
    except (TypeError, AttributeError):  # a misfit field kept from stored data
        return _text(result.text_content)


def _typed_document(result: DocumentExtractionResult) -> dict[str, Any]:
    """One extraction result as a document entry (the keys of ``get_extraction_summary``)."""
    insights: object = result.insights
    return {
        "document_id": result.document_id,
        "filename": result.filename,
        "extraction_method": method_name(result),
        "text_length": len(_text(result.text_content)),
        "vision_extractions": len(vision_extractions(result)),
        "has_vision": uses_vision(result),
        "insights": len(insights) if isinstance(insights, list) else 0,
        "quality_score": number(result.quality_score),
        "completeness_score": number(result.completeness_score),
        "processing_time_s": number(result.processing_time_s),
        "processing_cost_usd": number(result.processing_cost_usd),
        "processing_strategy": result.processing_strategy,
        "source": "extraction_results",
        "content": _content(result),
    }


def _legacy_document(index: int, doc: object) -> dict[str, Any]:
    """One legacy processed document as a document entry with the same keys.

    Its scores follow the quality definitions: quality 1.0 if it was processed without error,
    completeness 1.0 if it has content, else 0.0.
    """
    fields: Mapping[str, Any] = doc if isinstance(doc, Mapping) else {}
    name = _text(fields.get("name"))
    content = _text(fields.get("content"))
    metadata = fields.get("metadata")
    error = metadata.get("error") if isinstance(metadata, Mapping) else None
    return {
        "document_id": name or f"document_{index}",
        "filename": name,
        "extraction_method": ExtractionMethod.TEXT_ONLY.value,
        "text_length": len(content),
        "vision_extractions": 0,
        "has_vision": False,
        "insights": 0,
        "quality_score": 1.0 if legacy_document_ok(doc) else 0.0,
        "completeness_score": 1.0 if content.strip() else 0.0,
        "processing_time_s": 0.0,
        "processing_cost_usd": 0.0,
        "processing_strategy": "",
        "source": "processed_documents",
        "content": content,
        "type": fields.get("type"),
        "metadata": metadata if metadata is not None else {},
        "error": error,
    }


def documents(session: EnhancedSessionData) -> list[dict[str, Any]]:
    results = extraction_results(session)
    if results:
        return [_typed_document(r) for r in results.values()]
    return [_legacy_document(i, d) for i, d in enumerate(legacy_documents(session))]


def vision_insights(session: EnhancedSessionData) -> list[dict[str, Any]]:
    """Every typed vision extraction, with the document it came from."""
    return [
        {
            "document_id": result.document_id,
            "filename": result.filename,
            "page_number": vision.page_number,
            "content_type": vision.content_type,
            "description": vision.description,
            "extracted_text": vision.extracted_text,
            "data_points": vision.data_points,
            "confidence": number(vision.confidence),
            "model": vision.model,
            "cost_usd": number(vision.cost_usd),
        }
        for result in extraction_results(session).values()
        for vision in vision_extractions(result)
    ]


def vision_cost(result: DocumentExtractionResult) -> float:
    """The sum of the vision extractions' ``cost_usd``; when that is 0, the processor's
    ``vision_processing_summary["total_estimated_cost"]`` (the plan's key) if it holds one."""
    cost = sum((number(v.cost_usd) for v in vision_extractions(result)), 0.0)
    summary: object = result.vision_processing_summary
    if cost == 0 and isinstance(summary, Mapping):
        cost = max(0.0, number(summary.get("total_estimated_cost")))
    return cost


def pages_processed(result: DocumentExtractionResult) -> int:
    """Distinct pages with a vision extraction, or the summary's ``pages_analyzed`` if more."""
    pages = {v.page_number for v in vision_extractions(result)}
    summary: object = result.vision_processing_summary
    analyzed = _count(summary.get("pages_analyzed")) if isinstance(summary, Mapping) else 0
    return max(len(pages), analyzed)


def processing_summary(session: EnhancedSessionData) -> dict[str, Any]:
    """Counts, total time and cost, and methods used, over the session's documents."""
    results = list(extraction_results(session).values())
    methods: dict[str, int] = {}
    for result in results:
        name = str(method_name(result))
        methods[name] = methods.get(name, 0) + 1
    legacy = [] if results else legacy_documents(session)
    if legacy:
        methods[ExtractionMethod.TEXT_ONLY.value] = len(legacy)
    strategies = {r.processing_strategy for r in results if isinstance(r.processing_strategy, str)}
    return {
        "document_count": len(results) or len(legacy),
        "document_source": (
            "extraction_results" if results else "processed_documents" if legacy else "none"
        ),
        "vision_documents": sum(map(uses_vision, results)),
        "vision_extractions": sum(len(vision_extractions(r)) for r in results),
        "total_processing_time_s": sum((number(r.processing_time_s) for r in results), 0.0),
        "total_processing_cost_usd": sum((number(r.processing_cost_usd) for r in results), 0.0),
        "methods_used": methods,
        "strategies_used": sorted(s for s in strategies if s),
        "processing_metadata": session.processing_metadata,
    }


def iso(value: object) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value
