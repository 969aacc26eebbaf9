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

**Staged ordered writes** (:func:`staged_write`, :data:`MOVE_AFTER_SCRIPT`,
:data:`MOVE_IF_NEWER_SCRIPT`): the chain's ordered writes without the value passing through Lua.
Measured on Redis 7.0 (``INFO commandstats``, a 2.6 KB framed session, pipelined so the client
does not disturb it): a script given the value as an argument pays ~3 us to take it into Lua
(a script doing nothing costs 0.8 us with small arguments, 4 us with the value among them), and
its ``SET`` copies it out again; the ordered write by arrival cost 7.3 us against 0.4 us for a
``SET``. Staged, one round trip carries ``MULTI``, ``SET <staging key> <value> [PX ttl]``,
``EVALSHA <script> 2 <key> <staging key> <the value's first 16 bytes>``, ``EXEC``: the script
compares the 16 bytes with the stored value's first 16 (``GETRANGE``, as before), moves the
new clock past the stored one if needed (``SETRANGE`` of 8 bytes in the staged value), and
``RENAME``-s the staging key over the key (which carries the staged TTL, or none), or deletes
it when the stored version wins: 3.9 us in all. ``MULTI`` makes the four one atomic step, so
one staging key serves every client of a database. Its name is the namespace's head followed by
a byte that is not UTF-8 (:data:`STAGING_SUFFIX`), so no session key can be it, and an ACL user
limited to the namespace may write it. Decisions and stored bytes are those of the one-script
texts (``session_store_redis.invalidation``), which processes of the previous release keep
running on the same keys (``tests/standalone/test_ordered_scripts.py`` checks both).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, NamedTuple

import redis

from session_store.stamps import (
    HEADER_SIZE,
    MAGIC,
    UNVERSIONED,
    VERSION_END,
    VERSION_START,
    version_of,
)

__all__ = [
    "CAS_SCRIPT",
    "CAS_SHA",
    "MOVE_AFTER_SCRIPT",
    "MOVE_AFTER_SHA",
    "MOVE_IF_NEWER_SCRIPT",
    "MOVE_IF_NEWER_SHA",
    "REFUSED",
    "STAGED_CAS_SCRIPT",
    "STAGED_CAS_SHA",
    "STAGED_LAYOUT",
    "STAGED_WRITES",
    "STAGING_SUFFIX",
    "TAIL_SIZE",
    "WHOLE_VALUE_MAX",
    "FrameToken",
    "ValueToken",
    "can_stage",
    "cas_args",
    "is_token",
    "staged_cas_args",
    "staged_write",
    "staging_key",
    "version_token",
]

#: KEYS[1]: the stored key. ARGV[2]: the new value. ARGV[3]: time to live in milliseconds, "0"
#: for none. The check: ARGV[5] "-1": ARGV[1] is the whole value the current one must be;
#: "0": ARGV[1] is the SHA-1 hex the current value must have (the previous releases' token);
#: else ARGV[5] is the length the current value must have, ARGV[1] its first bytes and ARGV[4]
#: its last bytes. Returns 1 if it wrote, 0 if not.
CAS_SCRIPT = """
local length = tonumber(ARGV[5])
if length == -1 then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
  end
elseif length == 0 then
  local current = redis.call('GET', KEYS[1])
  if not current or redis.sha1hex(current) ~= ARGV[1] then
    return 0
  end
elseif redis.call('STRLEN', KEYS[1]) ~= length
    or redis.call('GETRANGE', KEYS[1], 0, string.len(ARGV[1]) - 1) ~= ARGV[1]
    or redis.call('GETRANGE', KEYS[1], -string.len(ARGV[4]), -1) ~= ARGV[4] then
  return 0
end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
"""

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
        return [token.head, value, px or 0, token.tail, token.length]
    return [str(token), value, px or 0, b"", 0]


