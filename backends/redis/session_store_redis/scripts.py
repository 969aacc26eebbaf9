"""The Lua script behind compare-and-set, and the version tokens it checks.

**Why Lua and not WATCH/MULTI/EXEC.** The protocol splits compare-and-set into two calls,
``get_versioned`` and later ``set_if``, with arbitrary user code in between. WATCH only guards
commands sent on the *same connection* after it, so it would have to pin a pooled connection from
the read to the write (leaking it whenever a caller reads and never writes), or ``set_if`` would
have to WATCH, GET, compare and MULTI/SET/EXEC on its own: three round trips and a connection held
across them. The script does the comparison and the write inside Redis, atomically, in one round
trip on any pooled connection; it touches a single key, so it also runs unchanged on Redis Cluster.
It is sent with ``EVALSHA`` (redis-py's ``register_script`` loads it again if the server's script
cache was flushed or the server restarted).

**The token** is the SHA-1 hex digest of the value read (the only hash Lua scripts get from Redis,
``redis.sha1hex``), so the read needs no extra bookkeeping and no extra key. A rewrite of the very
same bytes in between still matches, which is safe for read-modify-write: the state the caller read
is the state it replaces. SHA-1 is not collision resistant against a determined attacker who
controls two complete values, but a collision would only let one of two racing writes of those
crafted values win without a retry; it cannot disclose or corrupt other data.

``set_if`` with ``token=None`` ("only if absent") needs no script: it is ``SET key value NX [PX]``.
"""

from __future__ import annotations

import hashlib

__all__ = ["CAS_SCRIPT", "CAS_SHA", "is_token", "version_token"]

#: KEYS[1]: the stored key. ARGV[1]: SHA-1 hex the current value must have. ARGV[2]: new value.
#: ARGV[3]: time to live in milliseconds, "0" for none. Returns 1 if it wrote, 0 if not.
CAS_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if not current or redis.sha1hex(current) ~= ARGV[1] then
  return 0
end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
"""

_HEX = frozenset("0123456789abcdef")


def version_token(value: bytes) -> str:
    """The token of a value: its SHA-1, as lowercase hex (what ``redis.sha1hex`` returns)."""
    return hashlib.sha1(value, usedforsecurity=False).hexdigest()


def is_token(token: object) -> bool:
    """Whether ``token`` could come from :func:`version_token` (anything else never matches)."""
    return type(token) is str and len(token) == 40 and _HEX.issuperset(token)


#: The script's SHA-1, the name ``EVALSHA`` runs it by.
CAS_SHA = hashlib.sha1(CAS_SCRIPT.encode("utf-8"), usedforsecurity=False).hexdigest()
