"""The generated (un)structure functions and the declared-type check (issue 17).

The fast paths must be invisible: the same objects, the same bytes, and the same refusals as
the tolerant paths they replace, for every session a strategy can build, misfits included.
"""

from __future__ import annotations

import enum
import json
import math
import uuid
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from session_store.codec import Codec
from session_store.codec.converter import _make_tolerant_structure, make_session_converter
from session_store.codec.unstructure import _make_tolerant_unstructure
from session_store.errors import SerializationError
from session_store.schema import (
    DocumentExtractionResult,
    EnhancedSessionData,
    VisionExtraction,
)
from session_store.testing.strategies import json_objects, json_values, sessions

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CLASSES = (EnhancedSessionData, DocumentExtractionResult, VisionExtraction)


def _codec() -> Codec:
    return Codec(encryption=None, compression=None)


@given(sessions())
def test_generated_unstructure_equals_the_tolerant_one(session: EnhancedSessionData) -> None:
    converter = make_session_converter()
    tolerant = _make_tolerant_unstructure(converter, EnhancedSessionData)
    ours = converter.unstructure(session)
    assert orjson.dumps(ours) == orjson.dumps(tolerant(session))  # same keys, same order


@given(sessions(), json_objects(max_leaves=10), st.data())
def test_generated_structure_equals_the_tolerant_one(
    session: EnhancedSessionData, noise: dict[str, Any], data: st.DataObject
) -> None:
    converter = make_session_converter()
    tolerant = _make_tolerant_structure(converter, EnhancedSessionData)
    clean = converter.unstructure(session)
    # misfits and unknown keys: a known key replaced by any JSON value, plus unknown keys
    messy = dict(clean)
    if data.draw(st.booleans()):
        name = data.draw(st.sampled_from(sorted(clean)))
        messy[name] = data.draw(json_values(max_leaves=5))
    messy.update({k: v for k, v in noise.items() if k not in clean})
    for payload in (clean, messy):
        try:
            expected: Any = tolerant(json.loads(json.dumps(payload)), EnhancedSessionData)
        except Exception as exc:  # a required field missing: both refuse alike
            with pytest.raises(type(exc)):
                converter.structure(json.loads(json.dumps(payload)), EnhancedSessionData)
            continue
        assert converter.structure(json.loads(json.dumps(payload)), EnhancedSessionData) == (
            expected
        )


def test_golden_typed_payload_is_rewritten_to_identical_bytes() -> None:
    golden = (GOLDEN / "dataroom_v2_plain.bin").read_bytes()
    c = Codec(encryption=None, compression=None, namespace="golden:")
    session = c.decode("U000GOLDEN", golden).obj
    assert c.encode("U000GOLDEN", session) == golden


def test_golden_zstd_payload_rewrites_to_the_same_json() -> None:
    golden = (GOLDEN / "dataroom_v2_zstd.bin").read_bytes()
    c = Codec(encryption=None, namespace="golden:")
    session = c.decode("U000GOLDEN", golden).obj
    again = c.encode("U000GOLDEN", session)
    header = 5 + again[4]
    old_json = zstandard.ZstdDecompressor().decompress(golden[6:])
    new_json = again[header:]
    if again[4]:
        new_json = zstandard.ZstdDecompressor().decompress(new_json)
    assert new_json == old_json


class Color(enum.Enum):
    RED = 1


class Mood(enum.StrEnum):
    CALM = "calm"


def _vision(**changes: Any) -> EnhancedSessionData:
    # extraction results are the plan's dicts (issue 14): the strict walk checks them whole
    page = {"page_number": 1, "content_type": "chart", "confidence": 0.9, **changes}
    doc = {"document_id": "d", "filename": "d.pdf", "vision_extractions": [page]}
    return EnhancedSessionData("u", extraction_results={"d": doc})


@pytest.mark.parametrize(
    "session",
    [
        _vision(confidence=math.nan),
        _vision(cost_usd=math.inf),
        _vision(model=Color.RED),
        _vision(model=Mood.CALM),
        _vision(content_type=uuid.uuid4()),
        _vision(page_number=2**64),
        _vision(page_number=Color.RED),
        _vision(data_points={"x": [1.0, -math.inf]}),
        _vision(data_points={"x": {1, 2}}),
        _vision(extra={"when": uuid.uuid4()}),
        EnhancedSessionData("u", document_summary={"score": math.nan}),
        EnhancedSessionData(user_id=Color.RED),  # type: ignore[arg-type]
        EnhancedSessionData("u", extra={"nested": [{"deep": Color.RED}]}),
        EnhancedSessionData("u", cross_document_insights={"x": [math.nan]}),
        EnhancedSessionData("u", extraction_results={"d": {"raw": math.nan}}),
    ],
    ids=lambda s: repr(s)[:60],
)
def test_typed_sessions_refuse_what_json_cannot_hold(session: EnhancedSessionData) -> None:
    with pytest.raises(SerializationError):
        _codec().encode("u", session)


@attrs.define
class Checked:
    """A session class whose __init__ does more than assign: a validator and a post-init."""

    name: str = attrs.field(validator=attrs.validators.min_len(1))
    size: int = 0
    extra: dict[str, Any] = attrs.Factory(dict)
    seen: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        self.seen = True


def test_classes_whose_init_does_more_still_run_it() -> None:
    converter = make_session_converter()
    loaded = converter.structure({"name": "a", "size": 2}, Checked)
    assert loaded.seen and loaded.size == 2  # __attrs_post_init__ ran
    with pytest.raises(ValueError, match=r"[Ll]ength"):
        converter.structure({"name": ""}, Checked)  # the validator ran
    assert converter.structure({"name": "b", "new": 1}, Checked).extra == {"new": 1}


@given(
    body=st.binary(max_size=200) | st.sampled_from([b"[]" * 40, b"{" * 50, b",,,,"]),
    limit=st.integers(min_value=0, max_value=200_000),
)
def test_the_budget_shortcut_answers_as_the_exact_count(body: bytes, limit: int) -> None:
    # The shortcut skips counting when any body of this length fits; its answer must be the
    # exact comparison's at every length and limit, on both sides of the shortcut's bound.
    from session_store.codec.limits import parse_cost, within_budget

    assert within_budget(body, limit) == (parse_cost(body) <= limit)


@given(body=st.binary(max_size=300) | st.sampled_from([b"[{,", b"", b"[" * 99, b'{"a":[1,2]}']))
def test_the_one_pass_count_is_the_three_counts(body: bytes) -> None:
    # parse_cost counts commas and brackets in one pass (translate): exactly the three counts.
    from session_store.codec.limits import BYTE_COST, VALUE_COST, parse_cost

    values = body.count(b",") + body.count(b"[") + body.count(b"{") + 1
    assert parse_cost(body) == BYTE_COST * len(body) + VALUE_COST * values
