"""``delete_session`` on a real redis-server: one script call per delete, which reads only the
value's head (no ``GET``) and deletes with ``UNLINK`` as ``delete`` does, after the server lost
its scripts too, sync and async; a retired id's marker keeps its bytes and its expiry; and a
store's ``delete`` over a single Redis costs that one round trip."""

from __future__ import annotations

import asyncio

import redis

from session_store import SessionStore
from session_store.websession.steps import RETIRED
from session_store_redis import RedisBackend
from session_store_redis.aio import AsyncRedisBackend
from session_store_redis.conditional_delete import DELETE_SESSION_SHA

PAYLOAD = b"\xa7SS\x01" + b"p" * 50_000


def _raw(url: str) -> redis.Redis:
    return redis.Redis.from_url(url.split("?")[0])


def _calls(raw: redis.Redis) -> dict[str, int]:
    return {
        name.removeprefix("cmdstat_"): row["calls"]
        for name, row in raw.info("commandstats").items()
        if not name.startswith(("cmdstat_config", "cmdstat_info", "cmdstat_ping"))
    }


def test_one_script_call_per_delete_session_even_after_the_server_lost_it(
    redis_url: str,
) -> None:
    backend, raw = RedisBackend.from_url(redis_url), _raw(redis_url)
    try:
        backend.set("k", PAYLOAD, ttl=10)
        backend.set("old", RETIRED, ttl=60)
        raw.script_flush()
        raw.config_resetstat()
        assert backend.delete_session("k") is True  # NOSCRIPT, then the text
        assert backend.delete_session("old") is False
        assert backend.delete_session("absent") is False
        # an absent key reads "" and is unlinked: 0, as delete answers
        assert _calls(raw) == {"evalsha": 3, "eval": 1, "getrange": 3, "unlink": 2}
        assert raw.script_exists(DELETE_SESSION_SHA) == [True]
        assert raw.get(backend.namespace.encode("k")) is None
        assert raw.get(backend.namespace.encode("old")) == RETIRED
        assert 50_000 < raw.pttl(backend.namespace.encode("old")) <= 60_000
        assert backend.counters.get("deletes") == 1
    finally:
        backend.close()
        raw.close()


def test_the_async_backend_runs_the_same_script(redis_url: str) -> None:
    raw = _raw(redis_url)

    async def run() -> None:
        backend = AsyncRedisBackend.from_url(redis_url)
        try:
            await backend.set("k", PAYLOAD, ttl=3600)
            await backend.set("old", RETIRED, ttl=60)
            raw.script_flush()
            raw.config_resetstat()
            assert await backend.delete_session("k") is True
            assert await backend.delete_session("old") is False
            assert await backend.get("old") == RETIRED
            assert await backend.get("k") is None
        finally:
            await backend.aclose()

    try:
        asyncio.run(run())
        calls = _calls(raw)
        assert calls["evalsha"] == 2 and calls["eval"] == 1 and calls["unlink"] == 1
        assert "get" in calls and calls["get"] == 2  # the two reads above, none by the deletes
    finally:
        raw.close()


def test_a_store_delete_is_one_round_trip(redis_url: str) -> None:
    raw = _raw(redis_url)
    try:
        with SessionStore(redis_url, dict) as store:
            store.save("s", {"user": "alice"})
            store.backend.delete_session("warm")  # the script cached once
            raw.config_resetstat()
            assert store.delete("s") is True
            assert _calls(raw) == {"evalsha": 1, "getrange": 1, "unlink": 1}
    finally:
        raw.close()
