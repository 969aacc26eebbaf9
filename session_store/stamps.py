"""Version frames: the header a chain puts in front of every copy it stores, and its clock.

Every value a :class:`~session_store.tiered.TieredBackend` writes, in every tier, is *framed*::

    offset  size  meaning
    0       4     magic b"\\xa7SF\\x01" (the codec header is b"\\xa7SS"; JSON never starts so)
    4       8     hybrid logical clock, big-endian: milliseconds since the epoch << 16 | counter
    12      4     node: a random number per process, breaking ties between processes
    16      1     kind: 1 = value, 2 = tombstone ("deleted at this version")
    17      8     the TTL the write asked for, seconds as a big-endian double (0: the backend's
                  default; inf: no expiry), so that ``touch`` can keep each session's own TTL
    25      ...   the caller's bytes, exactly (empty for a tombstone)

Bytes 4..16 are the **version**: compared as bytes (big-endian, so byte order is number order),
newer is greater; :data:`UNVERSIONED` (``b""``) is what a copy without a frame has, older than any.

**Unambiguous.** A chain frames *every* value, so any byte string a caller gives round-trips
exactly, also one that begins with the magic (it is framed like any other). A copy without a frame
(written before chains framed, or by something other than a chain) is read as an unversioned value
unless it happens to begin with the 4-byte magic and a valid kind byte.

**Single-tier readers** (``SessionStore`` over one tier of a chain, the CLI) unframe with
:func:`session_bytes`, which also understands the 16-byte ``b"\\xa7ST"`` stamps of earlier chains
(a session payload never starts with either header, so at that level there is no ambiguity).

**Order.** The clock follows the wall clock in milliseconds, never goes backwards in a process, and
moves past every version the process reads, so a write that follows a read (an ``update``) is
always newer than what it read, whatever the skew between hosts. Writes that do not read first are
ordered by the writers' clocks (last writer wins).
"""

from __future__ import annotations

import logging
import math
import secrets
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from session_store import forksafe
from session_store.errors import CorruptPayloadError
from session_store.ttl import MAX_TTL

__all__ = [
    "HEADER_SIZE",
    "KIND_TOMBSTONE",
    "KIND_VALUE",
    "MAGIC",
    "MAX_AHEAD_MS",
    "UNVERSIONED",
    "VERSION_END",
    "VERSION_START",
    "Frame",
    "HybridClock",
    "clock",
    "frame",
    "is_tombstone",
    "own_ttl",
    "parse",
    "session_bytes",
    "sessions_among",
    "tombstone",
    "unframe",
    "version_of",
    "with_version",
]

MAGIC = b"\xa7SF\x01"
KIND_VALUE = 1
KIND_TOMBSTONE = 2
_HEADER = struct.Struct(">4sQIBd")
HEADER_SIZE = _HEADER.size  # 25
VERSION_START, VERSION_END = 4, 16
_KIND = 16
_LOGICAL_BITS = 16
_CLOCK_MAX = (1 << 64) - 1
#: How far ahead of this host's wall clock a version may be, in milliseconds, and still be
#: followed: a day. Further ahead is a forged or corrupted frame (or a host whose clock is off
#: by more than a day): the clock does not jump to it, and versioned operations on that copy
#: refuse with :class:`~session_store.errors.CorruptPayloadError` (see :meth:`HybridClock.follow`).
MAX_AHEAD_MS = 86_400_000

log = logging.getLogger("session_store.tiered")
#: The version of a copy without a frame: older than every framed copy.
UNVERSIONED = b""

# The 16-byte stamps of earlier chains (``tiered://?stamps=true``), read by session_bytes only.
_OLD_MAGIC = b"\xa7ST"
_OLD_HEADER = 16


class Frame(NamedTuple):
    """A stored copy taken apart."""

    version: bytes  # UNVERSIONED if the copy has no frame
    tombstone: bool
    ttl: float | None  # the TTL the write asked for (None: the backend's default, or unknown)
    value: bytes


def _is_framed(data: bytes) -> bool:
    return (
        len(data) >= HEADER_SIZE
        and data[:4] == MAGIC
        and (
            data[_KIND] == KIND_VALUE
            or (data[_KIND] == KIND_TOMBSTONE and len(data) == HEADER_SIZE)
        )
    )


def frame(value: bytes, version: bytes, ttl: float | None) -> bytes:
    """``value`` with a frame carrying ``version`` (12 bytes from :meth:`HybridClock.now`)."""
    # one copy of the value; the tail as _tail makes it, without the call
    return b"".join((MAGIC, version, _pack_tail(KIND_VALUE, 0.0 if ttl is None else ttl), value))


