"""A copy of a session with one field replaced, as ``attrs.evolve`` makes it, without its cost
(issue 17): every write stamps ``last_accessed`` on a copy, and ``attrs.evolve`` (which reads
every field, builds keyword arguments and runs ``__init__``) was 4 % of a small typed save +
load in instructions.

For a class whose ``__init__`` only assigns its arguments (attrs-generated, no validator,
converter, ``on_setattr`` hook, ``__attrs_pre_init__`` / ``__attrs_post_init__``, not frozen,
slotted with no slot but its fields), ``attrs.evolve(obj, name=value)`` is exactly a new
instance holding the same field values but ``name``: that is what the generated function here
builds, field by field, without calling ``__init__``. Any other class is evolved by
``attrs.evolve`` itself. Which one a class gets is decided from the class alone, once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import attrs

from session_store.codec.fields import _safe_name

__all__ = ["replacer"]

#: ``(obj, value) -> copy of obj with the field replaced by value``.
Replace = Callable[[Any, Any], Any]


@functools.cache
def replacer(cls: type, name: str) -> Replace:
    """What makes ``attrs.evolve(obj, **{name: value})`` for instances of the attrs class
    ``cls`` that have the field ``name``: a generated copy when ``cls`` only assigns in its
    ``__init__`` (see the module docstring), else ``attrs.evolve`` itself."""
    if _assigns_only(cls) and name in attrs.fields_dict(cls):
        return _generated(cls, name)

    def evolve(obj: Any, value: Any) -> Any:
        return attrs.evolve(obj, **{name: value})

    return evolve


def _assigns_only(cls: type) -> bool:
    """Whether ``cls(**fields)`` does nothing but assign each field (then a copy made slot by
    slot is what ``attrs.evolve`` returns)."""
    fields = attrs.fields(cls)
    init = cls.__dict__.get("__init__")
    code = getattr(init, "__code__", None)
    slots = cls.__dict__.get("__slots__")
    return (
        code is not None
        and code.co_filename.startswith("<attrs generated")  # attrs wrote it, for this class
        and not hasattr(cls, "__attrs_post_init__")
        and not hasattr(cls, "__attrs_pre_init__")
        and getattr(cls, "__setattr__", None) is object.__setattr__  # no frozen, no on_setattr
        and slots is not None
        and not isinstance(slots, str)
        and set(slots) <= {a.name for a in fields} | {"__weakref__"}
        and all(
            a.init and a.validator is None and a.converter is None and _safe_name(a.name)
            for a in fields
        )
    )


def _generated(cls: type, name: str) -> Replace:
    lines = ["def replace(o, value):", "    n = _new(_cls)"]
    for field in attrs.fields(cls):
        source = "value" if field.name == name else f"o.{field.name}"
        lines.append(f"    n.{field.name} = {source}")
    lines.append("    return n")
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    # Only checked identifiers (``_safe_name``) appear in the source; values come from namespace.
    source = "\n".join(lines)
    exec(compile(source, f"<session_store replace {cls.__qualname__}>", "exec"), namespace)  # noqa: S102
    generated: Replace = namespace["replace"]
    return generated
