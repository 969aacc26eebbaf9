"""The strict storable-JSON check's C fast path (a strict ``ormsgpack.packb`` plus a scan of its
bytes for NaN and infinity) against the exact Python walk it replaced
(:func:`jsonsafe.check_storable`).

The fast path may raise a false alarm (then the exact walk settles it) but must never miss:
for every value a strategy can build, nasty leaves included, ``dumps`` refuses exactly what the
exact walk refuses, and writes exactly orjson's bytes for everything else.
"""

from __future__ import annotations

import enum
import math
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from session_store.codec import jsonsafe, strictpack
from session_store.errors import SerializationError


class Colour(enum.Enum):
    RED = 1


class Size(enum.StrEnum):
    BIG = "big"


class Level(enum.IntEnum):
    HIGH = 3


class Sub(dict):  # type: ignore[type-arg]
    """A dict subclass: orjson would write it as a dict; refused."""


NASTY: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    -math.nan,
    float("nan") * -1,
    Colour.RED,
    Size.BIG,
    Level.HIGH,
    uuid.UUID(int=7),
    orjson.Fragment(b"1"),
    {1, 2},
    b"bytes",
    bytearray(b"x"),
    2**64,
    -(2**63) - 1,
    Sub(),
    1j,
]

plain_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    # the bytes the scan looks for, inside text, lengths and ints: false alarms at most
    | st.text(alphabet=st.sampled_from("a\x7fg\xff\U0001f600 null"), max_size=300)
    | st.sampled_from([1.7976931348623157e308, -1.7976931348623157e308, 5e-324, 127, 255, -1])
)


def values(nasty: bool) -> st.SearchStrategy[Any]:
    leaves = plain_leaves | st.sampled_from(NASTY) if nasty else plain_leaves
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=6)
            | st.lists(inner, max_size=4).map(tuple)
            | st.dictionaries(st.text(max_size=5), inner, max_size=6)
        ),
        max_leaves=40,
    )


def _exact(value: Any) -> bool:
    """The old answer: the exact Python walk, after orjson (which refuses what it cannot write)."""
    try:
        orjson.dumps(value, default=jsonsafe._refuse, option=jsonsafe._STRICT)
        jsonsafe.check_storable(value)
    except (TypeError, orjson.JSONEncodeError, SerializationError):
        return False
    return True


@given(values(nasty=True))
def test_dumps_refuses_exactly_what_the_exact_walk_refuses(value: Any) -> None:
    document = {"data": value}
    for unchecked in (None, [value]):
        if _exact(document):
            assert jsonsafe.dumps(document, unchecked=unchecked) == orjson.dumps(document)
        else:
            with pytest.raises(SerializationError):
                jsonsafe.dumps(document, unchecked=unchecked)


@given(values(nasty=False))
def test_the_fast_path_never_refuses_plain_json_for_good(value: Any) -> None:
    # a false alarm of the fast path is allowed, but the value is then stored all the same
    assert jsonsafe.dumps([value, None]) == orjson.dumps([value, None])


@given(values(nasty=True))
def test_the_fast_path_misses_nothing(value: Any) -> None:
    """Whenever the fast path says "plain", the exact walk agrees (no false negative)."""
    document = [value, None]  # a null written: the NaN scan always runs
    try:
        written = orjson.dumps(document, default=jsonsafe._refuse, option=jsonsafe._STRICT)
    except (TypeError, orjson.JSONEncodeError):
        return  # orjson refused it itself
    if jsonsafe._only_plain(document, written)[0]:
        jsonsafe.check_storable(document)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, Colour.RED, uuid.UUID(int=1)])
def test_a_nasty_leaf_is_found_among_many_shared_floats(bad: Any) -> None:
    # 80k floats: far past the scan's budget of candidates, the regular expression takes over
    shared = [1.5] * 40_000 + [float(i) for i in range(40_000)]
    with pytest.raises(SerializationError):
        jsonsafe.dumps({"a": shared, "b": [None, {"x": bad}]}, unchecked=[shared, [None, bad]])


