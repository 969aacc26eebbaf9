"""JSON with no silent conversion: what can be stored is defined here and enforced.

Storable: ``dict`` with ``str`` keys, ``list`` (and ``tuple``, which comes back as a ``list``),
``str``, ``int`` within 64 bits, finite ``float``, ``bool`` and ``None``. Anything else (an
arbitrary object, a ``set``, ``bytes``, a ``datetime`` outside a schema field, an ``Enum`` or a
``UUID`` that orjson would quietly turn into text, ``NaN`` or infinity that it would quietly turn
into ``null``, an int beyond 64 bits) is a :class:`SerializationError` naming where it is,
raised before any backend is written. There is no ``default=str``.

How: orjson refuses most of it itself, in C; what it would write silently is found by a second
pass in C (a strict ``ormsgpack.packb`` and a scan of its bytes, never stored: see
:func:`_only_plain` and :mod:`session_store.codec.strictpack`); only a suspicion runs the exact
Python walk, which names the culprit. The msgpack bytes of that pass are exact, so the decoded
near cache keeps them to rebuild the session from (:func:`dumps_packed`).

Legacy JSON (headerless, as the first host app's ``json.dumps`` wrote it, with ``NaN``, lone
surrogates and ints of any size) is read by :mod:`session_store.codec.legacyjson`.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import orjson

from session_store.codec import strictpack
from session_store.errors import CorruptPayloadError, SerializationError

__all__ = [
    "MAX_DEPTH",
    "check_storable",
    "dumps",
    "dumps_packed",
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


def _only_plain(parts: Any, written: bytes) -> tuple[bool, bytes | None]:
    """Whether ``parts`` (orjson has just written them, or a document holding them, as
    ``written``) hold nothing orjson writes silently but wrongly: NaN or infinity (as
    ``null``), a plain ``Enum`` (as its value), a ``UUID`` (as text), an ``orjson.Fragment``
    (as raw bytes); and ``parts`` as strict msgpack, or ``None`` if ormsgpack refused them.
    ``True`` is certain; ``False`` may be a false alarm, to be settled by the exact walk
    :func:`check_storable`.

    Both steps run in C (:mod:`session_store.codec.strictpack`; issue 17: the Python walk was
    the largest part of a save, ``marshal.dumps`` after it about half of it):

    * the strict ``ormsgpack.packb`` writes exactly the built-in types (never a subclass) and
      refuses every other object, so an ``Enum``, a ``UUID`` or a ``Fragment`` makes it fail.
      What it accepts beyond JSON (bytes) orjson has already refused.
    * NaN and infinity: only if orjson wrote a ``null`` at all can there be one; then
      :func:`~session_store.codec.strictpack.finite` looks for them in the msgpack bytes.
    """
    packed = strictpack.pack(parts)
    if packed is None:
        return False, None
    return b"null" not in written or strictpack.finite(packed), packed


def dumps(value: Any, *, key: str | None = None, unchecked: list[Any] | None = None) -> bytes:
    """Check ``value`` and write it as compact UTF-8 JSON (:func:`dumps_packed`'s JSON)."""
    return dumps_packed(value, key=key, unchecked=unchecked)[0]


def dumps_packed(
    value: Any, *, key: str | None = None, unchecked: list[Any] | None = None
) -> tuple[bytes, bytes | None]:
    """Check ``value`` and write it as compact UTF-8 JSON; with it, when the check packed the
    whole value, its strict msgpack bytes (else ``None``).

    ``ormsgpack.unpackb`` of those bytes gives exactly what ``orjson.loads`` of the JSON gives
    (same types, values and key order: msgpack has no shared references and writes a tuple as
    an array, as JSON does), so the decoded near cache keeps them to rebuild the session from
    instead of parsing the JSON (:mod:`session_store.codec.snapshot`). They are never stored.

    Args:
        unchecked: when given, the only parts of ``value`` that may hide what orjson writes
            silently (see :func:`session_store.codec.converter.collecting_unchecked`: a typed
            session's leaves were checked by their declared types); only they are packed and
            looked at (then no msgpack bytes are returned). ``None``: the whole value.

    Raises:
        SerializationError: ``value`` holds something that is not storable (see module doc).
    """
    try:
        out = orjson.dumps(value, default=_refuse, option=_STRICT)
    except (TypeError, orjson.JSONEncodeError) as exc:
        check_storable(value, key=key)  # finds and names the culprit
        raise SerializationError(f"value is not storable as JSON: {exc}", key=key) from None
    plain, packed = _only_plain(value if unchecked is None else unchecked, out)
    if not plain:
        check_storable(value, key=key)  # the exact walk: names the culprit, or clears a false alarm
    return out, packed if unchecked is None else None


def loads(data: bytes | memoryview, *, key: str | None = None) -> Any:
    """Read strict JSON (no NaN); malformed bytes are :class:`CorruptPayloadError`."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptPayloadError(f"payload is not valid JSON: {exc.msg}", key=key) from None
