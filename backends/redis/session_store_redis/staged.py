"""Staged ordered writes: the chain's ordered writes and compare-and-set without the value
passing through Lua (:func:`staged_write`, :data:`MOVE_AFTER_SCRIPT`,
:data:`MOVE_IF_NEWER_SCRIPT`, :data:`STAGED_CAS_SCRIPT`).

Measured on Redis 7.0 (``INFO commandstats``, a 2.6 KB framed session, pipelined so the client
does not disturb it): a script given the value as an argument pays ~3 us to take it into Lua
(a script doing nothing costs 0.8 us with small arguments, 4 us with the value among them), and
its ``SET`` copies it out again; the ordered write by arrival cost 7.3 us against 0.4 us for a
``SET``. Staged, one round trip carries ``MULTI``, ``SET <staging key> <value> PX <ttl>``,
``EVALSHA <script> 2 <key> <staging key> <the value's first 16 bytes>``, ``EXEC``: the script
compares the 16 bytes with the stored value's first 16 (``GETRANGE``, as before), moves the
new clock past the stored one if needed (``SETRANGE`` of 8 bytes in the staged value), and
``RENAME``-s the staging key over the key (which carries the staged TTL), or deletes it when
the stored version wins: 3.9 us in all. Each connection stages under a key of its own
(:func:`connection_staging_key`): the namespace's head, a byte that is not UTF-8
(:data:`STAGING_SUFFIX`, so no session key begins so, and an ACL user limited to the namespace
may write it), and a random tag made once per connection. ``MULTI`` makes the four one atomic
step; a server whose ACL refuses ``MULTI`` runs them one by one, and the ``SET`` of one
connection's key can then only be consumed by the script sent after it on that connection (a
key shared by every client let ``SET A``, ``SET B``, script A put B's session under A's key:
attack9). Every staged write renames or deletes its key, so a connection leaves none behind;
one that dies mid-write (between a ``NOSCRIPT`` answer and its ``EVAL`` retry, attack10) leaves
its key with the write's own TTL: only a write with an expiry stages (:func:`can_stage`), one
without it passes the value through Lua, so no staging key ever lacks an expiry.
Decisions and stored bytes are those of the one-script texts
(``session_store_redis.ordered_scripts``), which processes of the previous release keep running
on the same keys (``test_ordered_scripts.py``, ``test_script_texts_mixed.py`` check it).

The staged scripts' texts are in :mod:`session_store_redis.staged_scripts`; the one-script
texts, the compare-and-set script and the version tokens in :mod:`session_store_redis.scripts`.
"""

from __future__ import annotations

import logging
import os
from typing import Any, NamedTuple

import redis

from session_store.stamps import MAGIC, VERSION_END, VERSION_START
from session_store_redis.multi_acl import is_refused, refuses_multi
from session_store_redis.staged_pack import pack_ordered, pack_staged
from session_store_redis.staged_scripts import (
    MOVE_AFTER_SCRIPT,
    MOVE_AFTER_SHA,
    MOVE_IF_NEWER_SCRIPT,
    MOVE_IF_NEWER_SHA,
    STAGED_CAS_SCRIPT,
    STAGED_CAS_SHA,
    staged_cas_args,
)

__all__ = [
    "MOVE_AFTER_SCRIPT",
    "MOVE_AFTER_SHA",
    "MOVE_IF_NEWER_SCRIPT",
    "MOVE_IF_NEWER_SHA",
    "REFUSED",
    "STAGED_CAS_SCRIPT",
    "STAGED_CAS_SHA",
    "STAGED_LAYOUT",
    "STAGED_WRITES",
    "STAGE_CAS_FROM",
    "STAGING_SUFFIX",
    "Unqueued",
    "can_stage",
    "connection_staging_key",
    "settle",
    "staged_cas_args",
    "staged_write",
    "staging_key",
]

