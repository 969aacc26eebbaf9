"""Write golden payloads for the current byte format and schema versions. Never overwrites.

Run after adding a schema version or format: ``python tests/golden/make_golden.py``. Each
payload ``NAME.bin`` gets ``NAME.expected.json``: the decoded session as JSON data. Committed
payloads must load to their expected data forever (tests/codec/test_golden.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from session_store.codec import AesGcmStage, Codec, ZstdStage
from session_store.samples import legacy_sessions
from session_store.schema import (
    DocumentExtractionResult,
    EnhancedSessionData,
    ExtractionMethod,
    VisionExtraction,
    get_schema,
)

HERE = Path(__file__).parent
#: A key for golden payloads only. Never use it for anything else.
GOLDEN_KEY = "Z29sZGVuLXRlc3Qta2V5LW5vdC1hLXNlY3JldC0zMiE="
GOLDEN_NAMESPACE = "golden:"
#: The head of the stored keys format-3 payloads are bound to (a backend with prefix "golden").
GOLDEN_HEAD = "golden\x1f"


def golden_codec(*, compress: bool, encrypt: bool, bound: bool = False) -> Codec:
    codec = Codec(
        compression=ZstdStage(threshold=0) if compress else None,
        encryption=AesGcmStage([GOLDEN_KEY]) if encrypt else None,
        namespace=GOLDEN_NAMESPACE,
    )
    return codec.bound_to((GOLDEN_HEAD,)) if bound else codec


def sample_session() -> EnhancedSessionData:
    at = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    return EnhancedSessionData(
        user_id="U000GOLDEN",
        created_at=at,
        last_accessed=at,
        processed_documents=[{"name": "deck.pdf", "type": "pdf", "content": "ARR € 日本"}],
        document_summary={"total_documents": 1},
        market_research_data={"tam_usd": 12_500_000_000, "cagr": 0.071},
        extraction_results={
            "doc-1": asdict(
                DocumentExtractionResult(
                    document_id="doc-1",
                    filename="deck.pdf",
                    extraction_method=ExtractionMethod.HYBRID_TEXT_VISION.value,
                    text_content="revenue grew",
                    text_extraction_metadata={"pages": 12},
                    vision_extractions=[VisionExtraction(page_number=3, content_type="chart")],
                    comprehensive_insights=["ARR grew 40 %"],
                    processing_cost=0.05,
                    extraction_quality_score=0.8,
                    completeness_score=0.9,
                )
            )
        },
        cross_document_insights={"pricing": "consistent"},
        extra={"drive_link": "https://drive.example.com/x", "test_mode": True},
    )


def _current(schema: str) -> int:
    info = get_schema(schema)
    assert info is not None
    return info.version


def _write(name: str, payload: bytes, expected: object) -> None:
    target = HERE / f"{name}.bin"
    if target.exists():
        print(f"kept {target.name} (golden files are never rewritten)")
        return
    target.write_bytes(payload)
    (HERE / f"{name}.expected.json").write_text(
        json.dumps(expected, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    )
    print(f"wrote {target.name}")


def main() -> None:
    legacy = legacy_sessions()
    for user_id, session in legacy.items():
        _write(f"legacy_v0_{user_id}", json.dumps(session).encode(), session)
    with_nan = {"score": math.nan, "note": "as json.dumps wrote it"}
    target = HERE / "legacy_v0_nan.bin"
    if not target.exists():
        target.write_bytes(json.dumps(with_nan).encode())
    typed = sample_session()
    # Byte format 1 (written until issue 13): plain, zstd, and the NUL-joined associated data of
    # aesgcm / zstd_aesgcm, kept as committed. Format 2 (length-prefixed associated data) is what
    # encrypted payloads are written in by a codec bound to no key prefix: the "_ad2" names.
    # Format 3 (the backend's key prefix bound as well) is what a store over a prefixed backend
    # writes: the "_ad3" names. Plain payloads are still format 1.
    for name, compress, encrypt, bound in [
        ("plain", False, False, False),
        ("zstd", True, False, False),
        ("zstd_aesgcm_ad2", True, True, False),
        ("aesgcm_ad2", False, True, False),
        ("zstd_aesgcm_ad3", True, True, True),
        ("aesgcm_ad3", False, True, True),
    ]:
        codec = golden_codec(compress=compress, encrypt=encrypt, bound=bound)
        version = _current("dataroom")
        _write(
            f"dataroom_v{version}_{name}", codec.encode("U000GOLDEN", typed), codec.to_data(typed)
        )
    plain = golden_codec(compress=False, encrypt=False)
    _write("dict_v1_plain", plain.encode("U000DICT", legacy["U095822412"]), legacy["U095822412"])


if __name__ == "__main__":
    main()
