"""The Redis commands every backend builds the same way, sync and asyncio, one server or a
cluster: the ``SET`` of a write, ``PTTL``'s answer, the session keys of a ``SCAN`` page, and
writes followed by ``WAIT`` on one connection."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableSet, Sequence
from itertools import chain
from typing import Any, cast

import redis
from redis.exceptions import NoScriptError

from session_store.backend import ensure_bytes
from session_store.keys import MAX_KEY_BYTES, SEPARATOR, Namespace, validate_key
from session_store.ttl import NO_EXPIRY
from session_store_redis.scripts import CAS_SCRIPT

__all__ = [
    "SCAN_COUNT",
    "BulkPacker",
    "Command",
    "checked_items",
    "direct_get",
    "found_values",
    "packed_mget",
    "run_with_wait",
    "seconds_left",
    "session_keys",
    "set_command",
    "wait_replies",
]

#: A write for the ``WAIT`` path: the stored key it touches, and the command's arguments.
Command = tuple[str, tuple[Any, ...]]

#: The COUNT hint of each SCAN call: buckets Redis walks per round trip.
SCAN_COUNT = 1000


def set_command(stored: str, value: bytes, px: int | None, *flags: str) -> Command:
    """``SET stored value [PX px] [flags]`` for the ``WAIT`` path or a driver."""
    if px is None:
        return stored, ("SET", stored, value, *flags)
    return stored, ("SET", stored, value, "PX", px, *flags)


def checked_items(items: Mapping[str, bytes], backend: str) -> list[tuple[str, bytes]]:
    """The items of a ``set_many``, every key and value checked before any I/O."""
    return [(validate_key(k), ensure_bytes(v, key=k, backend=backend)) for k, v in items.items()]


def found_values(
    wanted: Sequence[str], values: Sequence[bytes | None]
) -> tuple[dict[str, bytes], int]:
    """What a ``get_many`` found of the keys ``wanted`` (``values`` in their order), and how many
    it missed: per key asked, duplicates included, as ``memory://`` counts."""
    if None not in values:  # all found: one pass in C (a duplicate key: the same value twice)
        return dict(zip(wanted, cast("Sequence[bytes]", values), strict=True)), 0
    found = {k: v for k, v in zip(wanted, values, strict=True) if v is not None}
    return found, values.count(None)


def packed_mget(stored: Sequence[str]) -> bytes:
    """``MGET`` of the stored keys, packed as RESP for a UTF-8 client: one format per key and
    one join (the lean client's generic packing looks at each argument's type and makes three
    parts of it: measured, it cost about four times the keys' own checks in a ``get_many``)."""
    keys = [key.encode() for key in stored]
    parts = b"".join([b"$%d\r\n%b\r\n" % (len(key), key) for key in keys])
    return b"*%d\r\n$4\r\nMGET\r\n%b" % (len(keys) + 1, parts)


class BulkPacker:
    """``MGET`` / ``UNLINK`` of many session keys of one namespace, packed as RESP in a few passes
    over the whole batch (joins and ``map`` in C) instead of a check, a stored form, an encoding
    and a format per key: measured with callgrind, 100 keys cost 0.15M instructions this way
    against 0.52M (``validate_key``, ``Namespace.encode`` and :func:`packed_mget` per key).

    Only for a batch of plain keys: each a ``str`` itself, ASCII (so its length is its UTF-8
    size), 1 to ``MAX_KEY_BYTES`` long, under a namespace of the default separator (whose keys
    may hold U+001F). :meth:`command` answers ``None`` for any other batch: the caller's per-key
    path checks it and raises what it always raised.
    """

    __slots__ = ("_head", "_heads", "_size", "enabled")

    def __init__(self, namespace: Namespace) -> None:
        self._head = namespace.scan_head()
        self._size = len(self._head.encode())
        #: per key length: the RESP that comes before such a key (CRLF, its size, the head)
        self._heads: dict[int, str] = {}
        self.enabled = namespace.separator == SEPARATOR

    def command(self, name: bytes, keys: list[str]) -> bytes | None:
        """``name`` over the stored forms of ``keys``, or ``None`` (not a plain batch)."""
        if not keys or not self.enabled or {*map(type, keys)} != {str}:
            return None
        if not "".join(keys).isascii():
            return None
        try:
            body = self._body(keys)
        except KeyError:  # a length not seen before (or no key's)
            if not self._learn(keys):
                return None
            body = self._body(keys)
        return b"*%d\r\n$%d\r\n%b%b\r\n" % (len(keys) + 1, len(name), name, body.encode())

    def _body(self, keys: list[str]) -> str:
        """Each key's head and the key, one after the other (``KeyError``: an unknown length)."""
        heads = map(self._heads.__getitem__, map(len, keys))
        return "".join(chain.from_iterable(zip(heads, keys, strict=True)))

    def _learn(self, keys: list[str]) -> bool:
        """Add the heads of the keys' lengths; ``False`` if one is no key's (empty, too long)."""
        sizes = set(map(len, keys))
        if min(sizes) < 1 or max(sizes) > MAX_KEY_BYTES:
            return False
        for size in sizes:
            self._heads[size] = f"\r\n${self._size + size}\r\n{self._head}"
        return True


