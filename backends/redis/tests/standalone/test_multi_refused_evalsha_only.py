"""A user refused ``MULTI`` and ``EVAL`` but allowed ``EVALSHA`` and ``SCRIPT LOAD``, on the
suite's real redis-server (review of issue 12's scripts).

The scripts standing for ``MULTI`` (``get_with_ttl``, ``touch`` without a TTL, the async
``set_many``) ran by SHA and, when the server did not know them (flushed, restarted), by text:
such a user was told it "may run neither MULTI nor EVAL/EVALSHA" although ``EVALSHA`` is
allowed. The script is now loaded (``SCRIPT LOAD``) and run by SHA, as the compare-and-set
does; a user refused ``SCRIPT LOAD`` too is told that is the command refused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
import redis.asyncio as aioredis

from session_store.errors import BackendError
from session_store.urls import parse_url
from session_store_redis import RedisBackend
from session_store_redis.aio import AsyncRedisBackend
from session_store_redis.config import parse_config
from session_store_redis.testing import RedisServer

EVALSHA_ONLY = ("-multi", "-eval")
NO_LOAD = ("-multi", "-eval", "-script|load")


@pytest.fixture
def user_url(redis_server: RedisServer, redis_namespace: str) -> Iterator[Callable[..., str]]:
    """``user_url(*refused)``: a new ACL user allowed every command but ``refused``; the
    server's script cache is flushed first, so the first ``EVALSHA`` meets ``NOSCRIPT``."""
    with redis_server.acl_users() as make:

        def flushed(*refused: str) -> str:
            url = make("~*", "&*", "+@all", *refused, prefix=redis_namespace)
            with redis_server.client() as admin:
                admin.script_flush()
            return url

        yield flushed


def test_sync_reads_and_touches_with_evalsha_only(user_url: Callable[..., str]) -> None:
    with RedisBackend.from_url(user_url(*EVALSHA_ONLY), default_ttl=None) as backend:
        backend.set("a", b"one", ttl=600)
        read = backend.get_with_ttl("a")
        assert read is not None and read[0] == b"one"
        assert backend.touch("a")  # no TTL: PERSIST and EXISTS of one instant


def test_sync_user_refused_script_load_is_told_so(user_url: Callable[..., str]) -> None:
    with RedisBackend.from_url(user_url(*NO_LOAD), default_ttl=None) as backend:
        backend.set("a", b"one", ttl=600)
        with pytest.raises(BackendError, match=r"neither MULTI nor SCRIPT\|LOAD"):
            backend.get_with_ttl("a")


def _async_backend(url: str, driver: str) -> AsyncRedisBackend:
    if driver == "lean":
        return AsyncRedisBackend.from_url(url, default_ttl=None)
    config = parse_config(parse_url(url), {"default_ttl": None})
    client = aioredis.Redis.from_url(url.partition("?")[0])
    return AsyncRedisBackend(client, config, owns_client=True)


@pytest.mark.parametrize("driver", ["lean", "redis-py"])
def test_async_set_many_reads_and_touches_with_evalsha_only(
    user_url: Callable[..., str], driver: str
) -> None:
    async def run(backend: AsyncRedisBackend) -> None:
        try:
            await backend.set_many({"a": b"one", "b": b"two"}, ttl=600)
            assert await backend.get_many(["a", "b"]) == {"a": b"one", "b": b"two"}
            read = await backend.get_with_ttl("a")
            assert read is not None and read[0] == b"one"
            assert await backend.touch("b")
        finally:
            await backend.aclose()

    asyncio.run(run(_async_backend(user_url(*EVALSHA_ONLY), driver)))


@pytest.mark.parametrize("driver", ["lean", "redis-py"])
def test_async_user_refused_script_load_is_told_so(
    user_url: Callable[..., str], driver: str
) -> None:
    async def run(backend: AsyncRedisBackend) -> None:
        try:
            with pytest.raises(BackendError, match=r"neither MULTI nor SCRIPT\|LOAD"):
                await backend.set_many({"a": b"one"}, ttl=600)
        finally:
            await backend.aclose()

    asyncio.run(run(_async_backend(user_url(*NO_LOAD), driver)))
