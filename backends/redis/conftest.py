"""For the Redis plugin's tests (``tests/`` beside this file): the real ``redis-server`` fixtures
(opt-in, as for any suite that wants them) and the suite's Hypothesis profiles. The repository's
test command collects them (``testpaths`` in the root pyproject.toml); they also run on their
own: ``pytest backends/redis/tests``. (This conftest sits one level up so that its module name
cannot clash with the root suite's ``tests/conftest.py`` for mypy.)"""

from session_store.testing import register_hypothesis_profiles

# redis_server, redis_namespace, redis_url, redis_server_factory, redis_cluster*, redis_sentinel*
pytest_plugins = ["session_store_redis.testing.plugin"]

register_hypothesis_profiles()