def tombstone(version: bytes) -> bytes:
    """A tombstone: "deleted at ``version``"."""
    return MAGIC + version + _tail(KIND_TOMBSTONE, None)


def _tail(kind: int, ttl: float | None) -> bytes:
    return _pack_tail(kind, 0.0 if ttl is None else ttl)


_pack_tail = struct.Struct(">Bd").pack

#: A value's frame tail (kind and TTL) by TTL, made on first use (:func:`_value_tail`).
_VALUE_TAILS: dict[float | None, bytes] = {}


def _value_tail(ttl: float | None) -> bytes:
    """Make and keep the entry of :data:`_VALUE_TAILS` for ``ttl`` (cleared past 1,024: a
    chain copying sessions with the TTL each has left asks for many)."""
    if len(_VALUE_TAILS) >= 1024:
        _VALUE_TAILS.clear()
    made = _VALUE_TAILS[ttl] = _tail(KIND_VALUE, ttl)
    return made


def with_version(data: bytes, version: bytes) -> bytes:
    """The framed ``data`` with another 12-byte ``version``."""
    return b"".join((data[:VERSION_START], version, data[VERSION_END:]))


def version_of(data: bytes) -> bytes:
    """The version of a stored copy; :data:`UNVERSIONED` if it has no frame."""
    return data[VERSION_START:VERSION_END] if _is_framed(data) else UNVERSIONED


def is_tombstone(data: bytes) -> bool:
    return len(data) == HEADER_SIZE and data[:4] == MAGIC and data[_KIND] == KIND_TOMBSTONE


def unframe(data: bytes) -> bytes | None:
    """The caller's bytes of a stored copy, ``None`` for a tombstone (the hot path)."""
    if data[:4] != MAGIC or len(data) < HEADER_SIZE:
        return data
    kind = data[_KIND]
    if kind == KIND_VALUE:
        return data[HEADER_SIZE:]
    if kind == KIND_TOMBSTONE and len(data) == HEADER_SIZE:
        return None
    return data


def parse(data: bytes) -> Frame:
    """Take a stored copy apart; a copy without a valid frame is unversioned, as it is."""
    if not _is_framed(data):
        return Frame(UNVERSIONED, False, None, data)
    _, _, _, kind, ttl = _HEADER.unpack_from(data)
    return Frame(
        data[VERSION_START:VERSION_END],
        kind == KIND_TOMBSTONE,
        ttl if _asked_for(ttl) else None,
        data[HEADER_SIZE:],
    )


def _asked_for(ttl: float) -> bool:
    """Whether a frame's TTL field holds a TTL a write can have asked for: a checked one
    (``0 < ttl <= MAX_TTL``) or no expiry. Anything else (0 for the default, NaN, a negative
    or a finite TTL beyond ``MAX_TTL``, only ever in bytes a chain did not write: a planted or
    corrupted frame) is unknown, so it never reaches a tier as a TTL (``touch`` keeping it
    would raise from a tier, delete the session, or store a TTL every public call refuses)."""
    return 0.0 < ttl <= MAX_TTL or ttl == math.inf


def own_ttl(data: bytes) -> float | None:
    """The TTL the write of a framed copy asked for (``None``: default or not framed)."""
    return parse(data).ttl


def session_bytes(data: bytes) -> bytes | None:
    """What a single-tier reader decodes: the payload of a framed copy (``None`` for a
    tombstone), of an earlier chain's stamped copy, or the bytes as they are.

    ``None`` too for a framed copy whose payload is itself a tombstone: a value a chain stored
    for a caller who wrote "deleted" (the marker a web login's id rotation leaves on the old
    id, ``websession.steps.RETIRED``), which the chain's own readers take for no session; a
    session payload never begins with the magic."""
    if data[:4] == MAGIC:
        payload = unframe(data)
        if payload is not None and len(payload) == HEADER_SIZE and is_tombstone(payload):
            return None
        return payload
    if data[:3] == _OLD_MAGIC and len(data) >= _OLD_HEADER:
        kind = data[3]
        if kind == 1:
            return data[_OLD_HEADER:]
        if kind == 2 and len(data) == _OLD_HEADER:
            return None
    return data


