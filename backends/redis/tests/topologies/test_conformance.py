"""Every Redis topology passes the whole conformance kit, and random operation sequences checked
against a ``dict`` model: standalone, Sentinel, Cluster, and Cluster with every write waiting
for a replica (``wait_replicas=1``: the same contract holds).

The deployments are the suite's shared ones, each started once per test session by
session-store-redis's fixtures (a ``redis-server``; a primary, a replica and three sentinels;
3 primaries with a replica each). Every test gets a key namespace of its own, deleted afterwards,
and the kit's prefixes are nested inside it, so ``session:`` and ``session:admin:`` still overlap
exactly as the kit intends. Only the deployments a test uses are started.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from session_store import SessionBackend
from session_store.testing import BackendConformance, make_state_machine
from session_store_redis import RedisBackend, RedisClusterBackend, RedisSentinelBackend
from session_store_redis.testing.checks import open_as

#: name -> (deployment fixture, namespace fixture, URL parameters, the class the URL opens)
DEPLOYMENTS: dict[str, tuple[str, str, dict[str, str], type[SessionBackend]]] = {
    "standalone": ("redis_server", "redis_namespace", {}, RedisBackend),
    "sentinel": ("redis_sentinel", "redis_sentinel_namespace", {}, RedisSentinelBackend),
    "cluster": ("redis_cluster", "redis_cluster_namespace", {}, RedisClusterBackend),
    "cluster-acked": (
        "redis_cluster",
        "redis_cluster_namespace",
        {"wait_replicas": "1"},
        RedisClusterBackend,
    ),
}

Opener = Callable[[str], SessionBackend]


def _opener(request: pytest.FixtureRequest, name: str) -> Opener:
    """Opens backends of deployment ``name`` under the test's namespace, by key prefix."""
    fixture, namespace_fixture, params, kind = DEPLOYMENTS[name]
    url = request.getfixturevalue(fixture).url_for(**params)
    namespace = request.getfixturevalue(namespace_fixture)

    def open_one(prefix: str) -> SessionBackend:
        return open_as(kind, url, prefix=f"{namespace}{prefix}")

    return open_one


class TestRedisConformance(BackendConformance):
    @pytest.fixture(params=list(DEPLOYMENTS))
    def backend_factory(self, request: pytest.FixtureRequest) -> Callable[..., SessionBackend]:
        open_one = _opener(request, request.param)
        return lambda prefix="t:": open_one(prefix)


# -- random operation sequences against a dict model ----------------------------------------------
# A state machine is a unittest TestCase, which takes no fixtures as arguments; an autouse
# fixture hands it the deployment its class names (``deployment``) and the test's namespace.
_machine: dict[str, Opener] = {}
_fresh = itertools.count()


@pytest.fixture(autouse=True)
def _state_machine_storage(request: pytest.FixtureRequest) -> Iterator[None]:
    name = getattr(request.cls, "deployment", None)
    if name is not None:
        _machine["open"] = _opener(request, name)
    yield
    _machine.clear()


def _model(name: str) -> type[Any]:
    """The state machine's test case over fresh storage (a new prefix) per example."""
    machine = make_state_machine(lambda: _machine["open"](f"machine-{next(_fresh)}:"))
    return type(f"Test{name.title()}Model", (machine.TestCase,), {"deployment": name})


TestStandaloneModel = _model("standalone")
TestSentinelModel = _model("sentinel")
TestClusterModel = _model("cluster")
