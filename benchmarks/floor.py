"""The floor of an ordered write on Redis 7.0: the cheapest write any design could use that
keeps issue 12's rule (no write replaces a newer copy with an older one) or issue 17's
compare-and-set, measured beside our code in ``bench_chain_save``, ``bench_near_cache
--callgrind`` and ``bench_update``.

Redis 7.0.15 has no native conditional write that compares a version (``SET ... IFEQ``, from
8.4, compares the whole value, and ``WATCH`` costs a round trip more), so a conditional write
is a Lua script, or ``MULTI``/``EXEC`` around one. What :class:`FloorWriter` sends is the
least such a write can be, with nothing of ours around it:

* **one script** (:data:`NEWER_SCRIPT`, :data:`CAS_SCRIPT`): ``EVALSHA`` with the value as an
  argument; the script reads the stored value's first 16 bytes (``GETRANGE 0 15``), compares
  them with the new value's as one Lua string comparison (``>=`` for "set if newer", ``~=``
  for compare-and-set; our scripts compare four 32-bit words with ``struct``, which is
  locale-independent: a string comparison is the cheapest conceivable check, not a portable
  one), and ``SET``-s the value with ``PX``;
* **staged** (:data:`NEWER_STAGED_SCRIPT`, :data:`CAS_STAGED_SCRIPT`): ``MULTI``, ``SET`` of a
  staging key with the value and ``PX``, ``EVALSHA`` of a script that compares the same 16
  bytes and ``RENAME``-s the staging key over the key (or ``DEL``-s it), ``EXEC``, in one
  round trip: the value never passes through Lua.

The client is our lean connection (:class:`session_store_redis.leanconn.LeanRedis`: hiredis'
reader, one ``poll(0)`` per command; the same client the bare tiers' ``RedisBackend.set``
sends its ``SET`` by), with every command packed by ``hiredis.pack_command``; :meth:`set`
(a plain ``SET`` through it) is the matching raw baseline. The value written is the caller's
bytes behind a 16-byte head (4 bytes of magic, a 12-byte big-endian counter that grows with
every write, so that every ordered write lands), as a chain's frame puts a version in front.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from typing import Any

import hiredis
import redis

from session_store_redis.leanconn import LeanRedis

__all__ = [
    "CAS_SCRIPT",
    "CAS_STAGED_SCRIPT",
    "NEWER_SCRIPT",
    "NEWER_STAGED_SCRIPT",
    "FloorWriter",
]

#: KEYS[1] the key; ARGV[1] the new value; ARGV[2] its 16-byte head; ARGV[3] PX.
NEWER_SCRIPT = """
if redis.call('GETRANGE', KEYS[1], 0, 15) >= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""

#: KEYS[1] the key, KEYS[2] the staging key (holding the new value, set in the same MULTI);
#: ARGV[1] the new value's 16-byte head.
NEWER_STAGED_SCRIPT = """
if redis.call('GETRANGE', KEYS[1], 0, 15) >= ARGV[1] then
  redis.call('DEL', KEYS[2])
  return 0
end
redis.call('RENAME', KEYS[2], KEYS[1])
return 1
"""

#: As :data:`NEWER_SCRIPT`; ARGV[2] is the head the stored value must have.
CAS_SCRIPT = """
if redis.call('GETRANGE', KEYS[1], 0, 15) ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""

#: As :data:`NEWER_STAGED_SCRIPT`; ARGV[1] is the head the stored value must have.
CAS_STAGED_SCRIPT = """
if redis.call('GETRANGE', KEYS[1], 0, 15) ~= ARGV[1] then
  redis.call('DEL', KEYS[2])
  return 0
