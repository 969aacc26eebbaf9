"""The parsed-body snapshot of the decoded near cache (issue 17): a warm ``load`` of a mutable
session rebuilds it from ``marshal`` bytes instead of parsing its JSON body again.

The decoded near cache (:mod:`session_store.decoded`) keeps a mutable session as its checked
JSON body and builds a new object from it on every hit, so that no caller ever holds what
another one holds. ``marshal.loads`` builds the same plain objects for about two thirds of the
instructions of ``orjson.loads`` (callgrind, medium legacy session: 848k against 1,294k), so
from the second parse of a body on, the parsed envelope is kept as ``marshal`` bytes and later
rebuilds read those.

Why it is exact: the bytes are made here, in this process, by ``marshal.dumps`` of what
``orjson`` has just parsed: plain ``dict``, ``list``, ``str``, ``int``, ``float``, ``bool`` and
``None``, with no tuple and no container reached twice. ``marshal.loads`` gives back exactly
that, as a new object graph each time. They are never made from a caller's own object (which
may hold a tuple, or one list in two places, that JSON turns into a list, or two lists), never
stored and never read from anywhere else.
"""

from __future__ import annotations

import marshal
from collections.abc import Callable
from typing import Any, Final

__all__ = ["Snapshot", "parse"]

#: Parses of a body before its snapshot is made: a body read once (a ``save`` then one ``load``)
#: pays no ``marshal.dumps`` (311k instructions for the medium legacy session).
PARSES_BEFORE_SNAPSHOT: Final = 2
#: ``Snapshot.uses`` once ``marshal`` has refused a parse (nested too deep): never retried.
_NEVER: Final = -(2**62)


class Snapshot:
    """Where the parse of one body is kept, once it has been parsed again.

    The codec gives one to a body that is a copy of its own (a stage was undone: decompressed or
    decrypted); the decoded near cache then drops that body and keeps the snapshot alone
    (:meth:`DecodedCache.load <session_store.decoded.DecodedCache.load>`), which takes about
    the same memory. A body that is a view of an uncompressed payload gets none: it costs no
    memory, and a snapshot would.

    A cache of what the body parses to, not part of its value: it compares equal to any other
    snapshot and to ``None``, so two :class:`~session_store.codec.Plain` compare as their bytes
    and stages do.
    """

    __slots__ = ("packed", "uses")

    def __init__(self) -> None:
        self.packed: bytes | None = None
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
        return marshal.loads(packed)  # noqa: S302 (made below by this process, from orjson's output)
    parsed = loads(body, key=key)
    memo.uses += 1
    if memo.uses >= PARSES_BEFORE_SNAPSHOT:
        try:
            memo.packed = marshal.dumps(parsed)
        except ValueError:  # nested deeper than marshal writes: keep parsing the body
            memo.uses = _NEVER
    return parsed
