"""The ordered writes and compare-and-set of the sync and async Redis backends check their
arguments before any I/O: aimed at a loopback port nothing listens on, a bad key, value or TTL
is its typed error, where the same call with good arguments fails to connect.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from session_store.errors import (
    BackendUnavailableError,
    InvalidKeyError,
    InvalidTTLError,
    SerializationError,
)
from session_store_redis import RedisBackend
from session_store_redis.aio import AsyncRedisBackend
from session_store_redis.testing.server import free_port

ORDER: dict[str, Any] = {"head": 4, "start": 4, "end": 16}
BAD = [
    pytest.param("", b"v", None, InvalidKeyError, id="key"),
    pytest.param("k", "text", None, SerializationError, id="value"),
    pytest.param("k", b"v", -5, InvalidTTLError, id="ttl"),
]


@pytest.fixture
def url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0?retries=0&socket_connect_timeout=0.5"


@pytest.mark.parametrize(("key", "value", "ttl", "error"), BAD)
def test_sync_writes_check_before_io(
    url: str, key: str, value: bytes, ttl: float | None, error: type[Exception]
) -> None:
    with RedisBackend.from_url(url) as backend:
        with pytest.raises(error):
            backend.set_if_newer(key, value, ttl, **ORDER)
        with pytest.raises(error):
            backend.set_after(key, value, ttl, clock_end=12, **ORDER)
        with pytest.raises(error):
            backend.set_if(key, value, None, ttl)
        with pytest.raises(BackendUnavailableError):
            backend.set_if_newer("k", b"v", None, **ORDER)


@pytest.mark.parametrize(("key", "value", "ttl", "error"), BAD)
def test_async_writes_check_before_io(
    url: str, key: str, value: bytes, ttl: float | None, error: type[Exception]
) -> None:
    async def run() -> None:
        backend = AsyncRedisBackend.from_url(url)
        try:
            with pytest.raises(error):
                await backend.set_if_newer(key, value, ttl, **ORDER)
            with pytest.raises(error):
                await backend.set_after(key, value, ttl, clock_end=12, **ORDER)
            with pytest.raises(BackendUnavailableError):
                await backend.set_if_newer("k", b"v", None, **ORDER)
        finally:
            await backend.aclose()

    asyncio.run(run())
