"""The Redis backends' ``MULTI`` users under an ACL that refuses ``MULTI`` (issue 12), on the
suite's real redis-server, each user its own ACL user.

``get_with_ttl`` (what a chain reads its Redis tier with), ``touch`` without a TTL and the async
``set_many`` were ``MULTI``/``EXEC`` only: under such an ACL the sync ones failed with
"EXEC without MULTI", the async ones with ``NoPermissionError``. Once the server refuses
``MULTI`` the backend runs the same commands in one script (as atomic, no ``MULTI``), and
remembers it: ``MULTI`` is refused once per backend, not on every call. A user refused
``EVAL``/``EVALSHA`` but allowed ``MULTI`` keeps the ``MULTI`` form; a user refused both gets a
typed error that names both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from session_store import NO_EXPIRY, SessionStore
from session_store.aio.store import AsyncSessionStore
from session_store.errors import BackendError
from session_store.urls import parse_url
from session_store_redis import RedisBackend
from session_store_redis.aio import AsyncRedisBackend
from session_store_redis.config import parse_config
from session_store_redis.testing import RedisServer
from session_store_redis.testing.fleet import wait_until

#: The ACL rules of each kind of user: all commands but the ones named.
NO_MULTI = ("-multi",)
NO_EVAL = ("-eval", "-evalsha")
NEITHER = ("-multi", "-eval", "-evalsha")


@pytest.fixture
def user_url(redis_server: RedisServer, redis_namespace: str) -> Iterator[Callable[..., str]]:
    """``user_url(*refused)``: the URL of a new ACL user allowed every command but ``refused``,
    on the test's own namespace; the users are deleted after the test."""
    with redis_server.acl_users() as make:
        yield lambda *refused: make("~*", "&*", "+@all", *refused, prefix=redis_namespace)


def _refused(server: RedisServer, command: str) -> int:
    """How many times the server refused ``command`` (``INFO commandstats``: rejected calls)."""
    with server.client() as admin:
        stats = admin.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("rejected_calls", 0))


# -- sync ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("refused", [NO_MULTI, NO_EVAL], ids=["no MULTI", "no EVAL"])
def test_sync_reads_with_ttl_and_touches_without_one(
    redis_server: RedisServer, user_url: Callable[..., str], refused: tuple[str, ...]
) -> None:
    before = _refused(redis_server, "multi")
    with RedisBackend.from_url(user_url(*refused), default_ttl=None) as backend:
        backend.set("a", b"one", ttl=600)
        for _ in range(3):
            read = backend.get_with_ttl("a")
            assert read is not None and read[0] == b"one" and 590 < read[1] <= 600
        assert backend.get_with_ttl("absent") is None
        assert backend.touch("a")  # no TTL: PERSIST and EXISTS of one instant
        assert backend.get_with_ttl("a") == (b"one", NO_EXPIRY)
        assert not backend.touch("absent")
    expected = 1 if refused == NO_MULTI else 0
    assert _refused(redis_server, "multi") - before == expected, "MULTI tried on every call"


def test_sync_user_refused_multi_and_eval_gets_an_error_naming_both(
    user_url: Callable[..., str],
) -> None:
    with RedisBackend.from_url(user_url(*NEITHER)) as backend:
        backend.set("a", b"one", ttl=600)
        with pytest.raises(BackendError, match=r"MULTI.*EVAL") as raised:
            backend.get_with_ttl("a")
        assert raised.value.__cause__ is None and raised.value.__context__ is None
        with pytest.raises(BackendError, match=r"MULTI.*EVAL"):
            backend.touch("a", None)


# -- async ---------------------------------------------------------------------------------------
def _async_backend(url: str, driver: str) -> AsyncRedisBackend:
    """The backend on its own lean client, or on a redis-py client (what Sentinel uses)."""
    if driver == "lean":
        return AsyncRedisBackend.from_url(url, default_ttl=None)
    config = parse_config(parse_url(url), {"default_ttl": None})
    client = aioredis.Redis.from_url(url.partition("?")[0])
    return AsyncRedisBackend(client, config, owns_client=True)


async def _async_checks(backend: AsyncRedisBackend) -> None:
    try:
        await backend.set_many({"a": b"one", "b": b"two"}, ttl=600)
        await backend.set_many({"c": b"three"}, ttl=NO_EXPIRY)
        assert await backend.get_many(["a", "b", "c"]) == {"a": b"one", "b": b"two", "c": b"three"}
        for _ in range(3):
            read = await backend.get_with_ttl("a")
            assert read is not None and read[0] == b"one" and 590 < read[1] <= 600
        assert await backend.ttl("c") == NO_EXPIRY
        assert await backend.get_with_ttl("absent") is None
        assert await backend.touch("b")  # no TTL: PERSIST and EXISTS of one instant
        assert await backend.get_with_ttl("b") == (b"two", NO_EXPIRY)
        assert not await backend.touch("absent")
    finally:
        await backend.aclose()


