"""The Lua script behind compare-and-set, and the version tokens it checks.

**Why Lua and not WATCH/MULTI/EXEC.** The protocol splits compare-and-set into two calls,
``get_versioned`` and later ``set_if``, with arbitrary user code in between. WATCH only guards
commands sent on the *same connection* after it, so it would have to pin a pooled connection from
the read to the write (leaking it whenever a caller reads and never writes), or ``set_if`` would
have to WATCH, GET, compare and MULTI/SET/EXEC on its own: three round trips and a connection held
across them. The script does the comparison and the write inside Redis, atomically, in one round
trip on any pooled connection; it touches a single key (``KEYS[1]``), so it also runs unchanged
within that key's hash slot on Redis Cluster. It is sent with ``EVALSHA`` (loaded again if the
server's script cache was flushed or the server restarted).

**The tokens.** Stored values are never changed for compare-and-set: what the token names is
read from the value itself.

* A value a chain framed (:mod:`session_store.stamps`: a 25-byte header carrying the write's
  12-byte version, which every write of new content gets anew) has a **short token**
  (:class:`FrameToken`): its length, its header and its last 16 bytes. The script compares them
  with ``STRLEN`` and two ``GETRANGE``: a few dozen bytes, whatever the size of the value. Its
  cost was measured (``benchmarks/bench_update.py``, module docstring): the old digest of a 12.7
  KB value cost Redis ~80 us per call, the short check ~24 us, the rest being what any script
  pays to receive the new value; a plain ``SET`` costs ~0.4 us.
* Any other value (a bare session payload, a value written before chains framed, or by another
  program) has the **value token** (:class:`ValueToken`): the very bytes read (no copy: the
  token refers to them). The script compares them whole with the current value (``GET`` and one
  string comparison inside Lua, where equal strings are one interned string): exact, with no
  digest on either side. Every release before this one used the SHA-1 hex digest of the whole
  value (``redis.sha1hex``, the only hash Lua scripts get); the digest is still accepted as a
  token (and a :class:`ValueToken` equals the digest of its bytes), so a token held in that
  form keeps working. Either way a rewrite of the very same bytes in between still matches,
  which is safe for read-modify-write: the state the caller read is the state it replaces.
  Measured on a 2.6 KB session (docs/performance.md, "Cheaper ordered writes"): the script costs
  Redis about the same either way (~16-17 us: the expected bytes passing into Lua cost what the
  digest did), and the client no longer hashes (~4 us, ~10 us of CPU per ``update`` in all); it
  sends the expected bytes beside the new ones. Above :data:`WHOLE_VALUE_MAX` (1 KiB) the token
  travels as its digest instead, so that an ``update`` of a large session does not send it twice.

So a value written before the short tokens existed still loads and is still updated (by its
digest), and a process of the previous release, whose script has another SHA, keeps working
beside this one on the same keys. ``set_if`` with ``token=None`` ("only if absent") needs no
script: it is ``SET key value NX [PX]``.

**Staged ordered writes** (the chain's ordered writes without the value passing through Lua)
are in :mod:`session_store_redis.staged`; a compare-and-set is staged from
``staged.STAGE_CAS_FROM`` (1 KiB) up: Redis 7.0's Lua hashes every byte of an argument, which
below that size costs Redis less than staging (callgrind figures in docs/performance.md).
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from session_store.stamps import (
    HEADER_SIZE,
    UNVERSIONED,
    version_of,
)

__all__ = [
    "CAS_SCRIPT",
    "CAS_SHA",
    "TAIL_SIZE",
    "WHOLE_VALUE_MAX",
    "FrameToken",
    "ValueToken",
    "cas_args",
    "is_token",
    "version_token",
]

#: KEYS[1]: the stored key. ARGV[2]: the new value. ARGV[3]: time to live in milliseconds, "0"
#: for none. The check: ARGV[5] "-1": ARGV[1] is the whole value the current one must be;
#: "0": ARGV[1] is the SHA-1 hex the current value must have (the previous releases' token);
#: else ARGV[5] is the length the current value must have, ARGV[1] its 25-byte frame header
#: and ARGV[4] its last bytes (never empty: :func:`is_token`). Length and last bytes are one
#: ``GETRANGE`` from ARGV[6] (``length - #tail``) to ``length`` (one past the end): it returns
#: exactly the tail only if the value is ``length`` long (longer gives one byte more, shorter
#: fewer); the header is ``GETRANGE`` 0 to 24. Every offset is text, from the client or in the
#: script: a number handed to ``redis.call`` is formatted by ``snprintf`` ("%.17g"), ~2,000
#: instructions each, 12 % of the server's cost of a staged update (callgrind); and each
#: argument is one more Lua string to make, so the header's end, the same for every frame, is
#: written in the script rather than sent (lua12: a staged compare-and-set 60.9k -> 58.9k
#: instructions, this one unchanged within the noise). ARGV[1..5] mean what they meant to the
#: previous releases' scripts. Returns 1 if it wrote, 0 if not.
CAS_SCRIPT = (
    """
