"""The legacy JSON reader: headerless sessions as the first host app's Python ``json`` wrote
them, read so that the session can be changed and saved, with nothing silent and nothing lost.

Python's ``json.dumps`` writes three kinds of value the strict format (:mod:`jsonsafe`) does not
hold. :func:`loads_legacy` reads each as follows, in the legacy format only (a payload with the
session-store header is strict JSON, read by :func:`jsonsafe.loads`):

* ``NaN``, ``Infinity``, ``-Infinity``: read as ``None`` (JSON's ``null``), so that the session
  can be saved again; a non-finite float the application writes is still refused.
* A lone surrogate in a string or a key (``"\\ud800"``: half of a UTF-16 pair, such as an emoji
  cut in two): read as U+FFFD, the replacement character. It is no character, no UTF-8 writer
  can store it (the session could never be saved), and the text was already damaged.
* An int beyond 64 bits (a 128-bit id): read **exactly**. orjson reads it as a float, which
  rounds the id; the next save stored the wrong number for good. Converting it to anything else
  would lose it too, so it is kept; the strict format cannot write it, so saving the session is
  refused (``SerializationError`` naming where, nothing written) until the application converts
  it (e.g. to ``str``): a typed error, and the stored bytes keep the exact value.

Each is reported: one warning per payload and kind names the key, every path and the value it
held, and :data:`LEGACY_COUNTERS` counts them (exported with the store's metrics: see
docs/metrics.md).
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any

import orjson

from session_store.codec.jsonsafe import _INT_MAX, _INT_MIN, _where  # the strict rules
from session_store.counters import Counters
from session_store.errors import CorruptPayloadError

__all__ = ["LEGACY_COUNTERS", "loads_legacy", "replace_non_finite"]

log = logging.getLogger(__name__)

#: What :func:`loads_legacy` met, process-wide: ``non_finite_floats`` (values read as ``None``),
#: ``lone_surrogates`` (strings whose lone surrogates were read as U+FFFD),
#: ``ints_beyond_64_bits`` (read exactly; the strict format refuses to save them), and for each
#: ``sessions_with_...`` (payloads holding at least one).
LEGACY_COUNTERS = Counters(
    names=(
        "non_finite_floats",
        "sessions_with_non_finite",
        "lone_surrogates",
        "sessions_with_lone_surrogates",
        "ints_beyond_64_bits",
        "sessions_with_ints_beyond_64_bits",
    )
)

#: Digits (as ``0``) and everything else (as a space), for :func:`_may_round`.
_DIGITS_ONLY = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
#: An int beyond 64 bits has 19 digits or more (``2**63`` has 19).
_LONG_RUN = b"0" * 19
#: Every 4th byte of a run of 19 digits: 19 bytes in a row hold at least 4 at positions that
#: are multiples of 4, next to each other in ``data[::4]``.
_STRIDE, _STRIDED_RUN = 4, b"0000"


def _may_round(data: bytes | memoryview) -> bool:
    """Whether ``data`` holds a run of 19 digits or more: a number orjson may read as a rounded
    float (an int beyond 64 bits), or a string's digits (a false alarm, settled by the exact
    parse). In C: every 4th byte first (a quarter of the bytes; the four legacy samples are all
    cleared by it), and only if that finds four digits in a row, every byte. Measured in
    instructions on the U071780854 sample (15 KB): 73k, against 305k for orjson's parse and
    150k for the whole check (``re`` takes 6x orjson)."""
    data = bytes(data)
    if _STRIDED_RUN not in data[::_STRIDE].translate(_DIGITS_ONLY):
        return False
    return _LONG_RUN in data.translate(_DIGITS_ONLY)


#: A surrogate code point: once ``json`` has joined every escaped pair, only a lone one is left.
_SURROGATE = re.compile("[\ud800-\udfff]")

_Path = list[str | int]
#: What :func:`_repair` found: the path, the value as stored, and what the path names ("" for
#: the value there, "the key at " for a key).
_Found = tuple[_Path, Any, str]


def loads_legacy(data: bytes | memoryview, *, key: str | None = None) -> Any:
    """Read JSON as Python's ``json.dumps`` wrote it, which includes ``NaN`` and ``Infinity``,
    lone surrogates (``"\\ud800"``) and ints of any size.

    * Each ``NaN``, ``Infinity`` or ``-Infinity`` is read as ``None``: JSON has no such value
      and the codec never stores one, so keeping it would make the session impossible to save.
    * Each lone surrogate in a string (a value or a key) is read as U+FFFD: it is no character,
      no UTF-8 writer can store it, and the text was already damaged. Two keys of one object
      made equal by that are refused (:class:`CorruptPayloadError`) rather than merged.
    * An int beyond 64 bits is read exactly (orjson would round it into a float, and the next
      save would store the wrong number for good); the strict format cannot hold it, so saving
      it is refused with :class:`SerializationError` until the application converts it.

    None of this is silent: one warning per payload names the key, every path and what it held,
    and :data:`LEGACY_COUNTERS` counts the values and the payloads. Strict JSON (every payload
    with the session-store header) is read by :func:`session_store.codec.jsonsafe.loads`, which
    has no such rule.
    """
    if not _may_round(data):
        try:
            return orjson.loads(data)  # strict JSON, no int orjson could round: nothing to do
        except orjson.JSONDecodeError:
            pass
    try:
        parsed = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: too deep
        raise CorruptPayloadError(f"legacy payload is not valid JSON: {exc}", key=key) from None
    parsed, found = _repair(parsed, key)
    for kind, paths in found.items():
        if paths:
            _report(kind, paths, key)
    return parsed


#: Per kind :func:`_repair` finds: the counters of values and of payloads, what was done, why.
_REPORTS: dict[type, tuple[str, str, str, str]] = {
    float: (
        "non_finite_floats",
        "sessions_with_non_finite",
        "non-finite float(s) read as None",
        "JSON and the codec have no NaN or infinity; saved again, the session stores null there",
    ),
    str: (
        "lone_surrogates",
        "sessions_with_lone_surrogates",
        "string(s) with a lone surrogate read with U+FFFD",
        "half a UTF-16 pair is no character and no UTF-8 writer can store it; saved again, the "
        "session stores U+FFFD there",
    ),
    int: (
        "ints_beyond_64_bits",
        "sessions_with_ints_beyond_64_bits",
        "int(s) beyond 64 bits read exactly",
        "the session-store format holds ints within 64 bits: saving this session is refused "
        "(SerializationError, nothing written) until the application converts them, e.g. to str",
    ),
}


def _report(kind: type, found: list[_Found], key: str | None) -> None:
    """Count and log (one warning) what :func:`_repair` found of ``kind`` in one payload."""
    values, sessions, what, why = _REPORTS[kind]
    LEGACY_COUNTERS.add(values, len(found))
    LEGACY_COUNTERS.add(sessions)
    shown = ", ".join(f"{what}{_where(path)} was {value!r}" for path, value, what in found)
    log.warning("legacy session %r: %d %s (%s): %s", key, len(found), what, why, shown)


def _repair(value: Any, key: str | None) -> tuple[Any, dict[type, list[_Found]]]:
    """``value`` (parsed legacy JSON) with each non-finite float replaced by ``None`` and each
    lone surrogate by U+FFFD, in place; and what was found, by kind (``float``, ``str``, and
    ``int`` for the ints beyond 64 bits, which are left as they are), each as :data:`_Found`.
    Iterative, so a document as deep as ``json`` parsed it is walked without recursion."""
    found: dict[type, list[_Found]] = {float: [], str: [], int: []}
    holder = [value]  # the value itself is the item of a list: replaced there, with path []
    stack: list[tuple[Any, _Path]] = [(holder, [])]
    while stack:
        container, path = stack.pop()
        top = container is holder
        nested: list[tuple[Any, _Path]] = []
        if type(container) is dict:
            if any(not k.isascii() and _SURROGATE.search(k) for k in container):
                _repair_keys(container, path, found[str], key)
            steps: Any = container.items()
        else:
            steps = enumerate(container)
        for step, item in steps:
            kind = type(item)
            if kind is float and not math.isfinite(item):
                container[step] = None
                found[float].append(([] if top else [*path, step], item, ""))
            elif kind is str and not item.isascii() and _SURROGATE.search(item):
                container[step] = _SURROGATE.sub("\ufffd", item)
                found[str].append(([] if top else [*path, step], item, ""))
            elif kind is int and not _INT_MIN <= item <= _INT_MAX:
                found[int].append(([] if top else [*path, step], item, ""))
            elif kind is dict or kind is list:
                nested.append((item, [] if top else [*path, step]))
        stack.extend(reversed(nested))
    return holder[0], found


def _repair_keys(
    container: dict[str, Any], path: _Path, found: list[_Found], key: str | None
) -> None:
    """Rename, in place and in order, each key of ``container`` holding a lone surrogate
    (recorded in ``found`` as ``the key`` at its new path); refuse a rename onto another key."""
    items = list(container.items())
    container.clear()
    for name, item in items:
        fixed = _SURROGATE.sub("\ufffd", name) if not name.isascii() else name
        if fixed != name:
            if fixed in container or any(fixed == other for other, _ in items):
                raise CorruptPayloadError(
                    f"legacy payload: the key {name!r} at {_where(path)} holds a lone surrogate, "
                    f"and read as {fixed!r} it would take the place of another key",
                    key=key,
                )
            found.append(([*path, fixed], name, "the key at "))
        container[fixed] = item


def replace_non_finite(value: Any) -> tuple[Any, list[tuple[list[str | int], float]]]:
    """``value`` (parsed JSON: dicts, lists and leaves) with every NaN and infinity replaced by
    ``None`` in place, and the ``(path, value)`` of each replacement (each container's own
    items before those of the containers inside it).

    Iterative, so a legacy document as deep as ``json`` parsed it is walked without recursion.
    """
    if type(value) is float:
        return (None, [([], value)]) if not math.isfinite(value) else (value, [])
    replaced: list[tuple[list[str | int], float]] = []
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        container, path = stack.pop()
        steps = container.items() if type(container) is dict else enumerate(container)
        nested: list[tuple[Any, list[str | int]]] = []
        for step, item in steps:
            kind = type(item)
            if kind is float and not math.isfinite(item):
                container[step] = None
                replaced.append(([*path, step], item))
            elif kind is dict or kind is list:
                nested.append((item, [*path, step]))
        stack.extend(reversed(nested))
    return value, replaced
