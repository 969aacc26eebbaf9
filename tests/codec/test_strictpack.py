"""The strict check's msgpack bytes (``session_store/codec/strictpack.py``) are exact: for any
value the codec accepts, ``unpackb`` of them gives what ``orjson.loads`` of the JSON body gives,
with identical types (int vs float, str, list: a tuple becomes a list in both) and dict key
order, so the decoded near cache may rebuild from them instead of parsing the JSON. And the NaN
scan can miss nothing: every float is written as a float 64 (``0xcb`` + 8 bytes)."""

from __future__ import annotations

import math
import struct
from typing import Any

import orjson
import ormsgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from session_store import MemoryBackend, SessionStore
from session_store.codec import Codec, jsonsafe, strictpack
from session_store.errors import SerializationError

#: Text that puts the scan's bytes (0x7f, 0xcb, 0xff-like UTF-8 leads, 0xf0 leads) everywhere,
#: at lengths around the str8 / str16 boundaries (length bytes 0xcb, 0x7f, 0xff, ...).
tricky_text = st.text(alphabet=st.sampled_from("a\x7f\u02c0\u00ff\U0001f600 null"), max_size=300)
leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.integers(min_value=-300, max_value=300)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | tricky_text
    | st.sampled_from([0.0, -0.0, 5e-324, 1.7976931348623157e308, 2**53 + 1, 203, -16, 127])
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=5) | tricky_text, inner, max_size=6)
    ),
    max_leaves=50,
)


def typed(value: Any) -> Any:
    """``value`` spelled out with every type, float bits and dict key order, so that two values
    compare equal only if they are the same down to the type of each leaf."""
    kind = type(value)
    if kind is dict:
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if kind is list:
        return ("list", [typed(v) for v in value])
    if kind is float:
        return ("float", struct.pack(">d", value))
    return (kind.__name__, value)


@settings(max_examples=400, deadline=None)
@given(values)
def test_unpackb_of_the_check_bytes_is_orjson_loads_of_the_body(value: Any) -> None:
    document = {"schema": "dict", "version": 1, "data": value}
    body, packed = jsonsafe.dumps_packed(document)
    assert packed is not None  # nothing the codec accepts is left without its snapshot
    assert typed(ormsgpack.unpackb(packed)) == typed(orjson.loads(body))


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=8) | tricky_text, values, max_size=8))
def test_a_saved_dict_session_rebuilds_from_its_snapshot_as_from_its_body(data: Any) -> None:
    for codec in (Codec(encryption=None, compression=None), Codec(encryption=None)):
        payload, plain = codec.encode_plain("k", data)
        assert plain.snapshot is not None and plain.snapshot.packed is not None
        from_snapshot = codec.from_plain("k", plain).obj
        cold = codec.decode("k", payload).obj
        assert typed(from_snapshot) == typed(cold)
        assert typed(strictpack.unpack(plain.snapshot.packed)) == typed(orjson.loads(plain.body))


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_every_float_is_written_as_a_float_64(number: float) -> None:
    packed = strictpack.pack(number)
    assert packed == b"\xcb" + struct.pack(">d", number)
    assert strictpack.finite(packed) is math.isfinite(number)


@settings(max_examples=300, deadline=None)
@given(values, st.sampled_from([math.nan, -math.nan, math.inf, -math.inf]), st.randoms())
def test_the_scan_finds_a_nan_or_an_infinity_anywhere(value: Any, bad: float, rnd: Any) -> None:
    """Put the bad float at a random place (and past the scan's budget of candidates): the
    scan never says "finite", and the codec refuses."""
    floats = [float(i) + 0.5 for i in range(rnd.choice([0, 40]))]
    items = [value, *floats]
    items.insert(rnd.randrange(len(items) + 1), {"deep": [bad]})
    packed = strictpack.pack(items)
    assert packed is not None and not strictpack.finite(packed)
    with pytest.raises(SerializationError, match="NaN or infinity"):
        jsonsafe.dumps({"data": items})


def test_a_typed_check_packs_only_its_unchecked_parts_and_keeps_no_snapshot() -> None:
    document = {"schema": "s", "version": 1, "data": {"a": 1, "b": [2.5]}}
    body, packed = jsonsafe.dumps_packed(document, unchecked=[[2.5]])
    assert body == orjson.dumps(document) and packed is None


def test_the_load_after_a_save_reads_the_snapshot_not_the_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A changed session's load right after its save is an ``unpackb`` (issue 17, option (a)):
    with JSON parsing made to fail, it still loads; and the near cache counts the snapshot."""
    store: SessionStore[dict[str, Any]] = SessionStore(
        MemoryBackend(), dict, codec=Codec(encryption=None, compression=None), access_interval=None
    )
    session = {"n": 1, "t": (1, 2.0), "s": "word " * 100}
    store.save("u", session)

    def no_parse(*_: Any, **__: Any) -> Any:
        raise AssertionError("the JSON body was parsed")

    monkeypatch.setattr(jsonsafe, "loads", no_parse)
    loaded = store.load("u")
    assert loaded == {"n": 1, "t": [1, 2.0], "s": "word " * 100}
    assert type(loaded["t"][0]) is int and type(loaded["t"][1]) is float
    entry = store._decoded._entries["u"]
    snapshot = entry.kept.snapshot
    assert snapshot is not None and snapshot.packed is not None
    assert entry.cost == len(entry.data) + len(snapshot.packed)  # the view of the body is free
    assert store._decoded.size_bytes == entry.cost


def test_a_compressed_save_counts_body_and_snapshot_until_a_hit_drops_the_body() -> None:
    store: SessionStore[dict[str, Any]] = SessionStore(
        MemoryBackend(), dict, codec=Codec(encryption=None), access_interval=None
    )
    store.save("u", {"s": "word " * 400, "n": [1, 2.5]})
    entry = store._decoded._entries["u"]
    plain = entry.kept
    assert plain.stages == ("zstd",) and plain.snapshot.packed is not None
    assert entry.cost == len(entry.data) + len(plain.body) + len(plain.snapshot.packed)
    assert store.load("u") == {"s": "word " * 400, "n": [1, 2.5]}
    entry = store._decoded._entries["u"]
    assert entry.kept.body == b"" and entry.kept.snapshot is plain.snapshot
    assert entry.cost == len(entry.data) + len(plain.snapshot.packed)
    assert store._decoded.size_bytes == entry.cost