def sessions_among(keys: Iterable[str], found: Mapping[str, bytes]) -> list[str]:
    """The ``keys`` whose value (``found``, from one ``get_many``) is a session: present, and
    not a deleted session's marker (a chain's tombstone read through one tier, or an id a
    login rotated away, :func:`session_bytes` ``None``), which ``load`` and ``exists`` call
    absent too. What every listing of sessions keeps (the stores', the CLI's, a chain's)."""
    return [
        key
        for key in keys
        if (data := found.get(key)) is not None and session_bytes(data) is not None
    ]


class HybridClock:
    """A hybrid logical clock: wall-clock milliseconds, plus a counter for writes in the same
    millisecond; never goes backwards and moves past every version it observes. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0
        self.node = secrets.randbits(32)
        forksafe.register(self)

    @property
    def node(self) -> int:
        """This process's node number (random; a forked child draws its own)."""
        return self._node

    @node.setter
    def node(self, node: int) -> None:
        self._node = node
        self._node_bytes = node.to_bytes(4, "big")  # (every version ends with it)

    def _reset_locks(self) -> None:
        """In a forked child: a new lock, and a node number of its own."""
        self._lock = threading.Lock()
        self.node = secrets.randbits(32)

    def now(self) -> bytes:
        """A 12-byte version newer than every version this clock handed out or observed."""
        return self._tick().to_bytes(8, "big") + self._node_bytes

    def frame(self, value: bytes, ttl: float | None) -> bytes:
        """``frame(value, self.now(), ttl)`` in one call, the frame's tail looked up, not
        packed: what every new write of a chain frames its bytes with. The clock moves in
        :meth:`_tick` only, so the monotonic rule has one copy."""
        tail = _VALUE_TAILS.get(ttl)
        if tail is None:
            tail = _value_tail(ttl)
        clock = self._tick().to_bytes(8, "big")
        return b"".join((MAGIC, clock, self._node_bytes, tail, value))

    def _tick(self) -> int:
        """The clock field of the next version (the clock moved to it)."""
        physical = (time.time_ns() // 1_000_000) << _LOGICAL_BITS
        lock = self._lock  # (acquire / release in try / finally: cheaper than ``with``)
        lock.acquire()
        try:
            last = self._last + 1
            if physical > last:
                last = physical
            self._last = last
        finally:
            lock.release()
        return last

    def observe(self, version: bytes) -> None:
        """Move past ``version`` (read from a store), so later writes are newer.

        A version more than :data:`MAX_AHEAD_MS` ahead of the wall clock is not followed (a
        warning says so, once per process): one forged or corrupted frame must not drag this
        process's clock, and with it every later write of every key, to the end of its range.
        """
        seen = _clock_field(version)
        if seen > self._last:
            if _plausible(seen):
                self._advance(seen)
            else:
                _warn_implausible(version)

    def follow(self, key: str, version: bytes) -> None:
        """:meth:`observe` of a version that a write of ``key`` is to be ordered after: one no
        honest writer could have given (more than :data:`MAX_AHEAD_MS` ahead, or the clock's
        last value) is refused with :class:`CorruptPayloadError` before anything is written
        (a plain ``set`` or ``delete`` of the key still lands)."""
        seen = _clock_field(version)
        if seen > self._last:
            if not _plausible(seen):
                raise CorruptPayloadError(
                    f"the stored copy of {key!r} carries a version far ahead of this host's "
                    "clock (a forged or corrupted frame, or a host whose clock is off by more "
                    "than a day): no write can be ordered after it; delete the key "
                    "(session-store delete) or fix that host's clock"
                )
            self._advance(seen)

    def _advance(self, seen: int) -> None:
        with self._lock:
            self._last = max(self._last, seen)


def _clock_field(version: bytes) -> int:
    """The clock part of a 12-byte version; -1 for anything else (nothing to move past)."""
    if len(version) != VERSION_END - VERSION_START:
        return -1
    return int.from_bytes(version[:8], "big")


def _plausible(clock_field: int) -> bool:
    ceiling = (time.time_ns() // 1_000_000 + MAX_AHEAD_MS) << _LOGICAL_BITS
    return clock_field <= min(ceiling, _CLOCK_MAX - 1)


_warned = False


def _warn_implausible(version: bytes) -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning(
            "a stored copy carries a version %d ms after this host's clock (more than "
            "MAX_AHEAD_MS): not followed; a forged or corrupted frame, or a host whose clock "
            "is off by more than a day",
            (int.from_bytes(version[:8], "big") >> _LOGICAL_BITS) - time.time_ns() // 1_000_000,
        )


#: The clock of this process, shared by every chain in it.
clock = HybridClock()
