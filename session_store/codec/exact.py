"""Round trip or refuse: the converter hooks that keep ``load(save(x))`` equal to ``x``.

What ``save`` accepts must load back, and load back as the same value; what cannot is refused
on ``save`` with a :class:`SerializationError` naming it. Each rule here closes one way the
preconfigured converter and our strict structure hooks disagreed (adversarial review items):

* **Enum values** (:func:`enum_value`): a member is written as its value; a value JSON does not
  give back as that member (a tuple, read back as a list) is refused.
* **Enum members in a union** (``Shade | str``): the value written must structure back to the
  very member (``"dark"`` would read back as the ``str``), else refused.
* **Number mapping keys** (``dict[int, str]``): cattrs' orjson converter writes them as text;
  they are read back from their canonical text (``"1"`` -> ``1``, never ``"01"`` or ``"1.0"``).
* **Mapping keys, written** (:func:`_make_mapping_unstructure`): a ``str``/``Any`` key (and
  every key under ``Any``) is written as it is, never as ``str(key)``, so a non-str key is
  refused by the strict JSON check instead of merging with its text (``{1: "a", "1": "b"}``
  would lose ``"a"``); an ``int``/``float``/``bool`` key must have exactly the declared type
  (``True`` in a ``dict[int, str]``, ``1`` in a ``dict[float, int]`` would read back as other
  keys); a key type nothing can read back (``UUID``) is refused on save, even when empty.
* **Schemas without ``extra``**: a field whose stored value does not fit its declared type (the
  app built ``score=True`` for a ``float``: attrs checks no annotations) is kept exactly as
  stored, as a schema with ``extra`` always did, instead of making the session unreadable.

Every rule costs nothing on the common path: a plain ``str``/``int`` enum value returns at
once, and the fallbacks run only where the strict hooks already failed.
"""

from __future__ import annotations

import collections.abc
import enum
import types
import typing
from collections.abc import Callable
from math import isnan
from typing import Any

import attrs
import orjson
from cattrs.errors import StructureHandlerNotFoundError
from cattrs.fns import identity
from cattrs.gen import make_mapping_unstructure_fn
from cattrs.preconf.orjson import OrjsonConverter

from session_store.codec.fields import _field_types, _has_extra
from session_store.errors import SerializationError

__all__ = ["enum_value", "register_exact_hooks"]

_SCALAR_VALUES = frozenset({str, int, float, bool, type(None)})


def enum_value(member: enum.Enum) -> Any:
    """What a member is written as: its value, if JSON gives that value back as this member."""
    value = member.value
    if type(value) in _SCALAR_VALUES:
        return value
    cls = type(member)
    try:
        read_back = orjson.loads(orjson.dumps(value))
        same = cls(read_back) is member
    except Exception:  # not JSON at all, or no member has what JSON gives back
        same = False
    if not same:
        raise SerializationError(
            f"{cls.__qualname__}.{member.name} has the value {value!r} "
            f"({type(value).__name__}), which JSON does not read back as this member; give "
            f"{cls.__qualname__} str or int values"
        )
    return value


# -- enum members in unions -------------------------------------------------------------------
def _union_with_enum(t: Any) -> bool:
    if typing.get_origin(t) not in (typing.Union, types.UnionType):
        return False
    return any(isinstance(a, type) and issubclass(a, enum.Enum) for a in typing.get_args(t))


def _make_union_unstructure(converter: OrjsonConverter, union: Any) -> Callable[[Any], Any]:
    """Unstructure by the value's own type (as cattrs does for a union); a member must read
    back as itself through the union's structure hook."""

    def unstructure(value: Any) -> Any:
        written = converter.unstructure(value)
        if isinstance(value, enum.Enum):
            try:
                back = converter.get_structure_hook(union)(written, union)
            except Exception:
                back = None
            if back is not value:
                raise SerializationError(
                    f"{type(value).__qualname__}.{value.name} in a field declared {union} is "
                    f"written as {written!r}, which reads back as {back!r}, not the member; "
                    "declare the field as the enum alone (or store the plain value)"
                )
        return written

    return unstructure


# -- number keys of mappings ------------------------------------------------------------------
def _parse_int(text: str) -> int:
    number = int(text)
    if str(number) != text:
        raise ValueError(f"{text!r} is not the canonical text of an int")
    return number


def _parse_float(text: str) -> float:
    number = float(text)
    if str(number) != text:
        raise ValueError(f"{text!r} is not the canonical text of a float")
    return number


_BOOL_TEXT = {"True": True, "False": False}
_KEY_PARSERS: dict[type, Callable[[str], Any]] = {
    int: _parse_int,
    float: _parse_float,
    bool: _BOOL_TEXT.__getitem__,
}
_STR: Any = str  # cattrs' key handler type says (key, type); str is called with the key only
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


def _number_keyed(t: Any) -> bool:
    args = typing.get_args(t)
    return typing.get_origin(t) in _MAPPINGS and len(args) == 2 and args[0] in _KEY_PARSERS


def _make_number_key_structure(
    converter: OrjsonConverter, t: Any
) -> Callable[[Any, Any], dict[Any, Any]]:
    """Structure a mapping whose keys were written as text by the orjson converter
    (``str(key)``): each key from its canonical text, each value by its declared type."""
    key_type, value_type = typing.get_args(t)
    parse = _KEY_PARSERS[key_type]

    def structure(data: Any, _: Any) -> dict[Any, Any]:
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        hook = converter.get_structure_hook(value_type)
        out: dict[Any, Any] = {}
        for k, v in data.items():
            key = k if type(k) is key_type else parse(k) if type(k) is str else None
            if key is None:
                raise TypeError(f"a {key_type.__name__} key cannot be {k!r}")
            out[key] = hook(v, value_type)
        return out

    return structure


