"""The codec's round-trip-or-refuse rule
(``session_store/codec/exact.py``, ``converter.py``, ``jsonsafe.py``).

The guarantee under attack: what ``save`` accepts loads back equal, with the same types; what
cannot is refused on ``save`` with a :class:`SerializationError`.
Tests that record a break began as ``xfail(strict=True)`` reproducers (2026-11-30), each seen
failing for the reason its docstring gives; their markers were removed as the fixes landed.
"""

from __future__ import annotations

import enum
import uuid
from typing import Any

import attrs
import pytest

from session_store import MemoryBackend, SessionStore
from session_store.errors import SerializationError
from session_store.schema import SchemaInfo, register_schema


class Shade(enum.Enum):
    DARK = "dark"


@attrs.define
class Keyed:
    """No ``extra``: cattrs' own structure, with misfits kept on failure."""

    user_id: str
    by_float: dict[float, int] = attrs.Factory(dict)
    by_int: dict[int, str] = attrs.Factory(dict)
    by_enum: dict[Shade, int] = attrs.Factory(dict)
    listed: list[Shade] = attrs.Factory(list)
    maybe: dict[int, Shade] | None = None


@attrs.define
class KeyedExtra:
    """The same fields, with ``extra``."""

    user_id: str
    by_float: dict[float, int] = attrs.Factory(dict)
    by_int: dict[int, str] = attrs.Factory(dict)
    extra: dict[str, Any] = attrs.Factory(dict)


register_schema(SchemaInfo("adv-round2-keyed", Keyed, 1))
register_schema(SchemaInfo("adv-round2-keyed-extra", KeyedExtra, 1))


def _saved_then_loaded_elsewhere(obj: Any) -> Any:
    """Save ``obj`` through one store, load it through a fresh one (no near cache)."""
    backend = MemoryBackend()
    SessionStore(backend, schema=type(obj)).save("k", obj)
    return SessionStore(backend, schema=type(obj)).load("k")


def _same(loaded: Any, obj: Any) -> bool:
    """Equal, and every mapping key of the same type (``{1: 1} == {1.0: 1}`` hides a change)."""

    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return sorted((repr(k), type(k).__name__, shape(v)) for k, v in value.items())
        if isinstance(value, list | tuple):
            return [shape(v) for v in value]
        return (repr(value), type(value).__name__)

    return bool(loaded == obj) and all(
        shape(getattr(loaded, f.name)) == shape(getattr(obj, f.name))
        for f in attrs.fields(type(obj))
    )


def _round_trips_or_is_refused(obj: Any) -> bool:
    try:
        loaded = _saved_then_loaded_elsewhere(obj)
    except SerializationError:
        return True
    return _same(loaded, obj)


def test_enums_nested_in_keys_lists_and_optional_dicts_round_trip() -> None:
    """What held: enum mapping keys, enums in lists, ``dict[int, Shade] | None``."""
    obj = Keyed("u", by_enum={Shade.DARK: 1}, listed=[Shade.DARK], maybe={1: Shade.DARK})
    assert _same(_saved_then_loaded_elsewhere(obj), obj)


def test_float_keys_round_trip() -> None:
    """What held: ``1.0`` and ``-0.0`` as ``dict[float, int]`` keys."""
    obj = Keyed("u", by_float={1.0: 1, -0.0: 2, 2.5: 3})
    assert _same(_saved_then_loaded_elsewhere(obj), obj)


@pytest.mark.parametrize("cls", [Keyed, KeyedExtra])
def test_an_int_key_in_a_float_keyed_dict_round_trips_or_is_refused(cls: type) -> None:
    """Guarantee: round trip or refuse. Input: ``by_float={1: 1}`` on a ``dict[float, int]``
    field (Python code passes ints where floats are declared all the time; ``1 == 1.0``).
    What happened: ``save`` accepted it and a fresh store loads ``{'1': 1}``: a *str* key, so
    ``loaded.by_float[1]`` raises KeyError. Neither the same value nor a refusal."""
    obj = cls("u", by_float={1: 1})
    assert _round_trips_or_is_refused(obj)


@pytest.mark.parametrize("cls", [Keyed, KeyedExtra])
def test_a_bool_key_in_an_int_keyed_dict_round_trips_or_is_refused(cls: type) -> None:
    """Guarantee: round trip or refuse. Input: ``by_int={True: "b"}`` on ``dict[int, str]``
    (``True == 1``; ``{True: "a", 1: "b"}`` is that very dict in Python). What happened:
    accepted, and a fresh store loads ``{'True': 'b'}``: a str key that equals neither ``1``
    nor ``True``."""
    obj = cls("u", by_int={True: "b"})
    assert _round_trips_or_is_refused(obj)


@attrs.define
class Loose:
    """No ``extra``, with ``Any`` parts: what a session class of an app often looks like."""

    user_id: str
    notes: dict[str, Any] = attrs.Factory(dict)
    blob: Any = None


register_schema(SchemaInfo("adv-round2-loose", Loose, 1))


def test_a_class_with_extra_refuses_an_int_key_inside_any() -> None:
    """What held: with ``extra``, a non-str key anywhere under ``Any`` is refused."""
    with pytest.raises(SerializationError):
        SessionStore(MemoryBackend(), schema=KeyedExtra).save(
            "k", KeyedExtra("u", extra={"m": {1: "a"}})
        )


@pytest.mark.parametrize(
    "obj",
    [
        Loose("u", notes={"x": {1: "a", "1": "b"}}),
        Loose("u", notes={1: "a", "1": "b"}),  # type: ignore[dict-item]
        Loose("u", blob={1: "a", "1": "b"}),
        Loose("u", blob={"k": {True: 1}}),
    ],
    ids=["nested-collision", "declared-str-keys-collision", "any-collision", "bool-key"],
)
def test_non_str_keys_under_any_round_trip_or_are_refused(obj: Loose) -> None:
    """Guarantee: round trip or refuse (a class *with* ``extra`` refuses these: "dict keys
    must be str"). Input: a ``Loose`` session (no ``extra``) with ``{1: "a", "1": "b"}``
    under ``dict[str, Any]`` or ``Any``, or ``{True: 1}``. What happened: ``save`` accepted
    each; a fresh store loads ``{'1': 'b'}`` (the value ``'a'`` is gone: the two keys became
    one) or ``{'True': 1}``. Data lost at save, without an error."""
    assert _round_trips_or_is_refused(obj)


@attrs.define
class ByUuid:
    """A mapping keyed by ``UUID`` (a list of UUIDs is refused on save, "not storable as JSON")."""

    user_id: str
    seen: dict[uuid.UUID, int] = attrs.Factory(dict)


register_schema(SchemaInfo("adv-round2-by-uuid", ByUuid, 1))


@pytest.mark.parametrize("seen", [{}, {uuid.UUID(int=5): 1}], ids=["empty", "one-key"])
def test_a_uuid_keyed_dict_round_trips_or_is_refused(seen: dict[uuid.UUID, int]) -> None:
    """Guarantee: round trip or refuse; a value that cannot load is refused on ``save``.
    Input: a schema with ``seen: dict[uuid.UUID, int]``, saved empty or with one key. What
    happened: ``save`` accepted it, and every load raises ``CorruptPayloadError`` ("data does
    not fit schema ...: StructureHandlerNotFoundError: Unsupported type: UUID"): the session
    is unreadable, even one that never held a UUID."""
    assert _round_trips_or_is_refused(ByUuid("u", seen))
