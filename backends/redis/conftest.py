"""For the Redis plugin's tests (``tests/`` beside this file): the real ``redis-server`` fixtures
(opt-in, as for any suite that wants them), the set-up the topologies' test files share, and the
suite's Hypothesis profiles. The repository's test command collects them (``testpaths`` in the
root pyproject.toml); they also run on their own: ``pytest backends/redis/tests``. (This conftest
sits one level up so that its module name cannot clash with the root suite's
``tests/conftest.py`` for mypy.)

A test module names only what differs between topologies: ``BACKEND``, the backend class its
``backend`` fixture opens (on a fresh namespace of the suite's shared deployment of that
topology); ``planted_password`` and ``run_forked`` are the same for all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from session_store.testing import register_hypothesis_profiles
from session_store_redis import RedisBackend, RedisClusterBackend, RedisSentinelBackend
from session_store_redis.base import RedisBackendBase
from session_store_redis.testing.checks import SecretWatch, open_as, run_forked

# redis_server, redis_namespace, redis_url, redis_server_factory, redis_cluster*, redis_sentinel*
pytest_plugins = ["session_store_redis.testing.plugin"]

register_hypothesis_profiles()

#: The URL fixture of a fresh namespace on the suite's shared deployment, by backend class.
_URL_FIXTURES: dict[type[RedisBackendBase[Any]], str] = {
    RedisBackend: "redis_url",
    RedisSentinelBackend: "redis_sentinel_url",
    RedisClusterBackend: "redis_cluster_url",
}


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[RedisBackendBase[Any]]:
    """The test module's ``BACKEND`` class, opened on a fresh namespace and closed after."""
    kind: type[RedisBackendBase[Any]] = request.module.BACKEND
    url = request.getfixturevalue(_URL_FIXTURES[kind])
    with open_as(kind, url) as opened:  # the scheme's entry point opens this class
        yield opened


@pytest.fixture
def planted_password(caplog: pytest.LogCaptureFixture) -> SecretWatch:
    """A password to give a deployment of the test's own, and the check that no text the test
    saw (repr, str, errors and their chains, log records) ever holds it."""
    return SecretWatch(caplog)


@pytest.fixture(name="run_forked")
def run_forked_fixture() -> Callable[..., dict[str, object]]:
    """``run_forked(child, parent)``: fork; the child's report while the parent worked."""
    return run_forked
