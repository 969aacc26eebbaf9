"""The session quality score of the data-room plan, as pure functions over a session.

The plan scores a session in [0, 1] as a weighted sum of four components::

    overall = 0.2 * document_completeness
            + 0.3 * enhancement_usage
            + 0.3 * average_extraction_quality
            + 0.2 * session_completeness

Each component is itself in [0, 1] and is defined on the session's **documents**: its typed
extraction results when it has any, else (a legacy session, which only ever had text
extraction) the entries of its ``processed_documents`` list. With ``n`` documents:

``document_completeness``
    Typed: the mean ``completeness_score`` of the extraction results. Legacy: the share of
    documents whose ``content`` is a string with non-blank text.
``enhancement_usage``
    Typed: the share of extraction results a vision model contributed to (they hold vision
    extractions, or their method is ``vision_enhanced`` or ``hybrid_text_vision``). Legacy: 0,
    since that app never ran vision.
``average_extraction_quality``
    Typed: the mean ``quality_score`` of the extraction results. Legacy: the share of
    documents processed successfully (a mapping whose ``type`` is not ``"error"`` and whose
    ``metadata`` holds no ``error``), the same count as the legacy summary's
    ``successful_processing``.
``session_completeness``
    The share of these five parts the session holds, present and non-empty: documents,
    document summary, analysis result (the legacy ``analysis_result`` key), market research
    (``market_research_data`` or the legacy ``market_research`` key), cross-document insights.

With no documents, the three document components are 0 (no division by zero). A score that is
not a finite number (a misfit kept from stored data, ``NaN`` from legacy JSON) counts as 0;
every score is clamped to [0, 1] before it is averaged, and the overall score is clamped too.

An extraction result (or vision extraction) that did not fit the schema is kept in storage
exactly as stored, but these functions only count the typed ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from session_store.schema.dataroom import (
    DocumentExtractionResult,
    EnhancedSessionData,
    ExtractionMethod,
    VisionExtraction,
)

__all__ = [
    "VISION_METHODS",
    "WEIGHTS",
    "analysis_result",
    "average_extraction_quality",
    "document_completeness",
    "enhancement_usage",
    "extraction_results",
    "is_present",
    "legacy_document_ok",
    "legacy_documents",
    "market_research",
    "number",
    "overall_quality_score",
    "session_completeness",
    "session_has_vision",
    "session_processing_cost",
    "session_quality",
    "uses_vision",
    "vision_extractions",
]

#: The plan's weights of the four components (they sum to 1).
WEIGHTS: Final[Mapping[str, float]] = MappingProxyType(
    {
        "document_completeness": 0.2,
        "enhancement_usage": 0.3,
        "average_extraction_quality": 0.3,
        "session_completeness": 0.2,
    }
)

#: Extraction methods in which a vision model took part.
VISION_METHODS: Final = frozenset(
    {ExtractionMethod.VISION_ENHANCED, ExtractionMethod.HYBRID_TEXT_VISION}
)


# -- reading a session safely ------------------------------------------------------------------
def number(value: object) -> float:
    """``value`` as a float if it is a finite int or float (not a bool), else 0.0.

    Stored data may hold misfits (a score stored as text, ``NaN`` from legacy JSON); they count
    as nothing rather than breaking a read API.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    result = float(value)
    return result if math.isfinite(result) else 0.0


def _unit(value: object) -> float:
    """``value`` as a score clamped to [0, 1]."""
    return min(1.0, max(0.0, number(value)))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def is_present(value: object) -> bool:
    """Whether ``value`` holds something: not ``None``, not blank text, not an empty container."""
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return len(value) > 0
    return True


def extraction_results(session: EnhancedSessionData) -> dict[str, DocumentExtractionResult]:
    """The session's typed extraction results, by document id (entries that did not fit the
    schema are left out)."""
    results: object = session.extraction_results
    if not isinstance(results, dict):
        return {}
    return {k: v for k, v in results.items() if isinstance(v, DocumentExtractionResult)}


def legacy_documents(session: EnhancedSessionData) -> list[Any]:
    """The entries of the legacy ``processed_documents`` list (empty if it is not a list)."""
    docs: object = session.processed_documents
    return list(docs) if isinstance(docs, list) else []


def vision_extractions(result: DocumentExtractionResult) -> list[VisionExtraction]:
    """The typed vision extractions of one result."""
    items: object = result.vision_extractions
    if not isinstance(items, list):
        return []
    return [v for v in items if isinstance(v, VisionExtraction)]


