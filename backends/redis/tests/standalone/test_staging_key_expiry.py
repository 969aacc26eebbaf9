"""No staging key without an expiry (stage10, attack10's finding).

A staged write (:mod:`session_store_redis.staged`) puts the new value under a per-connection
staging key (``<head>\\xff:staged-write:<tag>``) and renames it over the session's key in the
same ``MULTI``. A client that dies between a ``NOSCRIPT`` answer and its ``EVAL`` retry leaves
that key behind (``backends/redis/tests/attack10/test_staging_key_outlives_write.py``): for
good, when the write had no expiry. The rule: a write without an expiry never stages (the value
passes through Lua, no staging key exists); a write with one stages under a key whose TTL is the
write's own, so what a death leaves expires no later than the session would have.

Watched on a real redis-server with keyspace notifications (``notify-keyspace-events KA``):
every key the server created is seen, not only what is left when the write is done (a staged
write that succeeds renames its key away, so ``SCAN`` alone could not tell). Each write is
checked on the lean client and on redis-py's pool (two call sites), for the ordered writes by
arrival (``set_after``) and if newer (``set_if_newer``), the compare-and-set (``set_if``, of at
least ``STAGE_CAS_FROM`` bytes), and a chain's ``save``/``update``. Before the fix the
writes without an expiry created staging keys (the first test failed on every write).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis

from session_store import NO_EXPIRY, SessionStore, stamps
from session_store_redis import RedisBackend
from session_store_redis.aio import AsyncRedisBackend
from session_store_redis.staged import STAGE_CAS_FROM, staging_key
from session_store_redis.testing import RedisServer

PREFIX = "exp:"
HEAD = PREFIX + "\x1f"
STAGING = staging_key(HEAD)
KW = {"head": len(stamps.MAGIC), "start": stamps.VERSION_START, "end": stamps.VERSION_END}
PAD = b"p" * 2000  # a value the staged paths take (over STAGE_CAS_FROM)


class _Pool(redis.ConnectionPool):
    """A pool of redis-py's own that the lean client does not reproduce: the backend then
    stages through redis-py's connections (the other call site)."""


def _backend(server: RedisServer, lean: bool, **options: Any) -> RedisBackend:
    if lean:
        return RedisBackend.from_url(server.url_for(prefix=PREFIX), **options)
    client = redis.Redis(connection_pool=_Pool(host="127.0.0.1", port=server.port))
    backend = RedisBackend(client, prefix=PREFIX, owns_client=True, **options)
    assert backend._lean is None
    return backend


class _Events:
    """The keyspace events of database 0, read up to a marker key set after the writes."""

    def __init__(self, server: RedisServer) -> None:
        self._admin = server.client()
        self._admin.config_set("notify-keyspace-events", "KA")
        self._pubsub = self._admin.pubsub()  # type: ignore[no-untyped-call]
        self._pubsub.psubscribe(b"__keyspace@0__:*")
        self._pubsub.get_message(timeout=5)  # the psubscribe confirmation
        self._marks = 0

    def take(self) -> list[tuple[bytes, bytes]]:
        """(key, event) of everything since the last call, in order."""
        self._marks += 1
        mark = b"mark:%d" % self._marks
        self._admin.set(mark, b"1")
        seen: list[tuple[bytes, bytes]] = []
        while True:
            message = self._pubsub.get_message(timeout=5)
            assert message is not None, "the marker's event never came"
            if message["type"] != "pmessage":
                continue
            key = message["channel"].removeprefix(b"__keyspace@0__:")
            if key == mark:
                return seen
            seen.append((key, message["data"]))

    def close(self) -> None:
        self._pubsub.close()
        self._admin.close()


@contextmanager
def _watching(server: RedisServer) -> Iterator[_Events]:
    events = _Events(server)
    try:
        yield events
    finally:
        events.close()


def _staging_events(seen: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(key, event) for key, event in seen if key.startswith(STAGING)]


def _left(server: RedisServer) -> dict[bytes, int]:
    """The staging keys ``SCAN`` finds, with their ``PTTL``."""
    with server.client() as admin:
        return {key: admin.pttl(key) for key in admin.scan_iter(match=STAGING + b"*")}


