"""JSON with no silent conversion: what can be stored is defined here and enforced.

Storable: ``dict`` with ``str`` keys, ``list`` (and ``tuple``, which comes back as a ``list``),
``str``, ``int`` within 64 bits, finite ``float``, ``bool`` and ``None``. Anything else (an
arbitrary object, a ``set``, ``bytes``, a ``datetime`` outside a schema field, an ``Enum`` or a
``UUID`` that orjson would quietly turn into text, ``NaN`` or infinity that it would quietly turn
into ``null``, an int beyond 64 bits) is a :class:`SerializationError` naming where it is,
raised before any backend is written. There is no ``default=str``.

How: orjson refuses most of it itself, in C; what it would write silently is found by a second
pass in C (``marshal``, whose output is only looked at and thrown away, never stored: see
:func:`_only_plain`); only a suspicion runs the exact Python walk, which names the culprit.

Legacy JSON (headerless, as the first host app's ``json.dumps`` wrote it, with ``NaN``, lone
surrogates and ints of any size) is read by :mod:`session_store.codec.legacyjson`.
"""

from __future__ import annotations

import logging
import marshal
import math
from typing import Any

import orjson

from session_store.errors import CorruptPayloadError, SerializationError

__all__ = [
    "MAX_DEPTH",
    "check_storable",
    "dumps",
    "loads",
]

log = logging.getLogger(__name__)

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1  # orjson writes unsigned 64-bit ints too


#: Nesting orjson writes at most (containers inside containers); deeper is refused, by orjson
#: and by :func:`check_storable`, which says so.
MAX_DEPTH = 254
#: Path steps shown in an error before the rest is elided (a refused value may be 200,000 deep).
_SHOWN_STEPS = 12


