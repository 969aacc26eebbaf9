"""The staged scripts' texts (:mod:`session_store_redis.staged` sends them): the ordered writes
:data:`MOVE_IF_NEWER_SCRIPT` and :data:`MOVE_AFTER_SCRIPT`, the compare-and-set
:data:`STAGED_CAS_SCRIPT`, their SHAs, and :func:`staged_cas_args`. Each takes the new value
from a staging key (``KEYS[2]``, set in the same ``MULTI``) rather than as an argument, and
renames it over the key or deletes it. Kept apart from the transaction that sends them so that
each module has one job; their decisions and stored bytes are those of the one-script texts
(:mod:`session_store_redis.ordered_scripts`, :mod:`session_store_redis.scripts`).
"""

from __future__ import annotations

import hashlib

from session_store.stamps import HEADER_SIZE
from session_store_redis.ordered_scripts import HEADS_16, KEPT_16
from session_store_redis.scripts import cas_args

__all__ = [
    "MOVE_AFTER_SCRIPT",
    "MOVE_AFTER_SHA",
    "MOVE_IF_NEWER_SCRIPT",
    "MOVE_IF_NEWER_SHA",
    "STAGED_CAS_SCRIPT",
    "STAGED_CAS_SHA",
    "staged_cas_args",
]

#: KEYS[1]: the key. KEYS[2]: the staging key, holding the new value (set in the same MULTI).
#: ARGV[1]: the new value's first 16 bytes (magic, version). The same magic and a stored version
#: at least as new (``ordered_scripts.KEPT_16``, byte order) keeps the stored value and drops
#: the staged one (returns 0); else the staged value replaces the key with its TTL (returns
#: 1). An error reading the key (a wrong type) drops the staged value too. The ``GETRANGE``
#: offsets are text: a number handed to ``redis.call`` costs Redis 7.0 an
#: ``snprintf("%.17g")`` (~2,000 instructions each).
MOVE_IF_NEWER_SCRIPT = (
    """
local current = redis.pcall('GETRANGE', KEYS[1], '0', '15')
if type(current) == 'table' then
  redis.call('DEL', KEYS[2])
  return current
end
if #current == 16 then
"""
    + HEADS_16
    + "if "
    + KEPT_16
    + """ then
    redis.call('DEL', KEYS[2])
    return 0
  end
end
redis.call('RENAME', KEYS[2], KEYS[1])
return 1
"""
)

#: As :data:`MOVE_IF_NEWER_SCRIPT`, but the staged value always lands: when the stored version
#: is at least as new, the staged value's clock (bytes 4..12) becomes the stored clock plus one
#: first (``SETRANGE``; the new node kept). Returns the 12-byte version stored.
MOVE_AFTER_SCRIPT = (
    """
local current = redis.pcall('GETRANGE', KEYS[1], '0', '15')
if type(current) == 'table' then
  redis.call('DEL', KEYS[2])
  return current
end
if #current == 16 then
"""
    + HEADS_16
    + "if "
    + KEPT_16
    + """ then
    local _, c1, c2 = struct.unpack('>I4I4I4', current)
    if c2 == 4294967295 then
      c1, c2 = (c1 + 1) % 4294967296, 0
    else
      c2 = c2 + 1
    end
    local clock = struct.pack('>I4I4', c1, c2)
    redis.call('SETRANGE', KEYS[2], '4', clock)
    redis.call('RENAME', KEYS[2], KEYS[1])
    return clock .. string.sub(ARGV[1], 13, 16)
  end
end
redis.call('RENAME', KEYS[2], KEYS[1])
return string.sub(ARGV[1], 5, 16)
"""
)

#: The compare-and-set, staged: KEYS[1] the key, KEYS[2] the staging key holding the new value
#: (with its TTL). ARGV[1] to ARGV[4]: what :data:`CAS_SCRIPT` gets as ARGV[1], ARGV[4] to
#: ARGV[6] (the expected bytes, digest or header; the tail; the check; the tail's offset, as
#: text; the header's end is in the text). The same check (a frame's length and tail in one
#: ``GETRANGE``, as :data:`CAS_SCRIPT` explains), then the staged value replaces the key
#: (returns 1) or is dropped (returns 0, or an error reading the key, which is returned).
STAGED_CAS_SCRIPT = (
    """
local check = ARGV[3]
local ok
if check == '-1' or check == '0' then
  local current = redis.pcall('GET', KEYS[1])
  if type(current) == 'table' then
    redis.call('DEL', KEYS[2])
    return current
  end
  if check == '-1' then
    ok = current == ARGV[1]
  else
    ok = current and redis.sha1hex(current) == ARGV[1]
  end
else
  local tail = redis.pcall('GETRANGE', KEYS[1], ARGV[4], check)
  if type(tail) == 'table' then
    redis.call('DEL', KEYS[2])
    return tail
  end
  ok = tail == ARGV[2] and redis.call('GETRANGE', KEYS[1], '0', '"""
    + str(HEADER_SIZE - 1)
    + """') == ARGV[1]
end
if ok then
  redis.call('RENAME', KEYS[2], KEYS[1])
  return 1
end
redis.call('DEL', KEYS[2])
return 0
"""
)

STAGED_CAS_SHA = hashlib.sha1(STAGED_CAS_SCRIPT.encode(), usedforsecurity=False).hexdigest()


def staged_cas_args(token: object) -> tuple[bytes | str | int, ...]:
    """``ARGV`` of :data:`STAGED_CAS_SCRIPT` for a token :func:`is_token` accepted."""
    check = cas_args(token, b"", None)
    return (check[0], *check[3:])


MOVE_IF_NEWER_SHA = hashlib.sha1(MOVE_IF_NEWER_SCRIPT.encode(), usedforsecurity=False).hexdigest()
MOVE_AFTER_SHA = hashlib.sha1(MOVE_AFTER_SCRIPT.encode(), usedforsecurity=False).hexdigest()