def seconds_left(pttl: int) -> float | None:
    """``PTTL``'s answer in the protocol's terms: ``None`` absent, ``inf`` no expiry, else > 0."""
    if pttl == -2:
        return None
    if pttl == -1:
        return NO_EXPIRY
    return max(pttl, 1) / 1000


def session_keys(
    namespace: Namespace, batch: Iterable[bytes], prefix: str, seen: MutableSet[str]
) -> Iterator[str]:
    """The session keys of one page of ``SCAN`` replies that start with ``prefix`` and were not
    listed before (added to ``seen``). A stored key that is not UTF-8 or not in the namespace
    is no session's: skipped. The ``MATCH`` pattern already says so, but trust only what we
    check."""
    for raw in batch:
        try:
            stored = raw.decode("utf-8")
        except UnicodeDecodeError:  # not a key any session store wrote
            continue
        key = namespace.decode(stored)
        if key is None or not key.startswith(prefix) or key in seen:
            continue
        seen.add(key)
        yield key


def run_with_wait(
    client: redis.Redis, commands: Sequence[Command], replicas: int, timeout_ms: int
) -> tuple[list[Any], int]:
    """``commands`` then ``WAIT replicas timeout_ms``, one pipeline on one connection of
    ``client`` (``WAIT`` counts the writes of its own connection only).

    A compare-and-set the server does not know the script of (``NOSCRIPT``: it did not run) is
    sent again after ``SCRIPT LOAD``. Returns the replies and the replica count; the first reply
    that is an error is raised.
    """
    for attempt in range(2):
        pipe = client.pipeline(transaction=False)
        for _, args in commands:
            pipe.execute_command(*args)  # type: ignore[no-untyped-call]
        pipe.execute_command("WAIT", replicas, timeout_ms)  # type: ignore[no-untyped-call]
        replies = pipe.execute(raise_on_error=False)
        if attempt == 0 and any(isinstance(reply, NoScriptError) for reply in replies):
            client.script_load(CAS_SCRIPT)
            continue
        break
    return wait_replies(replies)


def wait_replies(replies: Sequence[Any]) -> tuple[list[Any], int]:
    """The replies of writes followed by ``WAIT``: the writes' replies and the replica count.

    Raises:
        BaseException: the first reply that is an error (after every reply was read).
    """
    for reply in replies:
        if isinstance(reply, BaseException):
            raise reply
    return list(replies[:-1]), int(replies[-1])


def direct_get(client: redis.Redis, stored: str) -> bytes | None:
    """``GET stored`` on one of ``client``'s pooled connections, packed here and sent without
    redis-py's command path (its per-call option parsing, observability hooks and response
    callbacks: about 20 of the 45 us a ``GET`` costs the client, measured on a 2 KB value;
    ``staged_write`` sends its transaction the same way). Same outcome as ``client.get``: a
    connection failure drops the connection and propagates (the backend's own retry runs the
    next attempt through ``client.get``); an error reply propagates with the connection in step.
    A client bound to one connection, or a non-UTF-8 one, takes ``client.get``."""
    pool = client.connection_pool
    if client.connection is not None or pool.connection_kwargs.get("encoding", "utf-8") not in (
        "utf-8",
        "utf8",
    ):
        return client.get(stored)  # type: ignore[return-value]
    key = stored.encode()
    packed = b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key)
    connection: Any = pool.get_connection()  # (redis-py's Connection is partly untyped)
    try:
        connection.send_packed_command((packed,))
        value: bytes | None = connection.read_response()
    except redis.ResponseError:
        raise  # the reply was read: the connection is in step
    except BaseException:
        connection.disconnect()  # a reply may be pending on it
        raise
    finally:
        pool.release(connection)
    return value
