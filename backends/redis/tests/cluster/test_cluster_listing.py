"""Cluster listings are complete while slots migrate and after a primary is added.

Real clusters of the test module's own (3 primaries, no replicas: they start in about a second),
never the session's shared one, since these tests move slots and add nodes.

* While 200 keys' slots migrate back and forth between primaries (``CLUSTER SETSLOT IMPORTING /
  MIGRATING``, ``MIGRATE`` one key at a time, ``SETSLOT NODE``: what ``redis-cli --cluster
  reshard`` does), every listing of a backend opened before holds every key, and says it is
  complete. Walking the primaries one after the other misses a key whose slot moves from a
  primary not yet walked to one already walked.
* After a fourth primary joins and the slots are rebalanced onto it, a backend opened (and used)
  before the change lists every key: the slots no walked primary proved send it to the slot map
  of now, and the new primary is walked. Likewise after a primary leaves.

``SESSION_STORE_LONG_FAULTS=1`` runs the migration for 60 s instead of 3 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis.crc import key_slot

from session_store import SessionStore
from session_store.rewrite import rewrite_all
from session_store_redis import RedisClusterBackend
from session_store_redis.listing import ListingIncompleteWarning
from session_store_redis.testing import RedisClusterServers
from session_store_redis.testing.checks import open_as
from session_store_redis.testing.cluster_reshard import SlotMigrator

ClusterFactory = Callable[..., RedisClusterServers]

LONG = os.environ.get("SESSION_STORE_LONG_FAULTS") == "1"
MIGRATION_SECONDS = 60.0 if LONG else 3.0
KEYS = 3000
MOVING = 200  # keys whose slots migrate back and forth
MOVING_SLOTS = 20


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    servers = RedisClusterServers(
        replicas=0, directory=tmp_path_factory.mktemp("listing-cluster")
    ).start()
    try:
        yield servers
    finally:
        servers.stop()


def _fill(backend: RedisClusterBackend, count: int) -> dict[str, bytes]:
    expected = {f"session-{n}": f"value-{n}".encode() for n in range(count)}
    backend.set_many(expected)
    return expected


def test_listings_are_complete_while_slots_migrate(cluster: RedisClusterServers) -> None:
    # a long-running process: opened before
    backend = open_as(RedisClusterBackend, cluster.url_for(prefix="mig:"))
    expected = _fill(backend, KEYS - MOVING)
    # 200 keys in 20 slots (hash tags): each migration moves 10 keys, one at a time, so a slot
    # spends most of its time half-moved, its keys split between source and target
    moving = {f"{{m{n % MOVING_SLOTS}}}moving-{n}": f"moving-{n}".encode() for n in range(MOVING)}
    backend.set_many(moving)
    expected |= moving
    head = backend.namespace.scan_head()
    slots = sorted({key_slot(f"{head}{key}".encode()) for key in moving})
    assert len(slots) == MOVING_SLOTS
    migrator = SlotMigrator(cluster, slots)
    listings: list[int] = []
    incomplete_said = 0
    try:
        assert set(backend.scan()) == set(expected)  # connected, slot map cached
        migrator.start()
        started = time.monotonic()
        # at least MIGRATION_SECONDS, and until every slot went there and back (a loaded
        # machine migrates slower), at most 60 s more
        while migrator.error is None and (
            time.monotonic() < started + MIGRATION_SECONDS
            or (migrator.rounds < 2 and time.monotonic() < started + MIGRATION_SECONDS + 60)
        ):
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
    assert migrator.rounds >= 2 and len(listings) > 5  # there and back at least once
    assert worst == KEYS, f"{worst:,} of {KEYS:,} listed"
    assert incomplete_said == 0


def test_a_listing_that_cannot_be_proven_says_so(cluster: RedisClusterServers) -> None:
    """With no rounds left to walk again what moved, the listing still returns what it found,
    and warns (a typed warning) that it may be incomplete; the iterator says so too."""
    backend = open_as(RedisClusterBackend, cluster.url_for(prefix="noproof:", scan_rounds="0"))
    expected = _fill(backend, 300)
    head = backend.namespace.scan_head()
    slots = sorted({key_slot(f"{head}{key}".encode()) for key in expected})[:50]
    migrator = SlotMigrator(cluster, slots)
    said: list[warnings.WarningMessage] = []
    try:
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


@pytest.mark.slow  # two rebalances by redis-cli: 5-20 s on a loaded machine
def test_a_new_or_removed_primary_is_listed_by_a_process_started_before(
    redis_cluster_factory: ClusterFactory,
) -> None:
    cluster = redis_cluster_factory(replicas=0)
    backend = open_as(RedisClusterBackend, cluster.url_for(prefix="grow:"))
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
        with open_as(RedisClusterBackend, cluster.url_for(prefix="grow:")) as fresh:
            assert set(fresh.scan()) == set(expected)
        # And back: one of the first primaries gives its slots away and leaves the cluster.
        leaving = next(node for node in cluster.primary_nodes() if node is not added)
        cluster.remove_primary(leaving)
        listing = backend.scan()
        assert set(listing) == set(expected) and listing.complete
    finally:
        backend.close()


def test_copy_and_migrate_say_when_the_listing_was_not_proven(
    cluster: RedisClusterServers, tmp_path: Path
) -> None:
    """``copy`` (CLI) and ``rewrite_all`` (behind ``migrate``) report a listing the cluster
    could not prove complete instead of calling the job complete."""
    url = cluster.url_for(prefix="cli:", scan_rounds="0")
    with open_as(RedisClusterBackend, url) as backend:
        expected = _fill(backend, 300)
        head = backend.namespace.scan_head()
        slots = sorted({key_slot(f"{head}{key}".encode()) for key in expected})[:50]
    store = SessionStore(url, dict)
    migrator = SlotMigrator(cluster, slots)
    outputs: list[str] = []
    reports: list[bool] = []
    try:
        migrator.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (
            "INCOMPLETE" not in " ".join(outputs) or all(reports)
        ):
            target = f"diskcache://{tmp_path / f'copy-{len(outputs)}'}"
            result = subprocess.run(
                [_script(), "copy", url, target],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            outputs.append(result.stdout)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ListingIncompleteWarning)
                reports.append(rewrite_all(store).complete)
    finally:
        migrator.stop.set()
        migrator.join(30)
        store.close()
    said = [out for out in outputs if "INCOMPLETE" in out]
    assert said, outputs[-1]
    assert "not proven complete" in said[0]
    assert not all(reports)


def _script() -> str:
    found = shutil.which("session-store", path=str(Path(sys.executable).parent))
    assert found, "the session-store console script is not installed in this environment"
    return found


def test_transactions_on_one_key_follow_a_slot_that_moved(cluster: RedisClusterServers) -> None:
    """``get_with_ttl`` and ``touch`` without a TTL (``MULTI``/``EXEC`` on one key) of a backend
    whose slot map went stale follow the slot to its new primary (found while copying during a
    resharding: a ``MovedError`` used to surface as a ``BackendError``)."""
    with open_as(RedisClusterBackend, cluster.url_for(prefix="moved:")) as backend:
        backend.set("k", b"v", ttl=600)
        assert backend.get_with_ttl("k") is not None  # slot map cached
        slot = key_slot(backend.namespace.encode("k").encode())
        source = cluster.owner_of(slot)
        primaries = cluster.primary_nodes()
        target = primaries[(primaries.index(source) + 1) % len(primaries)]
        assert cluster.move_slot(slot, target) == 1
        found = backend.get_with_ttl("k")  # MOVED
        assert found is not None and found[0] == b"v"
        assert backend.touch("k") is True
        # Half-moved: the slot migrating back, the key already on the other side (ASK).
        assert cluster.start_move(slot, source) is target
        assert cluster.migrate_keys(slot, target, source) == 1
        found = backend.get_with_ttl("k")
        assert found is not None and found[0] == b"v" and found[1] > 500
        assert backend.touch("k") is True  # PERSIST + EXISTS
        assert backend.ttl("k") == float("inf")
        cluster.finish_move(slot, target, source)
        assert backend.get_with_ttl("k") is not None
