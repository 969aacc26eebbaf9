"""Write stamps: a 16-byte header the tiered backend puts in front of every value it stores.

A tier that was down (or restarted from an older append-only file) can hold an *older* copy of a
key than another tier. The tiered backend, when it runs with ``stamps=True``, prefixes each value
it writes with a stamp and, on a read that is not served by the process-local cache, compares the
copies of all the shared tiers: the newest stamp wins and the tiers holding an older copy are
repaired. A delete made while a tier is down leaves a *tombstone* (a stamp with no value) in the
tiers that took it, so that the older copy in the tier that missed the delete loses too.

::

    offset  size  meaning
    0       3     magic b"\\xa7ST" (the codec header is b"\\xa7SS"; JSON never starts so)
    3       1     kind: 1 = value, 2 = tombstone
    4       8     hybrid logical clock, big-endian: milliseconds since the epoch << 16 | counter
    12      4     node: a random number per process, breaking ties between processes
    16      ...   the value (empty for a tombstone)

Values without the header (written before stamps existed, or by a chain without stamps) still
load: they rank below every stamped copy. The header never reaches the caller: the tiered backend
strips it, so ``SessionStore`` and the codec see exactly the bytes they wrote.

**Order.** Stamps are ``(clock, node)`` pairs compared as tuples. The clock is a hybrid logical
clock: it follows the wall clock in milliseconds, never goes backwards in a process, and moves past
every stamp the process has read, so a write that follows a read (a read-modify-write, an
``update``) is always stamped newer than what it read, whatever the skew between hosts' clocks.
Writes that do not read first are ordered by the writers' wall clocks (last writer wins).
"""

from __future__ import annotations

import secrets
import struct
import threading
import time
from typing import NamedTuple

from session_store import forksafe

__all__ = [
    "HEADER_SIZE",
    "KIND_TOMBSTONE",
    "KIND_VALUE",
    "MAGIC",
    "UNSTAMPED",
    "HybridClock",
    "Stamp",
    "Stamped",
    "clock",
    "parse",
    "payload",
    "peek",
    "tombstone",
    "wrap",
]

MAGIC = b"\xa7ST"
KIND_VALUE = 1
KIND_TOMBSTONE = 2
_HEADER = struct.Struct(">3sBQI")
HEADER_SIZE = _HEADER.size  # 16
_LOGICAL_BITS = 16


class Stamp(NamedTuple):
    """When a value was written: hybrid logical clock, then the writer's node number."""

    clock: int
    node: int


#: The rank of a value written without a stamp: older than any stamped value.
UNSTAMPED = Stamp(-1, 0)


class Stamped(NamedTuple):
    """A stored value taken apart: its stamp, whether it is a tombstone, the caller's bytes."""

    stamp: Stamp
    tombstone: bool
    value: bytes


class HybridClock:
    """A hybrid logical clock: wall-clock milliseconds, plus a counter for writes in the same
    millisecond; never goes backwards and moves past every stamp it observes. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0
        self.node = secrets.randbits(32)
        forksafe.register(self)

    def _reset_locks(self) -> None:
        """In a forked child: a new lock, and a node number of its own."""
        self._lock = threading.Lock()
        self.node = secrets.randbits(32)

    def now(self) -> Stamp:
        """A stamp newer than every stamp this clock handed out or observed."""
        physical = (time.time_ns() // 1_000_000) << _LOGICAL_BITS
        with self._lock:
            last = self._last = max(physical, self._last + 1)
        return Stamp(last, self.node)

    def observe(self, stamp: Stamp) -> None:
        """Move past ``stamp`` (read from a store), so later writes are stamped newer."""
        if stamp.clock > self._last:
            with self._lock:
                self._last = max(self._last, stamp.clock)


#: The clock of this process, shared by every tiered backend in it.
clock = HybridClock()


def _pack(kind: int, stamp: Stamp) -> bytes:
    return _HEADER.pack(MAGIC, kind, stamp.clock, stamp.node)


def wrap(value: bytes, stamp: Stamp) -> bytes:
    """``value`` with a header carrying ``stamp``."""
    return _pack(KIND_VALUE, stamp) + value


def tombstone(stamp: Stamp) -> bytes:
    """A tombstone: "deleted at ``stamp``"."""
    return _pack(KIND_TOMBSTONE, stamp)


def parse(data: bytes) -> Stamped:
    """Take a stored value apart; a value without a valid header is :data:`UNSTAMPED`."""
    if data[:3] != MAGIC or len(data) < HEADER_SIZE:
        return Stamped(UNSTAMPED, False, data)
    _, kind, clock_value, node = _HEADER.unpack_from(data)
    if kind == KIND_VALUE:
        return Stamped(Stamp(clock_value, node), False, data[HEADER_SIZE:])
    if kind == KIND_TOMBSTONE and len(data) == HEADER_SIZE:
        return Stamped(Stamp(clock_value, node), True, b"")
    return Stamped(UNSTAMPED, False, data)  # not ours after all: leave it as it is


def peek(data: bytes) -> tuple[Stamp, bool]:
    """The stamp of a stored value and whether it is a tombstone, without copying the value."""
    if data[:3] != MAGIC or len(data) < HEADER_SIZE:
        return UNSTAMPED, False
    _, kind, clock_value, node = _HEADER.unpack_from(data)
    if kind == KIND_VALUE:
        return Stamp(clock_value, node), False
    if kind == KIND_TOMBSTONE and len(data) == HEADER_SIZE:
        return Stamp(clock_value, node), True
    return UNSTAMPED, False


def payload(data: bytes) -> bytes | None:
    """The caller's bytes of a stored value, ``None`` for a tombstone (the hot path: no tuple)."""
    if not data.startswith(MAGIC) or len(data) < HEADER_SIZE:
        return data
    kind = data[3]
    if kind == KIND_VALUE:
        return data[HEADER_SIZE:]
    if kind == KIND_TOMBSTONE and len(data) == HEADER_SIZE:
        return None
    return data
