"""What a session class's declared field types say: the shared analysis behind the generated
structure (:mod:`session_store.codec.converter`) and unstructure
(:mod:`session_store.codec.unstructure`) functions."""

from __future__ import annotations

import keyword
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any

import attrs
from cattrs.preconf.orjson import OrjsonConverter

__all__ = ["EXTRA_FIELD"]

#: The attribute that keeps unknown keys.
EXTRA_FIELD = "extra"


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


def _safe_name(name: str) -> bool:
    """Whether ``name`` can appear as ``o.<name>`` in generated source."""
    return name.isidentifier() and not keyword.iskeyword(name)
