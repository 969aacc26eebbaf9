"""The bytes of a staged write's transaction (:mod:`session_store_redis.staged`), packed as
redis-py's ``pack_commands`` packs them for a UTF-8 client, at a fraction of its cost: the
script's and the staging key's parts made once, the value copied once."""

from __future__ import annotations

from typing import Any

__all__ = ["pack_staged"]

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
    arguments, the value copied once): a staged write's own cost on the client."""
    verb, script, stored, argv = run
    call = _CALLS.get((verb, script, len(argv)))
    if call is None:
        call = _known(_CALLS, (verb, script, len(argv)))
    name = _NAMES.get(staging)
    if name is None:
        name = _known(_NAMES, staging)
    key = stored.encode()
    if len(argv) == 1 and type(argv[0]) is bytes:  # an ordered write's: the value's head
        tail = b"$%d\r\n%b\r\n" % (len(argv[0]), argv[0])
    else:
        tail = b"".join([_bulk(argument) for argument in argv])
    if px:
        digits = b"%d" % px
        ttl = b"\r\n$2\r\nPX\r\n$%d\r\n%b\r\n" % (len(digits), digits)
    else:
        ttl = b"\r\n"
    return b"".join(
        (
            _SET_PX if px else _SET,
            name,
            b"$%d\r\n" % len(value),
            value,
            ttl,
            call,
            b"$%d\r\n%b\r\n" % (len(key), key),
            name,
            tail,
            _EXEC,
        )
    )


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
