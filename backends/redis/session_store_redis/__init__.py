"""session-store-redis: the Redis backend of session-store, registered as ``redis://`` and ``rediss://``.

    from session_store import open_backend
    backend = open_backend("redis://127.0.0.1:6379/0?prefix=app:")

Installing the distribution also registers pytest fixtures
(:mod:`session_store_redis.testing.plugin`) that start a real ``redis-server`` for a test session.
"""

from session_store_redis.backend import RedisBackend
from session_store_redis.client import RedisConfig, parse_config

__version__ = "0.1.0"

__all__ = ["RedisBackend", "RedisConfig", "__version__", "parse_config"]
