"""A primary of a real cluster is killed with SIGKILL under the async cluster backend; its
replica takes over (the sync twin: backends/redis/tests/cluster/test_cluster_failover.py).

The test gets a cluster of its own (3 primaries, a replica each, ``cluster-node-timeout``
1000 ms), so the session's shared cluster is never broken. Writes acknowledged by a replica
before the kill survive it; reads and writes on the dead primary's slots and elsewhere resume
once the replica is promoted (failures meanwhile are typed :class:`BackendError`); a listing
whose slot map went stale walks the new primaries and lists every key once.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import Callable

import pytest

from session_store import BackendError
from session_store_redis.aio_cluster import AsyncRedisClusterBackend
from session_store_redis.testing import RedisClusterServers
from session_store_redis.testing.checks import open_async_as
from session_store_redis.testing.failover import (
    CLUSTER_KINDS,
    FAILOVER_OPTIONS,
    HANG_S,
    FailoverLog,
    Resumed,
    keys_on,
)

pytestmark = pytest.mark.anyio

ClusterFactory = Callable[..., RedisClusterServers]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # one loop kind: a cluster of its own is started per run


def _open(url: str) -> AsyncRedisClusterBackend:
    return open_async_as(AsyncRedisClusterBackend, url + FAILOVER_OPTIONS)


async def _until_acknowledged(
    backend: AsyncRedisClusterBackend,
    key: str,
    value: bytes,
    log: FailoverLog,
    kind: str,
    on_refusal: Callable[[], object] = lambda: None,
    ttl: float | None = None,
) -> None:
    """Write ``key`` until the backend acknowledges it, as a user would: a refusal (``WAIT``
    saw no replica within ``wait_timeout``, or its reply came late: a replica paused or starved
    on a loaded machine) is the documented answer, not a lost write; it is recorded in ``log``
    (``on_refusal`` runs) and the same write is sent again (``SET`` of the same value may run
    twice). Fails after :data:`HANG_S` seconds of refusals."""
    deadline = time.monotonic() + HANG_S
    while True:
        try:
            await backend.set(key, value, ttl=ttl)
        except BackendError as exc:
            log.refused_with(kind, exc)
            on_refusal()
            assert time.monotonic() < deadline, f"{kind}: refused for {HANG_S} s"
            await asyncio.sleep(0.05)  # a user's pause before trying again, not a race guard
            continue
        log.ok(kind)
        return


@pytest.mark.slow
async def test_killing_a_primary_loses_no_acknowledged_write(
    redis_cluster_factory: ClusterFactory,
) -> None:
    cluster = redis_cluster_factory(node_timeout_ms=1000)
    acked = _open(cluster.url_for(prefix="f:", wait_replicas="1", wait_timeout="0.3"))
    plain = _open(cluster.url_for(prefix="f:"))
    lister = _open(cluster.url_for(prefix="f:"))
    cluster.wait_healthy(30)
    primary, replica = cluster.primary_with_replica()
    expected: dict[str, bytes] = {}
    log = FailoverLog()  # printed if the test fails: what was written, refused, lost; the nodes

    def every_node() -> str:  # a process started after the kill names every node
        return cluster.url_for(prefix="f:", startup_nodes=len(cluster.ports))

    with log.explained(every_node, expected, cluster):
        try:
            await acked.client.initialize()
            on_victim = keys_on(acked, primary.port, owned=True)
            elsewhere = keys_on(acked, primary.port, owned=False)
            victim_keys = [next(on_victim) for _ in range(50)]
            other_keys = [next(elsewhere) for _ in range(50)]
            # What load does to a replica, for certain: paused, it cannot acknowledge, so the
            # first write on the victim's slots is refused; it is continued at that refusal,
            # and the write, sent again, is acknowledged. No write is expected unacknowledged.
            paused = [replica.pid]
            os.kill(replica.pid or 0, signal.SIGSTOP)

            def resume() -> None:
                while paused:
                    os.kill(paused.pop() or 0, signal.SIGCONT)

            try:
                for key in itertools.chain(victim_keys, other_keys):
                    await _until_acknowledged(
                        acked, key, key.encode(), log, "acknowledged write before the kill", resume
                    )
                    expected[key] = key.encode()
            finally:
                resume()
            assert log.refused["acknowledged write before the kill"] >= 1  # the pause was met
            log.note(f"{len(expected)} writes acknowledged by a replica")
            assert await plain.get_many(expected) == expected  # connected, slots known
            assert {key async for key in lister.scan()} == set(expected)
            primary.kill()
            log.note(f"SIGKILL of primary {primary.port}; its replica is {replica.port}")
            resumed = Resumed(*CLUSTER_KINDS)
            while resumed.waiting():
                for what, backend, keys in (
                    ("write on the dead primary's slots", plain, on_victim),
                    ("acknowledged write elsewhere", acked, elsewhere),
                ):
                    key = next(keys)  # a fresh key per attempt: a failed write leaves no doubt
                    try:
                        await backend.set(key, key.encode())
                    except BackendError as exc:
                        log.refused_with(what, exc)
                        continue
                    expected[key] = key.encode()
                    log.ok(what)
                    resumed.ok(what)
                for what, key in (
                    ("read on the dead primary's slots", victim_keys[0]),
                    ("read elsewhere", other_keys[0]),
                ):
                    try:
                        value = await plain.get(key)
                    except BackendError as exc:
                        log.refused_with(what, exc)
                        continue
                    assert value == expected[key], (what, key, value)
                    log.ok(what)
                    resumed.ok(what)
                await asyncio.sleep(0.02)
            refused = sum(log.refused.values())
            resumed.check(f"async cluster failover ({refused} typed errors meanwhile)")
            assert replica.port in {node.port for node in cluster.primary_nodes()}  # promoted
            listed = [key async for key in lister.scan()]  # its slot map is stale
            assert len(listed) == len(set(listed)) and set(listed) >= set(expected)
        finally:
            for backend in (acked, plain, lister):
                await backend.aclose()
        # a process started after the kill: its URL names every node, as a deployment's should
        # (one seed node that happens to be the killed primary leaves a new client nothing to ask)
        fresh = _open(every_node())
        try:
            assert await fresh.get_many(expected) == expected  # no acknowledged write was lost
        finally:
            await fresh.aclose()


@pytest.mark.slow
async def test_one_key_transactions_follow_a_failover(
    redis_cluster_factory: ClusterFactory,
) -> None:
    """A backend that only runs ``get_with_ttl`` and ``touch`` (one-key ``MULTI``/``EXEC``, sent
    by the backend as one node pipeline) reaches the promoted replica by itself: nothing else
    refreshes its slot map."""
    cluster = redis_cluster_factory(node_timeout_ms=1000)
    writer = _open(cluster.url_for(prefix="t:", wait_replicas="1"))
    reader = _open(cluster.url_for(prefix="t:"))
    cluster.wait_healthy(30)
    primary, _ = cluster.primary_with_replica()
    try:
        await writer.client.initialize()
        key = next(keys_on(writer, primary.port, owned=True))
        await _until_acknowledged(
            writer, key, b"v", FailoverLog(), "write before the kill", ttl=600
        )
        found = await reader.get_with_ttl(key)
        assert found is not None and found[0] == b"v"  # connected to the primary, slots known
        primary.kill()
        errors: list[BackendError] = []
        resumed = Resumed("get_with_ttl", "touch")
        while resumed.waiting():
            try:
                found = await reader.get_with_ttl(key)
                assert found is not None and found[0] == b"v"
                resumed.ok("get_with_ttl")
                assert await reader.touch(key) is True
                resumed.ok("touch")
            except BackendError as exc:
                errors.append(exc)
            await asyncio.sleep(0.02)
        resumed.check(f"one-key transactions ({len(errors)} typed errors meanwhile)")
    finally:
        for backend in (writer, reader):
            await backend.aclose()
