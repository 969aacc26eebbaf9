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


def _optional_inner(declared: Any) -> Any:
    """``X`` for a declared ``X | None`` (two members, one ``None``), else ``None``."""
    if typing.get_origin(declared) not in (typing.Union, types.UnionType):
        return None
    args = typing.get_args(declared)
    if len(args) != 2 or type(None) not in args:
        return None
    return args[0] if args[1] is type(None) else args[1]


def optional_unstructure(converter: OrjsonConverter, declared: Any) -> Any:
    """For a declared ``X | None`` whose unstructure hook is cattrs' own optional one (``None``
    as it is, anything else through the hook of ``X`` it captured), that hook of ``X``, so the
    generated function can call it directly; else ``None``. Read from the hook itself (its code
    object is the one every hook ``gen_unstructure_optional`` makes shares), never guessed."""
    inner = _optional_inner(declared)
    if inner is None:
        return None
    hook = converter.get_unstructure_hook(declared)
    reference = converter.gen_unstructure_optional(int | None)  # type: ignore[arg-type]
    defaults = getattr(hook, "__defaults__", None)
    if getattr(hook, "__code__", None) is not reference.__code__ or not defaults:
        return None
    captured = defaults[0]
    return captured if captured is converter.get_unstructure_hook(inner) else None


def optional_structure(converter: OrjsonConverter, declared: Any) -> Any:
    """For a declared ``X | None`` whose structure hook is cattrs' own ``_structure_optional``
    (``None`` as it is, anything else through the hook of ``X``), that hook of ``X``, so the
    generated function can call it directly; else ``None``."""
    inner = _optional_inner(declared)
    if inner is None:
        return None
    hook = converter.get_structure_hook(declared)
    default = getattr(type(converter), "_structure_optional", None)
    if default is None or getattr(hook, "__func__", None) is not default:
        return None
    if getattr(hook, "__self__", None) is not converter:
        return None
    return converter.get_structure_hook(inner)
