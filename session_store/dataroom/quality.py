"""The session quality assessment of the data-room plan, exactly, as pure functions.

The plan (``_assess_session_quality``) reports::

    document_count             = len(session.extraction_results)
    has_enhanced_extraction    = any result's extraction_method is 'vision_enhanced' or
                                 'hybrid_text_vision'
    average_extraction_quality = mean of each result's extraction_quality_score, a result
                                 without one counting 0.7; 0.0 with no results
    total_processing_cost      = sum of each result's processing_cost
    session_completeness       = see below
    overall_quality_score      = min(1.0, document_count / 5) * 0.2
                               + (1.0 if has_enhanced_extraction else 0.5) * 0.3
                               + average_extraction_quality * 0.3
                               + session_completeness * 0.2

The plan names two helpers without a body; their definitions here:

``session_completeness`` (the plan's ``_assess_session_completeness``)
    The share, in [0, 1], of these five parts the session holds present and non-empty
    (:func:`is_present`): documents (``processed_documents`` or ``extraction_results``),
    ``document_summary``, the analysis result (the legacy ``analysis_result`` key, kept in
    ``extra``), market research (``market_research_data``, else the legacy ``market_research``
    key), ``cross_document_insights``.
``total_processing_cost`` (the plan's ``_calculate_total_processing_cost``)
    The sum of each extraction result's ``processing_cost``.

Where the plan's code would raise on stored data of an unexpected shape, these functions
answer: an extraction result that is not a dict counts as a result with no fields (quality
0.7, cost 0, no vision); a score or cost that is not a finite number (``None``, text, NaN)
counts as absent. Scores are not clamped: the plan does not clamp them, and a score is what the
extractor stored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from session_store.schema.dataroom import EnhancedSessionData, ExtractionMethod

__all__ = [
    "DEFAULT_EXTRACTION_QUALITY",
    "VISION_METHODS",
    "analysis_result",
    "assess_session_completeness",
    "assess_session_quality",
    "average_extraction_quality",
    "document_count",
    "extraction_results",
    "has_enhanced_extraction",
    "has_vision_extractions",
    "is_present",
    "market_research",
    "number",
    "overall_quality_score",
    "session_quality",
    "total_processing_cost",
]

#: The score the plan gives a result that stores none ("default reasonable score").
DEFAULT_EXTRACTION_QUALITY: Final = 0.7

#: Extraction methods the plan counts as enhanced.
VISION_METHODS: Final = (
    ExtractionMethod.VISION_ENHANCED.value,
    ExtractionMethod.HYBRID_TEXT_VISION.value,
)


def number(value: object, default: float = 0.0) -> float:
    """``value`` if it is a finite int or float (not a bool), else ``default``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return value if math.isfinite(value) else default


def is_present(value: object) -> bool:
    """Whether ``value`` holds something: not ``None``, not blank text, not an empty container."""
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return len(value) > 0
    return True


def extraction_results(session: EnhancedSessionData) -> dict[str, Mapping[str, Any]]:
    """The session's extraction results by document id, each as a mapping (a stored entry
    that is not a dict reads as an empty one)."""
    results: object = session.extraction_results
    if not isinstance(results, Mapping):
        return {}
    return {k: v if isinstance(v, Mapping) else {} for k, v in results.items()}


def document_count(session: EnhancedSessionData) -> int:
    """How many documents the session holds: its ``processed_documents`` (the legacy list every
    session has) or its ``extraction_results`` (one per document id), whichever is longer,
    since the app records a document in both. The plan's quality ``document_count`` counts
    extraction results alone, which a legacy session does not have: this is what a person
    reading a table of sessions expects."""
    processed: object = session.processed_documents
    listed = len(processed) if isinstance(processed, list) else 0
    return max(listed, len(extraction_results(session)))


def has_enhanced_extraction(session: EnhancedSessionData) -> bool:
    """Whether any result's ``extraction_method`` is one of :data:`VISION_METHODS`."""
    return any(
        r.get("extraction_method") in VISION_METHODS for r in extraction_results(session).values()
    )


def has_vision_extractions(session: EnhancedSessionData) -> bool:
    """Whether any result holds vision extractions (a non-empty ``vision_extractions``): the
    definition of the plan's ``_has_vision_extractions`` and ``_session_has_vision_data``."""
    return any(bool(r.get("vision_extractions")) for r in extraction_results(session).values())


def average_extraction_quality(session: EnhancedSessionData) -> float:
    """The plan's ``_calculate_average_extraction_quality``: the mean
    ``extraction_quality_score``, 0.7 for a result without one; 0.0 with no results."""
    results = extraction_results(session)
    if not results:
        return 0.0
    scores = [
        number(r.get("extraction_quality_score"), DEFAULT_EXTRACTION_QUALITY)
        for r in results.values()
    ]
    return sum(scores) / len(scores)


def total_processing_cost(session: EnhancedSessionData) -> float:
    """The sum of every extraction result's ``processing_cost``."""
    costs = (number(r.get("processing_cost")) for r in extraction_results(session).values())
    return sum(costs, 0.0)


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


def completeness_parts(session: EnhancedSessionData) -> dict[str, bool]:
    """Which of the five parts of :func:`assess_session_completeness` the session holds."""
    return {
        "documents": is_present(session.processed_documents)
        or is_present(session.extraction_results),
        "document_summary": is_present(session.document_summary),
        "analysis_result": is_present(analysis_result(session)),
        "market_research": is_present(market_research(session)),
        "cross_document_insights": is_present(session.cross_document_insights),
    }


def assess_session_completeness(session: EnhancedSessionData) -> float:
    """The plan's ``_assess_session_completeness``: the share of the five parts present
    (documents, document summary, analysis result, market research, cross-document
    insights)."""
    parts = completeness_parts(session)
    return sum(parts.values()) / len(parts)


def overall_quality_score(metrics: Mapping[str, Any]) -> float:
    """The plan's overall score from its quality metrics, term for term."""
    score: float = (
        min(1.0, metrics["document_count"] / 5) * 0.2
        + (1.0 if metrics["has_enhanced_extraction"] else 0.5) * 0.3
        + metrics["average_extraction_quality"] * 0.3
        + metrics["session_completeness"] * 0.2
    )
    return score


def assess_session_quality(session: EnhancedSessionData) -> dict[str, Any]:
    """The plan's ``_assess_session_quality``: its six keys, its formula."""
    quality_metrics: dict[str, Any] = {
        "document_count": len(extraction_results(session)),
        "has_enhanced_extraction": has_enhanced_extraction(session),
        "average_extraction_quality": average_extraction_quality(session),
        "total_processing_cost": total_processing_cost(session),
        "session_completeness": assess_session_completeness(session),
    }
    quality_metrics["overall_quality_score"] = overall_quality_score(quality_metrics)
    return quality_metrics


#: The name this function had before the plan's names were adopted.
session_quality = assess_session_quality
