"""The Redis backend passes the whole conformance kit, on a real redis-server.

Every test gets a key namespace of its own on the session's shared server (the
``redis_namespace`` fixture deletes its keys afterwards), and the kit's prefixes are nested inside
it, so ``session:`` and ``session:admin:`` still overlap exactly as the kit intends.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from session_store import open_backend
from session_store.testing import BackendConformance, make_state_machine
from session_store_redis import RedisBackend
from session_store_redis.testing import RedisServer


def _open(server: RedisServer, prefix: str) -> RedisBackend:
    backend = open_backend(server.url, prefix=prefix)
    assert isinstance(backend, RedisBackend)
    return backend


class TestRedisConformance(BackendConformance):
    @pytest.fixture
    def backend_factory(
        self, redis_server: RedisServer, redis_namespace: str
    ) -> Callable[..., RedisBackend]:
        return lambda prefix="t:": _open(redis_server, f"{redis_namespace}{prefix}")


# -- random operation sequences against a dict model ----------------------------------------------
# The state machine is a unittest TestCase, which takes no fixtures as arguments; an autouse
# fixture hands it the shared server and this test's namespace instead.
_machine: dict[str, object] = {}
_fresh = itertools.count()


@pytest.fixture(autouse=True)
def _state_machine_storage(redis_server: RedisServer, redis_namespace: str) -> Iterator[None]:
    _machine["server"], _machine["namespace"] = redis_server, redis_namespace
    yield
    _machine.clear()


def _fresh_backend() -> RedisBackend:
    server, namespace = _machine["server"], _machine["namespace"]
    assert isinstance(server, RedisServer) and isinstance(namespace, str)
    return _open(server, f"{namespace}machine-{next(_fresh)}:")  # fresh storage per example


TestRedisModel = make_state_machine(_fresh_backend).TestCase