# -- mapping keys, on the way out ------------------------------------------------------------
def _keys_kept(converter: OrjsonConverter) -> Callable[[Any], dict[Any, Any]]:
    """A mapping with ``Any`` keys (a bare ``dict`` under ``Any``): each key as it is (the
    strict JSON check refuses it unless it is a str), each value by its own type."""
    value = converter.unstructure
    return lambda mapping: {k: value(v) for k, v in mapping.items()}


def _exact_keys(key_type: type, cl: Any, write: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``write`` (cattrs' function, keys as ``str(key)``: what :data:`_KEY_PARSERS` reads
    back) for a mapping whose keys all have exactly ``key_type``, else
    :class:`SerializationError` naming the first key that does not. The test runs in C
    (``map(type, ...)``), not a Python call per key."""
    allowed = {key_type}
    name = key_type.__name__

    def unstructure(mapping: Any) -> Any:
        if {*map(type, mapping)} <= allowed and (
            key_type is not float or not any(map(isnan, mapping))
        ):
            return write(mapping)
        bad = next(k for k in mapping if type(k) is not key_type or k != k)
        raise SerializationError(
            f"the key {bad!r} ({type(bad).__name__}) of a mapping declared {cl} would not "
            f"read back as itself: give it {name} keys only (not NaN)"
        )

    return unstructure


def _make_mapping_unstructure(converter: OrjsonConverter, cl: Any) -> Callable[[Any], Any]:
    """Unstructure a mapping as cattrs' orjson converter does, except for the keys (see the
    module doc): cattrs writes ``str(key)`` whatever the key, which no load can undo."""
    args = typing.get_args(cl)
    key_type = args[0] if args else Any
    key_handler: Callable[[Any], Any] | None
    if key_type is str:
        key_handler = None  # the str hook (identity): keys written as they are, no call
    elif key_type is Any or isinstance(key_type, typing.TypeVar):
        return _keys_kept(converter)
    elif key_type in _KEY_PARSERS:
        # cattrs' function unregistered (gen_unstructure_mapping would register it for ``cl``)
        write = make_mapping_unstructure_fn(cl, converter, unstructure_to=dict, key_handler=_STR)
        return _exact_keys(key_type, cl, write)
    elif (
        isinstance(key_type, type) and issubclass(key_type, str) and issubclass(key_type, enum.Enum)
    ):
        key_handler = _str_enum_key
    else:
        try:
            converter.get_structure_hook(key_type)
        except StructureHandlerNotFoundError:
            return _refuse_mapping(cl, key_type)
        hook = converter.get_unstructure_hook(key_type)
        key_handler = str if hook is identity else hook
    return converter.gen_unstructure_mapping(cl, key_handler=key_handler)  # type: ignore[arg-type]


def _str_enum_key(member: Any) -> Any:
    return member.value


def _refuse_mapping(cl: Any, key_type: Any) -> Callable[[Any], Any]:
    def refuse(_: Any) -> Any:
        raise SerializationError(
            f"a mapping declared {cl} cannot be stored: its keys are written as text and "
            f"nothing reads {key_type} back from text (register a structure hook for it, or "
            "key the mapping by str)"
        )

    return refuse


def _is_mapping(t: Any) -> bool:
    """A dict or other mapping type, bare or parametrized (not a TypedDict: cattrs' own)."""
    origin = typing.get_origin(t) or t
    return (
        isinstance(origin, type)
        and issubclass(origin, collections.abc.Mapping)
        and not typing.is_typeddict(t)
        and not attrs.has(origin)
    )


# -- schemas without extra: misfits kept as stored ------------------------------------------
def _plain_schema(t: Any) -> bool:
    return isinstance(t, type) and attrs.has(t) and not _has_extra(t)


def _make_keeping_structure(converter: OrjsonConverter, cls: type) -> Callable[[Any, Any], Any]:
    """cattrs' own structure function for ``cls``; where it fails, each field's stored value
    is kept as it is when it does not fit (a schema with ``extra`` does the same), so that
    what ``save`` wrote is readable. What still fails (a required field missing, a validator)
    raises cattrs' error."""
    strict: Callable[[Any, Any], Any] = converter.gen_structure_attrs_fromdict(cls)
    names = [(a.name, a.alias) for a in attrs.fields(cls) if a.init]

    def keeping(data: dict[str, Any]) -> Any:
        types_ = _field_types(cls)
        kwargs: dict[str, Any] = {}
        for name, alias in names:
            if name in data:
                value = data[name]
                try:
                    kwargs[alias] = converter.structure(value, types_[name])
                except Exception:
                    kwargs[alias] = value  # a misfit, kept exactly as stored
        return cls(**kwargs)

    def structure(data: Any, _: Any) -> Any:
        try:
            return strict(data, cls)
        except Exception as failed:
            if not isinstance(data, dict):
                raise
            try:
                return keeping(data)
            except Exception:
                raise failed from None  # cattrs' own account of what does not fit

    return structure


def register_exact_hooks(converter: OrjsonConverter) -> None:
    """Add the round-trip rules above to a session converter (after its other hooks)."""
    converter.register_unstructure_hook_factory(
        _is_mapping, lambda t: _make_mapping_unstructure(converter, t)
    )
    converter.register_unstructure_hook_factory(
        _union_with_enum, lambda t: _make_union_unstructure(converter, t)
    )
    converter.register_structure_hook_factory(
        _number_keyed, lambda t: _make_number_key_structure(converter, t)
    )
    converter.register_structure_hook_factory(
        _plain_schema, lambda t: _make_keeping_structure(converter, t)
    )