def _writes(backend: RedisBackend, ttl: float | None) -> Iterator[tuple[str, bytes]]:
    """Each staged kind of write once, with ``ttl``: (what, the key written, after which its
    bytes are checked)."""
    after = stamps.frame(PAD, stamps.clock.now(), None)
    assert backend.set_after("a", after, ttl, clock_end=stamps.VERSION_START + 8, **KW)
    yield "set_after", b"a"
    newer = stamps.frame(PAD, stamps.clock.now(), None)
    assert backend.set_if_newer("n", newer, ttl, **KW) is True
    yield "set_if_newer", b"n"
    backend.set("c", b"old")
    read = backend.get_versioned("c")
    assert read is not None
    assert len(PAD) >= STAGE_CAS_FROM
    assert backend.set_if("c", PAD, read.token, ttl) is True
    yield "set_if", b"c"


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "pooled"])
@pytest.mark.parametrize("ttl", [None, NO_EXPIRY], ids=["none", "no_expiry"])
def test_writes_without_an_expiry_never_create_a_staging_key(
    redis_server_factory: Callable[..., RedisServer], lean: bool, ttl: float | None
) -> None:
    server = redis_server_factory()
    with _watching(server) as events, _backend(server, lean) as backend:
        for what, key in _writes(backend, ttl):
            seen = events.take()
            assert _staging_events(seen) == [], f"{what} staged: {_staging_events(seen)}"
            assert (HEAD.encode() + key, b"set") in seen, (what, seen)  # it wrote, by SET
            assert _left(server) == {}, what
            with server.client() as admin:
                assert admin.pttl(HEAD.encode() + key) == -1, what  # and kept no expiry


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "pooled"])
def test_writes_with_an_expiry_stage_under_a_key_that_expires_no_later(
    redis_server_factory: Callable[..., RedisServer], lean: bool
) -> None:
    """The expiring path is unchanged: staged (a ``set``, an ``expire`` and a ``rename_from``
    of the staging key, in one step), and the session key, which is the staging key renamed,
    holds a TTL no longer than the write's."""
    server = redis_server_factory()
    with _watching(server) as events, _backend(server, lean) as backend:
        for what, key in _writes(backend, 30.0):
            staged = [event for _, event in _staging_events(events.take())]
            # (SET, PX) once, or twice when the server did not know the script yet (the
            # transaction sent again with EVAL), then the RENAME
            assert staged in (
                [b"set", b"expire", b"rename_from"],
                [b"set", b"expire", b"set", b"expire", b"rename_from"],
            ), (what, staged)
            assert _left(server) == {}, what
            with server.client() as admin:
                assert 0 < admin.pttl(HEAD.encode() + key) <= 30_000, what


def test_a_staging_key_left_behind_carries_the_writes_ttl(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """A staging key that stays (here: an ACL refusing ``RENAME`` stops the script after the
    ``SET``, and refusing ``DEL`` keeps the clean-up from removing it) is read directly: its
    ``PTTL`` is at most the write's TTL, so it goes when the session would have."""
    server = redis_server_factory()
    with server.client() as admin:
        admin.execute_command(
            "ACL", "SETUSER", "kept", "on", ">pw", "~*", "&*", "+@all", "-rename", "-del"
        )
    url = f"redis://kept:pw@127.0.0.1:{server.port}/0?prefix={PREFIX}"
    with RedisBackend.from_url(url) as backend:
        backend.set("c", b"old")
        read = backend.get_versioned("c")
        assert read is not None
        assert backend.set_if("c", PAD, read.token, 20.0) is True
        assert backend.get("c") == PAD and not backend._stage  # the one-script text wrote it
    left = _left(server)
    assert len(left) == 1, left
    assert all(0 < pttl <= 20_000 for pttl in left.values()), left


def test_a_chains_save_and_update_without_an_expiry_stage_nothing(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """What users call: a chain's ``save`` (an ordered write on Redis) and ``update`` (a
    compare-and-set of a large session) for a store without expiry."""
    server = redis_server_factory()
    url = f"memory:// | {server.url_for(prefix=PREFIX)}"
    with _watching(server) as events, SessionStore(url, dict, ttl=NO_EXPIRY) as store:
        store.save("s", {"pad": "x" * 3000})
        seen = events.take()
        assert (HEAD.encode() + b"s", b"set") in seen and _staging_events(seen) == []
        store.update("s", lambda s: {**(s or {}), "n": 1})
        seen = events.take()
        assert (HEAD.encode() + b"s", b"set") in seen and _staging_events(seen) == []
        assert store.load("s") == {"pad": "x" * 3000, "n": 1}
    assert _left(server) == {}


def test_the_async_backend_without_an_expiry_stages_nothing(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """The async backends write through the one-script texts whatever the TTL; held here so
    that an async staged path, if one comes, keeps the rule."""
    server = redis_server_factory()

    async def writes() -> None:
        backend = AsyncRedisBackend.from_url(server.url_for(prefix=PREFIX))
        try:
            await backend.set("c", b"old")
            read = await backend.get_versioned("c")
            assert read is not None
            assert await backend.set_if("c", PAD, read.token, None) is True
            newer = stamps.frame(PAD, stamps.clock.now(), None)
            assert await backend.set_if_newer("n", newer, None, **KW) is True
        finally:
            await backend.aclose()

    with _watching(server) as events:
        asyncio.run(writes())
        seen = events.take()
    assert _staging_events(seen) == [] and (HEAD.encode() + b"c", b"set") in seen
    assert _left(server) == {}
