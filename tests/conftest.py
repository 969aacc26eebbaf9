"""Suite-wide set-up: Hypothesis profiles (fast locally, thorough with CI=true), and the Redis
fixtures, which are opt-in (session-store-redis registers no pytest11 entry point)."""

from session_store.testing import register_hypothesis_profiles

# redis_server, redis_namespace, redis_url, redis_server_factory, redis_cluster*, redis_sentinel*
pytest_plugins = ["session_store_redis.testing.plugin"]

register_hypothesis_profiles()
