"""The data-room schema: what the first host app (a chat bot analysing investment data rooms)
keeps per user, with the names, defaults and shapes of its "enhanced session manager" plan.

* :class:`EnhancedSessionData` (an attrs class, the stored schema ``dataroom``): the plan's
  attributes and defaults, ``to_dict`` / ``from_dict`` giving and taking the plan's dict.
  Timestamps are **aware UTC** datetimes inside; ``to_dict`` writes them as the plan did
  (``datetime.utcnow().isoformat()``: naive UTC, no offset), so code that parses them with
  ``datetime.fromisoformat`` and compares them with ``datetime.utcnow()`` keeps working;
  ``from_dict`` reads naive timestamps as UTC. :func:`naive_utc` gives the plan's naive value.
* ``extraction_results`` maps a document id to a **dict**: what the plan stores,
  ``dataclasses.asdict(DocumentExtractionResult(...))``. :class:`DocumentExtractionResult` is
  the plan's dataclass (field names, order and defaults), and ``from_dict`` reads one back.
* Every key a stored session has that the schema does not know is kept verbatim in ``extra``,
  written back on save and by ``to_dict``; a known key whose stored value does not have the
  declared type (a legacy ``document_summary: None``) is kept exactly as stored.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from attrs import Factory, define, field

from session_store.errors import SerializationError

__all__ = [
    "PLAN_SESSION_KEYS",
    "DocumentExtractionResult",
    "EnhancedSessionData",
    "ExtractionMethod",
    "VisionExtraction",
    "format_vision_extraction",
    "naive_utc",
    "utc_now",
]


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def naive_utc(value: datetime) -> datetime:
    """``value`` as the plan held it: naive, in UTC (what ``datetime.utcnow()`` returns).

    For code written against the plan: ``datetime.utcnow() - naive_utc(session.created_at)``;
    better, ``datetime.now(UTC) - session.created_at``.
    """
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _parse_time(value: Any) -> Any:
    """An aware UTC datetime from an ISO string or datetime (naive means UTC); else as is."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        return value
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _plan_time(value: Any) -> Any:
    """A timestamp as the plan's ``to_dict`` wrote it: naive UTC ISO 8601; a misfit as is."""
    return naive_utc(value).isoformat() if isinstance(value, datetime) else value


class ExtractionMethod(enum.StrEnum):
    """How a document's content was extracted (the plan's three values; it stores the text)."""

    TEXT_ONLY = "text_only"
    VISION_ENHANCED = "vision_enhanced"
    HYBRID_TEXT_VISION = "hybrid_text_vision"


def format_vision_extraction(item: Any) -> str:
    """One vision extraction as text (the definition of the plan's ``_format_vision_content``
    for one item).

    A dict gives ``"[page N content_type]"`` (``page_number`` or ``page``; ``content_type``
    or ``type``; each part only when present) followed by its ``description`` and its
    ``extracted_text``, one per line, empty parts left out; a string is itself; anything else
    is left out (``""``).
    """
    if isinstance(item, str):
        return item
    if not isinstance(item, Mapping):
        return ""
    page = item.get("page_number", item.get("page"))
    kind = item.get("content_type", item.get("type"))
    label = " ".join(
        part
        for part in (
            f"page {page}" if page is not None else "",
            str(kind) if kind else "",
        )
        if part
    )
    lines = [f"[{label}]"] if label else []
    lines += [
        text
        for text in (item.get("description"), item.get("extracted_text"))
        if isinstance(text, str) and text
    ]
    return "\n".join(lines)


@dataclass
class VisionExtraction:
    """A suggested shape for one entry of ``vision_extractions`` (the plan leaves it free:
    ``List[dict]``): what a vision model read off one page image. ``dataclasses.asdict`` of a
    :class:`DocumentExtractionResult` holding these turns them into the dicts stored."""

    page_number: int
    content_type: str = "unknown"
    description: str = ""
    extracted_text: str = ""
    data_points: dict[str, Any] = dataclasses.field(default_factory=dict)
    confidence: float = 0.0
    model: str = ""
    cost_usd: float = 0.0