# -- staged ordered writes (see the module doc) ------------------------------------------------
#: The frame layout the staged scripts know: (magic length, version start, version end, clock
#: end), as :func:`session_store.tiered.writes.write_after` passes them. Any other layout runs
#: the one-script texts.
STAGED_LAYOUT = (len(MAGIC), VERSION_START, VERSION_END, VERSION_START + 8)

#: KEYS[1]: the key. KEYS[2]: the staging key, holding the new value (set in the same MULTI).
#: ARGV[1]: the new value's first 16 bytes (magic, version). The four 32-bit big-endian words
#: of the stored and the new head are compared as numbers (``struct``: two C calls, and no
#: locale-dependent string order): the same magic and a version at least as new keeps the
#: stored value and drops the staged one (returns 0); else the staged value replaces the key
#: with its TTL (returns 1). An error reading the key (a wrong type) drops the staged value too.
MOVE_IF_NEWER_SCRIPT = """
local current = redis.pcall('GETRANGE', KEYS[1], 0, 15)
if type(current) == 'table' then
  redis.call('DEL', KEYS[2])
  return current
end
if string.len(current) == 16 then
  local cm, c1, c2, c3 = struct.unpack('>I4I4I4I4', current)
  local nm, n1, n2, n3 = struct.unpack('>I4I4I4I4', ARGV[1])
  if cm == nm and (c1 > n1 or (c1 == n1 and (c2 > n2 or (c2 == n2 and c3 >= n3)))) then
    redis.call('DEL', KEYS[2])
    return 0
  end
end
redis.call('RENAME', KEYS[2], KEYS[1])
return 1
"""

#: As :data:`MOVE_IF_NEWER_SCRIPT`, but the staged value always lands: when the stored version
#: is at least as new, the staged value's clock (bytes 4..12) becomes the stored clock plus one
#: first (``SETRANGE``; the new node kept). Returns the 12-byte version stored.
MOVE_AFTER_SCRIPT = """
local current = redis.pcall('GETRANGE', KEYS[1], 0, 15)
if type(current) == 'table' then
  redis.call('DEL', KEYS[2])
  return current
end
local version = string.sub(ARGV[1], 5, 16)
if string.len(current) == 16 then
  local cm, c1, c2, c3 = struct.unpack('>I4I4I4I4', current)
  local nm, n1, n2, n3 = struct.unpack('>I4I4I4I4', ARGV[1])
  if cm == nm and (c1 > n1 or (c1 == n1 and (c2 > n2 or (c2 == n2 and c3 >= n3)))) then
    if c2 == 4294967295 then
      c1, c2 = (c1 + 1) % 4294967296, 0
    else
      c2 = c2 + 1
    end
    local clock = struct.pack('>I4I4', c1, c2)
    redis.call('SETRANGE', KEYS[2], 4, clock)
    version = clock .. string.sub(ARGV[1], 13, 16)
  end
end
redis.call('RENAME', KEYS[2], KEYS[1])
return version
"""

#: The compare-and-set, staged: KEYS[1] the key, KEYS[2] the staging key holding the new value
#: (with its TTL). ARGV[1], ARGV[2], ARGV[3]: what :data:`CAS_SCRIPT` gets as ARGV[1], ARGV[4],
#: ARGV[5] (the expected bytes, digest or head; the tail; the check). The same check, then the
#: staged value replaces the key (returns 1) or is dropped (returns 0, or an error reading the
#: key, which is returned).
STAGED_CAS_SCRIPT = """
local length = tonumber(ARGV[3])
local ok
if length == -1 then
  local current = redis.pcall('GET', KEYS[1])
  if type(current) == 'table' then
    redis.call('DEL', KEYS[2])
    return current
  end
  ok = current == ARGV[1]
elseif length == 0 then
  local current = redis.pcall('GET', KEYS[1])
  if type(current) == 'table' then
    redis.call('DEL', KEYS[2])
    return current
  end
  ok = current and redis.sha1hex(current) == ARGV[1]
else
  local size = redis.pcall('STRLEN', KEYS[1])
  if type(size) == 'table' then
    redis.call('DEL', KEYS[2])
    return size
  end
  ok = size == length
    and redis.call('GETRANGE', KEYS[1], 0, string.len(ARGV[1]) - 1) == ARGV[1]
    and redis.call('GETRANGE', KEYS[1], -string.len(ARGV[2]), -1) == ARGV[2]
end
if ok then
  redis.call('RENAME', KEYS[2], KEYS[1])
  return 1
end
redis.call('DEL', KEYS[2])
return 0
"""