local check = ARGV[5]
if check == '-1' then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
  end
elseif check == '0' then
  local current = redis.call('GET', KEYS[1])
  if not current or redis.sha1hex(current) ~= ARGV[1] then
    return 0
  end
elseif redis.call('GETRANGE', KEYS[1], ARGV[6], check) ~= ARGV[4]
    or redis.call('GETRANGE', KEYS[1], '0', '"""
    + str(HEADER_SIZE - 1)
    + """') ~= ARGV[1] then
  return 0
end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
"""
)

#: The script's SHA-1, the name ``EVALSHA`` runs it by.
CAS_SHA = hashlib.sha1(CAS_SCRIPT.encode("utf-8"), usedforsecurity=False).hexdigest()

#: The longest bare value a compare-and-set sends whole as what it expects; a longer one is
#: sent as its SHA-1 digest. Whole, the client hashes nothing (a few microseconds); but the
#: expected bytes travel beside the new ones, which on a real network costs more than the hash
#: for a session of tens of kilobytes (60 KB is ~0.5 ms at 1 Gbit/s). The script's own cost is
#: the same either way (docs/performance.md).
WHOLE_VALUE_MAX = 1024

#: How many of a framed value's last bytes its short token holds.
TAIL_SIZE = 16

#: Whether a string is a SHA-1 as lowercase hex (one C call: the hot path of set_if).
_SHA1_HEX = re.compile(r"[0-9a-f]{40}").fullmatch


class FrameToken(NamedTuple):
    """The short token of a framed value: what the script compares instead of a digest."""

    length: int
    head: bytes  # the frame header: magic, version, kind, TTL
    tail: bytes  # the last TAIL_SIZE bytes (a guard: the version alone names the content)


class ValueToken:
    """The token of a value without a frame: the bytes themselves, compared whole by the script.

    It equals another :class:`ValueToken` of the same bytes, and the SHA-1 hex digest of its
    bytes (the form every earlier release gave: both name the same value). Its ``repr`` shows
    the digest, never the bytes (a session's content does not belong in a log line).
    """

    __slots__ = ("_digest", "value")

    def __init__(self, value: bytes) -> None:
        self.value = value
        self._digest: str | None = None

    def digest(self) -> str:
        """The SHA-1 hex digest of the bytes (computed once, only when asked for)."""
        if self._digest is None:
            self._digest = hashlib.sha1(self.value, usedforsecurity=False).hexdigest()
        return self._digest

    def __eq__(self, other: object) -> bool:
        if type(other) is ValueToken:
            return self.value == other.value
        if type(other) is str:
            return self.digest() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.digest())

    def __repr__(self) -> str:
        return f"ValueToken(length={len(self.value)}, sha1={self.digest()})"


def version_token(value: bytes) -> FrameToken | ValueToken:
    """The token of a value read: a :class:`FrameToken` if a chain framed it, else a
    :class:`ValueToken` of its bytes."""
    if version_of(value) != UNVERSIONED:
        return FrameToken(len(value), value[:HEADER_SIZE], value[-TAIL_SIZE:])
    return ValueToken(value)


def is_token(token: object) -> bool:
    """Whether ``token`` could come from :func:`version_token` (anything else never matches)."""
    if type(token) is FrameToken:
        return (
            type(token.length) is int
            and token.length >= HEADER_SIZE
            and type(token.head) is bytes
            and len(token.head) == HEADER_SIZE
            and type(token.tail) is bytes
            and 0 < len(token.tail) <= TAIL_SIZE
        )
    if type(token) is ValueToken:
        return type(token.value) is bytes
    return type(token) is str and _SHA1_HEX(token) is not None


def cas_args(token: object, value: bytes, px: int | None) -> list[bytes | str | int]:
    """``ARGV`` of :data:`CAS_SCRIPT` for a token :func:`is_token` accepted."""
    if type(token) is ValueToken:
        if len(token.value) > WHOLE_VALUE_MAX:  # the digest: a few bytes on the wire, not all
            return [token.digest(), value, px or 0, b"", 0]
        return [token.value, value, px or 0, b"", -1]
    if isinstance(token, FrameToken):
        length, head, tail = token
        return [head, value, px or 0, tail, length, length - len(tail)]
    return [str(token), value, px or 0, b"", 0]
