"""RESP2 for the lean async client (:mod:`session_store_redis.aioconn`): commands packed, and
error replies turned into redis-py's exception types."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hiredis
from redis import exceptions as rexc

__all__ = ["PACK", "ReplyError", "deliver", "pack", "packed"]

#: hiredis's C packer (str, bytes, int and float arguments; TypeError for others)
PACK: Any = hiredis.pack_command

_ERRORS: tuple[tuple[str, type[rexc.RedisError]], ...] = (
    ("NOSCRIPT", rexc.NoScriptError),
    ("WRONGPASS", rexc.AuthenticationError),
    ("NOAUTH", rexc.AuthenticationError),
    ("invalid password", rexc.AuthenticationError),
    ("invalid username-password", rexc.AuthenticationError),
    ("NOPERM", rexc.NoPermissionError),
    ("LOADING", rexc.BusyLoadingError),
    ("READONLY", rexc.ReadOnlyError),
    ("EXECABORT", rexc.ExecAbortError),
)


def _reply_error(message: str) -> rexc.RedisError:
    """The redis-py exception for an error reply (``-NOSCRIPT ...`` is ``NoScriptError``)."""
    for prefix, error in _ERRORS:
        if message.startswith(prefix):
            return error(message)
    return rexc.ResponseError(message)


class ReplyError(Exception):
    """What hiredis builds for an error reply; turned into a redis-py exception on delivery."""


def deliver(reply: Any) -> Any:
    if isinstance(reply, ReplyError):
        return _reply_error(str(reply))
    if isinstance(reply, list):
        return [deliver(item) for item in reply]
    return reply


def _encode(arg: object) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode("utf-8")
    if isinstance(arg, bool):
        raise TypeError("booleans are not Redis arguments")
    if isinstance(arg, int | float):
        return repr(arg).encode("ascii")
    if isinstance(arg, bytearray | memoryview):
        return bytes(arg)
    raise TypeError(f"cannot send {type(arg).__name__} to Redis")


def pack(args: Sequence[object]) -> bytes:
    """One command in RESP2: ``*N`` then each argument as a bulk string."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _encode(arg)
        parts.append(b"$%d\r\n" % len(data))
        parts.append(data)
        parts.append(b"\r\n")
    return b"".join(parts)


def packed(args: tuple[object, ...]) -> bytes:
    """:func:`pack`, by hiredis's C packer where it takes every argument (str, bytes, int,
    float: the same bytes), else by :func:`pack` (a bytearray; a bool or another type
    hiredis refuses raises :func:`pack`'s own error)."""
    try:
        return PACK(args)  # type: ignore[no-any-return]  # else TypeError
    except TypeError:
        return pack(args)