def _where(path: list[str | int]) -> str:
    if len(path) > _SHOWN_STEPS:
        head = "".join(f"[{p!r}]" for p in path[: _SHOWN_STEPS // 2])
        tail = "".join(f"[{p!r}]" for p in path[-(_SHOWN_STEPS // 2) :])
        return f"{head}...({len(path) - _SHOWN_STEPS} more)...{tail}"
    return "".join(f"[{p!r}]" for p in path) or "the value itself"


def _utf8_error(text: str) -> str | None:
    """Why ``text`` cannot be written as UTF-8 (a lone surrogate), or ``None``."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds the lone surrogate {text[exc.start]!r} at index {exc.start}, not UTF-8"
    return None


def _check_leaf(item: Any, kind: type, path: list[str | int], key: str | None) -> None:
    """Raise unless the non-container ``item`` (of type ``kind``) is storable."""
    if kind is str:
        why = _utf8_error(item)
        if why is not None:
            raise SerializationError(f"str at {_where(path)} {why}", key=key)
    elif kind is bool or kind is type(None):
        return
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


def check_storable(value: Any, *, key: str | None = None) -> None:
    """Raise :class:`SerializationError` unless ``value`` is plain, storable JSON.

    Depth first, in one pass: the path to the item looked at is kept as a stack (one push and
    one pop per level, never copied), and the containers on it as a set of ids, so a value that
    contains itself is refused as a cycle and one nested deeper than :data:`MAX_DEPTH` as too
    deep, each promptly and naming where. (A container reached twice by two paths is fine.)
    """
    kind = type(value)
    if kind is not dict and kind is not list and kind is not tuple:
        _check_leaf(value, kind, [], key)
        return
    path: list[str | int] = []
    on_path = {id(value)}
    # one frame per open container: its id and an iterator over its (key or index, item)
    frames: list[tuple[int, Any, bool]] = [
        (id(value), iter(value.items()) if kind is dict else enumerate(value), kind is dict)
    ]
    while frames:
        ident, items, is_dict = frames[-1]
        step = next(items, None)
        if step is None:
            frames.pop()
            on_path.discard(ident)
            if path:
                path.pop()
            continue
        k, v = step
        path.append(k)
        if is_dict:
            if type(k) is not str:
                path.pop()
                raise SerializationError(
                    f"dict keys must be str, got {type(k).__name__} at {_where(path)}", key=key
                )
            why = _utf8_error(k)
            if why is not None:
                raise SerializationError(f"the key at {_where(path)} {why}", key=key)
        kind = type(v)
        if kind is not dict and kind is not list and kind is not tuple:
            _check_leaf(v, kind, path, key)
            path.pop()
            continue
        if id(v) in on_path:
            raise SerializationError(
                f"{kind.__name__} at {_where(path)} contains itself (a cycle): not storable as "
                "JSON",
                key=key,
            )
        if len(frames) >= MAX_DEPTH:
            raise SerializationError(
                f"value nested too deep at {_where(path)}: JSON here is limited to "
                f"{MAX_DEPTH} levels of nesting",
                key=key,
            )
        on_path.add(id(v))
        frames.append((id(v), iter(v.items()) if kind is dict else enumerate(v), kind is dict))


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


#: ``marshal``'s type codes of a float: ``g`` (binary float), and ``g`` with its reference flag.
_FLOAT_CODES = frozenset({0x67, 0x67 | 0x80})
#: Candidate bytes looked at, at most, per byte of marshal's output (and at least 64): past that,
#: the exact walk is the cheaper way to settle it. Measured: 25 in the medium session's 41 KB.
_CANDIDATES_PER_BYTE = 1 / 128


def _no_non_finite_float(packed: bytes) -> bool:
    """Whether ``marshal``'s bytes hold no NaN and no infinity. Each float is written in full at
    least once: its type code, then the IEEE 754 double, little-endian, so the last byte of a
    NaN or an infinity is ``0x7f`` or ``0xff`` and the one before it ``0xf0`` or more. Only those
    (rare: never in UTF-8 text) bytes are looked at, each found by ``bytes.find`` in C. A match
    that is not a float (an int or a length with the same bytes) is a false alarm, never a
    miss."""
    budget = max(64, int(len(packed) * _CANDIDATES_PER_BYTE))
    for last in (0x7F, 0xFF):
        at = packed.find(last, 8)
        while at != -1:
            budget -= 1
            if budget < 0 or (packed[at - 1] >= 0xF0 and packed[at - 8] in _FLOAT_CODES):
                return False
            at = packed.find(last, at + 1)
    return True


def _only_plain(parts: Any, written: bytes) -> bool:
    """Whether ``parts`` (orjson has just written them, or a document holding them, as
    ``written``) hold nothing orjson writes silently but wrongly: NaN or infinity (as
    ``null``), a plain ``Enum`` (as its value), a ``UUID`` (as text), an ``orjson.Fragment``
    (as raw bytes). ``True`` is certain; ``False`` may be a false alarm, to be settled by the
    exact walk :func:`check_storable`.

    Both steps run in C (issue 17: the Python walk was the largest part of a save; this costs
    about half of it in instructions, and ``marshal``'s bytes are thrown away, never stored):

    * ``marshal`` writes exactly the built-in types (``type(v) is str``, never a subclass) and
      refuses every other object, so an ``Enum``, a ``UUID`` or a ``Fragment`` makes it fail.
      What it accepts beyond JSON (bytes, sets, complex...) orjson has already refused.
    * NaN and infinity: only if orjson wrote a ``null`` at all can there be one; then
      :func:`_no_non_finite_float` looks for them in marshal's bytes.
    """
    try:
        packed = marshal.dumps(parts)
    except (ValueError, RecursionError):  # an object marshal does not write, or too deep
        return False
    return b"null" not in written or _no_non_finite_float(packed)


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
    except (TypeError, orjson.JSONEncodeError) as exc:
        check_storable(value, key=key)  # finds and names the culprit
        raise SerializationError(f"value is not storable as JSON: {exc}", key=key) from None
    if not _only_plain(value if unchecked is None else unchecked, out):
        check_storable(value, key=key)  # the exact walk: names the culprit, or clears a false alarm
    return out


def loads(data: bytes | memoryview, *, key: str | None = None) -> Any:
    """Read strict JSON (no NaN); malformed bytes are :class:`CorruptPayloadError`."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptPayloadError(f"payload is not valid JSON: {exc.msg}", key=key) from None
