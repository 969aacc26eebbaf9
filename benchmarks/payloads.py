"""One seeded payload generator shared by every benchmark.

Sizes: small (~7 KB), medium (~60 KB), large (~600 KB) of JSON. Two shapes:

* ``legacy``: the plain dict the first host app stored (processed documents with extracted text,
  a document summary, analysis and market research), like ``session_store/samples``;
* ``vision``: a typed :class:`EnhancedSessionData` heavy on extraction results with vision
  extractions (many small fields rather than a few long texts).
"""

from __future__ import annotations

import random
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from session_store.schema import (
    DocumentExtractionResult,
    EnhancedSessionData,
    ExtractionMethod,
    VisionExtraction,
)

__all__ = ["SIZES", "legacy_session", "vision_session"]

#: Target JSON sizes in bytes.
SIZES = {"small": 7_000, "medium": 60_000, "large": 600_000}

_WORDS = [
    "ARR",
    "revenue",
    "churn",
    "TAM",
    "seed",
    "SAFE",
    "runway",
    "EBITDA",
    "burn",
    "cohort",
    "pipeline",
    "LOI",
    "pilot",
    "Series",
    "A",
    "wastewater",
    "electrochemical",
    "gross",
    "margin",
    "customers",
    "SaaS",
    "B2B",
    "EU",
    "Spain",
    "€",
    "日本",
    "ünïcode",
]


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def legacy_session(size: str, seed: int = 0) -> dict[str, Any]:
    """A legacy-shaped session dict of about ``SIZES[size]`` bytes of JSON."""
    rng = random.Random(f"legacy-{size}-{seed}")
    target = SIZES[size]
    session: dict[str, Any] = {
        "processed_documents": [],
        "document_summary": {"total_documents": 0, "document_types": {"pdf": 0}},
        "analysis_result": {
            "executive_summary": [_text(rng, 12) for _ in range(3)],
            "scoring": {
                k: {"score": rng.randint(1, 10), "justification": _text(rng, 8)}
                for k in ("team", "market", "product", "traction", "financials")
            },
            "overall_score": round(rng.uniform(1, 10), 1),
        },
        "market_research": {"result": {"market_size": {"tam_usd": 12_500_000_000, "cagr": 0.071}}},
        "drive_link": "https://drive.example.com/drive/folders/" + "x" * 20,
        "analysis_timestamp": "2025-06-15T12:27:01.591699",
    }
    i = 0
    while len(orjson.dumps(session)) < target:
        session["processed_documents"].append(
            {
                "name": f"deck_{i}.pdf",
                "type": "pdf",
                "content": _text(rng, 120),
                "metadata": {
                    "pages": rng.randint(1, 60),
                    "has_content": True,
                    "file_size_bytes": rng.randint(10_000, 9_000_000),
                    "creator_info": {"producer": "Skia/PDF", "creator": None},
                },
            }
        )
        i += 1
    session["document_summary"]["total_documents"] = i
    return session


def vision_session(size: str, seed: int = 0) -> EnhancedSessionData:
    """A typed, vision-heavy session of about ``SIZES[size]`` bytes of JSON."""
    rng = random.Random(f"vision-{size}-{seed}")
    target = SIZES[size]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    session = EnhancedSessionData(
        user_id=f"U{seed:09d}", created_at=start, last_accessed=start + timedelta(hours=1)
    )
    i = 0
    approx = 400
    while approx < target:
        doc = DocumentExtractionResult(
            document_id=f"doc-{i}",
            filename=f"deck_{i}.pdf",
            extraction_method=ExtractionMethod.HYBRID_TEXT_VISION.value,
            text_content=_text(rng, 60),
            text_extraction_metadata={"pages": rng.randint(1, 60), "language": "en"},
            vision_extractions=[
                VisionExtraction(
                    page_number=p,
                    content_type=rng.choice(["chart", "table", "diagram"]),
                    description=_text(rng, 10),
                    extracted_text=_text(rng, 8),
                    data_points={"series": [rng.random() for _ in range(4)], "unit": "USD"},
                    confidence=rng.random(),
                    model="vision-1",
                    cost_usd=round(rng.uniform(0.001, 0.05), 4),
                )
                for p in range(4)
            ],
            vision_processing_summary={"pages": 4, "model": "vision-1"},
            comprehensive_insights=[_text(rng, 6) for _ in range(3)],
            confidence_scores={"text": rng.random(), "vision": rng.random()},
            processing_time=rng.uniform(0.5, 9),
            processing_cost=rng.uniform(0.01, 0.2),
            processing_strategy="hybrid",
            extraction_quality_score=rng.random(),
            completeness_score=rng.random(),
        )
        session.extraction_results[doc.document_id] = asdict(doc)
        approx += 2650
        i += 1
    return session
