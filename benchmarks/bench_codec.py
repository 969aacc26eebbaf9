"""Codec speed: our typed round trip against plain orjson, msgspec and the usual alternatives.

Goals (issue 6), medium size (~60 KB):

* ``store.save(k, store.load(k))`` of the legacy-shaped session on the memory backend costs at
  most 1.25x ``orjson.loads(orjson.dumps(d))`` of the same dict;
* the same typed round trip of the vision-heavy session costs at most 1.5x msgspec Structs
  round-tripping the same shape.

Beside them, for context: naive ``attrs.asdict`` + ``json``, cattrs defaults + ``json``, and
pickle (benchmark only: session-store never stores pickle). Every figure is a ratio of medians
from interleaved rounds in one run.

Run: ``python -m benchmarks.bench_codec``.
"""

from __future__ import annotations

import json
import pickle  # benchmark baseline only; never used to store anything
from collections.abc import Callable
from typing import Any

import attrs
import cattrs
import msgspec
import orjson

from benchmarks.harness import (
    Goal,
    Ratio,
    machine_line,
    markdown_table,
    measure_ratio,
    profile_top,
)
from benchmarks.payloads import legacy_session, vision_session
from session_store import MemoryBackend, SessionStore
from session_store.codec import Codec
from session_store.schema import EnhancedSessionData


# -- msgspec twins of the schema, for the peer comparison ------------------------------------
class MVision(msgspec.Struct):
    page_number: int
    content_type: str = "unknown"
    description: str = ""
    extracted_text: str = ""
    data_points: dict[str, Any] = {}
    confidence: float = 0.0
    model: str = ""
    cost_usd: float = 0.0


class MDoc(msgspec.Struct):
    """The fields of ``DocumentExtractionResult``, as ``dataclasses.asdict`` stores them."""

    document_id: str
    filename: str
    extraction_method: str = "text_only"
    text_content: str = ""
    text_extraction_metadata: dict[str, Any] = {}
    vision_extractions: list[MVision] | None = None
    vision_processing_summary: dict[str, Any] | None = None
    enhanced_content: str | None = None
    comprehensive_insights: list[str] | None = None
    confidence_scores: dict[str, Any] | None = None
    processing_time: float = 0.0
    processing_cost: float = 0.0
    processing_strategy: str = "default"
    extraction_quality_score: float = 0.0
    completeness_score: float = 0.0


class MSession(msgspec.Struct):
    user_id: str
    created_at: str
    last_accessed: str
    processed_documents: list[Any] = []
    document_summary: Any = None
    market_research_data: dict[str, Any] = {}
    extraction_results: dict[str, MDoc] = {}
    processing_metadata: dict[str, Any] = {}
    cross_document_insights: dict[str, Any] = {}
    extra: dict[str, Any] = {}


def _typed_store(compress: bool) -> SessionStore[EnhancedSessionData]:
    codec = Codec(encryption=None, compression=None if not compress else True)
    # The decoded near cache off: these rows measure the codec (a decode on every load).
    return SessionStore(
        MemoryBackend(),
        EnhancedSessionData,
        codec=codec,
        access_interval=None,
        decoded_cache_bytes=0,
    )


def _round_trip(store: SessionStore[EnhancedSessionData], key: str) -> Callable[[], object]:
    def run() -> object:
        loaded = store.load(key)
        assert loaded is not None
        return store.save(key, loaded)

    return run


