"""pytest fixtures for a real redis-server, opt-in: a test suite asks for them in its root
``conftest.py`` with ``pytest_plugins = ["session_store_redis.testing.plugin"]`` (there is no
``pytest11`` entry point, so installing ``session-store-redis`` adds no fixtures to anyone's tests):

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

``redis_cluster`` (session scope)
    One :class:`~session_store_redis.testing.cluster.RedisClusterServers` for the whole test
    session: 3 primaries with a replica each (6 ``redis-server --cluster-enabled yes``
    processes, slots assigned by ``redis-cli --cluster create``), stopped by pid at the end.
``redis_cluster_namespace`` / ``redis_cluster_url``
    A key prefix unique to the test, its keys deleted afterwards on every primary; and
    ``redis+cluster://127.0.0.1:PORT/?prefix=<namespace>``.
``redis_cluster_factory``
    ``factory(**options) -> RedisClusterServers``: a cluster of the test's own (to kill a
    primary of), stopped after the test.

``redis_sentinel`` (session scope)
    One :class:`~session_store_redis.testing.sentinel.RedisSentinelSet`: a primary, a replica
    and three sentinels (``redis-server --sentinel``), stopped by pid at the end.
``redis_sentinel_namespace`` / ``redis_sentinel_url``
    As for the cluster: ``redis+sentinel://127.0.0.1:PORT/mymaster/0?prefix=<namespace>``.
``redis_sentinel_factory``
    ``factory(**options) -> RedisSentinelSet``: a set-up of the test's own (to kill the primary
    of), stopped after the test.

Clusters and sentinel set-ups start only for the tests that ask for them. A missing
``redis-server`` (or, for clusters, ``redis-cli``) makes these fixtures error with instructions:
no skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from session_store_redis.testing.cluster import RedisClusterServers
from session_store_redis.testing.sentinel import RedisSentinelSet
from session_store_redis.testing.server import RedisServer

__all__ = [
    "redis_cluster",
    "redis_cluster_factory",
    "redis_cluster_namespace",
    "redis_cluster_url",
    "redis_namespace",
    "redis_sentinel",
    "redis_sentinel_factory",
    "redis_sentinel_namespace",
    "redis_sentinel_url",
    "redis_server",
    "redis_server_factory",
    "redis_url",
]


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
    namespace = _unique_namespace()
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


def _unique_namespace() -> str:
    return f"test-{uuid.uuid4().hex[:16]}/"


# -- Redis Cluster ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """A 3-primary cluster with a replica per primary, shared by the whole test session."""
    cluster = RedisClusterServers(directory=tmp_path_factory.mktemp("redis-cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster_namespace(redis_cluster: RedisClusterServers) -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted from every primary afterwards."""
    namespace = _unique_namespace()
    try:
        yield namespace
    finally:
        redis_cluster.delete_prefix(namespace)


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisClusterServers, redis_cluster_namespace: str) -> str:
    """A URL on the shared cluster whose key prefix is this test's own namespace."""
    return redis_cluster.url_for(prefix=redis_cluster_namespace)


@pytest.fixture
def redis_cluster_factory(tmp_path: Path) -> Iterator[Callable[..., RedisClusterServers]]:
    """Start clusters of this test's own; all are stopped (by pid) after the test."""
    started: list[RedisClusterServers] = []

    def factory(**options: Any) -> RedisClusterServers:
        options.setdefault("directory", tmp_path / f"redis-cluster-{len(started)}")
        cluster = RedisClusterServers(**options)
        started.append(cluster)
        return cluster.start()

    try:
        yield factory
    finally:
        for cluster in reversed(started):
            cluster.stop()


# -- Sentinel -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinelSet]:
    """A primary, a replica and three sentinels, shared by the whole test session."""
    sentinels = RedisSentinelSet(directory=tmp_path_factory.mktemp("redis-sentinel")).start()
    try:
        yield sentinels
    finally:
        sentinels.stop()


@pytest.fixture
def redis_sentinel_namespace(redis_sentinel: RedisSentinelSet) -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted from the primary afterwards."""
    namespace = _unique_namespace()
    try:
        yield namespace
    finally:
        redis_sentinel.delete_prefix(namespace)


@pytest.fixture
def redis_sentinel_url(redis_sentinel: RedisSentinelSet, redis_sentinel_namespace: str) -> str:
    """A URL through the shared sentinels whose key prefix is this test's own namespace."""
    return redis_sentinel.url_for(prefix=redis_sentinel_namespace)


@pytest.fixture
def redis_sentinel_factory(tmp_path: Path) -> Iterator[Callable[..., RedisSentinelSet]]:
    """Start sentinel set-ups of this test's own; all are stopped (by pid) after the test."""
    started: list[RedisSentinelSet] = []

    def factory(**options: Any) -> RedisSentinelSet:
        options.setdefault("directory", tmp_path / f"redis-sentinel-{len(started)}")
        sentinels = RedisSentinelSet(**options)
        started.append(sentinels)
        return sentinels.start()

    try:
        yield factory
    finally:
        for sentinels in reversed(started):
            sentinels.stop()
