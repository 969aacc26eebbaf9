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
typed round trip close to plain orjson. The structure functions are generated here; the
unstructure ones, and what they report to the strict JSON check, in
:mod:`session_store.codec.unstructure`; both read declared types through
:mod:`session_store.codec.fields`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
from cattrs.preconf.orjson import OrjsonConverter, make_converter

from session_store.codec.exact import enum_value, register_exact_hooks
from session_store.codec.fields import (
    EXTRA_FIELD,
    _field_types,
    _has_extra,
    _is_json_native,
    _nested,
    _optional_inner,
    _safe_name,
    optional_structure,
)
from session_store.codec.unstructure import (
    _make_unstructure,
    _unstructure_datetime,
    collecting_unchecked,
    reports_unchecked,
)

__all__ = [
    "EXTRA_FIELD",
    "collecting_unchecked",
    "make_session_converter",
    "reports_unchecked",
]


def _structure_datetime(value: Any, _: type) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        parsed = datetime.fromisoformat(value)
    else:
        raise TypeError(f"expected an ISO 8601 timestamp, got {type(value).__name__}")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


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
    return enum_value(member)  # its value, or refused if JSON would not give the member back


def _passthrough(value: Any, _: type) -> Any:
    return value


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
    register_exact_hooks(converter)  # round trip or refuse: enum values, unions, number keys
    return converter


# -- structure: a fast path, and the tolerant one as its fallback ---------------------------
def _make_structure(converter: OrjsonConverter, cls: type) -> Callable[[Any, type], Any]:
    """Structure ``cls`` from JSON data with a generated function.

    Fast path, for data whose keys are all known fields (nothing for ``extra``): one generated
    function sets every field directly (JSON-native values as loaded, a hook only for the
    fields that need one: datetimes, enums, nested classes), without a loop or a ``**kwargs``
    call. Any other case, and any hook that fails, goes to the tolerant path, which keeps
    unknown keys in ``extra`` and misfits exactly as stored; so does a class whose ``__init__``
    does more than assign (validators, converters, ``__attrs_post_init__``, frozen) or is not
    attrs-generated (``init=False`` and the user's own: it runs, as on any cold load).
    """
    tolerant = _make_tolerant_structure(converter, cls)
    types_ = _field_types(cls)
    known = frozenset(types_)
    fields = {a.name: a for a in attrs.fields(cls)}
    init_code = getattr(cls.__dict__.get("__init__"), "__code__", None)
    plain_init = (
        # attrs wrote this class's __init__ (not ``init=False`` with one of the user's own)
        init_code is not None
        and init_code.co_filename.startswith("<attrs generated")
        and not getattr(cls, "__attrs_post_init__", None)
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
        optional = None if _is_json_native(declared) else optional_structure(converter, declared)
        if _is_json_native(declared):
            value = f"d[{name!r}]"
        elif optional is not None:  # ``X | None``: cattrs' optional hook, called inline
            namespace[f"_h{index}"] = optional
            namespace[f"_t{index}"] = _optional_inner(declared)
            value = f"(None if (v := d[{name!r}]) is None else _h{index}(v, _t{index}))"
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
