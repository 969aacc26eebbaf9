"""The cattrs converter that turns schema objects into JSON-native data and back.

Built on cattrs' preconfigured orjson converter, with three rules of our own:

* **Aware UTC time.** Datetimes are written as ISO 8601 in UTC. A naive datetime is refused on
  write (``SerializationError``); on read, a naive timestamp (as the legacy app wrote them) is
  taken as UTC, which is what that app meant.
* **Nothing dropped.** For a class with an ``extra`` field, every stored key the class does not
  know goes into ``extra`` and is written back at the top level on save.
* **Nothing coerced.** A known key whose stored value does not have the declared type (a legacy
  ``document_summary: None``, a number stored as text) is kept exactly as stored: the attribute
  holds the stored value and it is written back unchanged. Primitive fields are structured
  strictly (no ``str(5)``, no ``int("5")``) so that a misfit is seen as one.

JSON-native values (``dict[str, Any]`` and friends) pass straight through: that is what keeps the
typed round trip close to plain orjson.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any

import attrs
from cattrs.preconf.orjson import OrjsonConverter, make_converter

from session_store.errors import SerializationError

__all__ = ["EXTRA_FIELD", "make_session_converter"]

#: The attribute that keeps unknown keys.
EXTRA_FIELD = "extra"


def _structure_datetime(value: Any, _: type) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        parsed = datetime.fromisoformat(value)
    else:
        raise TypeError(f"expected an ISO 8601 timestamp, got {type(value).__name__}")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _unstructure_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise SerializationError(
            "naive datetimes are ambiguous; use an aware one such as datetime.now(UTC)"
        )
    return value.astimezone(UTC).isoformat()


def _strict(kind: type) -> Callable[[Any, type], Any]:
    def structure(value: Any, cls: type) -> Any:
        if cls is not kind and isinstance(cls, type) and issubclass(cls, enum.Enum):
            # A StrEnum or IntEnum reaches the str / int hook first (it is a subclass).
            return value if isinstance(value, cls) else cls(value)
        if type(value) is kind or (kind is float and type(value) is int):
            return value
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")

    return structure


def _enum_value(member: enum.Enum) -> Any:
    return member.value


def _passthrough(value: Any, _: type) -> Any:
    return value


def _shallow_fit(declared: Any) -> Callable[[Any], bool]:
    """A cheap test that a value has the declared type's outer shape."""
    origin = typing.get_origin(declared) or declared
    if origin is typing.Union or origin is types.UnionType:
        tests = [_shallow_fit(arg) for arg in typing.get_args(declared)]
        return lambda v: any(test(v) for test in tests)
    if declared is Any:
        return lambda v: True
    if declared is type(None):
        return lambda v: v is None
    if declared is float:
        return lambda v: type(v) in (float, int)
    if isinstance(origin, type):
        return lambda v: isinstance(v, origin) and not (origin is int and type(v) is bool)
    return lambda v: True


def make_session_converter() -> OrjsonConverter:
    """A fresh converter with the session rules; add your own hooks to it for custom types."""
    converter = make_converter()
    converter.register_structure_hook(datetime, _structure_datetime)
    converter.register_unstructure_hook(datetime, _unstructure_datetime)
    for kind in (str, int, float, bool):
        converter.register_structure_hook(kind, _strict(kind))
    converter.register_structure_hook(Any, _passthrough)

    def _structure_enum(value: Any, cls: type[enum.Enum]) -> enum.Enum:
        if isinstance(value, cls):
            return value
        return cls(value)  # an unknown value raises ValueError: kept as a misfit by the caller

    def _is_enum(t: Any) -> bool:
        return isinstance(t, type) and issubclass(t, enum.Enum)

    converter.register_structure_hook_func(_is_enum, _structure_enum)
    # Enums are written as their values: plain JSON, readable by any consumer. Registered on each
    # enum base, so that a StrEnum's own base wins over the ``str`` pass-through in its MRO.
    for base in (enum.Enum, enum.StrEnum, enum.IntEnum, enum.IntFlag, enum.Flag):
        converter.register_unstructure_hook(base, _enum_value)
    converter.register_structure_hook_factory(
        lambda t: attrs.has(t) and _has_extra(t), lambda t: _make_structure(converter, t)
    )
    converter.register_unstructure_hook_factory(
        lambda t: attrs.has(t) and _has_extra(t), lambda t: _make_unstructure(converter, t)
    )
    return converter