@pytest.mark.parametrize("driver", ["lean", "redis-py"])
@pytest.mark.parametrize("refused", [NO_MULTI, NO_EVAL], ids=["no MULTI", "no EVAL"])
def test_async_set_many_reads_with_ttl_and_touches_without_one(
    redis_server: RedisServer, user_url: Callable[..., str], refused: tuple[str, ...], driver: str
) -> None:
    before = _refused(redis_server, "multi")
    asyncio.run(_async_checks(_async_backend(user_url(*refused), driver)))
    expected = 1 if refused == NO_MULTI else 0
    assert _refused(redis_server, "multi") - before == expected, "MULTI tried on every call"


@pytest.mark.parametrize("driver", ["lean", "redis-py"])
def test_async_user_refused_multi_and_eval_gets_an_error_naming_both(
    user_url: Callable[..., str], driver: str
) -> None:
    async def run(backend: AsyncRedisBackend) -> list[Any]:
        raised = []
        try:
            for call in (
                lambda: backend.get_with_ttl("a"),
                lambda: backend.touch("a"),
                lambda: backend.set_many({"a": b"one"}),
            ):
                with pytest.raises(BackendError, match=r"MULTI.*EVAL") as error:
                    await call()
                raised.append(error.value)
        finally:
            await backend.aclose()
        return raised

    errors = asyncio.run(run(_async_backend(user_url(*NEITHER), driver)))
    assert len(errors) == 3
    assert all(e.__cause__ is None and e.__context__ is None for e in errors)


@pytest.mark.parametrize("refused", [NO_MULTI, NO_EVAL], ids=["no MULTI", "no EVAL"])
def test_async_set_many_waiting_for_a_replica(
    redis_server_factory: Callable[..., RedisServer], refused: tuple[str, ...]
) -> None:
    """The ``wait_replicas`` form: the writes (``MULTI``/``EXEC`` or the script) then ``WAIT``
    on one connection; both keys reach the replica."""
    primary = redis_server_factory()
    replica = redis_server_factory(extra_config=(f"replicaof 127.0.0.1 {primary.port}",))
    with primary.client() as admin:
        admin.execute_command(
            "ACL", "SETUSER", "limited", "on", ">secret", "~*", "&*", "+@all", *refused
        )
    url = f"redis://limited:secret@127.0.0.1:{primary.port}/0?prefix=acl:&wait_replicas=1"

    async def run() -> None:
        backend = AsyncRedisBackend.from_url(url, wait_timeout=5.0)
        try:
            for round_ in range(2):
                items = {"a": b"one%d" % round_, "b": b"two%d" % round_}
                await backend.set_many(items, ttl=600)
                assert await backend.get_many(["a", "b"]) == items
        finally:
            await backend.aclose()

    with replica.client() as watcher:
        wait_until(
            "the replica linked to its primary",
            lambda: watcher.info("replication").get("master_link_status") == "up",
            30,
        )
        before = _refused(primary, "multi")
        asyncio.run(run())
        assert watcher.mget(["acl:\x1fa", "acl:\x1fb"]) == [b"one1", b"two1"]
    assert _refused(primary, "multi") - before == (1 if refused == NO_MULTI else 0)


# -- MULTI disabled by the server's configuration -------------------------------------------------
def test_multi_renamed_away_is_met_as_a_refusal_sync_async_and_through_chains(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """A server whose ``MULTI`` is disabled (``rename-command MULTI ""``) answers it "unknown
    command". The sync reads met it as "EXEC without MULTI" and ran the scripts, but the staged
    chain write (which sees ``MULTI``'s own error) and the async backend did not: every chain
    save failed on the sync side, every read, touch and ``set_many`` on the async one."""
    server = redis_server_factory(extra_config=('rename-command MULTI ""',))
    url = f"redis://127.0.0.1:{server.port}/0?prefix=renamed:"
    with SessionStore(f"memory:// | {url}", dict) as store:
        for round_ in range(2):
            store.save("k", {"n": round_, "pad": "x" * 3000})  # staged: large, a chain's write
        assert store.load("k") == {"n": 1, "pad": "x" * 3000}
        assert store.touch("k")

    async def run() -> None:
        await _async_checks(AsyncRedisBackend.from_url(url, default_ttl=None))
        chain: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(f"memory:// | {url}", dict)
        try:
            await chain.save("c", {"a": 1})
            assert await chain.load("c") == {"a": 1}
        finally:
            await chain.aclose()

    asyncio.run(run())
