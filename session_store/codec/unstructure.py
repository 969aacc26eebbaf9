"""Unstructuring session classes with generated functions, and collecting what the strict JSON
check must still walk (issue 17): every typed leaf is checked by its declared type on the way,
so only the parts a declared type cannot vouch for are handed to
:func:`session_store.codec.jsonsafe.dumps`."""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import attrs
from cattrs.preconf.orjson import OrjsonConverter

from session_store.codec.fields import (
    EXTRA_FIELD,
    _field_types,
    _is_json_native,
    _nested,
    _optional_inner,
    _safe_name,
    _shallow_fit,
    optional_unstructure,
)
from session_store.errors import SerializationError

__all__ = ["collecting_unchecked", "reports_unchecked", "unstructure_collecting"]


def _unstructure_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise SerializationError(
            "naive datetimes are ambiguous; use an aware one such as datetime.now(UTC)"
        )
    return value.astimezone(UTC).isoformat()


# -- the parts of a value the strict JSON check must still walk -------------------------------
#: While :func:`collecting_unchecked` is active, the generated unstructure functions append to
#: this list every value whose declared type does not already prove it plain JSON: the
#: ``Any``-typed parts, ``extra``, and any value that does not have its declared leaf type.
_UNCHECKED: ContextVar[list[Any] | None] = ContextVar("session_store_unchecked", default=None)


@contextmanager
def collecting_unchecked() -> Iterator[list[Any]]:
    """Collect, while unstructuring, the parts the strict JSON check must walk (see
    :func:`session_store.codec.jsonsafe.dumps`): every typed leaf was checked by its declared
    type on the way, so only these can hide a NaN, an infinity, an ``Enum`` or a ``UUID``."""
    found: list[Any] = []
    token = _UNCHECKED.set(found)
    try:
        yield found
    finally:
        _UNCHECKED.reset(token)


def _leaf_test(declared: Any) -> str | None:
    """Python source testing that ``v`` is plain JSON of the declared leaf type, or None when
    the declared type is not a leaf (then the value is walked, not tested)."""
    if declared is str:
        return "type(v) is str"
    if declared is bool:
        return "type(v) is bool"
    if declared is int:
        return "(type(v) is int and -9223372036854775808 <= v <= 18446744073709551615)"
    if declared is float:
        return "((type(v) is float and v - v == 0.0) or type(v) is int)"
    return None


def unstructure_collecting(
    to_data: Callable[..., dict[str, Any]], obj: Any, key: str | None
) -> tuple[dict[str, Any], list[Any]]:
    """``to_data(obj, key=key)`` with what :func:`collecting_unchecked` collects, without the
    context manager's generator (this runs on every typed ``save``)."""
    found: list[Any] = []
    token = _UNCHECKED.set(found)
    try:
        return to_data(obj, key=key), found
    finally:
        _UNCHECKED.reset(token)


_CHECKED_MARK = "__session_store_checked__"


def reports_unchecked(hook: Any) -> bool:
    """Whether ``hook`` is one of ours that reports what it could not vouch for (through
    :func:`collecting_unchecked`); a hook a user registered instead is walked whole."""
    return getattr(hook, _CHECKED_MARK, False) is True


def _hook_output_is_checked(converter: OrjsonConverter, declared: Any) -> bool:
    """Whether what the hook for ``declared`` returns needs no walk: our datetime hook's ISO
    text, or a list / dict of classes whose hooks are our generated functions (they report
    their own parts)."""
    if declared is datetime:
        return converter.get_unstructure_hook(datetime) is _unstructure_datetime
    origin, args = typing.get_origin(declared), typing.get_args(declared)
    inner = args[-1] if args else None
    return (
        origin in (list, dict)
        and (origin is list or args[0] is str)
        and inner is not None
        and attrs.has(inner)
        and reports_unchecked(converter.get_unstructure_hook(inner))
    )


def _extra_clash(obj: Any, extra: dict[str, Any]) -> None:
    """Refuse ``extra`` keys named like fields: written at the top level, they would replace
    those fields' values (a session saved as ``user_id="alice"`` would load as another)."""
    clash = sorted(k for k in extra if k in _field_types(type(obj)))
    raise SerializationError(
        f"{type(obj).__qualname__}.{EXTRA_FIELD} holds {', '.join(map(repr, clash))}, named "
        f"like a field: stored at the top level, it would replace that field; rename the key"
    )


