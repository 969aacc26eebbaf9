"""Every async backend passes the async conformance kit: memory, Redis (a real redis-server)
and diskcache (a real temporary directory), each opened through its entry point."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from session_store.aio import AsyncMemoryBackend, AsyncSessionBackend, open_async_backend
from session_store.testing.async_conformance import AsyncBackendConformance
from session_store_diskcache.aio import AsyncDiskcacheBackend
from session_store_redis.aio import AsyncRedisBackend, AsyncRedisSentinelBackend
from session_store_redis.testing import RedisSentinelSet, RedisServer


class TestAsyncMemoryConformance(AsyncBackendConformance):
    shares_storage = False

    @pytest.fixture
    def backend_factory(self) -> Callable[..., AsyncSessionBackend]:
        def open_one(prefix: str = "t:") -> AsyncSessionBackend:
            backend = open_async_backend("memory://?max_entries=100000")
            assert isinstance(backend, AsyncMemoryBackend)
            return backend

        return open_one


class TestAsyncRedisConformance(AsyncBackendConformance):
    @pytest.fixture
    def backend_factory(
        self, redis_server: RedisServer, redis_namespace: str
    ) -> Callable[..., AsyncSessionBackend]:
        def open_one(prefix: str = "t:") -> AsyncSessionBackend:
            backend = open_async_backend(redis_server.url, prefix=f"{redis_namespace}{prefix}")
            assert isinstance(backend, AsyncRedisBackend)
            return backend

        return open_one


class TestAsyncDiskcacheConformance(AsyncBackendConformance):
    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> Callable[..., AsyncSessionBackend]:
        url = f"diskcache://{tmp_path / 'sessions'}"

        def open_one(prefix: str = "t:") -> AsyncSessionBackend:
            backend = open_async_backend(url, prefix=prefix)
            assert isinstance(backend, AsyncDiskcacheBackend)
            return backend

        return open_one


class TestAsyncRedisSentinelConformance(AsyncBackendConformance):
    """Through real sentinels (a primary, a replica, three sentinels) to the primary."""

    @pytest.fixture
    def backend_factory(
        self, redis_sentinel: RedisSentinelSet, redis_sentinel_namespace: str
    ) -> Callable[..., AsyncSessionBackend]:
        def open_one(prefix: str = "t:") -> AsyncSessionBackend:
            backend = open_async_backend(
                redis_sentinel.url, prefix=f"{redis_sentinel_namespace}{prefix}"
            )
            assert isinstance(backend, AsyncRedisSentinelBackend)
            return backend

        return open_one
