"""The parsed-body snapshot of the decoded near cache (issue 17): a warm ``load`` of a mutable
session rebuilds it from msgpack bytes instead of parsing its JSON body again.

The decoded near cache (:mod:`session_store.decoded`) keeps a mutable session as its checked
JSON body and builds a new object from it on every hit, so that no caller ever holds what
another one holds. ``ormsgpack.unpackb`` builds the same plain objects for about three quarters
of the time of ``orjson.loads`` (medium legacy session: 80 µs against 106), so the body's
envelope is kept as msgpack bytes and rebuilds read those:

* **Made on save** (body17): the strict check of a ``save`` already packs the whole envelope
  (:func:`session_store.codec.jsonsafe.dumps_packed`); those bytes are the snapshot from the
  start, so the load after the save (and the object an ``update`` hands its ``fn``) is an
  ``unpackb``, never a JSON parse. A typed session's check packs only its unchecked parts:
  its snapshot is made as below.
* **Made on the second parse** of a body that is a copy of its own (a stage was undone):
  ``packb`` of what ``orjson`` (or the legacy reader) has just parsed.

Why it is exact: msgpack has no shared references and writes a ``tuple`` as an array, so
``unpackb`` gives back, as a new object graph each time, the ``dict``, ``list``, ``str``,
``int``, ``float``, ``bool`` and ``None`` that a parse of the JSON body gives, key order
included (property-tested in tests/codec/test_strictpack.py). The bytes are never stored and
never read from anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from session_store.codec import strictpack

__all__ = ["Snapshot", "parse"]

#: Parses of a body before its snapshot is made: a body read once (a ``load`` then a ``save``)
#: pays no ``packb`` of its parse.
PARSES_BEFORE_SNAPSHOT: Final = 2
#: ``Snapshot.uses`` once ``packb`` has refused a parse (an int beyond 64 bits or a lone
#: surrogate of legacy JSON, or too deep): never retried.
_NEVER: Final = -(2**62)


class Snapshot:
    """Where the parse of one body is kept, once it has been parsed again.

    The codec gives one to a body that is a copy of its own (a stage was undone: decompressed or
    decrypted); the decoded near cache then drops that body and keeps the snapshot alone
    (:meth:`DecodedCache.load <session_store.decoded.DecodedCache.load>`), which takes about
    the same memory. A body read as a view of an uncompressed payload gets none: it costs no
    memory, and a snapshot would. A body this process has just written gets the msgpack bytes
    its strict check made anyway, view or not (the near cache counts them in its bound).

    A cache of what the body parses to, not part of its value: it compares equal to any other
    snapshot and to ``None``, so two :class:`~session_store.codec.Plain` compare as their bytes
    and stages do.

    Args:
        packed: the envelope as msgpack, when the codec's strict check made it (a ``save``).
    """

    __slots__ = ("packed", "uses")

    def __init__(self, packed: bytes | None = None) -> None:
        self.packed = packed
        self.uses = 0

    def __eq__(self, other: object) -> bool:
        return other is None or isinstance(other, Snapshot)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"Snapshot(packed={self.packed is not None}, uses={self.uses})"


def parse(
    body: bytes | memoryview, memo: Snapshot | None, key: str, loads: Callable[..., Any]
) -> Any:
    """What ``body`` parses to by ``loads``, read from ``memo`` once it holds the snapshot (and
    made there on the second parse). Call it before anything (a migration, the structure step)
    can change what was parsed."""
    if memo is None:
        return loads(body, key=key)
    packed = memo.packed
    if packed is not None:
        return strictpack.unpack(packed)  # made by this process, from a checked or parsed body
    parsed = loads(body, key=key)
    memo.uses += 1
    if memo.uses >= PARSES_BEFORE_SNAPSHOT:
        memo.packed = strictpack.pack(parsed)
        if memo.packed is None:  # not writable as strict msgpack: keep parsing the body
            memo.uses = _NEVER
    return parsed