#: The frame layout the staged scripts know: (magic length, version start, version end, clock
#: end), as :func:`session_store.tiered.writes.write_after` passes them. Any other layout runs
#: the one-script texts.
STAGED_LAYOUT = (len(MAGIC), VERSION_START, VERSION_END, VERSION_START + 8)

#: What follows the namespace's head in the staging key: ``\xff`` never occurs in UTF-8, so no
#: session key is this one.
STAGING_SUFFIX = b"\xff:staged-write"


#: The shortest value a compare-and-set stages (shorter ones pass through Lua: one ``EVALSHA``
#: of :data:`~session_store_redis.scripts.CAS_SCRIPT`). A switch for benchmarks.
STAGE_CAS_FROM = 1024

#: Whether ordered writes are staged at all (``False``: always the one-script texts). A switch
#: for ``benchmarks/bench_chain_save.py``, which measures both paths in one run.
STAGED_WRITES = True


def can_stage(client: redis.Redis, value: bytes, layout: tuple[int, ...], px: int | None) -> bool:
    """Whether a write of ``value`` with the expiry ``px`` (milliseconds; ``None``: none) may be
    staged: an ordered write with the frame ``layout`` (``head, start, end`` and, by arrival,
    ``clock_end``) if it is the chain's and ``value`` holds a whole head, a compare-and-set
    (``layout=()``) of a value of at least :data:`STAGE_CAS_FROM` bytes; only through a pooled
    client (not a single-connection one); and only with an expiry. A write without one never
    stages (the one-script text, the value through Lua): its staging key would have none either,
    and a client killed between the ``NOSCRIPT`` answer and the ``EVAL`` retry would leave it,
    the session's bytes, for good (attack10). A staging key's ``PX`` is its write's own."""
    return (
        STAGED_WRITES
        and bool(px)
        and layout == STAGED_LAYOUT[: len(layout)]
        and (len(value) >= VERSION_END if layout else len(value) >= STAGE_CAS_FROM)
        and client.connection is None
    )


def staging_key(head: str) -> bytes:
    """The staging keys' base name in a namespace whose stored keys begin with ``head``: each
    connection stages under this name followed by a tag of its own
    (:func:`connection_staging_key`); every key that begins with it is a staging key."""
    return head.encode("utf-8", "surrogateescape") + STAGING_SUFFIX


#: The attribute of a connection (a redis-py ``Connection`` or a
#: :class:`~session_store_redis.leanconn.LeanConnection`) holding its staging keys by base name
#: (its tag under ``b""``).
_KEYS = "session_store_staging_keys"


