"""Suite-wide set-up: Hypothesis profiles (fast locally, thorough with CI=true), the Redis
fixtures, which are opt-in (session-store-redis registers no pytest11 entry point),
``shared_url`` and ``single_url``."""

from pathlib import Path

import pytest

from session_store.testing import register_hypothesis_profiles

# redis_server, redis_namespace, redis_url, redis_server_factory, redis_cluster*, redis_sentinel*
pytest_plugins = ["session_store_redis.testing.plugin"]

register_hypothesis_profiles()


@pytest.fixture(params=["redis", "diskcache"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a backend that several stores and processes share, each test on both kinds:
    a real redis-server's (``redis_url``: a fresh namespace) and a new diskcache directory's."""
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    return f"diskcache://{tmp_path / 'sessions'}"


@pytest.fixture(params=["memory", "redis", "diskcache"])
def single_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of one backend that is not a chain, each test on every built-in kind: a
    process-local memory store, a real redis-server's (``redis_url``: a fresh namespace) and a
    new diskcache directory's."""
    if request.param == "memory":
        return "memory://"
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    return f"diskcache://{tmp_path / 'disk'}"
