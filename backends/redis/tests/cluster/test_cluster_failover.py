"""A primary of a real cluster is killed with SIGKILL; its replica takes over.

The test gets a cluster of its own (3 primaries, a replica each, ``cluster-node-timeout`` 1000 ms),
so the session's shared cluster is never broken. It shows that

* every write acknowledged with ``wait_replicas=1`` (on the primary *and* its replica) before the
  kill is still there afterwards, read through a fresh backend;
* reads and writes of the dead primary's slots resume once the replica is promoted, and those of
  the other primaries resume too (the whole cluster answers ``CLUSTERDOWN`` for a moment while it
  agrees that the node has failed);
* writes that must be acknowledged by a replica resume on those slots once the killed node is
  back (as a replica of the promoted one): until then the promoted primary has no replica, and
  such writes fail with ``BackendUnavailableError`` instead of pretending.

The measured pauses are printed (``pytest -s``) and bounded here; docs/scale-out.md states them.
A failure prints the test's :class:`~session_store_redis.testing.failover.FailoverLog`: every
write by kind (acknowledged, refused and why), the events, the acknowledged writes a fresh
backend does not read back, and each node's role, view and log.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from session_store import BackendError, open_backend
from session_store_redis import RedisClusterBackend
from session_store_redis.testing import RedisClusterServers
from session_store_redis.testing.failover import (
    CLUSTER_KINDS,
    FAILOVER_OPTIONS,
    PAUSE_BOUND_S,
    FailoverLog,
    assert_kept,
    keys_on,
    write_again,
)

ClusterFactory = Callable[..., RedisClusterServers]


class Clock:
    """For each kind of operation, the longest time without a success since the kill."""

    def __init__(self, *kinds: str) -> None:
        self.killed = time.monotonic()
        self.last = dict.fromkeys(kinds, self.killed)
        self.pause = dict.fromkeys(kinds, 0.0)
        self.resumed: set[str] = set()

    def ok(self, what: str) -> None:
        now = time.monotonic()
        self.pause[what] = max(self.pause[what], now - self.last[what])
        self.last[what] = now
        self.resumed.add(what)

    def settled(self, after: float) -> bool:
        """Every kind succeeded, the last of them resumed ``after`` seconds ago."""
        now = time.monotonic()
        return self.resumed == set(self.last) and all(
            now - self.killed - pause > after for pause in self.pause.values()
        )

    def report(self) -> str:
        return ", ".join(f"{what}: {pause:.2f} s" for what, pause in self.pause.items())


@pytest.mark.slow
def test_killing_a_primary_loses_no_acknowledged_write(
    redis_cluster_factory: ClusterFactory,
) -> None:
    cluster = redis_cluster_factory(node_timeout_ms=1000)
    acked = open_backend(cluster.url_for(prefix="f:", wait_replicas="1") + FAILOVER_OPTIONS)
    plain = open_backend(cluster.url_for(prefix="f:") + FAILOVER_OPTIONS)
    lister = open_backend(cluster.url_for(prefix="f:") + FAILOVER_OPTIONS)
    assert isinstance(acked, RedisClusterBackend) and isinstance(plain, RedisClusterBackend)
    primary, replica = cluster.primary_with_replica()
    on_victim = keys_on(acked, primary.port, owned=True)
    elsewhere = keys_on(acked, primary.port, owned=False)
    expected: dict[str, bytes] = {}
    log = FailoverLog()  # printed if the test fails: what was written, refused, lost; the nodes

    def every_node() -> str:  # a fresh client's URL, naming every node
        return cluster.url_for(prefix="f:", startup_nodes=len(cluster.ports))

    with log.explained(every_node, expected, cluster):
        try:
            # Acknowledged by a replica, up to the very moment of the kill (a write WAIT could
            # not confirm in time raises: not acknowledged, so not expected; a fresh key again).
            before: dict[str, list[str]] = {"victim": [], "other": []}
            for _ in range(100):
                for side, keys in (("victim", on_victim), ("other", elsewhere)):
                    key = log.until_ok(
                        "acknowledged write before the kill", keys, acked.set, expected
                    )
                    before[side].append(key)
            assert plain.get_many(expected) == expected  # a running app: connected, slots known
            assert set(lister.scan()) == set(expected)  # connected; its slot map goes stale now
            primary.kill()
            log.note(f"SIGKILL of primary {primary.port}; its replica is {replica.port}")
            clock = Clock(*CLUSTER_KINDS)
            deadline = time.monotonic() + 30
            while not clock.settled(after=1.0) and time.monotonic() < deadline:
                for what, backend, keys in (
                    ("write on the dead primary's slots", plain, on_victim),
                    ("acknowledged write elsewhere", acked, elsewhere),
                ):
                    key = next(keys)  # a fresh key per attempt: a failed write leaves no doubt
                    try:
                        backend.set(key, key.encode())
                    except BackendError as exc:
                        log.refused_with(what, exc)
                        continue
                    expected[key] = key.encode()
                    log.ok(what)
                    clock.ok(what)
                for what, key in (
                    ("read on the dead primary's slots", before["victim"][0]),
                    ("read elsewhere", before["other"][0]),
                ):
                    try:
                        value = plain.get(key)
                    except BackendError as exc:
                        log.refused_with(what, exc)
                        continue
                    assert value == expected[key], (what, key, value)
                    log.ok(what)
                    clock.ok(what)
                time.sleep(0.02)
            log.note(f"longest pause after SIGKILL: {clock.report()}")
            assert clock.settled(after=1.0), f"did not resume within 30 s: {clock.report()}"
            assert replica.port in {node.port for node in cluster.primary_nodes()}  # promoted
            print(f"\ncluster failover, longest pause after SIGKILL: {clock.report()}")
            assert max(clock.pause.values()) < PAUSE_BOUND_S
            # A scan with the old slot map meets the dead node, refreshes the map and walks the
            # primaries again, listing every key once.
            listed = list(lister.scan())
            assert len(listed) == len(set(listed)) and set(listed) >= set(expected)

            # Writes acknowledged by a replica need one: the killed node returns as the new one's.
            restarted = time.monotonic()
            primary.restart()
            log.note(f"restarted {primary.port}")
            cluster.wait_healthy(30)
            log.note("cluster healthy, replicas in sync")
            write_again(acked, on_victim, expected, restarted, log)  # on the dead primary's slots
        finally:
            acked.close()
            plain.close()
            lister.close()
        assert_kept(cluster.url_for(prefix="f:"), expected)
