"""Cluster listings are complete while slots migrate and after a primary is added.

Real clusters of the test module's own (3 primaries, no replicas: they start in about a second),
never the session's shared one, since these tests move slots and add nodes.

* While 200 keys' slots migrate back and forth between primaries (``CLUSTER SETSLOT IMPORTING /
  MIGRATING``, ``MIGRATE`` one key at a time, ``SETSLOT NODE``: what ``redis-cli --cluster
  reshard`` does), every listing of a backend opened before holds every key, and says it is
  complete. Walking the primaries one after the other misses a key whose slot moves from a
  primary not yet walked to one already walked.
* After a fourth primary joins and the slots are rebalanced onto it, a backend opened (and used)
  before the change lists every key: it refreshes its slot map before a walk.

``SESSION_STORE_LONG_FAULTS=1`` runs the migration for 60 s instead of 3 s.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import pytest
from redis.crc import key_slot

from session_store import open_backend
from session_store_redis import RedisClusterBackend
from session_store_redis.listing import ListingIncompleteWarning
from session_store_redis.testing import RedisClusterServers

ClusterFactory = Callable[..., RedisClusterServers]

LONG = os.environ.get("SESSION_STORE_LONG_FAULTS") == "1"
MIGRATION_SECONDS = 60.0 if LONG else 3.0
KEYS = 3000
MOVING = 200  # keys whose slots migrate back and forth


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    servers = RedisClusterServers(
        replicas=0, directory=tmp_path_factory.mktemp("listing-cluster")
    ).start()
    try:
        yield servers
    finally:
        servers.stop()


def _open(url: str) -> RedisClusterBackend:
    backend = open_backend(url)
    assert isinstance(backend, RedisClusterBackend)
    return backend


def _fill(backend: RedisClusterBackend, count: int) -> dict[str, bytes]:
    expected = {f"session-{n}": f"value-{n}".encode() for n in range(count)}
    backend.set_many(expected)
    return expected


class Migrator(threading.Thread):
    """Moves the slots of some keys to another primary and back, over and over, a key at a
    time, until stopped; counts the keys moved."""

    def __init__(self, cluster: RedisClusterServers, slots: list[int]) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.slots = slots
        self.stop = threading.Event()
        self.moved = 0
        self.rounds = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            primaries = self.cluster.primary_nodes()
            while not self.stop.is_set():
                for slot in self.slots:
                    if self.stop.is_set():
                        return
                    source = self.cluster.owner_of(slot)
                    target = primaries[(primaries.index(source) + 1) % len(primaries)]
                    self.moved += self.cluster.move_slot(slot, target, pause=0.001)
                self.rounds += 1
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_listings_are_complete_while_slots_migrate(cluster: RedisClusterServers) -> None:
    backend = _open(cluster.url_for(prefix="mig:"))  # a long-running process: opened before
    expected = _fill(backend, KEYS)
    head = backend.namespace.scan_head()
    slots = sorted({key_slot(f"{head}{key}".encode()) for key in list(expected)[:MOVING]})
    migrator = Migrator(cluster, slots)
    listings: list[int] = []
    incomplete_said = 0
    try:
        assert set(backend.scan()) == set(expected)  # connected, slot map cached
        migrator.start()
        deadline = time.monotonic() + MIGRATION_SECONDS
        while time.monotonic() < deadline and migrator.error is None:
            with warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always")
                listed = set(backend.scan())
            incomplete_said += sum(isinstance(w.message, ListingIncompleteWarning) for w in said)
            listings.append(len(listed & set(expected)))
            assert listed <= set(expected)
    finally:
        migrator.stop.set()
        migrator.join(30)
        backend.close()
    assert migrator.error is None, migrator.error
    worst = min(listings)
    print(
        f"\n{len(listings)} listings while {migrator.moved} keys of {len(slots)} slots moved "
        f"({migrator.rounds} rounds): worst {worst:,} of {KEYS:,} listed, "
        f"{sum(n < KEYS for n in listings)} incomplete, {incomplete_said} said so"
    )
    assert migrator.moved > 0 and len(listings) > 5
    assert worst == KEYS, f"{worst:,} of {KEYS:,} listed"
    assert incomplete_said == 0


def test_a_listing_that_cannot_be_proven_says_so(cluster: RedisClusterServers) -> None:
    """With no rounds left to walk again what moved, the listing still returns what it found,
    and warns (a typed warning) that it may be incomplete; the iterator says so too."""
    backend = _open(cluster.url_for(prefix="noproof:", retries="0"))
    expected = _fill(backend, 300)
    head = backend.namespace.scan_head()
    slots = sorted({key_slot(f"{head}{key}".encode()) for key in expected})[:50]
    migrator = Migrator(cluster, slots)
    said: list[warnings.WarningMessage] = []
    try:
        backend.scan_rounds = 0  # prove from one walk or give up
        migrator.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not said:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                listing = backend.scan()
                found = set(listing)
            said += [w for w in caught if isinstance(w.message, ListingIncompleteWarning)]
            assert found <= set(expected)
            if said:
                assert listing.complete is False
    finally:
        migrator.stop.set()
        migrator.join(30)
        backend.close()
    assert said, "a listing during migration was never reported incomplete"
    assert "could not be proven complete" in str(said[0].message)


def test_a_new_primary_is_listed_by_a_process_started_before(
    redis_cluster_factory: ClusterFactory,
) -> None:
    cluster = redis_cluster_factory(replicas=0)
    backend = _open(cluster.url_for(prefix="grow:"))
    try:
        expected = _fill(backend, 300)
        assert set(backend.scan()) == set(expected)  # connected, slot map cached
        added = cluster.add_primary()
        cluster.rebalance()
        raw = added.client()
        on_new = raw.dbsize()
        raw.close()
        assert on_new > 0  # the rebalance moved keys onto the new primary
        listed = set(backend.scan())
        print(f"\nafter adding a primary ({on_new} keys moved to it): {len(listed)} of 300 listed")
        assert listed == set(expected), f"{len(listed)} of 300 listed"
        with _open(cluster.url_for(prefix="grow:")) as fresh:
            assert set(fresh.scan()) == set(expected)
    finally:
        backend.close()