def connection_staging_key(connection: Any, staging: bytes) -> bytes:
    """The key ``connection`` stages under in the namespace whose base name is ``staging``
    (:func:`staging_key`): the base name and the connection's tag, ``:`` and 16 random hex
    digits made on its first staged write and kept for its life (a connection serves one
    caller at a time; a forked child opens connections of its own). Kept by base name on the
    connection: the hot path finds the same key object (its hash cached) every time."""
    try:
        keys: dict[bytes, bytes] = connection.session_store_staging_keys
    except AttributeError:
        keys = {b"": b":" + os.urandom(8).hex().encode()}
        setattr(connection, _KEYS, keys)
    key = keys.get(staging)
    if key is None:
        if len(keys) > 64:  # (a few namespaces share a pool; keep it bounded anyway)
            keys = {b"": keys[b""]}
            setattr(connection, _KEYS, keys)
        key = keys[staging] = staging + keys[b""]
    return key


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
    ``ARGV`` is ``args``, by default ``value``'s first 16 bytes (the ordered writes'). The
    value is staged under that connection's key in the namespace whose staging keys begin
    with ``staging`` (:func:`connection_staging_key`).

    Not retried: a connection lost before the reply leaves the outcome unknown, which the
    caller is told (the error propagates; the connection is dropped, not put back half-read).
    A server that does not know the script (flushed, restarted) gets the same transaction with
    ``EVAL`` at once; the staged value the first one left is replaced by it. ``px`` is the
    write's expiry, which the staging key carries: the backends stage only writes that have one
    (:func:`can_stage`; ``None`` is for the tests comparing the texts).

    Returns :data:`REFUSED` if the server's ACL refuses one of the commands (``NOPERM``); the
    key is then untouched, and the connection's staging key, which a refused command inside
    the script (or an unknown script run unqueued) leaves holding the value, is deleted.

    Raises:
        redis.RedisError: the connection failed, or Redis refused (an error reply).
    """
    pool = client.connection_pool
    connection: Any = pool.get_connection()  # (redis-py's Connection is partly untyped)
    try:
        try:
            key = connection.session_store_staging_keys[staging]
        except (AttributeError, KeyError):
            key = connection_staging_key(connection, staging)
        if args is None and px and len(value) >= 16 and connection.encoder.encoding in _UTF8:
            # an ordered write with an expiry (every save of a chain): _transaction's, with
            # its bytes from pack_ordered's parts; the same bytes (pack_staged's)
            connection.send_packed_command([pack_ordered(key, value, px, sha, stored)])
            read = connection.read_response
            got = 0  # (_replies, inline while every reply is the usual one)
            try:  # MULTI's OK, the two QUEUED, EXEC's replies
                read()
                got = 1
                read()
                got = 2
                read()
                got = 3
                replies = read()
            except redis.ResponseError as exc:
                reply = _replies_after(connection, got, exc)
            else:  # (_executed, inline while neither reply is an error)
                staged_reply, reply = replies
                if isinstance(staged_reply, BaseException) or isinstance(reply, BaseException):
                    reply = _executed(replies)
            if type(reply) is bytes:  # (the version stored: the usual reply)
                return reply
            argv: tuple[bytes | str | int, ...] = (value[:16],)
        else:
            argv = (value[:16],) if args is None else args
            reply = _transaction(connection, key, value, px, ("EVALSHA", sha, stored, argv))
        if reply is _NO_SCRIPT:
            reply = _transaction(connection, key, value, px, ("EVAL", script, stored, argv))
            if reply is _NO_SCRIPT:  # pragma: no cover - EVAL loads it
                raise redis.ResponseError("NOSCRIPT after EVAL")
        if reply is REFUSED or (isinstance(reply, Unqueued) and reply.reply is REFUSED):
            _drop(connection, key)
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


class Unqueued(NamedTuple):
    """What :func:`staged_write` returns when ``MULTI`` itself failed (any error reply: no
    transaction opened): the commands after it ran one by one, outside a transaction, so the
    script's ``reply`` is the outcome (it may have written). ``multi_refused``: the server
    refuses ``MULTI`` for good (:func:`~session_store_redis.multi_acl.refuses_multi`: its ACL,
    or ``rename-command``); ``stop``: the caller must stop staging (:func:`settle`), as it must
    when the ACL refused a command of the script. Another error (a passing state of the
    server) leaves ``MULTI`` and staging on."""

    reply: Any
    multi_refused: bool
    stop: bool


def settle(reply: Any) -> tuple[bool, Any]:
    """(whether the caller must stop staging, the outcome: :data:`REFUSED` to write with the
    one-script text instead) of what :func:`staged_write` returned."""
    if isinstance(reply, Unqueued):
        return reply.stop, reply.reply
    return reply is REFUSED, reply


_UTF8 = frozenset(("utf-8", "utf8", "UTF-8", "UTF8"))

log = logging.getLogger("session_store_redis.backend")


def _drop(connection: Any, key: bytes) -> None:
    """``DEL`` the connection's staging ``key`` after a refused write (a command refused inside
    the script, or a script the server did not know run unqueued, left the value there, and
    this backend stages no more: no later write would replace it). A refused ``DEL`` is
    logged: the key holds a copy of the session until its TTL, if it has one."""
    connection.send_packed_command([b"*2\r\n$3\r\nDEL\r\n$%d\r\n%b\r\n" % (len(key), key)])
    try:
        connection.read_response()
    except redis.ResponseError as exc:  # e.g. DEL refused too: say where the copy is
        log.warning("staging key %r kept: %s", key, exc)


def _transaction(
    connection: Any,
    staging: bytes,
    value: bytes,
    px: int | None,
    run: tuple[str, str, str, tuple[bytes | str | int, ...]],
) -> Any:
    """``MULTI``, ``SET staging value [PX px]``, the script ``run`` (see
    :func:`~session_store_redis.staged_pack.pack_staged`), ``EXEC`` sent at once; the script's
    reply (``_NO_SCRIPT`` if the server does not know it; :class:`Unqueued` if ``MULTI``
    failed). Reads every reply before raising."""
    if connection.encoder.encoding in _UTF8:
        packed = [pack_staged(staging, value, px, run)]
    else:  # (redis-py packs text in its encoding without hiredis, in UTF-8 with it)
        verb, script, stored, argv = run
        staged = ("SET", staging, value) if not px else ("SET", staging, value, "PX", px)
        commands = (staged, (verb, script, 2, stored, staging, *argv))
        packed = connection.pack_commands([("MULTI",), *commands, ("EXEC",)])
    connection.send_packed_command(packed)
    return _replies(connection)


def _replies(connection: Any) -> Any:
    """:func:`_transaction`'s reading of the four replies, once the transaction is sent."""
    read = connection.read_response
    got = 0
    try:
        read()  # MULTI's OK
        got = 1
        read()  # QUEUED
        got = 2
        read()  # QUEUED
        got = 3
        replies = read()
    except redis.ResponseError as exc:
        return _replies_after(connection, got, exc)
    return _executed(replies)


