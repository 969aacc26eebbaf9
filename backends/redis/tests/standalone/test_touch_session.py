"""``touch_session`` on a real redis-server: one script call per touch, which reads only the
value's head (no ``GET``), after the server lost its scripts too, sync (on the lean client,
which loads it again with ``SCRIPT LOAD``: ``test_lean_script_evalsha_only.py``) and async;
the own TTL a frame records is rounded to milliseconds as every write rounds it; and a store's
sliding expiry (``touch(key)``, ``touch(key, ttl)``, ``touch_on_load``) costs one round trip
over a single Redis, as the ``PEXPIRE`` it replaces did."""

from __future__ import annotations

import asyncio

import redis

from session_store import SessionStore
from session_store.stamps import frame
from session_store_redis import RedisBackend
from session_store_redis.aio import AsyncRedisBackend
from session_store_redis.conditional_touch import TOUCH_SESSION_SHA

PAYLOAD = b"\xa7SS\x01" + b"p" * 50_000


def _raw(url: str) -> redis.Redis:
    return redis.Redis.from_url(url.split("?")[0])


def _calls(raw: redis.Redis) -> dict[str, int]:
    return {
        name.removeprefix("cmdstat_"): row["calls"]
        for name, row in raw.info("commandstats").items()
        if not name.startswith(("cmdstat_config", "cmdstat_info"))
    }


def test_one_script_call_per_touch_session_even_after_the_server_lost_it(redis_url: str) -> None:
    backend, raw = RedisBackend.from_url(redis_url), _raw(redis_url)
    try:
        assert backend._lean is not None  # the web request's client sends it
        backend.set("k", PAYLOAD, ttl=10)
        backend.set("own", frame(PAYLOAD, bytes(12), 2.007), ttl=3600)
        raw.script_flush()
        raw.config_resetstat()
        assert backend.touch_session("k", 60) is True  # NOSCRIPT, SCRIPT LOAD, by SHA again
        assert backend.touch_session("own", 60, keep_own=True) is True
        assert backend.touch_session("absent", 60) is False
        calls = {"evalsha": 4, "script|load": 1, "getrange": 3, "pexpire": 2, "exists": 1}
        assert _calls(raw) == calls
        assert raw.script_exists(TOUCH_SESSION_SHA) == [True]
        assert 50_000 < raw.pttl(backend.namespace.encode("k")) <= 60_000
        assert 1_900 < raw.pttl(backend.namespace.encode("own")) <= 2_007  # 2.007 s: 2007 ms
    finally:
        backend.close()
        raw.close()


def test_the_async_backend_runs_the_same_script(redis_url: str) -> None:
    raw = _raw(redis_url)

    async def run() -> None:
        backend = AsyncRedisBackend.from_url(redis_url)
        try:
            await backend.set("k", frame(PAYLOAD, bytes(12), 30.0), ttl=3600)
            raw.script_flush()
            raw.config_resetstat()
            assert await backend.touch_session("k", 600, keep_own=True) is True
            assert await backend.touch_session("absent", 600) is False
            left = await backend.ttl("k")
            assert left is not None and 20 < left <= 30
        finally:
            await backend.aclose()

    try:
        asyncio.run(run())
        calls = {"evalsha": 2, "eval": 1, "getrange": 2, "pexpire": 1, "exists": 1, "pttl": 1}
        assert _calls(raw) == calls
    finally:
        raw.close()


def test_a_stores_sliding_expiry_is_one_round_trip(redis_url: str) -> None:
    """``touch(key, ttl)`` (every web integration's read-only request), ``touch(key)`` (which
    used to ``GET`` the session, then send it whole as the script's condition) and
    ``touch_on_load`` (``GET`` for the load, then the touch): one script call per touch."""
    raw = _raw(redis_url)
    store: SessionStore[dict[str, object]] = SessionStore(redis_url, dict, touch_on_load=True)
    try:
        store.save("k", {"n": 1})
        store.save("own", {"n": 2}, ttl=300)
        store.touch("k", 600)  # the script is loaded
        raw.config_resetstat()
        assert store.touch("k", 600) is True
        assert store.touch("own") is True
        assert _calls(raw) == {"evalsha": 2, "getrange": 2, "pexpire": 2}
        raw.config_resetstat()
        assert store.load("own") == {"n": 2}
        assert _calls(raw) == {"get": 1, "evalsha": 1, "getrange": 1, "pexpire": 1}
        assert isinstance(store.backend, RedisBackend)
        assert 250_000 < raw.pttl(store.backend.namespace.encode("own")) <= 300_000
    finally:
        store.close()
        raw.close()
