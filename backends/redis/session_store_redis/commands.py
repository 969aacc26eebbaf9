"""The Redis commands every backend builds the same way, sync and asyncio, one server or a
cluster: the ``SET`` of a write, ``PTTL``'s answer, the session keys of a ``SCAN`` page, and
writes followed by ``WAIT`` on one connection."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableSet, Sequence
from typing import Any

import redis
from redis.exceptions import NoScriptError

from session_store.keys import Namespace
from session_store.ttl import NO_EXPIRY
from session_store_redis.scripts import CAS_SCRIPT

__all__ = [
    "SCAN_COUNT",
    "Command",
    "run_with_wait",
    "seconds_left",
    "session_keys",
    "set_command",
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
    for reply in replies:
        if isinstance(reply, BaseException):
            raise reply
    return list(replies[:-1]), int(replies[-1])
