"""``default_ttl`` stays an assignable setting: the backend precomputes the ``PX`` of a write
that gives no TTL, and an assignment must reach it (and be checked like the constructor's)."""

from __future__ import annotations

import pytest

from session_store.errors import InvalidTTLError
from session_store.ttl import NO_EXPIRY
from session_store_redis import RedisBackend
from session_store_redis.testing.checks import open_as


def test_assigning_default_ttl_changes_what_a_write_without_ttl_gets(redis_url: str) -> None:
    backend = open_as(RedisBackend, redis_url)
    try:
        backend.set("forever", b"v")
        assert backend.ttl("forever") == NO_EXPIRY
        backend.default_ttl = 30
        backend.set("a-while", b"v")
        left = backend.ttl("a-while")
        assert left is not None and 25 < left <= 30
        with pytest.raises(InvalidTTLError):
            backend.default_ttl = -1
        assert backend.default_ttl == 30  # a refused value changes nothing
        backend.default_ttl = None
        backend.set("a-while", b"w")
        assert backend.ttl("a-while") == NO_EXPIRY
    finally:
        backend.close()