def _replies_after(connection: Any, got: int, exc: redis.ResponseError) -> Any:
    """The outcome of a transaction whose reply number ``got`` (0: ``MULTI``'s, 3: ``EXEC``'s)
    was the error ``exc``, the ones before it the usual ones (what they held is not needed):
    the rest is read, then decided as every reply says."""
    read = connection.read_response
    first: list[Any] = [None] * got  # MULTI's answer and the two QUEUED (None: not an error)
    if got < 3:
        first.append(exc)
        while len(first) < 3:  # (the rest, one by one)
            try:
                first.append(read())
            except redis.ResponseError as more:  # refused when queued: EXEC aborts
                first.append(more)
        try:
            replies = read()
        except redis.ResponseError as last:
            exc = last
        else:
            return _executed(replies)
    # EXEC failed. EXECABORT: nothing ran; or EXEC without MULTI
    if isinstance(first[0], BaseException):  # MULTI failed (whatever the cause): the SET and
        ran = _outcome(first[2])  # the script ran one by one: the script's reply is the
        for_good = refuses_multi(first[0])  # outcome (unknown to the server: it wrote none;
        if ran is _NO_SCRIPT:  # the one-script text writes instead)
            return Unqueued(REFUSED, for_good, for_good)
        return Unqueued(ran, for_good, for_good or ran is REFUSED)
    return _outcome(next((r for r in first if isinstance(r, BaseException)), exc))


def _executed(replies: Any) -> Any:
    """The script's outcome from ``EXEC``'s replies (the ``SET``'s, the script's)."""
    staged, reply = replies
    if isinstance(staged, BaseException):  # pragma: no cover - SET of a string key
        raise staged
    return reply if not isinstance(reply, BaseException) else _outcome(reply)


def _outcome(reply: Any) -> Any:
    """The script's reply, or what its error means: ``_NO_SCRIPT``, ``REFUSED`` (a refused
    command: the key is untouched), or the error raised."""
    if not isinstance(reply, BaseException):
        return reply
    if isinstance(reply, redis.exceptions.NoScriptError) or str(reply).startswith("NOSCRIPT"):
        return _NO_SCRIPT
    if is_refused(reply):
        return REFUSED
    raise reply from None
