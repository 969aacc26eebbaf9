"""How the lean sync client (:mod:`session_store_redis.leanconn`) moves a large value through its
socket without copying it in user space more than once (issue 17: a ~600 KB session saved
and loaded through Redis; measured with callgrind, the copies were a quarter of the client's
instructions for such a session).

* **Sending**: a command's buffers (``SET``'s head, the value, its tail) of :data:`GATHER`
  bytes or more go to the kernel as they are, by ``sendmsg``, instead of joined into one more
  copy of the value first; smaller ones are joined (one buffer, one system call).
* **Reading**: a bulk string larger than what the first read brought (a ``GET`` of a large
  session) is read into bytes of its own: its first part from the read buffer, the rest
  straight from the socket, joined once. Fed through hiredis it was copied into hiredis'
  buffer (which grows by doubling, copying it again) and once more into the reply.

(Also here: the lean client's packing of a generic command, and the keep-alive options it
sets as redis-py would.)

Both raise the socket's own errors (``OSError``, ``TimeoutError``) for the connection to
translate as it translates every other read or write, and redis-py's ``ConnectionError`` when
the server closes mid-reply, ``InvalidResponse`` when a bulk string does not end where its
size says: either way the connection is dropped, never reused.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence

from redis import exceptions as rexc
from redis._defaults import get_default_socket_keepalive_options

__all__ = ["GATHER", "bulk_size", "keepalive_options", "pack_command", "read_bulk", "send_buffers"]

#: Commands of this many bytes or more are sent from their buffers as they are.
GATHER = 65536
#: The longest head of a bulk string looked for: ``$``, up to 20 digits, CRLF.
_HEAD = 24


def send_buffers(sock: socket.socket, packed: Sequence[bytes]) -> None:
    """Send ``packed``'s buffers, in order, whole. Each ``sendmsg`` waits at most the socket's
    timeout for room, as each ``sendall`` of a redis-py command's parts does."""
    if len(packed) == 1:
        sock.sendall(packed[0])
        return
    if sum(map(len, packed)) < GATHER:
        sock.sendall(b"".join(packed))
        return
    views = [memoryview(part) for part in packed]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views.pop(0))
        if sent:
            views[0] = views[0][sent:]


def bulk_size(buffer: bytearray, count: int) -> tuple[int, int]:
    """``(size, start)`` of the bulk string whose reply starts ``buffer[:count]``: its size and
    where its bytes start; ``(-1, 0)`` for any other reply (nil, an error, an array, a head
    not read whole yet)."""
    if buffer[0] != 0x24:  # b"$"
        return -1, 0
    end = buffer.find(b"\r\n", 1, min(count, _HEAD))
    if end < 2:
        return -1, 0
    digits = buffer[1:end]
    if not digits.isdigit():  # nil ($-1), or not a size: hiredis' answer or protocol error
        return -1, 0
    return int(digits), end + 2


def read_bulk(sock: socket.socket, first: memoryview, size: int) -> bytes:
    """The bulk string of ``size`` bytes whose first bytes are ``first`` (read already, fewer
    than ``size``), read from ``sock`` up to and with its closing CRLF, and nothing after."""
    parts: list[bytes | memoryview] = [first]
    missing = size - len(first)
    while missing:
        part = _recv(sock, missing)
        missing -= len(part)
        parts.append(part)
    tail = _recv(sock, 2)
    if len(tail) == 1:
        tail += _recv(sock, 1)
    if tail != b"\r\n":
        raise rexc.InvalidResponse(f"Protocol error: a bulk string of {size} bytes runs on")
    return b"".join(parts)


def _recv(sock: socket.socket, most: int) -> bytes:
    """Up to ``most`` bytes (at least one); the server closing is redis-py's error."""
    data = sock.recv(most)
    if not data:
        raise rexc.ConnectionError("Connection closed by server.")
    return data


def pack_command(args: tuple[bytes | str | int, ...]) -> bytes:
    """One command as RESP (a string or an int as its UTF-8 text)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(parts)


def keepalive_options(given: object) -> dict[int, int]:
    """The TCP keep-alive options a redis-py ``Connection`` given ``given`` sets: those given,
    none for ``None``, redis-py's defaults when not given (its marker object)."""
    if isinstance(given, Mapping):
        return dict(given)
    if given is None:
        return {}
    return dict(get_default_socket_keepalive_options())