def measure(size: str = "medium", rounds: int = 15, inner: int = 20) -> list[Ratio]:
    """The codec ratios at one payload size."""
    legacy = legacy_session(size)
    vision = vision_session(size)

    def repeat(fn: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(inner):
                fn()

        return run

    orjson_rt = repeat(lambda: orjson.loads(orjson.dumps(legacy)))
    results = []
    for compress in (False, True):
        store = _typed_store(compress)
        store.codec.legacy_schema = "dataroom"
        store.backend.set("legacy", json.dumps(legacy).encode())
        loaded = store.load("legacy")
        assert loaded is not None
        store.save("legacy", loaded)  # now typed, current version
        label = "zstd" if compress else "no stages"
        results.append(
            measure_ratio(
                f"typed round trip, legacy shape ({label}) / orjson dict round trip",
                repeat(_round_trip(store, "legacy")),
                orjson_rt,
                rounds=rounds,
                goal="<= 1.25" if not compress else "context",
                met=(lambda r: True) if compress else (lambda r: r <= 1.25),
            )
        )

    store = _typed_store(False)
    store.save("vision", vision)
    as_data = store.codec.to_data(vision)
    m_obj = msgspec.json.decode(orjson.dumps(as_data), type=MSession)
    encoder, decoder = msgspec.json.Encoder(), msgspec.json.Decoder(MSession)
    msgspec_rt = repeat(lambda: decoder.decode(encoder.encode(m_obj)))
    ours_vision = repeat(_round_trip(store, "vision"))
    results.append(
        measure_ratio(
            "typed round trip, vision shape / msgspec Structs",
            ours_vision,
            msgspec_rt,
            rounds=rounds,
            goal="<= 1.5",
            met=lambda r: r <= 1.5,
        )
    )
    plain_converter = cattrs.Converter()
    for name, fn in [
        (
            "naive attrs.asdict + json",
            lambda: json.loads(json.dumps(attrs.asdict(vision), default=str)),
        ),
        (
            "cattrs defaults + json",
            lambda: plain_converter.structure(
                json.loads(json.dumps(plain_converter.unstructure(vision), default=str)),
                dict,
            ),
        ),
        ("pickle (never stored)", lambda: pickle.loads(pickle.dumps(vision))),
    ]:
        results.append(
            measure_ratio(
                f"{name} / our typed round trip (vision)",
                repeat(fn),
                ours_vision,
                rounds=max(5, rounds // 3),
                goal="context",
                met=lambda r: True,
            )
        )
    return results


#: Goals of the issue, on the medium session: (row name prefix, limit).
GOALS = (
    ("typed round trip, legacy shape (no stages)", 1.25),
    ("typed round trip, vision shape", 1.5),
)


def contender(size: str = "medium", shape: str = "legacy") -> Callable[[], object]:
    """Our typed round trip (load + save, no stages) of one payload: what a goal measures."""
    store = _typed_store(False)
    if shape == "legacy":
        store.backend.set("k", json.dumps(legacy_session(size)).encode())
        loaded = store.load("k")
        assert loaded is not None
        store.save("k", loaded)
    else:
        store.save("k", vision_session(size))
    return _round_trip(store, "k")


def goals(results: dict[str, list[Ratio]]) -> list[Goal]:
    """The issue's codec goals (medium size), with a profile of ours where one is missed."""
    found = []
    for prefix, limit in GOALS:
        ratio = next(r for r in results["medium"] if r.name.startswith(prefix))
        goal = Goal(f"codec medium: {ratio.name}", ratio.ratio, limit)
        if not goal.met:
            shape = "legacy" if "legacy" in prefix else "vision"
            goal.profile = profile_top(contender("medium", shape), calls=100)
        found.append(goal)
    return found


def measure_sizes(quick: bool = False) -> dict[str, list[Ratio]]:
    """The codec ratios at every payload size (fewer repetitions for the large one)."""
    plan = {"small": (15, 40), "medium": (15, 20), "large": (9, 3)}
    return {
        size: measure(size, rounds=max(5, rounds // (3 if quick else 1)), inner=inner)
        for size, (rounds, inner) in plan.items()
    }


def report_sizes(results: dict[str, list[Ratio]]) -> str:
    """One table: every comparison (rows) at every size (columns)."""
    sizes = list(results)
    names = [r.name for r in results[sizes[0]]]
    rows = []
    for index, name in enumerate(names):
        cells = [f"{results[size][index].ratio:.2f}x" for size in sizes]
        goal = results["medium"][index].goal if "medium" in results else ""
        rows.append((name, *cells, goal))
    seen: dict[str, float] = {}
    for ratio in results.get("medium", [])[:3]:  # inner=20 calls per timing at medium
        seen[ratio.name.split(" / ")[0]] = ratio.contender_s / 20
        seen[ratio.name.split(" / ")[1]] = ratio.baseline_s / 20
    context = ", ".join(f"{name} {seconds * 1e3:.3f} ms" for name, seconds in seen.items())
    table = markdown_table(rows, ("comparison (time / time)", *sizes, "goal (medium)"))
    return (
        "### Codec round trips (decode + encode, no I/O)\n\n"
        "Sizes: small ~7 KB, medium ~60 KB, large ~600 KB of JSON. Ratios above 1: the left "
        "side is slower.\n\n"
        f"{table}\n\nContext, medium, per round trip: {context}.\n"
    )


def report(results: list[Ratio], size: str = "medium") -> str:
    """The Markdown section for this benchmark."""
    rows = [
        (
            r.name,
            f"{r.ratio:.2f}x",
            r.goal,
            "met" if r.met else "MISSED",
            f"{r.contender_s * 1e3:.2f} ms vs {r.baseline_s * 1e3:.2f} ms",
        )
        for r in results
    ]
    table = markdown_table(rows, ("comparison", "ratio", "goal", "verdict", "context (20 ops)"))
    return f"### Codec round trips ({size}, ~60 KB)\n\n{table}\n"


if __name__ == "__main__":
    print(f"_{machine_line()}_\n")
    print(report(measure()))
