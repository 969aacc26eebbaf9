"""The Redis Cluster backend passes the whole conformance kit, on a real 3-primary cluster.

The cluster (3 primaries, a replica each) is started once for the test session by the
``redis_cluster`` fixture of session-store-redis; every test gets a key namespace of its own,
deleted from every primary afterwards, and the kit's prefixes are nested inside it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from session_store import open_backend
from session_store.testing import BackendConformance, make_state_machine
from session_store_redis import RedisClusterBackend
from session_store_redis.testing import RedisClusterServers


def _open(cluster: RedisClusterServers, prefix: str, *, acked: bool = False) -> RedisClusterBackend:
    url = cluster.url_for(wait_replicas="1") if acked else cluster.url
    backend = open_backend(url, prefix=prefix)
    assert isinstance(backend, RedisClusterBackend)
    return backend


class TestRedisClusterConformance(BackendConformance):
    @pytest.fixture
    def backend_factory(
        self, redis_cluster: RedisClusterServers, redis_cluster_namespace: str
    ) -> Callable[..., RedisClusterBackend]:
        return lambda prefix="t:": _open(redis_cluster, f"{redis_cluster_namespace}{prefix}")


class TestRedisClusterAcknowledgedConformance(BackendConformance):
    """Every write also waits for a replica (``wait_replicas=1``): the same contract holds."""

    @pytest.fixture
    def backend_factory(
        self, redis_cluster: RedisClusterServers, redis_cluster_namespace: str
    ) -> Callable[..., RedisClusterBackend]:
        return lambda prefix="t:": _open(
            redis_cluster, f"{redis_cluster_namespace}{prefix}", acked=True
        )


# -- random operation sequences against a dict model ----------------------------------------------
_machine: dict[str, object] = {}
_fresh = itertools.count()


@pytest.fixture(autouse=True)
def _state_machine_storage(
    redis_cluster: RedisClusterServers, redis_cluster_namespace: str
) -> Iterator[None]:
    _machine["cluster"], _machine["namespace"] = redis_cluster, redis_cluster_namespace
    yield
    _machine.clear()


def _fresh_backend() -> RedisClusterBackend:
    cluster, namespace = _machine["cluster"], _machine["namespace"]
    assert isinstance(cluster, RedisClusterServers) and isinstance(namespace, str)
    return _open(cluster, f"{namespace}machine-{next(_fresh)}:")


TestRedisClusterModel = make_state_machine(_fresh_backend).TestCase
