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
import keyword
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import cache
from typing import Any

import attrs
from cattrs.preconf.orjson import OrjsonConverter, make_converter

from session_store.errors import SerializationError

__all__ = [
    "EXTRA_FIELD",
    "collecting_unchecked",
    "make_session_converter",
    "reports_unchecked",
]

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


_CHECKED_MARK = "__session_store_checked__"


def _safe_name(name: str) -> bool:
    """Whether ``name`` can appear as ``o.<name>`` in generated source."""
    return name.isidentifier() and not keyword.iskeyword(name)


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


# -- structure: a fast path, and the tolerant one as its fallback ---------------------------
def _make_structure(converter: OrjsonConverter, cls: type) -> Callable[[Any, type], Any]:
    """Structure ``cls`` from JSON data with a generated function.

    Fast path, for data whose keys are all known fields (nothing for ``extra``): one generated
    function sets every field directly (JSON-native values as loaded, a hook only for the
    fields that need one: datetimes, enums, nested classes), without a loop or a ``**kwargs``
    call. Any other case, and any hook that fails, goes to the tolerant path, which keeps
    unknown keys in ``extra`` and misfits exactly as stored; so does a class whose ``__init__``
    does more than assign (validators, converters, ``__attrs_post_init__``, frozen).
    """
    tolerant = _make_tolerant_structure(converter, cls)
    types_ = _field_types(cls)
    known = frozenset(types_)
    fields = {a.name: a for a in attrs.fields(cls)}
    plain_init = (
        not getattr(cls, "__attrs_post_init__", None)
        and not getattr(cls, "__attrs_pre_init__", None)
        and getattr(cls, "__setattr__", None) is object.__setattr__
        and "__slots__" in cls.__dict__
        and all(
            a.validator is None and a.converter is None and a.init and _safe_name(a.name)
            for a in fields.values()
        )
        and fields[EXTRA_FIELD].default is not attrs.NOTHING
        # nothing but the fields to set (no cached hash or other slot __init__ fills in)
        and set(cls.__dict__["__slots__"]) <= {*fields, "__weakref__"}
    )
    if not plain_init:
        return _make_kwargs_structure(converter, cls, tolerant)
    namespace: dict[str, Any] = {"_cls": cls, "_new": object.__new__, "_tolerant": tolerant}
    namespace["_known_superset"] = known.issuperset
    lines = [
        "def structure(d, _):",
        "    if type(d) is not dict or not _known_superset(d):",
        "        return _tolerant(d, _cls)",
        "    o = _new(_cls)",
        "    try:",
    ]
    for index, (name, declared) in enumerate(types_.items()):
        default = fields[name].default
        if default is attrs.NOTHING:
            missing = None  # a required field: KeyError, and the tolerant path reports it
        elif isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            if default.takes_self:
                return _make_kwargs_structure(converter, cls, tolerant)
            namespace[f"_f{index}"] = default.factory
            missing = f"_f{index}()"
        else:
            namespace[f"_d{index}"] = default
            missing = f"_d{index}"
        if _is_json_native(declared):
            value = f"d[{name!r}]"
        else:
            hook = _nested(converter, declared, True) or converter.get_structure_hook(declared)
            namespace[f"_h{index}"] = hook
            namespace[f"_t{index}"] = declared
            value = f"_h{index}(d[{name!r}], _t{index})"
        if missing is None:
            lines.append(f"        o.{name} = {value}")
        else:
            lines.append(f"        o.{name} = {value} if {name!r} in d else {missing}")
    extra_default = fields[EXTRA_FIELD].default
    namespace["_extra"] = (
        extra_default.factory
        if isinstance(extra_default, attrs.Factory)  # type: ignore[arg-type]
        else (lambda: dict(extra_default))
    )
    lines += [
        f"        o.{EXTRA_FIELD} = _extra()",
        "    except Exception:",
        "        return _tolerant(d, _cls)  # a misfit, or a required field missing",
        "    return o",
    ]
    source = "\n".join(lines)
    # The source holds only field names (checked identifiers) and repr()s of them; every value
    # it uses comes from ``namespace``.
    exec(compile(source, f"<session_store structure {cls.__qualname__}>", "exec"), namespace)  # noqa: S102
    generated: Callable[[Any, type], Any] = namespace["structure"]
    return generated


def _make_kwargs_structure(
    converter: OrjsonConverter, cls: type, tolerant: Callable[[Any, type], Any]
) -> Callable[[Any, type], Any]:
    """The fast path through ``cls(**kwargs)``, for classes whose ``__init__`` does more than
    assign fields."""
    types_ = _field_types(cls)
    known = frozenset(types_)
    convert = tuple(
        (name, _nested(converter, t, True) or converter.get_structure_hook(t), t)
        for name, t in types_.items()
        if not _is_json_native(t)
    )

    def structure(data: Any, _: type) -> Any:
        if type(data) is not dict or not known.issuperset(data):
            return tolerant(data, cls)
        kwargs = data.copy()
        for name, handler, declared in convert:
            if name in kwargs:
                try:
                    kwargs[name] = handler(kwargs[name], declared)
                except Exception:
                    return tolerant(data, cls)
        return cls(**kwargs, **{EXTRA_FIELD: {}})

    return structure


def _make_tolerant_structure(converter: OrjsonConverter, cls: type) -> Callable[[Any, type], Any]:
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
        handler = _nested(converter, declared, False) or converter.get_unstructure_hook(declared)
        namespace[f"_h{index}"] = handler
        namespace[f"_fits{index}"] = _shallow_fit(declared)
        lines.append(f"        {name!r}: None,")
        # What the hook returns is walked too, unless it is known to be checked already: a
        # datetime's ISO text, or nested classes whose own generated code reports their parts.
        after = (
            ""
            if _hook_output_is_checked(converter, declared)
            else (
                "\n            if pending is not None and type(v) is not str:\n"
                "                unchecked(v)"
            )
        )
        converted.append(
            f"    v = o.{name}\n"
            f"    if _fits{index}(v):\n"
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
    lines.append(f"    extra = o.{EXTRA_FIELD}")
    lines.append("    if extra:")
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
            out.update(extra)
            if pending is not None:
                pending.append(extra)
        return out

    setattr(unstructure, _CHECKED_MARK, True)
    return unstructure
