"""The async tests run on an event loop of their own, on asyncio and on uvloop where installed."""

from __future__ import annotations

from typing import Any

import pytest

from session_store.testing.async_conformance import EVENT_LOOPS


@pytest.fixture(params=EVENT_LOOPS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param
