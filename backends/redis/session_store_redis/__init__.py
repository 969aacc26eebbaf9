"""session-store-redis: the Redis backends of session-store, registered as ``redis://``,
``rediss://``, ``redis+cluster://`` (Redis Cluster) and ``redis+sentinel://`` (a Sentinel-managed
primary).

    from session_store import open_backend
    backend = open_backend("redis://127.0.0.1:6379/0?prefix=app:")
    cluster = open_backend("redis+cluster://10.0.0.1:7000,10.0.0.2:7000/?prefix=app:")
    failover = open_backend("redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0")

pytest fixtures that start a real ``redis-server`` for a test session are opt-in, outside this
runtime package: ``pytest_plugins = ["session_store_redis.testing.plugin"]`` in a root conftest.
"""

from session_store_redis.backend import RedisBackend, RedisBackendBase
from session_store_redis.client import RedisConfig, parse_config
from session_store_redis.cluster import RedisClusterBackend
from session_store_redis.listing import ClusterListing, ListingIncompleteWarning
from session_store_redis.sentinel import RedisSentinelBackend
from session_store_redis.sentinel_follow import PrimaryTracker

__version__ = "0.1.0"

__all__ = [
    "ClusterListing",
    "ListingIncompleteWarning",
    "PrimaryTracker",
    "RedisBackend",
    "RedisBackendBase",
    "RedisClusterBackend",
    "RedisConfig",
    "RedisSentinelBackend",
    "__version__",
    "parse_config",
]