# -- unstructure: generated code, the per-field tolerant path only where it is needed ---------
def _make_unstructure(converter: OrjsonConverter, cls: type) -> Callable[[Any], dict[str, Any]]:
    """Unstructure ``cls`` with a generated function (one dict display, no loop).

    JSON-native fields are copied as they are; a leaf field (``str``, ``int``, ``float``,
    ``bool``) is tested against its declared type on the way, and everything the test cannot
    vouch for (``Any``-typed containers, ``extra``, a misfit) is handed to the strict JSON check
    through :func:`collecting_unchecked`. Fields that need a hook (datetimes, enums, nested
    classes) call it when the value has the declared shape and keep the value unchanged when it
    does not, exactly as stored (a misfit), as the tolerant path always did.
    """
    types_ = _field_types(cls)
    namespace: dict[str, Any] = {
        "_get_unchecked": _UNCHECKED.get,
        "SerializationError": SerializationError,
    }
    lines = ["def unstructure(o):", "    out = {"]
    checks: list[str] = []
    converted: list[str] = []
    for index, (name, declared) in enumerate(types_.items()):
        if not _safe_name(name):
            return _make_tolerant_unstructure(converter, cls)
        if _is_json_native(declared):
            lines.append(f"        {name!r}: o.{name},")
            test = _leaf_test(declared)
            checks.append(
                f"        v = out[{name!r}]\n        if not {test}:\n            unchecked(v)"
                if test
                else f"        unchecked(out[{name!r}])"
            )
            continue
        # ``X | None`` with cattrs' own optional hook: ``None`` kept, else X's hook called here
        optional = optional_unstructure(converter, declared)
        inner = declared if optional is None else _optional_inner(declared)
        handler = optional or _nested(converter, declared, False)
        namespace[f"_h{index}"] = handler or converter.get_unstructure_hook(declared)
        namespace[f"_fits{index}"] = _shallow_fit(inner)
        lines.append(f"        {name!r}: None,")
        # What the hook returns is walked too, unless it is known to be checked already: a
        # datetime's ISO text, or nested classes whose own generated code reports their parts.
        after = (
            ""
            if _hook_output_is_checked(
                converter, inner if typing.get_origin(inner) is None else declared
            )
            else (
                "\n            if pending is not None and type(v) is not str:\n"
                "                unchecked(v)"
            )
        )
        converted.append(
            f"    v = o.{name}\n"
            + ("    if v is None:\n        pass\n    elif" if optional else "    if")
            + f" _fits{index}(v):\n"
            f"        try:\n"
            f"            v = _h{index}(v){after}\n"
            f"        except SerializationError:\n"
            f"            raise\n"
            f"        except Exception:\n"
            f"            if pending is not None:\n"
            f"                unchecked(v)\n"
            f"    elif pending is not None:\n"
            f"        unchecked(v)\n"
            f"    out[{name!r}] = v"
        )
    lines.append("    }")
    lines.append("    pending = _get_unchecked()")
    lines.append("    if pending is not None:")
    lines.append("        unchecked = pending.append")
    lines.extend(checks or ["        pass"])
    lines.extend(converted)
    namespace["_no_clash"] = frozenset(types_).isdisjoint
    namespace["_clash"] = _extra_clash
    lines.append(f"    extra = o.{EXTRA_FIELD}")
    lines.append("    if extra:")
    lines.append("        if not _no_clash(extra):")
    lines.append("            _clash(o, extra)")
    lines.append("        out.update(extra)")
    lines.append("        if pending is not None:")
    lines.append("            pending.append(extra)")
    lines.append("    return out")
    source = "\n".join(lines)
    # As in _make_structure: checked identifiers and repr()s only; values come from namespace.
    exec(compile(source, f"<session_store unstructure {cls.__qualname__}>", "exec"), namespace)  # noqa: S102
    generated: Callable[[Any], dict[str, Any]] = namespace["unstructure"]
    setattr(generated, _CHECKED_MARK, True)
    return generated


def _make_tolerant_unstructure(
    converter: OrjsonConverter, cls: type
) -> Callable[[Any], dict[str, Any]]:
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
    known = frozenset(types_)

    def unstructure(obj: Any) -> dict[str, Any]:
        pending = _UNCHECKED.get()
        out: dict[str, Any] = {}
        for name, handler, fits in plan:
            value = getattr(obj, name)
            if handler is None or not fits(value):
                out[name] = value  # JSON data, or a misfit kept from the stored data, unchanged
                if pending is not None:
                    pending.append(value)
                continue
            try:
                out[name] = handler(value)
            except SerializationError:
                raise
            except Exception:
                out[name] = value  # deep misfit: the stored shape, unchanged
            if pending is not None:
                pending.append(out[name])
        extra = getattr(obj, EXTRA_FIELD)
        if extra:
            if not known.isdisjoint(extra):
                _extra_clash(obj, extra)
            out.update(extra)
            if pending is not None:
                pending.append(extra)
        return out

    setattr(unstructure, _CHECKED_MARK, True)
    return unstructure
