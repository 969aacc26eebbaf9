"""Sessions on Redis Cluster: the 4-process atomic update, and issue 9's acceptance test.

* Four separate processes each apply 50 ``SessionStore.update`` increments to one counter:
  compare-and-set on one key (one slot) loses none, the counter ends at exactly 200.
* 200 sessions saved through ``memory://?max_entries=5 | redis+cluster://...`` (the memory tier
  keeps five) are all read back from a fresh store and all listed by ``keys()``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from session_store import SessionStore, TieredBackend, open_backend
from session_store_redis.testing import RedisClusterServers
from session_store_redis.testing.processes import update_race


@pytest.mark.slow
def test_four_processes_updating_one_counter_lose_nothing(redis_cluster_url: str) -> None:
    conflicts = update_race(redis_cluster_url, processes=4, rounds=50)
    with SessionStore(redis_cluster_url, dict) as store:
        assert store.load("counter") == {"n": 200}
    assert conflicts > 0  # the processes really raced, and the losers retried


def test_two_hundred_sessions_through_a_small_memory_tier(
    redis_cluster: RedisClusterServers, redis_cluster_namespace: str
) -> None:
    cluster_url = redis_cluster.url_for(prefix=f"{redis_cluster_namespace}sessions:")
    chain = f"memory://?max_entries=5 | {cluster_url}"
    sessions = {
        f"user-{i}": {"user": i, "notes": "x" * (i % 7), "at": datetime.now(UTC).isoformat()}
        for i in range(200)
    }
    with SessionStore(chain, dict) as store:
        assert isinstance(store.backend, TieredBackend)
        for key, session in sessions.items():
            store.save(key, session, ttl=600)
        assert store.backend.tiers[0].counters.get("evictions") >= 195  # memory kept only 5
    with SessionStore(open_backend(chain), dict) as fresh:
        assert {key: fresh.load(key) for key in sessions} == sessions
        assert fresh.load_many(sessions) == sessions
        assert sorted(fresh.keys()) == sorted(sessions)
    with SessionStore(cluster_url, dict) as cluster_only:  # every one of them is in the cluster
        assert sorted(cluster_only.keys()) == sorted(sessions)
        assert cluster_only.load_many(sessions) == sessions
