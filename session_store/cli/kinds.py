"""What each key of a store holds, as ``ls`` and ``delete`` tell it: read tier by tier (nothing
promoted, nothing written), the newest copy of each key judged as ``get`` judges it.

The kinds: ``session`` and ``legacy data-room session`` (what ``get`` decodes as a session, what
``ls`` lists by default), ``plain JSON`` and ``opaque bytes`` (a value another program stored,
which ``get`` shows but calls no session), ``retired id`` (the marker a login's id rotation
leaves on the old id for a minute) and ``deleted`` (a chain's tombstone, read through one tier
alone or through the chain): the last two hold no value, ``get`` says "no session" (exit 3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from session_store.backend import SessionBackend
from session_store.cli.common import CommandError, missing, note_degraded
from session_store.cli.tierreads import tiers_of
from session_store.codec.format import MAGIC, is_legacy
from session_store.codec.legacyjson import loads_legacy
from session_store.errors import BackendUnavailableError, CorruptPayloadError
from session_store.keys import batches
from session_store.schema.builtin import DATAROOM_KEYS
from session_store.stamps import is_tombstone, session_bytes, unframe, version_of

__all__ = [
    "DELETED",
    "KINDS",
    "LEGACY",
    "NO_SESSION",
    "OPAQUE",
    "PLAIN",
    "RETIRED_ID",
    "SESSION",
    "SESSION_KINDS",
    "kind_of",
    "kinds",
    "listed",
    "missing_why",
    "newest",
    "what_is",
]

SESSION, LEGACY, PLAIN, OPAQUE = "session", "legacy data-room session", "plain JSON", "opaque bytes"
RETIRED_ID, DELETED = "retired id", "deleted"
#: Every kind, in the order ``ls`` names what it left out.
KINDS = (SESSION, LEGACY, PLAIN, OPAQUE, RETIRED_ID, DELETED)
#: The kinds ``get`` decodes as a session: what ``ls`` lists without ``--all``.
SESSION_KINDS = frozenset((SESSION, LEGACY))
#: The version a retired id's marker carries (``websession.steps.RETIRED``: all zero).
_RETIRED_VERSION = bytes(12)
_BATCH = 500
#: What a key holding no session holds, as ``get`` and ``delete`` say it (exit 3).
NO_SESSION = {
    RETIRED_ID: "it holds a retired id's marker (what a login's id rotation leaves on the old "
    "id; it expires by itself within a minute)",
    DELETED: "it holds a deleted session (a chain's tombstone, which keeps a lagging tier from "
    "bringing the session back)",
}
T = TypeVar("T")


def what_is(stored: bytes, key: str) -> tuple[str, Any]:
    """What ``stored`` is (:data:`SESSION`, :data:`LEGACY`, :data:`PLAIN` or :data:`OPAQUE`)
    and, for plain JSON and a legacy session, its value as read by the legacy reader (exactly:
    big ints stay ints)."""
    if stored[: len(MAGIC)] == MAGIC:
        return SESSION, None
    try:
        value = loads_legacy(stored, key=key)
    except CorruptPayloadError:
        return OPAQUE, None
    if is_legacy(stored) and isinstance(value, dict) and not DATAROOM_KEYS.isdisjoint(value):
        return LEGACY, value
    return PLAIN, value


def kind_of(stored: bytes, key: str) -> str:
    """What the stored copy ``stored`` (as a tier holds it, framed or not) is."""
    value = session_bytes(stored)
    if value is None:  # a tombstone, or a value that is one: no session either way
        if is_tombstone(stored) and version_of(stored) != _RETIRED_VERSION:
            return DELETED
        payload = unframe(stored)
        return RETIRED_ID if payload is None or is_tombstone(payload) else DELETED
    return what_is(value, key)[0]


def _newer(version: bytes, best: bytes | None) -> bool:
    return best is None or version > best  # a tie: the faster tier's copy, read first


def newest(backend: SessionBackend, key: str) -> tuple[bytes, float] | None:
    """The newest copy of ``key`` among the tiers (framed as stored) and its TTL left, or
    ``None`` if no tier holds anything under it; tiers that are down are noted, skipped."""
    best: tuple[bytes, float] | None = None
    best_version: bytes | None = None
    for found in _each_tier(backend, lambda tier: tier.get_with_ttl(key)):
        if found is not None and _newer(version_of(found[0]), best_version):
            best, best_version = found, version_of(found[0])
    return best


def missing_why(backend: SessionBackend, key: str, url: str) -> CommandError:
    """The error of ``get`` / ``delete`` on a key holding no session (exit 3), saying what it
    holds when it holds a marker (one more read, on this path only)."""
    hit = newest(backend, key)
    kind = None if hit is None else kind_of(hit[0], key)
    error = missing(key, url)
    return (
        error
        if kind not in NO_SESSION
        else CommandError(f"{error.message}: {NO_SESSION[kind]}", error.code)
    )


def kinds(backend: SessionBackend, keys: Iterable[str]) -> Iterator[tuple[str, str]]:
    """``(key, kind)`` for each of ``keys`` that holds anything, in order; read a batch (one
    ``get_many`` per tier) at a time."""
    for batch in batches(keys, _BATCH):
        yield from _kinds_of_batch(backend, batch)


def _kinds_of_batch(backend: SessionBackend, batch: list[str]) -> Iterator[tuple[str, str]]:
    copies: dict[str, bytes] = {}
    for found in _each_tier(backend, lambda tier: tier.get_many(batch)):
        for key, stored in (found or {}).items():
            held = copies.get(key)
            if _newer(version_of(stored), None if held is None else version_of(held)):
                copies[key] = stored
    return ((key, kind_of(copies[key], key)) for key in batch if key in copies)


def listed(backend: SessionBackend, prefix: str) -> list[str]:
    """Every key under ``prefix`` that any tier holds (tombstones and markers included),
    sorted."""
    keys: set[str] = set()
    for found in _each_tier(backend, lambda tier: list(tier.scan(prefix))):
        keys.update(found or ())
    return sorted(keys)


def _each_tier(backend: SessionBackend, ask: Callable[[SessionBackend], T]) -> Iterator[T | None]:
    """``ask(tier)`` of each tier, fastest first; a tier that is down (in a chain) is noted and
    yields ``None``; all of them down (or a single backend down) raises."""
    tiers = tiers_of(backend)
    down = 0
    for tier in tiers:
        try:
            answer = ask(tier)
        except BackendUnavailableError as exc:
            if len(tiers) == 1:
                raise
            note_degraded(tier.describe(), exc.message)
            down += 1
            answer = None
        yield answer
    if down == len(tiers):
        raise BackendUnavailableError(
            "every tier is unavailable, cannot read", backend=backend.describe()
        )
