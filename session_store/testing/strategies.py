"""Hypothesis strategies for every schema class and for arbitrary storable JSON objects.

Use them to check a backend, a codec setting or a migration end to end::

    from hypothesis import given
    from session_store.testing.strategies import sessions

    @given(sessions())
    def test_round_trip(session): assert store.load("k") == store.save("k", session)
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from session_store.schema.dataroom import (
    DocumentExtractionResult,
    EnhancedSessionData,
    ExtractionMethod,
    VisionExtraction,
)

__all__ = [
    "aware_datetimes",
    "extraction_results",
    "json_objects",
    "json_values",
    "sessions",
    "vision_extractions",
]

_text = st.text(max_size=40)
_keys = st.text(min_size=0, max_size=12)
_floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
_ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Any storable JSON value: containers of str, 64-bit int, finite float, bool, None."""
    leaves = st.none() | st.booleans() | _ints | _floats | _text
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def json_objects(max_leaves: int = 30) -> st.SearchStrategy[dict[str, Any]]:
    """Any storable JSON object (what a legacy session dict may hold)."""
    return st.dictionaries(_keys, json_values(max_leaves), max_size=8)


def aware_datetimes() -> st.SearchStrategy[datetime]:
    """Aware UTC datetimes in a sane range (what the schema stores)."""
    return st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    )


def vision_extractions() -> st.SearchStrategy[dict[str, Any]]:
    """Vision extractions as stored: the dict of a :class:`VisionExtraction`, with arbitrary
    extra fields."""
    return st.builds(
        lambda v, extra: {**extra, **dataclasses.asdict(v)},
        st.builds(
            VisionExtraction,
            page_number=st.integers(min_value=0, max_value=10_000),
            content_type=st.sampled_from(["chart", "table", "diagram", "photo", "text"]),
            description=_text,
            extracted_text=_text,
            data_points=json_objects(8),
            confidence=st.floats(min_value=0, max_value=1),
            model=_text,
            cost_usd=st.floats(min_value=0, max_value=100),
        ),
        _extra_keys(VisionExtraction),
    )


def _extra_keys(cls: Any) -> st.SearchStrategy[dict[str, Any]]:
    names = {f.name for f in dataclasses.fields(cls)}
    return st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda name: name not in names),
        json_values(4),
        max_size=2,
    )


def _not_field(cls: type) -> Any:
    import attrs

    names = {a.name for a in attrs.fields(cls)}
    return lambda name: name not in names


def extraction_results() -> st.SearchStrategy[dict[str, Any]]:
    """Extraction results as stored: ``asdict(DocumentExtractionResult(...))``, text-only to
    hybrid, optional parts present or ``None``, with arbitrary extra fields."""
    return st.builds(
        lambda r, extra: {**extra, **dataclasses.asdict(r)},
        st.builds(
            DocumentExtractionResult,
            document_id=st.text(min_size=1, max_size=12),
            filename=_text,
            extraction_method=st.sampled_from([m.value for m in ExtractionMethod]),
            text_content=st.text(max_size=200),
            text_extraction_metadata=json_objects(8),
            vision_extractions=st.none() | st.lists(vision_extractions(), max_size=3),
            vision_processing_summary=st.none() | json_objects(6),
            enhanced_content=st.none() | _text,
            comprehensive_insights=st.none() | st.lists(_text, max_size=3),
            confidence_scores=st.none()
            | st.dictionaries(_keys, st.floats(min_value=0, max_value=1), max_size=3),
            processing_time=st.floats(min_value=0, max_value=1e4),
            processing_cost=st.floats(min_value=0, max_value=1e3),
            processing_strategy=_text,
            extraction_quality_score=st.floats(min_value=0, max_value=1),
            completeness_score=st.floats(min_value=0, max_value=1),
        ),
        _extra_keys(DocumentExtractionResult),
    )


def sessions() -> st.SearchStrategy[EnhancedSessionData]:
    """Typed data-room sessions, with unknown keys in ``extra``."""
    return st.builds(
        EnhancedSessionData,
        user_id=st.text(min_size=1, max_size=20),
        created_at=aware_datetimes(),
        last_accessed=aware_datetimes(),
        processed_documents=st.lists(json_objects(10), max_size=3),
        document_summary=st.none() | _text | json_objects(8),
        market_research_data=json_objects(10),
        extraction_results=st.dictionaries(
            st.text(min_size=1, max_size=8), extraction_results(), max_size=2
        ),
        processing_metadata=json_objects(6),
        cross_document_insights=json_objects(4),
        extra=st.dictionaries(
            st.text(min_size=1, max_size=10).filter(_not_field(EnhancedSessionData)),
            json_values(6),
            max_size=3,
        ),
    )