STAGED_CAS_SHA = hashlib.sha1(STAGED_CAS_SCRIPT.encode(), usedforsecurity=False).hexdigest()


def staged_cas_args(token: object) -> tuple[bytes | str | int, ...]:
    """``ARGV`` of :data:`STAGED_CAS_SCRIPT` for a token :func:`is_token` accepted."""
    check = cas_args(token, b"", None)
    return check[0], check[3], check[4]


MOVE_IF_NEWER_SHA = hashlib.sha1(MOVE_IF_NEWER_SCRIPT.encode(), usedforsecurity=False).hexdigest()
MOVE_AFTER_SHA = hashlib.sha1(MOVE_AFTER_SCRIPT.encode(), usedforsecurity=False).hexdigest()

#: What follows the namespace's head in the staging key: ``\xff`` never occurs in UTF-8, so no
#: session key is this one.
STAGING_SUFFIX = b"\xff:staged-write"


#: Whether ordered writes are staged at all (``False``: always the one-script texts). A switch
#: for ``benchmarks/bench_chain_save.py``, which measures both paths in one run.
STAGED_WRITES = True


def can_stage(client: redis.Redis, value: bytes, layout: tuple[int, ...]) -> bool:
    """Whether a write of ``value`` may be staged: an ordered write with the frame ``layout``
    (``head, start, end`` and, by arrival, ``clock_end``) if it is the chain's and ``value``
    holds a whole head, a compare-and-set (``layout=()``) always; and only through a pooled
    client (not a single-connection one)."""
    return (
        STAGED_WRITES
        and layout == STAGED_LAYOUT[: len(layout)]
        and (not layout or len(value) >= VERSION_END)
        and client.connection is None
    )


def staging_key(head: str) -> bytes:
    """The staging key of a namespace whose stored keys begin with ``head``."""
    return head.encode("utf-8", "surrogateescape") + STAGING_SUFFIX


def staged_write(
    client: redis.Redis,
    script: str,
    sha: str,
    stored: str,
    staging: bytes,
    value: bytes,
    px: int | None,
    args: tuple[bytes | str | int, ...] | None = None,
) -> Any:
    """Run a staged script (:data:`MOVE_AFTER_SCRIPT`, :data:`MOVE_IF_NEWER_SCRIPT` or
    :data:`STAGED_CAS_SCRIPT`, named by ``sha``) over ``value`` for the stored key ``stored``,
    in one ``MULTI``/``EXEC`` round trip on one pooled connection; the script's reply. Its
    ``ARGV`` is ``args``, by default ``value``'s first 16 bytes (the ordered writes').

    Not retried: a connection lost before the reply leaves the outcome unknown, which the
    caller is told (the error propagates; the connection is dropped, not put back half-read).
    A server that does not know the script (flushed, restarted) gets the same transaction with
    ``EVAL`` at once; the staged value the first one left is replaced by it.

    Returns :data:`REFUSED` if the server's ACL refuses one of the commands (``NOPERM``); the
    key is then untouched (a refused command inside the script may leave the staging key
    holding the value, which the next staged write replaces).

    Raises:
        redis.RedisError: the connection failed, or Redis refused (an error reply).
    """
    staged = ("SET", staging, value) if not px else ("SET", staging, value, "PX", px)
    argv = (value[:16],) if args is None else args
    pool = client.connection_pool
    connection: Any = pool.get_connection()  # (redis-py's Connection is partly untyped)
    try:
        reply = _transaction(connection, staged, ("EVALSHA", sha, 2, stored, staging, *argv))
        if reply is _NO_SCRIPT:
            reply = _transaction(connection, staged, ("EVAL", script, 2, stored, staging, *argv))
            if reply is _NO_SCRIPT:  # pragma: no cover - EVAL loads it
                raise redis.ResponseError("NOSCRIPT after EVAL")
    except redis.ResponseError:
        raise  # every reply was read: the connection is in step
    except BaseException:
        connection.disconnect()  # a reply may be pending on it
        raise
    finally:
        pool.release(connection)
    return reply


