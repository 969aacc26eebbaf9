"""pytest fixtures for a real redis-server, registered through the ``pytest11`` entry point.

Installing ``session-store-redis`` makes these available to every test suite in the environment:

``redis_server`` (session scope)
    One :class:`~session_store_redis.testing.server.RedisServer` for the whole test session (one
    per xdist worker), stopped by its process id at the end.
``redis_namespace``
    A key prefix unique to the test; every key starting with it is deleted afterwards (SCAN +
    UNLINK: never FLUSHDB, so tests sharing the server never erase each other's data).
``redis_url``
    ``redis://127.0.0.1:PORT/0?prefix=<redis_namespace>`` on the shared server.
``redis_server_factory``
    ``factory(**options) -> RedisServer``: a server of the test's own (to kill, restart or give
    a password), each stopped after the test.

A missing ``redis-server`` binary makes these fixtures error with instructions: no skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from session_store_redis.testing.server import RedisServer

__all__ = ["redis_namespace", "redis_server", "redis_server_factory", "redis_url"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server shared by the whole test session."""
    server = RedisServer(directory=tmp_path_factory.mktemp("redis-server")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_namespace(redis_server: RedisServer) -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted after the test."""
    namespace = f"test-{uuid.uuid4().hex[:16]}/"
    try:
        yield namespace
    finally:
        redis_server.delete_prefix(namespace)


@pytest.fixture
def redis_url(redis_server: RedisServer, redis_namespace: str) -> str:
    """A URL on the shared server whose key prefix is this test's own namespace."""
    return redis_server.url_for(prefix=redis_namespace)


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start servers of this test's own; all are stopped (by pid) after the test."""
    started: list[RedisServer] = []

    def factory(**options: Any) -> RedisServer:
        options.setdefault("directory", tmp_path / f"redis-server-{len(started)}")
        server = RedisServer(**options)
        started.append(server)
        return server.start()

    try:
        yield factory
    finally:
        for server in reversed(started):
            server.stop()