def test_candidate_bytes_inside_text_fall_back_to_the_exact_walk() -> None:
    # a 203-byte string (length byte 0xcb) opening with 0x7f then a 4-byte UTF-8 lead (0xf0)
    text = "\x7f\U0001f600" + "a" * 198
    value = {"text": text, "n": None, "f": 0.5}
    packed = strictpack.pack(value)
    assert packed is not None and b"\xcb\x7f\xf0" in packed
    assert not strictpack.finite(packed)  # the very bytes of an infinity: a false alarm...
    assert jsonsafe.dumps(value) == orjson.dumps(value)  # ...which the exact walk clears


def test_too_deep_for_msgpack_is_settled_by_the_exact_walk() -> None:
    deep: Any = None
    for _ in range(200):  # within orjson's depth limit
        deep = [deep]
    assert jsonsafe.dumps(deep) == orjson.dumps(deep)


def test_no_null_written_means_no_nan_scan() -> None:
    packed = strictpack.pack([math.nan])
    assert packed is not None and not strictpack.finite(packed)
    assert jsonsafe._only_plain([1.5, "x"], b'[1.5,"x"]')[0]


# -- the exact walk on hostile shapes (adversarial items 1-4) ---------------------------------
def _nest(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_the_walk_refuses_exactly_what_orjson_finds_too_deep() -> None:
    """The walk's depth limit is orjson's: the deepest value orjson writes passes the walk,
    one level more is refused by both, and the error says it is the nesting."""
    deepest = _nest(jsonsafe.MAX_DEPTH)
    orjson.dumps(deepest)
    jsonsafe.check_storable(deepest)
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(_nest(jsonsafe.MAX_DEPTH + 1))
    with pytest.raises(SerializationError, match="nested too deep"):
        jsonsafe.check_storable(_nest(jsonsafe.MAX_DEPTH + 1))


def test_a_deep_refusal_shows_a_short_path() -> None:
    with pytest.raises(SerializationError) as caught:
        jsonsafe.dumps({"deep": _nest(100_000)})
    message = caught.value.message
    assert "nested too deep" in message and "more)" in message and len(message) < 400


def test_a_value_reached_twice_is_not_a_cycle() -> None:
    shared: list[Any] = [1, {"a": 2}]
    value = {"x": shared, "y": [shared, shared], "z": {"w": shared}}
    jsonsafe.check_storable(value)
    assert jsonsafe.dumps(value) == orjson.dumps(value)


@pytest.mark.parametrize("where", ["list", "dict", "tuple-in-list"])
def test_a_cycle_is_refused_naming_where_it_closes(where: str) -> None:
    outer: dict[str, Any] = {"a": {}}
    if where == "list":
        loop: list[Any] = []
        loop.append(loop)
        outer["a"]["b"] = loop
        expected = "['a']['b'][0]"
    elif where == "dict":
        outer["a"]["b"] = outer
        expected = "['a']['b']"
    else:
        inner: list[Any] = []
        inner.append((1, inner))
        outer["a"]["b"] = inner
        expected = "['a']['b'][0][1]"
    with pytest.raises(SerializationError, match="cycle") as caught:
        jsonsafe.dumps(outer)
    assert expected in caught.value.message


def test_a_lone_surrogate_in_a_key_is_named() -> None:
    with pytest.raises(SerializationError, match="surrogate") as caught:
        jsonsafe.dumps({"a": {"\udc80": 1}})
    assert "['a']" in caught.value.message


def test_orjsons_own_reason_is_kept_when_the_walk_finds_nothing() -> None:
    """A refusal the walk cannot explain still says what orjson said (never a bare message)."""
    with pytest.raises(SerializationError) as caught:
        jsonsafe.dumps(orjson.Fragment(b"1"))
    assert caught.value.message != "value is not storable as JSON"