def uses_vision(result: DocumentExtractionResult) -> bool:
    """Whether a vision model contributed to ``result``: it holds vision extractions, or its
    method is one of :data:`VISION_METHODS`."""
    method: object = result.extraction_method  # str: also a misfit kept as the stored text
    return bool(vision_extractions(result)) or (
        isinstance(method, str) and method in VISION_METHODS
    )


def session_has_vision(session: EnhancedSessionData) -> bool:
    """Whether any extraction result of the session used vision."""
    return any(uses_vision(r) for r in extraction_results(session).values())


def session_processing_cost(session: EnhancedSessionData) -> float:
    """The sum of ``processing_cost_usd`` over the typed extraction results (each document's
    total, its vision work included)."""
    return sum((number(r.processing_cost_usd) for r in extraction_results(session).values()), 0.0)


def legacy_document_ok(doc: object) -> bool:
    """Whether a legacy processed document was extracted without error."""
    if not isinstance(doc, Mapping):
        return False
    metadata = doc.get("metadata")
    failed = isinstance(metadata, Mapping) and is_present(metadata.get("error"))
    return doc.get("type") != "error" and not failed


def _legacy_has_content(doc: object) -> bool:
    if not isinstance(doc, Mapping):
        return False
    content = doc.get("content")
    return isinstance(content, str) and bool(content.strip())


def analysis_result(session: EnhancedSessionData) -> Any:
    """The legacy ``analysis_result`` (kept in ``extra``), or ``None``."""
    return session.extra.get("analysis_result") if isinstance(session.extra, dict) else None


def market_research(session: EnhancedSessionData) -> Any:
    """``market_research_data`` when it holds something, else the legacy ``market_research``
    key, else an empty dict."""
    if is_present(session.market_research_data):
        return session.market_research_data
    legacy = session.extra.get("market_research") if isinstance(session.extra, dict) else None
    return legacy if is_present(legacy) else {}


# -- the four components -----------------------------------------------------------------------
def document_completeness(session: EnhancedSessionData) -> float:
    """Mean ``completeness_score`` of the extraction results; legacy: share with content."""
    results = extraction_results(session)
    if results:
        return _mean([_unit(r.completeness_score) for r in results.values()])
    docs = legacy_documents(session)
    return _mean([1.0 if _legacy_has_content(d) else 0.0 for d in docs])


def enhancement_usage(session: EnhancedSessionData) -> float:
    """Share of extraction results that used vision; legacy sessions: 0."""
    results = extraction_results(session)
    return _mean([1.0 if uses_vision(r) else 0.0 for r in results.values()])


def average_extraction_quality(session: EnhancedSessionData) -> float:
    """Mean ``quality_score`` of the extraction results; legacy: share processed without
    error."""
    results = extraction_results(session)
    if results:
        return _mean([_unit(r.quality_score) for r in results.values()])
    docs = legacy_documents(session)
    return _mean([1.0 if legacy_document_ok(d) else 0.0 for d in docs])


def _parts(session: EnhancedSessionData) -> dict[str, bool]:
    return {
        "documents": bool(extraction_results(session)) or bool(legacy_documents(session)),
        "document_summary": is_present(session.document_summary),
        "analysis_result": is_present(analysis_result(session)),
        "market_research": is_present(market_research(session)),
        "cross_document_insights": is_present(session.cross_document_insights),
    }


def session_completeness(session: EnhancedSessionData) -> float:
    """Share of the five parts present and non-empty: documents, document summary, analysis
    result, market research, cross-document insights."""
    parts = _parts(session)
    return sum(parts.values()) / len(parts)


def overall_quality_score(components: Mapping[str, float]) -> float:
    """The weighted sum of the components (:data:`WEIGHTS`), clamped to [0, 1]."""
    total = sum(weight * _unit(components.get(name)) for name, weight in WEIGHTS.items())
    return min(1.0, max(0.0, total))


def session_quality(session: EnhancedSessionData) -> dict[str, Any]:
    """The plan's quality report: the four components, what they were computed from, and
    ``overall_quality_score`` in [0, 1]. JSON-ready."""
    results = extraction_results(session)
    legacy = legacy_documents(session)
    components = {
        "document_completeness": document_completeness(session),
        "enhancement_usage": enhancement_usage(session),
        "average_extraction_quality": average_extraction_quality(session),
        "session_completeness": session_completeness(session),
    }
    if results:
        source = "extraction_results"
    elif legacy:
        source = "processed_documents"
    else:
        source = "none"
    return {
        "document_count": len(results) if results else len(legacy),
        "document_source": source,
        "has_enhanced_extraction": any(uses_vision(r) for r in results.values()),
        "total_processing_cost": session_processing_cost(session),
        "parts_present": _parts(session),
        **components,
        "weights": dict(WEIGHTS),
        "overall_quality_score": overall_quality_score(components),
    }
