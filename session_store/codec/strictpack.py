"""The strict check's second pass, in C: a strict ``ormsgpack.packb`` and a scan of its bytes.

:func:`session_store.codec.jsonsafe.dumps` writes the JSON body with ``orjson``, which refuses
most of what JSON cannot hold by itself. What it writes silently but wrongly (a plain ``Enum``
as its value, a ``UUID`` as text, an ``orjson.Fragment`` raw, NaN and infinity as ``null``) is
found here, and the bytes made on the way are exact enough to be kept (issue 17, option (a)):

* :func:`pack` is ``ormsgpack.packb`` with every passthrough option that matters and a raising
  ``default``: it writes exactly ``dict`` (``str`` keys), ``list``, ``tuple``, ``str``, ``int``
  within 64 bits, ``float``, ``bool`` and ``None``, and refuses, in C, an ``Enum``, a ``UUID``,
  a datetime, a dataclass, any subclass of ``str``, ``int``, ``dict`` or ``list``, an int beyond
  64 bits, a lone surrogate, a ``Fragment``. (``OPT_PASSTHROUGH_TUPLE`` is left off on purpose:
  ormsgpack writes an exact ``tuple`` as an array, as orjson does, and refuses a tuple subclass
  by itself; the option would send every tuple through a Python call.) What it also accepts
  (``bytes``, ``bytearray``, ``memoryview``) orjson has already refused before it runs.
* :func:`finite` tells whether those bytes hold no NaN and no infinity. ormsgpack writes every
  ``float`` as a float 64 (``0xcb`` then the IEEE 754 double, big-endian), so the first two
  bytes after the ``0xcb`` of a NaN or an infinity are ``0x7f`` or ``0xff``, then ``0xf0`` or
  more. Each ``0xcb`` is found by ``bytes.find`` (``memchr``); past a budget of candidates (a
  session of many floats), one regular expression does the rest in C. A match may be a false
  alarm (the same three bytes inside a string, an int or a length); never a miss. A false
  alarm is settled by the exact walk (:func:`~session_store.codec.jsonsafe.check_storable`),
  which only refuses a real culprit.

msgpack has no shared references and writes a tuple as an array, so ``unpackb`` of these bytes
gives back, for any value that passes, what ``orjson.loads`` of its JSON body gives: the same
types, values and key order (the property tests in tests/codec/test_strictpack.py). The decoded
near cache keeps them as its snapshot of the body (:mod:`session_store.codec.snapshot`).
"""

from __future__ import annotations

import re
from typing import Any, Final

import ormsgpack

__all__ = ["OPTIONS", "finite", "pack", "unpack"]

#: Everything ormsgpack would write in a way of its own (or as another type) goes to ``default``,
#: which refuses it. See the module doc for ``OPT_PASSTHROUGH_TUPLE``.
OPTIONS: Final = (
    ormsgpack.OPT_PASSTHROUGH_SUBCLASS
    | ormsgpack.OPT_PASSTHROUGH_DATETIME
    | ormsgpack.OPT_PASSTHROUGH_DATACLASS
    | ormsgpack.OPT_PASSTHROUGH_ENUM
    | ormsgpack.OPT_PASSTHROUGH_UUID
    | ormsgpack.OPT_PASSTHROUGH_BIG_INT
)
#: msgpack's type byte of a float 64.
_F64: Final = 0xCB
#: A float 64 whose exponent is all ones: NaN, or an infinity (either sign).
_NON_FINITE: Final = re.compile(rb"\xcb[\x7f\xff][\xf0-\xff]")
#: ``0xcb`` bytes looked at one by one before the regular expression takes over (measured: 2 in
#: the medium legacy session's 58 KB, 8 in the large one's 574 KB; a float costs one each).
_CANDIDATES: Final = 32

#: ``unpackb``: what a snapshot is read back with.
unpack: Final = ormsgpack.unpackb


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__qualname__} is not storable")


def pack(value: Any) -> bytes | None:
    """``value`` as msgpack if it holds only the plain types (see the module doc), else
    ``None`` (something refused, or nested deeper than ormsgpack writes: ask the exact walk)."""
    try:
        return ormsgpack.packb(value, default=_refuse, option=OPTIONS)
    except (TypeError, ValueError, RecursionError):
        return None


def finite(packed: bytes) -> bool:
    """Whether the msgpack bytes ``packed`` (from :func:`pack`) hold no NaN and no infinity.
    ``True`` is certain; ``False`` may be a false alarm (see the module doc)."""
    budget = _CANDIDATES
    last = len(packed) - 9  # a float is 9 bytes: a 0xcb after this is the tail of another item
    at = packed.find(_F64)
    while at != -1:
        if at > last:
            return True
        budget -= 1
        if budget < 0:
            return _NON_FINITE.search(packed, at) is None
        if packed[at + 1] & 0x7F == 0x7F and packed[at + 2] >= 0xF0:
            return False
        at = packed.find(_F64, at + 1)
    return True
