"""The Sentinel backend passes the whole conformance kit, on a real Sentinel set-up.

The set-up (a primary, a replica, three sentinels) is started once for the test session by the
``redis_sentinel`` fixture of session-store-redis; every test gets a key namespace of its own,
deleted afterwards, and the kit's prefixes are nested inside it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from session_store import open_backend
from session_store.testing import BackendConformance, make_state_machine
from session_store_redis import RedisSentinelBackend
from session_store_redis.testing import RedisSentinelSet


def _open(sentinels: RedisSentinelSet, prefix: str) -> RedisSentinelBackend:
    backend = open_backend(sentinels.url, prefix=prefix)
    assert isinstance(backend, RedisSentinelBackend)
    return backend


class TestRedisSentinelConformance(BackendConformance):
    @pytest.fixture
    def backend_factory(
        self, redis_sentinel: RedisSentinelSet, redis_sentinel_namespace: str
    ) -> Callable[..., RedisSentinelBackend]:
        return lambda prefix="t:": _open(redis_sentinel, f"{redis_sentinel_namespace}{prefix}")


# -- random operation sequences against a dict model ----------------------------------------------
_machine: dict[str, object] = {}
_fresh = itertools.count()


@pytest.fixture(autouse=True)
def _state_machine_storage(
    redis_sentinel: RedisSentinelSet, redis_sentinel_namespace: str
) -> Iterator[None]:
    _machine["sentinels"], _machine["namespace"] = redis_sentinel, redis_sentinel_namespace
    yield
    _machine.clear()


def _fresh_backend() -> RedisSentinelBackend:
    sentinels, namespace = _machine["sentinels"], _machine["namespace"]
    assert isinstance(sentinels, RedisSentinelSet) and isinstance(namespace, str)
    return _open(sentinels, f"{namespace}machine-{next(_fresh)}:")


TestRedisSentinelModel = make_state_machine(_fresh_backend).TestCase
