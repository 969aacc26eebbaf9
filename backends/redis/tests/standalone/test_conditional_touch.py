"""The conditional touch on a real redis-server: one script call per ``touch_if``, which reads
only the value's head, works after the server lost its scripts (``SCRIPT FLUSH``, a restart),
sync and async, and leaves a key of another type alone with a typed error."""

from __future__ import annotations

import asyncio

import pytest
import redis

from session_store.errors import BackendError
from session_store_redis import RedisBackend
from session_store_redis.aio import AsyncRedisBackend
from session_store_redis.conditional_touch import TOUCH_IF_SCRIPT, TOUCH_IF_SHA


def _raw(url: str) -> redis.Redis:
    return redis.Redis.from_url(url.split("?")[0])


def test_one_script_call_per_touch_if_even_after_the_server_lost_it(redis_url: str) -> None:
    backend, raw = RedisBackend.from_url(redis_url), _raw(redis_url)
    try:
        backend.set("k", b"frame|" + b"x" * 100_000, ttl=10)
        raw.script_flush()
        raw.config_resetstat()
        assert backend.touch_if("k", b"frame|", 60) is True  # NOSCRIPT, then the text
        assert backend.touch_if("k", b"other|", 3600) is False
        stats = raw.info("commandstats")
        assert stats["cmdstat_evalsha"]["calls"] == 2
        assert stats["cmdstat_eval"]["calls"] == 1
        assert "cmdstat_get" not in stats  # the head only (GETRANGE inside the script)
        left = backend.ttl("k")
        assert left is not None and 10 < left <= 60
        assert raw.script_exists(TOUCH_IF_SHA) == [True]
    finally:
        backend.close()
        raw.close()


def test_the_async_backend_runs_the_same_script(redis_url: str) -> None:
    raw = _raw(redis_url)

    async def run() -> None:
        backend = AsyncRedisBackend.from_url(redis_url)
        try:
            await backend.set("k", b"frame|payload", ttl=10)
            raw.script_flush()
            assert await backend.touch_if("k", b"frame|", 60) is True
            assert await backend.touch_if("k", b"frame|x", 3600) is False
            left = await backend.ttl("k")
            assert left is not None and 10 < left <= 60
        finally:
            await backend.aclose()

    try:
        asyncio.run(run())
        assert raw.script_exists(TOUCH_IF_SHA) == [True]
    finally:
        raw.close()


def test_a_key_of_another_type_is_a_typed_error_and_stays(redis_url: str) -> None:
    backend, raw = RedisBackend.from_url(redis_url), _raw(redis_url)
    try:
        stored = backend.namespace.encode("h")
        raw.hset(stored, "f", "v")
        with pytest.raises(BackendError):
            backend.touch_if("h", b"frame|", 60)
        assert raw.ttl(stored) == -1 and raw.hget(stored, "f") == b"v"
        assert raw.eval(TOUCH_IF_SCRIPT, 1, backend.namespace.encode("absent"), b"", 0) == 0
    finally:
        backend.close()
        raw.close()
