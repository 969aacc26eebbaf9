"""Mapping keys round trip or are refused on save (``session_store/codec/exact.py``,
``_make_mapping_unstructure``): cattrs' orjson converter writes every key as ``str(key)``,
which no load undoes, so the key's exact type is checked on the way out."""

from __future__ import annotations

import enum
import uuid
from typing import Any, TypedDict

import attrs
import pytest

from session_store import MemoryBackend, SessionStore
from session_store.codec import Codec, make_session_converter
from session_store.errors import SerializationError
from session_store.schema import SchemaInfo, register_schema


class Shade(enum.StrEnum):
    DARK = "dark"


class Point(TypedDict):
    x: int


@attrs.define
class Keys:
    user_id: str
    by_float: dict[float, int] = attrs.Factory(dict)
    by_int: dict[int, str] = attrs.Factory(dict)
    by_bool: dict[bool, str] = attrs.Factory(dict)
    by_shade: dict[Shade, int] = attrs.Factory(dict)
    by_str: dict[str, int] = attrs.Factory(dict)
    point: Point | None = None
    blob: Any = None


@attrs.define
class ById:
    user_id: str
    seen: dict[uuid.UUID, int] = attrs.Factory(dict)


register_schema(SchemaInfo("test-mapping-keys", Keys, 1))
register_schema(SchemaInfo("test-mapping-keys-uuid", ById, 1))


def _round_trip(obj: Any, codec: Codec | None = None) -> Any:
    backend = MemoryBackend()
    SessionStore(backend, schema=type(obj), codec=codec).save("k", obj)
    return SessionStore(backend, schema=type(obj), codec=codec).load("k")


def test_keys_of_the_declared_types_round_trip_with_their_types() -> None:
    obj = Keys(
        "u",
        by_float={1.5: 1, -0.0: 2, float("inf"): 3},
        by_int={-7: "a", 2**70: "b"},
        by_bool={True: "t", False: "f"},
        by_shade={Shade.DARK: 1},
        by_str={"1": 1},
        point={"x": 1},
        blob={"a": {"b": [1]}},
    )
    loaded = _round_trip(obj)
    assert loaded == obj
    for name in ("by_float", "by_int", "by_bool", "by_shade", "by_str"):
        got, want = getattr(loaded, name), getattr(obj, name)
        assert [type(k) for k in got] == [type(k) for k in want], name


@pytest.mark.parametrize(
    ("field", "mapping", "named"),
    [
        ("by_float", {1: 1}, "1 (int)"),
        ("by_float", {float("nan"): 1}, "nan (float)"),
        ("by_int", {True: "b"}, "True (bool)"),
        ("by_int", {1.0: "b"}, "1.0 (float)"),
        ("by_bool", {1: "b"}, "1 (int)"),
    ],
)
def test_a_key_of_another_type_is_refused_naming_it(
    field: str, mapping: dict[Any, Any], named: str
) -> None:
    backend = MemoryBackend()
    changes: dict[str, Any] = {field: mapping}
    with pytest.raises(SerializationError, match=r"the key .*declared dict") as info:
        SessionStore(backend, schema=Keys).save("k", attrs.evolve(Keys("u"), **changes))
    assert named in str(info.value)
    assert info.value.key == "k"
    assert backend.get("k") is None  # nothing written


@pytest.mark.parametrize(
    "obj",
    [
        Keys("u", blob={1: "a", "1": "b"}),
        Keys("u", blob=[{"x": {2: 1}}]),
        Keys("u", by_str={1: 1}),  # type: ignore[dict-item]
        Keys("u", blob={Shade.DARK: 1}),
    ],
    ids=["any-collision", "nested-int", "declared-str", "enum-under-any"],
)
def test_a_non_str_key_under_any_or_str_is_refused(obj: Keys) -> None:
    with pytest.raises(SerializationError, match="keys must be str"):
        SessionStore(MemoryBackend(), schema=Keys).save("k", obj)


def test_a_key_type_nothing_reads_back_is_refused_even_empty() -> None:
    with pytest.raises(SerializationError, match=r"dict\[uuid.UUID, int\] cannot be stored"):
        SessionStore(MemoryBackend(), schema=ById).save("k", ById("u"))


def test_a_key_type_with_registered_hooks_round_trips() -> None:
    converter = make_session_converter()
    converter.register_structure_hook(uuid.UUID, lambda v, _: uuid.UUID(v))
    obj = ById("u", {uuid.UUID(int=5): 1})
    loaded = _round_trip(obj, Codec(converter=converter, encryption=None))
    assert loaded == obj
    assert type(next(iter(loaded.seen))) is uuid.UUID
