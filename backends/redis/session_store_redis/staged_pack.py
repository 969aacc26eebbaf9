"""The bytes of a staged write's transaction (:mod:`session_store_redis.staged`), packed as
redis-py's ``pack_commands`` packs them for a UTF-8 client, at a fraction of its cost: the
script's and the staging key's parts made once, the value copied once."""

from __future__ import annotations

from typing import Any

__all__ = ["pack_ordered", "pack_staged"]

_EXEC = b"*1\r\n$4\r\nEXEC\r\n"


def _bulk(argument: bytes | str | int) -> bytes:
    """One argument as a RESP bulk string (text in UTF-8), as redis-py packs it for a UTF-8
    client (with or without hiredis)."""
    data: Any = argument
    kind = type(argument)
    if kind is str:
        data = data.encode()
    elif kind is int:
        data = b"%d" % data
    elif kind is not bytes:  # pragma: no cover - the staged writes send bytes, str or int
        raise TypeError(f"cannot pack {kind.__name__}")
    return b"$%d\r\n%b\r\n" % (len(data), data)


_SET = b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n"
_SET_PX = b"*1\r\n$5\r\nMULTI\r\n*5\r\n$3\r\nSET\r\n"
_TWO_KEYS = b"$1\r\n2\r\n"
_CRLF = b"\r\n"
_HEAD_16 = b"$16\r\n"  # an ordered write's one argument: the value's 16-byte head
_CRLF_EXEC = _CRLF + _EXEC


def pack_staged(
    staging: bytes,
    value: bytes,
    px: int | None,
    run: tuple[str, str, str, tuple[bytes | str | int, ...]],
) -> bytes:
    """The staged transaction, ``MULTI``, ``SET staging value [PX px]``, ``run`` (``verb``
    ``script`` ``2 stored staging`` ``*argv``), ``EXEC``: the bytes redis-py's
    ``pack_commands`` makes of them for a UTF-8 client, with a fraction of its work (the
    script's and the staging key's parts made once, no loop over an ordered write's
    arguments, the value copied once): a staged write's own cost on the client.

    Every ``%``-format of bytes costs ~1.3k instructions (CPython 3.11), several times a dict
    lookup: the length prefixes (``$n``) and the ``PX`` part are looked up in small tables
    made on first use (:func:`_length`, :data:`_PX`), and an ordered write's one argument is
    joined, not formatted."""
    verb, script, stored, argv = run
    call = _CALLS.get((verb, script, len(argv)))
    if call is None:
        call = _known(_CALLS, (verb, script, len(argv)))
    name = _NAMES.get(staging)
    if name is None:
        name = _known(_NAMES, staging)
    key = stored.encode()
    lengths = _LENGTHS
    key_length = lengths.get(len(key)) or _length(len(key))
    value_length = lengths.get(len(value)) or _length(len(value))
    if px:
        head, ttl = _SET_PX, _PX.get(px) or _px(px)
    else:
        head, ttl = _SET, _CRLF
    if len(argv) == 1 and type(argv[0]) is bytes and len(argv[0]) == 16:
        # an ordered write's: the value's head
        return b"".join(
            (
                head,
                name,
                value_length,
                value,
                ttl,
                call,
                key_length,
                key,
                _CRLF,
                name,
                _HEAD_16,
                argv[0],
                _CRLF_EXEC,
            )
        )
    tail = b"".join([_bulk(argument) for argument in argv])
    return b"".join(
        (head, name, value_length, value, ttl, call, key_length, key, _CRLF, name, tail, _EXEC)
    )


def pack_ordered(staging: bytes, value: bytes, px: int, sha: str, stored: str) -> bytes:
    """``pack_staged(staging, value, px, ("EVALSHA", sha, stored, (value[:16],)))`` for an
    expiry ``px`` (at least 1 ms) and a ``value`` of at least 16 bytes: an ordered write's
    transaction (every save of a chain), with everything but the value, the stored key and
    their lengths made once per ``(sha, staging, px)`` (:data:`_ORDERED`)."""
    parts = _ORDERED.get((sha, staging, px))
    if parts is None:
        parts = _ordered_parts(sha, staging, px)
    head, middle, tail = parts
    key = stored.encode()
    lengths = _LENGTHS
    return b"".join(
        (
            head,
            lengths.get(len(value)) or _length(len(value)),
            value,
            middle,
            lengths.get(len(key)) or _length(len(key)),
            key,
            tail,
            value[:16],
            _CRLF_EXEC,
        )
    )


#: :func:`pack_ordered`'s parts by ``(sha, staging, px)``: ``MULTI`` and the ``SET`` up to the
#: value's length; the ``PX`` part and the script call up to the stored key's length; the CRLF
#: after the key, the staging key and the head's length (:func:`_ordered_parts`).
_ORDERED: dict[tuple[str, bytes, int], tuple[bytes, bytes, bytes]] = {}


def _ordered_parts(sha: str, staging: bytes, px: int) -> tuple[bytes, bytes, bytes]:
    """Make and keep the entry of :data:`_ORDERED` (cleared past 1,024 entries: a chain
    writing each session's own remaining TTL asks for many)."""
    if len(_ORDERED) >= 1024:
        _ORDERED.clear()
    name = _bulk(staging)
    call = b"*6\r\n%b%b%b" % (_bulk("EVALSHA"), _bulk(sha), _TWO_KEYS)
    digits = b"%d" % px
    ttl = b"\r\n$2\r\nPX\r\n$%d\r\n%b\r\n" % (len(digits), digits)
    made = _ORDERED[sha, staging, px] = (_SET_PX + name, ttl + call, _CRLF + name + _HEAD_16)
    return made


#: A bulk string's length prefix (``$n`` and CRLF) by ``n``, made on first use (:func:`_length`).
_LENGTHS: dict[int, bytes] = {}
#: The ``PX`` part of the staged ``SET`` (CRLF after the value, ``PX``, the milliseconds) by
#: milliseconds, made on first use (:func:`_px`).
_PX: dict[int, bytes] = {}


def _length(n: int) -> bytes:
    """Make and keep the entry of :data:`_LENGTHS` for ``n`` (the table stays small: cleared
    past 1,024 lengths)."""
    if len(_LENGTHS) >= 1024:
        _LENGTHS.clear()
    made = _LENGTHS[n] = b"$%d\r\n" % n
    return made


def _px(px: int) -> bytes:
    """Make and keep the entry of :data:`_PX` for ``px`` milliseconds (cleared past 1,024: a
    chain writing each session's own remaining TTL asks for many)."""
    if len(_PX) >= 1024:
        _PX.clear()
    digits = b"%d" % px
    made = _PX[px] = b"\r\n$2\r\nPX\r\n$%d\r\n%b\r\n" % (len(digits), digits)
    return made


#: The parts of :func:`pack_staged` made once: a script call's head (``*n``, the verb, the
#: script, ``2``) by (verb, script, number of arguments), a staging key's bulk string by key.
_CALLS: dict[tuple[str, str, int], bytes] = {}
_NAMES: dict[bytes, bytes] = {}


def _known(parts: dict[Any, bytes], what: Any) -> bytes:
    """Make and keep the part of :data:`_CALLS` or :data:`_NAMES` for ``what``."""
    if len(parts) > 256:  # (a few scripts and namespaces; EVAL's texts come and go)
        parts.clear()
    if type(what) is tuple:
        verb, script, count = what
        made = b"*%d\r\n%b%b%b" % (5 + count, _bulk(verb), _bulk(script), _TWO_KEYS)
    else:
        made = _bulk(what)
    parts[what] = made
    return made