@dataclass
class DocumentExtractionResult:
    """Comprehensive extraction result supporting text and vision data: the plan's dataclass,
    field for field (names, order, defaults), so ``dataclasses.asdict`` gives the plan's dict.

    ``extraction_method`` is one of ``'text_only'``, ``'vision_enhanced'``,
    ``'hybrid_text_vision'`` (:class:`ExtractionMethod` values). Where the plan's fields have
    no default (``extraction_method``, ``text_content``, ``text_extraction_metadata``) this
    class gives one (``'text_only'``, ``''``, ``{}``): every call the plan's class accepts,
    this one accepts with the same result.
    """

    document_id: str
    filename: str
    extraction_method: str = ExtractionMethod.TEXT_ONLY.value

    # Text extraction data
    text_content: str = ""
    text_extraction_metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    # Vision extraction data (optional)
    vision_extractions: list[Any] | None = None
    vision_processing_summary: dict[str, Any] | None = None

    # Combined analysis
    enhanced_content: str | None = None
    comprehensive_insights: list[str] | None = None
    confidence_scores: dict[str, Any] | None = None

    # Processing metadata
    processing_time: float = 0.0
    processing_cost: float = 0.0
    processing_strategy: str = "default"

    # Quality metrics
    extraction_quality_score: float = 0.0
    completeness_score: float = 0.0

    def _format_vision_content(self) -> str:
        """The vision extractions as text: each one by :func:`format_vision_extraction`,
        non-empty ones joined by a blank line."""
        parts = [format_vision_extraction(v) for v in self.vision_extractions or ()]
        return "\n\n".join(p for p in parts if p)

    def get_all_content(self) -> str:
        """Get comprehensive content combining text and vision (the plan's rule: the enhanced
        content if any, else the text followed by the formatted vision extractions)."""
        if self.enhanced_content:
            return self.enhanced_content
        if self.vision_extractions:
            vision_content = self._format_vision_content()
            return f"{self.text_content}\n\n{vision_content}"
        return self.text_content

    def get_extraction_summary(self) -> dict[str, Any]:
        """Get summary of extraction results for command usage: the plan's six keys."""
        return {
            "extraction_method": self.extraction_method,
            "has_vision_data": bool(self.vision_extractions),
            "content_length": len(self.get_all_content()),
            "quality_score": self.extraction_quality_score,
            "processing_cost": self.processing_cost,
            "insights_count": (
                len(self.comprehensive_insights) if self.comprehensive_insights else 0
            ),
        }

    def to_dict(self) -> dict[str, Any]:
        """The stored dict: ``dataclasses.asdict(self)``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DocumentExtractionResult:
        """The result a stored dict describes (keys the class does not know are ignored here;
        the stored dict itself keeps them).

        Raises:
            SerializationError: ``data`` is not a mapping, or lacks ``document_id`` /
                ``filename``.
        """
        if not isinstance(data, Mapping):
            raise SerializationError(
                f"an extraction result must be a dict, got {type(data).__name__}"
            )
        missing = [k for k in ("document_id", "filename") if k not in data]
        if missing:
            raise SerializationError(f"an extraction result needs {', '.join(missing)}")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


#: The keys of the plan's ``EnhancedSessionData.to_dict()``, in its order.
PLAN_SESSION_KEYS: Final = (
    "user_id",
    "created_at",
    "last_accessed",
    "processed_documents",
    "document_summary",
    "market_research_data",
    "extraction_results",
    "processing_metadata",
    "cross_document_insights",
)


@define(eq=True)
class EnhancedSessionData:
    """One user's data-room session: the plan's attributes and defaults.

    ``extraction_results`` maps a document id to the dict of a
    :class:`DocumentExtractionResult` (``dataclasses.asdict``). ``extra`` holds, verbatim,
    every key the schema does not know (the legacy sessions carry ``analysis_result``,
    ``market_profile``, ``market_research``, ``drive_link``, ``analysis_timestamp``,
    ``test_mode``; apps add more). Timestamps are aware UTC datetimes, or ``None`` when
    unknown: a legacy session whose data records no time (see
    :func:`session_store.schema.builtin.legacy_times`) has no known ``created_at`` and keeps
    none; its ``last_accessed`` is stamped by its next write.
    """

    user_id: str
    created_at: datetime | None = field(factory=utc_now)
    last_accessed: datetime | None = field(factory=utc_now)

    # EXISTING data structures (preserved for backward compatibility)
    processed_documents: list[Any] = Factory(list)
    document_summary: dict[str, Any] | str | None = Factory(dict)
    market_research_data: dict[str, Any] = Factory(dict)

    # NEW enhanced extraction data
    extraction_results: dict[str, dict[str, Any]] = Factory(dict)
    processing_metadata: dict[str, Any] = Factory(dict)
    cross_document_insights: dict[str, Any] = Factory(dict)
    extra: dict[str, Any] = Factory(dict)

    def to_dict(self) -> dict[str, Any]:
        """The plan's dict: its nine keys in its order, timestamps as naive UTC ISO strings
        (as ``datetime.utcnow().isoformat()`` wrote them), then every key kept in ``extra``
        (the plan's ``to_dict`` dropped them; here they survive a ``from_dict`` round trip).

        Values are the session's own objects, not copies, as in the plan.
        """
        data: dict[str, Any] = {
            "user_id": self.user_id,
            "created_at": _plan_time(self.created_at),
            "last_accessed": _plan_time(self.last_accessed),
            "processed_documents": self.processed_documents,
            "document_summary": self.document_summary,
            "market_research_data": self.market_research_data,
            "extraction_results": self.extraction_results,
            "processing_metadata": self.processing_metadata,
            "cross_document_insights": self.cross_document_insights,
        }
        for key, value in self.extra.items():
            data.setdefault(key, value)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnhancedSessionData:
        """The session a dict describes: the plan's ``to_dict`` output (what it stored in
        Redis), ours, or a legacy session dict with a ``user_id``.

        Timestamps are ISO strings or datetimes; naive ones are UTC; a missing one is now.
        Missing parts get the plan's defaults; keys the schema does not know go to ``extra``.
        Values are taken as they are (not copied), as in the plan.

        Raises:
            SerializationError: ``data`` is not a mapping or has no ``user_id``.
        """
        if not isinstance(data, Mapping):
            raise SerializationError(f"a session must be a dict, got {type(data).__name__}")
        if "user_id" not in data:
            raise SerializationError("a session dict needs a 'user_id'")
        known = {a.name for a in cls.__attrs_attrs__} - {"extra"}
        kwargs: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        for stamp in ("created_at", "last_accessed"):
            if stamp in kwargs:
                kwargs[stamp] = _parse_time(kwargs[stamp])
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs, extra=extra)

    def extraction_result(self, document_id: str) -> DocumentExtractionResult | None:
        """The typed view of one stored extraction result, or ``None`` (absent or not a dict
        with a ``document_id`` and ``filename``)."""
        raw = self.extraction_results.get(document_id)
        try:
            return DocumentExtractionResult.from_dict(raw) if raw is not None else None
        except SerializationError:
            return None
