"""Test helpers for Redis: a real ``redis-server`` per test session, and the pytest fixtures.

:class:`RedisServer` starts and stops a server; :mod:`session_store_redis.testing.plugin` is
registered as a pytest plugin (entry point ``pytest11``), so installing ``session-store-redis``
gives any test suite the ``redis_server``, ``redis_namespace``, ``redis_url`` and
``redis_server_factory`` fixtures, and their Cluster and Sentinel counterparts
(:class:`RedisClusterServers`, :class:`RedisSentinelSet`).
"""

from session_store_redis.testing.cluster import RedisClusterServers
from session_store_redis.testing.sentinel import RedisSentinelSet
from session_store_redis.testing.server import (
    RedisServer,
    RedisServerError,
    RedisServerNotFoundError,
    find_redis_server,
)

__all__ = [
    "RedisClusterServers",
    "RedisSentinelSet",
    "RedisServer",
    "RedisServerError",
    "RedisServerNotFoundError",
    "find_redis_server",
]
