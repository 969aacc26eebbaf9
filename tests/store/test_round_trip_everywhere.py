"""The round-trip properties through every backend and a three-tier chain over a real
redis-server: ``load(save(x)) == x`` for schema objects, ``mapping[k] = d; mapping[k] == d``
for any JSON object."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings

from session_store import SessionBackend, SessionMapping, SessionStore, open_backend
from session_store.codec import Codec
from session_store.dataroom import EnhancedSessionData, SessionManager
from session_store.samples import legacy_sessions
from session_store.testing.strategies import json_objects, sessions
from session_store_redis.testing import RedisServer

BACKENDS = ["memory", "diskcache", "redis", "chain"]
_counter = itertools.count()


@pytest.fixture
def backends(
    tmp_path: Path, redis_server: RedisServer, redis_namespace: str
) -> Iterator[dict[str, SessionBackend]]:
    """The four backends, open together: each generated example goes through all of them, so
    Hypothesis builds it once (generating a typed session costs more than storing it four
    times: the memory-only run took as long as the Redis one)."""
    redis = redis_server.url_for(prefix=redis_namespace)
    urls = {
        "memory": "memory://",
        "diskcache": f"diskcache://{tmp_path}/disk",
        "redis": redis,
        "chain": f"memory://?max_entries=5 | {redis} | diskcache://{tmp_path}/chain-disk",
    }
    assert list(urls) == BACKENDS
    with ExitStack() as stack:
        yield {name: stack.enter_context(open_backend(url)) for name, url in urls.items()}


_examples = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@_examples
@given(session=sessions())
def test_typed_sessions_round_trip(
    backends: dict[str, SessionBackend], session: EnhancedSessionData
) -> None:
    for name, backend in backends.items():
        store = SessionStore(backend, EnhancedSessionData, codec=Codec(encryption=None))
        key = f"s{next(_counter)}"
        saved = store.save(key, session)
        assert store.load(key) == saved, name
        assert attrs.evolve(session, last_accessed=saved.last_accessed) == saved, name


@_examples
@given(data=json_objects())
def test_any_json_object_round_trips_through_the_mapping(
    backends: dict[str, SessionBackend], data: dict[str, Any]
) -> None:
    for name, backend in backends.items():
        mapping = SessionMapping(SessionStore(backend, codec=Codec(encryption=None)))
        key = f"m{next(_counter)}"
        mapping[key] = data
        assert mapping[key] == data, name


def test_fixture_sessions_survive_mapping_and_manager_then_a_new_process(
    tmp_path: Path, redis_server: RedisServer, redis_namespace: str
) -> None:
    """Every fixture session, written through SessionMapping and SessionManager into a chain,
    read back whole by another process."""
    url = (
        f"memory://?max_entries=2 | {redis_server.url_for(prefix=redis_namespace)}"
        f" | diskcache://{tmp_path}/disk"
    )
    fixtures = legacy_sessions()
    with SessionStore(url, EnhancedSessionData) as store:
        manager, mapping = SessionManager(store), SessionMapping(store)
        for user_id, data in fixtures.items():
            mapping[f"map:{user_id}"] = data
            manager.store_enhanced_session(f"mgr:{user_id}", data)
    script = f"""
import json, sys
from session_store import EnhancedSessionData, SessionManager, SessionMapping, SessionStore
store = SessionStore({url!r}, EnhancedSessionData)
mapping, manager = SessionMapping(store), SessionManager(store)
out = {{}}
for uid in {sorted(fixtures)!r}:
    out["map:" + uid] = dict(mapping["map:" + uid])
    typed = store.codec.to_data(manager.get_enhanced_session("mgr:" + uid))
    out["mgr:" + uid] = typed
    out["quality:" + uid] = manager.get_comprehensive_analysis_data("map:" + uid)["session_quality"]
json.dump(out, sys.stdout)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    for user_id, data in fixtures.items():
        assert out[f"map:{user_id}"] == data
        typed = out[f"mgr:{user_id}"]
        assert {k: typed[k] for k in data} == data
        assert 0 <= out[f"quality:{user_id}"]["overall_quality_score"] <= 1
