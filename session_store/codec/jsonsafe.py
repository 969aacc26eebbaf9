"""JSON with no silent conversion: what can be stored is defined here and enforced.

Storable: ``dict`` with ``str`` keys, ``list`` (and ``tuple``, which comes back as a ``list``),
``str``, ``int`` within 64 bits, finite ``float``, ``bool`` and ``None``. Anything else (an
arbitrary object, a ``set``, ``bytes``, a ``datetime`` outside a schema field, an ``Enum`` or a
``UUID`` that orjson would quietly turn into text, ``NaN`` or infinity that it would quietly turn
into ``null``, an int beyond 64 bits) is a :class:`SerializationError` naming where it is,
raised before any backend is written. There is no ``default=str``.
"""

from __future__ import annotations

import json
import math
from itertools import chain, compress, repeat
from operator import is_
from typing import Any

import orjson

from session_store.errors import CorruptPayloadError, SerializationError

__all__ = ["check_storable", "dumps", "loads", "loads_legacy"]

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1  # orjson writes unsigned 64-bit ints too
_LEAVES = (str, bool, type(None))


def _where(path: list[str | int]) -> str:
    return "".join(f"[{p!r}]" for p in path) or "the value itself"


def check_storable(value: Any, *, key: str | None = None) -> None:
    """Raise :class:`SerializationError` unless ``value`` is plain, storable JSON."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        kind = type(item)
        if kind in _LEAVES:
            continue
        if kind is dict:
            for k, v in item.items():
                if type(k) is not str:
                    raise SerializationError(
                        f"dict keys must be str, got {type(k).__name__} at {_where(path)}", key=key
                    )
                if type(v) not in _LEAVES:
                    stack.append((v, [*path, k]))
        elif kind is list or kind is tuple:
            for i, v in enumerate(item):
                if type(v) not in _LEAVES:
                    stack.append((v, [*path, i]))
        elif kind is int:
            if not _INT_MIN <= item <= _INT_MAX:
                raise SerializationError(f"int at {_where(path)} does not fit in 64 bits", key=key)
        elif kind is float:
            if not math.isfinite(item):
                raise SerializationError(
                    f"{item!r} at {_where(path)} is not storable: JSON has no NaN or infinity",
                    key=key,
                )
        else:
            raise SerializationError(
                f"{kind.__qualname__} at {_where(path)} is not storable as JSON; convert it "
                "first or register a cattrs hook for it in a schema",
                key=key,
            )


_ALLOWED = frozenset({str, int, float, bool, type(None), dict, list, tuple})
_CONTAINERS = frozenset({dict, list, tuple})
# orjson itself refuses, in C: non-str keys, ints beyond 64 bits, and (with these options plus a
# raising default) every type it does not write natively, subclasses of str/int/dict/list
# (StrEnum, IntEnum, ...), datetimes and dataclasses.
_STRICT = (
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | (orjson.OPT_PASSTHROUGH_DATACLASS)
)


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__qualname__} is not storable as JSON")


_NONE = type(None)
_IS_NOT_DICT = frozenset({list, tuple}).__contains__
_FLOATS = repeat(float)
_DICTS = repeat(dict)


def _only_plain_json(value: Any, written: bytes) -> bool:
    """Fast check for what orjson writes silently but wrongly: NaN or infinity (as ``null``), a
    plain ``Enum`` (as its value), a ``UUID`` (as text).

    The value is walked one depth level at a time, and every step of a level runs in C
    (``itertools`` and ``map``), so the cost per value is a few machine operations rather than
    a turn of a Python loop. Floats are not inspected: NaN and infinity are written as
    ``null``, so if the output holds as many ``null`` as the value holds ``None``, there are
    none. (A ``"null"`` inside a string only sends the caller to the exact walk.)
    """
    nones = 0
    dicts: Any = ()
    seqs: Any = ((value,),)
    while dicts or seqs:
        values = [*chain.from_iterable(map(dict.values, dicts)), *chain.from_iterable(seqs)]
        kinds = list(map(type, values))
        present = set(kinds)
        if not present <= _ALLOWED:
            return False
        if _NONE in present:
            nones += kinds.count(_NONE)
        dicts = [*compress(values, map(is_, kinds, _DICTS))] if dict in present else ()
        seqs = (
            [*compress(values, map(_IS_NOT_DICT, kinds))]
            if list in present or tuple in present
            else ()
        )
    return nones == written.count(b"null")


def _only_plain_parts(parts: list[Any]) -> bool:
    """Whether ``parts`` hold nothing orjson would write silently but wrongly (NaN, infinity,
    a plain ``Enum``, a ``UUID``): the same level-by-level walk in C as
    :func:`_only_plain_json`, with the floats tested directly (``math.isfinite``) since the
    output's ``null`` count cannot be compared for a part of a document. Each level's dicts and
    sequences are picked out of the level's values once (issue 17: a fifth less than sorting
    each frontier again)."""
    dicts: Any = ()
    seqs: Any = (parts,)
    while dicts or seqs:
        values = [*chain.from_iterable(map(dict.values, dicts)), *chain.from_iterable(seqs)]
        kinds = list(map(type, values))
        present = set(kinds)
        if not present <= _ALLOWED:
            return False
        if float in present and not all(
            map(math.isfinite, compress(values, map(is_, kinds, _FLOATS)))
        ):
            return False
        dicts = [*compress(values, map(is_, kinds, _DICTS))] if dict in present else ()
        seqs = (
            [*compress(values, map(_IS_NOT_DICT, kinds))]
            if list in present or tuple in present
            else ()
        )
    return True


def dumps(value: Any, *, key: str | None = None, unchecked: list[Any] | None = None) -> bytes:
    """Check ``value`` and write it as compact UTF-8 JSON.

    Args:
        unchecked: when given, the only parts of ``value`` that may hide what orjson writes
            silently (see :func:`session_store.codec.converter.collecting_unchecked`: a typed
            session's leaves were checked by their declared types); only they are walked.
            ``None``: walk the whole value.

    Raises:
        SerializationError: ``value`` holds something that is not storable (see module doc).
    """
    try:
        out = orjson.dumps(value, default=_refuse, option=_STRICT)
    except (TypeError, orjson.JSONEncodeError):
        check_storable(value, key=key)  # finds and names the culprit
        raise SerializationError("value is not storable as JSON", key=key) from None
    if unchecked is not None:
        if not _only_plain_parts(unchecked):
            check_storable(value, key=key)  # the exact walk names the culprit
            raise SerializationError("value is not storable as JSON", key=key)
    elif type(value) in _CONTAINERS and not _only_plain_json(value, out):
        check_storable(value, key=key)  # the exact walk: raises, or clears a false alarm
    return out


def loads(data: bytes | memoryview, *, key: str | None = None) -> Any:
    """Read strict JSON (no NaN); malformed bytes are :class:`CorruptPayloadError`."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptPayloadError(f"payload is not valid JSON: {exc.msg}", key=key) from None


def loads_legacy(data: bytes, *, key: str | None = None) -> Any:
    """Read JSON as Python's ``json.dumps`` wrote it, which includes ``NaN`` and ``Infinity``.

    The values load as they were stored (``nan`` stays ``nan``); saving such a session again is a
    :class:`SerializationError` until the application replaces them, because we never guess.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: too deep
        raise CorruptPayloadError(f"legacy payload is not valid JSON: {exc}", key=key) from None