_NO_SCRIPT: Any = object()

#: What :func:`staged_write` returns when the server's ACL refuses one of its commands
#: (``NOPERM``): the caller writes with the one-script text instead.
REFUSED: Any = object()
_MULTI = b"*1\r\n$5\r\nMULTI\r\n"
_EXEC = b"*1\r\n$4\r\nEXEC\r\n"


def _pack(commands: tuple[tuple[Any, ...], ...]) -> bytes:
    """``MULTI``, ``commands``, ``EXEC`` in RESP, as one buffer, text in UTF-8: the bytes
    redis-py's ``pack_commands`` makes for a UTF-8 client (with or without hiredis), with a
    fraction of the work per argument (it was most of a staged write's own client cost)."""
    parts = [_MULTI]
    for command in commands:
        parts.append(b"*%d\r\n" % len(command))
        for argument in command:
            kind = type(argument)
            if kind is bytes:
                data = argument
            elif kind is str:
                data = argument.encode()
            elif kind is int:
                data = b"%d" % argument
            else:  # pragma: no cover - what the staged writes send is bytes, str or int
                raise TypeError(f"cannot pack {kind.__name__}")
            parts += (b"$%d\r\n" % len(data), data, b"\r\n")
    parts.append(_EXEC)
    return b"".join(parts)


_UTF8 = frozenset(("utf-8", "utf8", "UTF-8", "UTF8"))


def _is_no_script(error: BaseException) -> bool:
    return isinstance(error, redis.exceptions.NoScriptError) or str(error).startswith("NOSCRIPT")


def _is_refused(error: BaseException) -> bool:
    """``NOPERM`` (refused when queued), or Redis 7.0's words for a command a script calls."""
    text = str(error)
    return (
        isinstance(error, redis.exceptions.NoPermissionError)
        or "NOPERM" in text
        or "can't run this command" in text
    )


def _transaction(connection: Any, *commands: tuple[Any, ...]) -> Any:
    """``MULTI``, ``commands``, ``EXEC`` sent at once; the last command's reply (``_NO_SCRIPT``
    if it named a script the server does not know). Reads every reply before raising."""
    if connection.encoder.encoding in _UTF8:
        packed = [_pack(commands)]
    else:  # (redis-py packs text in its encoding without hiredis, in UTF-8 with it)
        packed = connection.pack_commands([("MULTI",), *commands, ("EXEC",)])
    connection.send_packed_command(packed)
    queued: BaseException | None = None
    for _ in range(len(commands) + 1):
        try:
            connection.read_response()
        except redis.ResponseError as exc:  # refused when queued: EXEC aborts
            queued = queued or exc
    try:
        replies = connection.read_response()
    except redis.ResponseError as exc:  # EXECABORT: nothing ran
        error = queued or exc
        if _is_no_script(error):
            return _NO_SCRIPT
        if _is_refused(error):  # nothing ran
            return REFUSED
        raise error from None
    for reply in replies[:-1]:
        if isinstance(reply, BaseException):  # pragma: no cover - SET of a string key
            raise reply
    last = replies[-1]
    if isinstance(last, BaseException):
        if _is_no_script(last):
            return _NO_SCRIPT
        if _is_refused(last):  # a command the script calls: the key is untouched
            return REFUSED
        raise last
    return last
