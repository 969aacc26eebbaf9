"""``get_many`` sends its ``MGET`` packed by :func:`session_store_redis.commands.packed_mget`
(one format per key instead of the lean client's generic packing): the very bytes redis-py
would send, and the values of every key, ASCII or not, in order."""

from __future__ import annotations

from redis.connection import Connection

from session_store_redis.backend import RedisBackend
from session_store_redis.commands import packed_mget
from session_store_redis.testing import RedisServer


def test_packed_mget_is_what_redis_py_sends() -> None:
    stored = ["app\x1fa", "app\x1fkéy", "app\x1f" + "z" * 300, "app\x1f\U0001f600"]
    reference = b"".join(Connection().pack_command("MGET", *stored))  # type: ignore[no-untyped-call]
    assert packed_mget(stored) == reference


def test_get_many_reads_every_key_in_order(redis_server: RedisServer, redis_namespace: str) -> None:
    keys = [f"k{i}" for i in range(50)] + ["kéy", "\U0001f600", "missing"]
    with RedisBackend.from_url(redis_server.url_for(prefix=redis_namespace)) as backend:
        assert backend._lean is not None  # the path under test
        for index, key in enumerate(keys[:-1]):
            backend.set(key, b"v%d" % index)
        assert backend.get_many(keys) == {
            key: b"v%d" % index for index, key in enumerate(keys[:-1])
        }
        assert backend.get_many(["missing"]) == {}
