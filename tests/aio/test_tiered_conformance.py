"""The async chain passes the async conformance kit: ``memory | redis | diskcache`` over a real
redis-server and a real temporary directory, opened from a chain string like the sync chain."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from session_store.aio import AsyncSessionBackend, open_async_backend
from session_store.aio.tiered import AsyncTieredBackend
from session_store.testing.async_conformance import AsyncBackendConformance
from session_store_redis.testing import RedisServer


def chain_url(redis_url: str, disk: Path, prefix: str) -> str:
    return f"memory://?max_entries=100000 | {redis_url} | diskcache://{disk}?prefix={prefix}"


class TestAsyncChainConformance(AsyncBackendConformance):
    @pytest.fixture
    def backend_factory(
        self, redis_server: RedisServer, redis_namespace: str, tmp_path: Path
    ) -> Callable[..., AsyncSessionBackend]:
        def open_one(prefix: str = "t:") -> AsyncSessionBackend:
            redis_url = redis_server.url_for(prefix=f"{redis_namespace}{prefix}")
            backend = open_async_backend(chain_url(redis_url, tmp_path / "disk", prefix))
            assert isinstance(backend, AsyncTieredBackend)
            return backend

        return open_one


class TestAsyncMemoryOverDiskConformance(AsyncBackendConformance):
    """A chain with no Redis: diskcache arbitrates, and has no invalidation stream."""

    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> Callable[..., AsyncSessionBackend]:
        def open_one(prefix: str = "t:") -> AsyncSessionBackend:
            url = f"memory://?max_entries=50 | diskcache://{tmp_path / 'disk'}?prefix={prefix}"
            backend = open_async_backend(url)
            assert isinstance(backend, AsyncTieredBackend)
            return backend

        return open_one