end
redis.call('RENAME', KEYS[2], KEYS[1])
return 1
"""

_MAGIC = b"\xa7FL\x01"


def _pack(args: tuple[Any, ...]) -> bytes:
    """One command in RESP (hiredis, in C)."""
    return hiredis.pack_command(args)  # type: ignore[no-any-return]


def _sha(script: str) -> bytes:
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest().encode()


_NEWER, _NEWER_STAGED = _sha(NEWER_SCRIPT), _sha(NEWER_STAGED_SCRIPT)
_CAS, _CAS_STAGED = _sha(CAS_SCRIPT), _sha(CAS_STAGED_SCRIPT)


class FloorWriter:
    """The floor's writes of one process, under ``prefix``, through a lean connection to the
    server ``client`` names (its scripts loaded once, here)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        lean = LeanRedis.of(client)
        if lean is None:  # pragma: no cover - a plain TCP client always has one
            raise RuntimeError("no lean client for this redis.Redis")
        self.lean = lean
        self.prefix = prefix
        self._staging = (prefix + "\xff:floor-staged").encode("utf-8", "surrogateescape")
        for script in (NEWER_SCRIPT, NEWER_STAGED_SCRIPT, CAS_SCRIPT, CAS_STAGED_SCRIPT):
            lean.call("SCRIPT", "LOAD", script)
        self._count = itertools.count(time.time_ns())
        self._heads: dict[str, bytes] = {}  # compare-and-set: the head each key holds

    def _head(self) -> bytes:
        return _MAGIC + next(self._count).to_bytes(12, "big")

    def set(self, key: str, value: bytes, px: int) -> None:
        """A plain ``SET`` of the framed value (the raw baseline)."""
        head = self._head()
        self._heads[key] = head
        self.lean._run(_pack(("SET", self.prefix + key, head + value, "PX", px)))

    def set_if_newer(self, key: str, value: bytes, px: int) -> None:
        """The ordered write in one script."""
        head = self._head()
        packed = _pack(("EVALSHA", _NEWER, 1, self.prefix + key, head + value, head, px))
        if self.lean._run(packed) != 1:
            raise RuntimeError("an ordered write of a newer version did not land")

    def set_if_newer_staged(self, key: str, value: bytes, px: int) -> None:
        """The ordered write, staged."""
        head = self._head()
        run = ("EVALSHA", _NEWER_STAGED, 2, self.prefix + key, self._staging, head)
        if self._staged(head + value, px, run) != 1:
            raise RuntimeError("an ordered write of a newer version did not land")

    def cas(self, key: str, value: bytes, px: int) -> None:
        """Compare-and-set in one script, against the head this writer last wrote."""
        expected, head = self._heads[key], self._head()
        packed = _pack(("EVALSHA", _CAS, 1, self.prefix + key, head + value, expected, px))
        if self.lean._run(packed) != 1:
            raise RuntimeError("a compare-and-set against this writer's own version failed")
        self._heads[key] = head

    def cas_staged(self, key: str, value: bytes, px: int) -> None:
        """Compare-and-set, staged."""
        expected, head = self._heads[key], self._head()
        run = ("EVALSHA", _CAS_STAGED, 2, self.prefix + key, self._staging, expected)
        if self._staged(head + value, px, run) != 1:
            raise RuntimeError("a compare-and-set against this writer's own version failed")
        self._heads[key] = head

    def _staged(self, framed: bytes, px: int, run: tuple[Any, ...]) -> Any:
        """``MULTI``, ``SET`` staging, the script, ``EXEC`` in one write; the script's reply."""
        packed = b"".join(
            (
                b"*1\r\n$5\r\nMULTI\r\n",
                _pack(("SET", self._staging, framed, "PX", px)),
                _pack(run),
                b"*1\r\n$4\r\nEXEC\r\n",
            )
        )
        lean = self.lean
        connection = lean.get_connection()
        try:
            connection.send_packed_command((packed,))
            for _ in range(3):  # OK, QUEUED, QUEUED
                connection.read_response()
            replies = connection.read_response()
        except BaseException:
            connection.disconnect()
            raise
        finally:
            lean.release(connection)
        return replies[-1]

    def close(self) -> None:
        self.lean.close()
