"""The data-room schema: what the first host app (a chat bot analysing investment data rooms)
keeps per user, typed.

Every key a stored session has that the schema does not know is kept verbatim in ``extra`` and
written back on save; a known key whose stored value does not have the declared type (a legacy
``document_summary: None``) is kept exactly as stored, never coerced or dropped (see
:mod:`session_store.codec.converter`).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from attrs import Factory, define, field

__all__ = [
    "DocumentExtractionResult",
    "EnhancedSessionData",
    "ExtractionMethod",
    "VisionExtraction",
    "utc_now",
]


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class ExtractionMethod(enum.StrEnum):
    """How a document's content was extracted."""

    TEXT_ONLY = "text_only"
    VISION_ENHANCED = "vision_enhanced"
    HYBRID_TEXT_VISION = "hybrid_text_vision"


@define(eq=True)
class VisionExtraction:
    """What a vision model read off one page image (a chart, a table, a diagram)."""

    page_number: int
    content_type: str = "unknown"
    description: str = ""
    extracted_text: str = ""
    data_points: dict[str, Any] = Factory(dict)
    confidence: float = 0.0
    model: str = ""
    cost_usd: float = 0.0
    extra: dict[str, Any] = Factory(dict)


@define(eq=True)
class DocumentExtractionResult:
    """Text and vision extraction results for one document, with their quality and cost."""

    document_id: str
    filename: str
    extraction_method: ExtractionMethod = ExtractionMethod.TEXT_ONLY
    text_content: str = ""
    text_metadata: dict[str, Any] = Factory(dict)
    vision_extractions: list[VisionExtraction] = Factory(list)
    vision_processing_summary: dict[str, Any] = Factory(dict)
    enhanced_content: str = ""
    insights: list[str] = Factory(list)
    confidence_scores: dict[str, float] = Factory(dict)
    processing_time_s: float = 0.0
    processing_cost_usd: float = 0.0
    processing_strategy: str = ""
    quality_score: float = 0.0
    completeness_score: float = 0.0
    extra: dict[str, Any] = Factory(dict)

    @property
    def has_vision(self) -> bool:
        """Whether a vision model contributed to this result."""
        return bool(self.vision_extractions) or self.extraction_method in (
            ExtractionMethod.VISION_ENHANCED,
            ExtractionMethod.HYBRID_TEXT_VISION,
        )

    def get_all_content(self) -> str:
        """Every piece of text this document yielded, for search and summaries.

        The enhanced content when there is one (it already merges text and vision), else the
        text content followed by each vision extraction's description and extracted text.
        """
        if self.enhanced_content:
            return self.enhanced_content
        parts = [self.text_content] if self.text_content else []
        for vision in self.vision_extractions:
            page = f"[page {vision.page_number} {vision.content_type}]"
            body = "\n".join(p for p in (vision.description, vision.extracted_text) if p)
            if body:
                parts.append(f"{page}\n{body}")
        return "\n\n".join(parts)

    def get_extraction_summary(self) -> dict[str, Any]:
        """A small JSON-ready summary of this result, for listings and quality reports."""
        return {
            "document_id": self.document_id,
            "filename": self.filename,
            # a stored value that fits no ExtractionMethod is kept as stored (a misfit)
            "extraction_method": getattr(self.extraction_method, "value", self.extraction_method),
            "text_length": len(self.text_content),
            "vision_extractions": len(self.vision_extractions),
            "has_vision": self.has_vision,
            "insights": len(self.insights),
            "quality_score": self.quality_score,
            "completeness_score": self.completeness_score,
            "processing_time_s": self.processing_time_s,
            "processing_cost_usd": self.processing_cost_usd,
            "processing_strategy": self.processing_strategy,
        }


@define(eq=True)
class EnhancedSessionData:
    """One user's data-room session.

    ``extra`` holds, verbatim, every key the schema does not know (the legacy sessions carry
    ``analysis_result``, ``market_profile``, ``market_research``, ``drive_link``,
    ``analysis_timestamp``, ``test_mode``; apps add more). Timestamps are aware UTC datetimes.
    """

    user_id: str
    created_at: datetime = field(factory=utc_now)
    last_accessed: datetime = field(factory=utc_now)
    processed_documents: list[dict[str, Any]] = Factory(list)
    document_summary: dict[str, Any] | str | None = None
    market_research_data: dict[str, Any] = Factory(dict)
    extraction_results: dict[str, DocumentExtractionResult] = Factory(dict)
    processing_metadata: dict[str, Any] = Factory(dict)
    cross_document_insights: list[Any] = Factory(list)
    extra: dict[str, Any] = Factory(dict)