@cache
def _has_extra(cls: type) -> bool:
    return any(a.name == EXTRA_FIELD for a in attrs.fields(cls))


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {a.name: hints[a.name] for a in attrs.fields(cls) if a.name != EXTRA_FIELD}


_JSON_LEAVES = (str, int, float, bool, type(None))


def _is_json_native(declared: Any) -> bool:
    """Whether values of ``declared`` are plain JSON data that needs no conversion."""
    if declared is Any or declared in _JSON_LEAVES:
        return True
    origin, args = typing.get_origin(declared), typing.get_args(declared)
    if origin in (typing.Union, types.UnionType):
        return all(_is_json_native(arg) for arg in args)
    if origin is list:
        return not args or _is_json_native(args[0])
    if origin is dict:
        return not args or (args[0] is str and _is_json_native(args[1]))
    return declared in (list, dict)


def _nested(converter: OrjsonConverter, declared: Any, structure: bool) -> Any:
    """A direct handler for ``list[C]`` / ``dict[str, C]`` of an attrs class ``C``, or None."""
    origin, args = typing.get_origin(declared), typing.get_args(declared)
    inner = args[-1] if args else None
    if inner is None or not attrs.has(inner) or origin not in (list, dict):
        return None
    if structure:
        hook = converter.get_structure_hook(inner)
        if origin is list:
            return lambda value, _t: [hook(v, inner) for v in value]
        return lambda value, _t: {k: hook(v, inner) for k, v in value.items()}
    uhook = converter.get_unstructure_hook(inner)
    if origin is list:
        return lambda value: [uhook(v) for v in value]
    return lambda value: {k: uhook(v) for k, v in value.items()}


def _make_structure(converter: OrjsonConverter, cls: type) -> Callable[[Any, type], Any]:
    types_ = _field_types(cls)
    handlers: dict[str, Callable[[Any, Any], Any]] = {}
    native = {name for name, t in types_.items() if _is_json_native(t)}
    for name, declared in types_.items():
        if name not in native:
            handlers[name] = _nested(converter, declared, True) or converter.get_structure_hook(
                declared
            )

    def structure(data: Any, _: type) -> Any:
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__qualname__} data must be a JSON object")
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            if key in native:
                kwargs[key] = value  # JSON data as loaded; a misfit is kept the same way
                continue
            handler = handlers.get(key)
            if handler is None:
                extra[key] = value
                continue
            try:
                kwargs[key] = handler(value, types_[key])
            except Exception:
                kwargs[key] = value  # a misfit is kept exactly as stored
        return cls(**kwargs, **{EXTRA_FIELD: extra})

    return structure


def _make_unstructure(converter: OrjsonConverter, cls: type) -> Callable[[Any], dict[str, Any]]:
    types_ = _field_types(cls)
    plan = [
        (
            name,
            None
            if _is_json_native(t)
            else _nested(converter, t, False) or converter.get_unstructure_hook(t),
            _shallow_fit(t),
        )
        for name, t in types_.items()
    ]

    def unstructure(obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, handler, fits in plan:
            value = getattr(obj, name)
            if handler is None or not fits(value):
                out[name] = value  # JSON data, or a misfit kept from the stored data, unchanged
                continue
            try:
                out[name] = handler(value)
            except SerializationError:
                raise
            except Exception:
                out[name] = value  # deep misfit: the stored shape, unchanged
        extra = getattr(obj, EXTRA_FIELD)
        if extra:
            out.update(extra)
        return out

    return unstructure
