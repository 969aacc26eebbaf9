"""Test helpers for Redis: a real ``redis-server`` per test session, and the pytest fixtures.

:class:`RedisServer` starts and stops a server; :mod:`session_store_redis.testing.plugin` is a
pytest plugin that a test suite opts into from its root ``conftest.py``::

    pytest_plugins = ["session_store_redis.testing.plugin"]

which gives it the ``redis_server``, ``redis_namespace``, ``redis_url`` and
``redis_server_factory`` fixtures, and their Cluster and Sentinel counterparts
(:class:`RedisClusterServers`, :class:`RedisSentinelSet`). There is no ``pytest11`` entry point:
installing ``session-store-redis`` adds nothing to a host app's test runs, and the runtime package
(``session_store_redis``) never imports this one.
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
