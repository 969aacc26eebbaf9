"""Round trip or refuse (``session_store/codec/exact.py`` and the ``extra`` clash check): what
``save`` accepts loads back equal, of the same types; what cannot is a ``SerializationError``
naming it, raised before any write."""

from __future__ import annotations

import enum
from typing import Any

import attrs
import orjson
import pytest

from session_store import MemoryBackend, SessionStore
from session_store.codec import Codec, Plain
from session_store.errors import CorruptPayloadError, SerializationError
from session_store.schema import SchemaInfo, register_schema


class Pair(enum.Enum):
    LOW = (0, 1)


class Listed(enum.Enum):
    """List and dict values: JSON gives them back equal, so the member is found again."""

    ROW = [1, 2]  # noqa: RUF012
    MAP = {"a": 1}  # noqa: RUF012


class Shade(enum.Enum):
    DARK = "dark"


class Size(enum.IntEnum):
    BIG = 3


@attrs.define
class Holder:
    user_id: str
    member: Any = None
    maybe: Shade | None = None
    either: Shade | str = "auto"
    sized: Size | str = "none"
    by_int: dict[int, str] = attrs.Factory(dict)
    by_float: dict[float, int] = attrs.Factory(dict)
    by_bool: dict[bool, int] = attrs.Factory(dict)
    extra: dict[str, Any] = attrs.Factory(dict)


@attrs.define
class Inner:
    """No ``extra``: cattrs' own structure, with misfits kept on failure."""

    count: int = 0
    ratio: float = 0.0


@attrs.define
class Outer:
    user_id: str
    inner: Inner = attrs.Factory(Inner)
    inners: list[Inner] = attrs.Factory(list)
    extra: dict[str, Any] = attrs.Factory(dict)


@attrs.define
class Bare:
    user_id: str
    count: int = 0
    inner: Inner = attrs.Factory(Inner)


for _cls in (Holder, Outer, Bare):
    register_schema(SchemaInfo(f"test-exact-{_cls.__name__.lower()}", _cls, 1))


def _round_trip(obj: Any) -> Any:
    backend = MemoryBackend()
    SessionStore(backend, type(obj), codec=Codec(encryption=None)).save("k", obj)
    return SessionStore(backend, type(obj), codec=Codec(encryption=None)).load("k")


def test_an_enum_with_tuple_values_is_refused_naming_the_member() -> None:
    codec = Codec(encryption=None)
    with pytest.raises(SerializationError, match=r"Pair\.LOW"):
        codec.converter.unstructure(Pair.LOW, Pair)


@pytest.mark.parametrize("member", [Listed.ROW, Listed.MAP])
def test_an_enum_whose_value_json_gives_back_round_trips(member: Listed) -> None:
    @attrs.define
    class WithListed:
        user_id: str
        member: Listed = Listed.ROW
        extra: dict[str, Any] = attrs.Factory(dict)

    register_schema(SchemaInfo(f"test-exact-listed-{member.name}", WithListed, 1))
    loaded = _round_trip(WithListed("u", member))
    assert loaded.member is member


def test_enum_members_in_unions_read_back_as_themselves_or_are_refused() -> None:
    loaded = _round_trip(Holder("u", maybe=Shade.DARK, sized=Size.BIG))
    assert loaded.maybe is Shade.DARK
    # Size | str: 3 can only be the member: accepted, and it reads back as the member
    assert loaded.sized is Size.BIG
    backend = MemoryBackend()
    store = SessionStore(backend, Holder, codec=Codec(encryption=None))
    store.save("k", Holder("u", either="kept"))
    with pytest.raises(SerializationError, match=r"Shade\.DARK"):
        store.save("k", Holder("u", either=Shade.DARK))
    loaded = store.load("k")
    assert loaded is not None and loaded.either == "kept"  # the refused save wrote nothing


def test_a_plain_str_in_an_enum_union_round_trips() -> None:
    assert _round_trip(Holder("u", either="dark")).either == "dark"


def test_number_keys_round_trip() -> None:
    loaded = _round_trip(
        Holder("u", by_int={1: "a", -20: "b"}, by_float={1.5: 1, -0.25: 2}, by_bool={True: 1})
    )
    assert loaded.by_int == {1: "a", -20: "b"}
    assert loaded.by_float == {1.5: 1, -0.25: 2}
    assert loaded.by_bool == {True: 1}
    assert all(type(k) is int for k in loaded.by_int)


def test_a_stored_key_that_is_not_canonical_text_is_kept_as_stored() -> None:
    codec = Codec(encryption=None)
    loaded = codec.converter.structure({"user_id": "u", "by_int": {"01": "a"}}, Holder)
    assert loaded.by_int == {"01": "a"}  # type: ignore[comparison-overlap]  # a misfit, kept


def test_an_extra_key_named_like_a_field_is_refused_before_any_write() -> None:
    backend = MemoryBackend()
    store = SessionStore(backend, Holder, codec=Codec(encryption=None))
    store.save("k", Holder("alice"))
    with pytest.raises(SerializationError, match="'user_id'"):
        store.save("k", Holder("alice", extra={"user_id": "mallory", "note": 1}))
    loaded = store.load("k")
    assert loaded is not None and loaded.user_id == "alice"


def test_an_extra_key_named_extra_round_trips() -> None:
    loaded = _round_trip(Holder("u", extra={"extra": {"a": 1}}))
    assert loaded.extra == {"extra": {"a": 1}}


@pytest.mark.parametrize(
    "obj",
    [
        Outer("u", Inner(count=1.5)),  # type: ignore[arg-type]
        Outer("u", inners=[Inner(), Inner(ratio="x")]),  # type: ignore[arg-type]
        Bare("u", count="7"),  # type: ignore[arg-type]
        Bare("u", inner=Inner(count=True)),
    ],
    ids=["nested", "in-a-list", "top-level", "bool-for-int"],
)
def test_a_misfit_in_a_class_without_extra_is_kept_as_stored(obj: Any) -> None:
    loaded = _round_trip(obj)
    assert loaded == obj
    assert type(loaded) is type(obj)


def test_a_class_without_extra_still_refuses_a_missing_required_field() -> None:
    codec = Codec(encryption=None)
    body = orjson.dumps({"schema": "test-exact-bare", "version": 1, "data": {"count": 1}})
    with pytest.raises(CorruptPayloadError, match="Bare"):
        codec.from_plain("k", Plain(False, body, ()))
