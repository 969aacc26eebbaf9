"""Sessions on Redis Cluster behind a small memory tier: 200 sessions saved through
``memory://?max_entries=5 | redis+cluster://...`` (the memory tier keeps five) are all read back
from a fresh store and all listed by ``keys()``. (The 4-process atomic update runs on every
topology: ``topologies/test_every_topology.py``.)
"""

from __future__ import annotations

from datetime import UTC, datetime

from session_store import SessionStore, TieredBackend, open_backend
from session_store_redis.testing import RedisClusterServers


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
