"""Async web tests: an event loop of their own, on asyncio and on uvloop where installed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from session_store.testing.async_conformance import EVENT_LOOPS
from session_store_redis.testing import RedisServer


@pytest.fixture(params=EVENT_LOOPS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
def counted_redis(redis_server_factory: Callable[..., RedisServer]) -> RedisServer:
    """A redis-server of this test's own, for tests that count the commands a request sends:
    the shared server also serves what earlier tests of the same worker left running (a late
    close, a listener), which made those counts flaky under load."""
    return redis_server_factory()
