"""Benchmark the Redis Cluster backend against the standalone one, on servers this script starts.

    python -m benchmarks.bench_cluster [--rounds 31] [--size 7168]

One run starts a standalone ``redis-server`` and a 3-primary cluster (a replica each) on free
loopback ports, and times, in interleaved rounds whose order rotates:

1. ``get_many(100)`` of 7 KB values: cluster vs standalone. The standalone backend sends one
   ``MGET``; the cluster backend one ``MGET`` per hash slot (100 keys fall in ~100 slots), one
   pipeline per primary, all primaries written to before any is read. The ``INFO commandstats``
   delta of one call is shown for both.
2. The same on the cluster with a hash-tag prefix (``{bench}:``): every key in one slot, one
   ``MGET``, one node.
3. store + load (``set`` + ``get`` of pre-encoded 7 KB bytes): cluster vs standalone. Single-key
   commands go straight to the owning primary; the difference is redis-py's cluster client
   (slot hashing, node lookup) on top of one round trip each.
4. store + load with ``wait_replicas=1`` (``SET`` and ``WAIT 1`` in one round trip) vs without, on
   the cluster: what acknowledgement by a replica costs.
5. Listing 3,000 keys on a quiet cluster: the proven listing (each primary's state read before
   and after its ``SCAN``, coverage checked; the slot map refreshed only when coverage is
   missing) vs today's path before issue 15 (``SCAN`` of each primary of the cached slot map);
   and the slot-by-slot walk of all 16384 slots (the fallback when keys arrived at every
   primary during the walk) vs the same.
6. Sentinel (a primary, a replica, three sentinels started here): store + load with the
   periodic ``ROLE`` check (default, every 1 s), and with one before every command (worst
   case), vs redis-py's plain Sentinel pool (today's path before issue 15).

Every figure is a ratio of medians of per-round ratios (IQR beside it), measured in the same
run; absolute times are context only. Prints a Markdown section.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Callable
from typing import cast

import redis
from redis.connection import BlockingConnectionPool
from redis.crc import key_slot
from redis.sentinel import Sentinel, SentinelConnectionPool
from redis.utils import HIREDIS_AVAILABLE

from benchmarks.bench_redis import Row, row
from benchmarks.harness import interleaved
from session_store import open_backend
from session_store_redis import RedisBackend, RedisClusterBackend, RedisSentinelBackend
from session_store_redis.backend import SCAN_COUNT
from session_store_redis.listing import SLOTS, _read_slots, _Walk
from session_store_redis.patterns import prefix_pattern
from session_store_redis.testing import RedisClusterServers, RedisSentinelSet, RedisServer

__all__ = ["main", "report"]

KEYS = 100
LISTED = 3000


def _open_cluster(url: str) -> RedisClusterBackend:
    backend = open_backend(url)
    assert isinstance(backend, RedisClusterBackend)
    return backend


def _commands(count: Callable[[], dict[str, int]], call: Callable[[], object]) -> int:
    """``MGET`` commands the servers counted during one ``call``."""
    before = count()
    call()
    return count().get("mget", 0) - before.get("mget", 0)


def measure(
    server: RedisServer, cluster: RedisClusterServers, rounds: int, size: int
) -> tuple[list[Row], dict[str, int]]:
    """The rows of the table, and the ``MGET`` count of one ``get_many`` per set-up."""
    standalone = open_backend(server.url_for(prefix="bench:"))
    assert isinstance(standalone, RedisBackend)
    spread = _open_cluster(cluster.url_for(prefix="bench:"))
    tagged = _open_cluster(cluster.url_for(prefix="{bench}:"))
    acked = _open_cluster(cluster.url_for(prefix="bench:", wait_replicas="1"))
    keys = [f"many:{i}" for i in range(KEYS)]
    values = {key: os.urandom(size) for key in keys}
    value = os.urandom(size)
    try:
        for backend in (standalone, spread, tagged):
            backend.set_many(values)
            assert backend.get_many(keys) == values
        slots = len({key_slot(spread.namespace.encode(key).encode()) for key in keys})
        mgets = {
            "standalone": _commands(server.command_calls, lambda: standalone.get_many(keys)),
            "cluster": _commands(cluster.command_calls, lambda: spread.get_many(keys)),
            "cluster, hash-tag prefix": _commands(
                cluster.command_calls, lambda: tagged.get_many(keys)
            ),
            "slots of the 100 keys": slots,
        }

        def store_load(backend: RedisBackend | RedisClusterBackend) -> Callable[[], object]:
            def run() -> object:
                backend.set("one", value)
                return backend.get("one")

            return run

        gc.collect()
        gc.disable()  # a collection inside one variant's timing would be noise
        try:
            many = interleaved(
                {
                    "standalone": (lambda: standalone.get_many(keys), 10),
                    "cluster": (lambda: spread.get_many(keys), 10),
                    "tagged": (lambda: tagged.get_many(keys), 10),
                },
                rounds,
            )
            single = interleaved(
                {
                    "standalone": (store_load(standalone), 200),
                    "cluster": (store_load(spread), 200),
                    "acked": (store_load(acked), 200),
                },
                rounds,
            )
        finally:
            gc.enable()
    finally:
        for backend in (standalone, spread, tagged, acked):
            backend.close()
    rows = [
        row(
            f"`get_many({KEYS})`: cluster vs standalone",
            many,
            "cluster",
            "standalone",
            speedup=False,
            goal="context",
            target=None,
        ),
        row(
            f"`get_many({KEYS})`: cluster, hash-tag prefix vs standalone",
            many,
            "tagged",
            "standalone",
            speedup=False,
            goal="context",
            target=None,
        ),
        row(
            "store + load (`set` + `get`): cluster vs standalone",
            single,
            "cluster",
            "standalone",
            speedup=False,
            goal="context",
            target=None,
        ),
        row(
            "store + load on the cluster: `wait_replicas=1` vs without",
            single,
            "acked",
            "cluster",
            speedup=False,
            goal="context",
            target=None,
        ),
    ]
    return rows, mgets


def _old_listing(backend: RedisClusterBackend, pattern: str) -> int:
    """Today's path before issue 15: ``SCAN`` each primary of the cached slot map in turn,
    each key decoded and checked as ``scan`` does."""
    client = backend.client
    seen: set[str] = set()
    found = 0
    for node in client.get_primaries():  # type: ignore[no-untyped-call]
        redis_node = client.get_redis_connection(node)
        cursor = 0
        while True:
            cursor, batch = redis_node.scan(cursor, match=pattern, count=SCAN_COUNT)
            found += sum(1 for _ in backend._keys_of(cast("list[bytes]", batch), "", seen))
            if int(cursor) == 0:
                break
    return found


def measure_listing(cluster: RedisClusterServers, rounds: int) -> list[Row]:
    """The cost of a proven listing, and of the slot-by-slot fallback, vs the plain walk."""
    backend = _open_cluster(cluster.url_for(prefix="list:"))
    try:
        backend.set_many({f"k{n}": b"v" for n in range(LISTED)})
        client = backend.client
        head = backend.namespace.scan_head()
        pattern = prefix_pattern(head)
        assert _old_listing(backend, pattern) == LISTED
        listing = backend.scan()
        assert sum(1 for _ in listing) == LISTED and listing.complete

        def proven() -> int:
            return sum(1 for _ in backend.scan())

        def by_slots() -> int:
            walk, seen = _Walk(), set[str]()
            pages = _read_slots(client, list(range(SLOTS)), head.encode(), walk)
            found = sum(1 for page in pages for _ in backend._keys_of(page, "", seen))
            assert len(walk) == SLOTS
            return found

        samples = interleaved(
            {
                "old": (lambda: _old_listing(backend, pattern), 5),
                "proven": (proven, 5),
                "slots": (by_slots, 1),
            },
            max(5, rounds // 3),
        )
    finally:
        backend.close()
    return [
        row(
            f"listing {LISTED:,} keys, quiet cluster: proven (state before/after each primary's "
            "SCAN + coverage) vs SCAN of the cached map",
            samples,
            "proven",
            "old",
            speedup=False,
            goal="context",
            target=None,
        ),
        row(
            f"listing {LISTED:,} keys: slot-by-slot walk of all {SLOTS} slots (fallback) vs SCAN "
            "of the cached map",
            samples,
            "slots",
            "old",
            speedup=False,
            goal="context",
            target=None,
        ),
    ]


class _PlainSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's Sentinel pool as the backend used it before issue 15 (no ROLE check, no
    announcements followed)."""


def measure_role_check(sentinels: RedisSentinelSet, rounds: int, size: int) -> list[Row]:
    """store + load with the ROLE check (every 1 s; before every command) vs without."""
    manager = Sentinel([("127.0.0.1", sentinels.sentinels[0].port)])  # type: ignore[no-untyped-call]
    plain_client = manager.master_for(  # type: ignore[no-untyped-call]
        sentinels.service, redis_class=redis.Redis, connection_pool_class=_PlainSentinelPool
    )
    plain = RedisSentinelBackend(plain_client, prefix="role:")
    default = open_backend(sentinels.url_for(prefix="role:"))
    always = open_backend(sentinels.url_for(prefix="role:", role_check_interval="0.000001"))
    value = os.urandom(size)

    def store_load(backend: object) -> Callable[[], object]:
        assert isinstance(backend, RedisSentinelBackend)

        def run() -> object:
            backend.set("one", value)
            return backend.get("one")

        return run

    try:
        for backend in (plain, default, always):
            store_load(backend)()
        samples = interleaved(
            {
                "plain": (store_load(plain), 200),
                "default": (store_load(default), 200),
                "always": (store_load(always), 200),
            },
            rounds,
        )
    finally:
        for backend in (plain, default, always):
            backend.close()
        plain_client.close()
        manager.close()
    return [
        row(
            "Sentinel store + load: ROLE check every 1 s (default) vs redis-py's plain pool",
            samples,
            "default",
            "plain",
            speedup=False,
            goal="context",
            target=None,
        ),
        row(
            "Sentinel store + load: ROLE check before every command vs redis-py's plain pool",
            samples,
            "always",
            "plain",
            speedup=False,
            goal="context",
            target=None,
        ),
    ]


def report(rounds: int = 31, size: int = 7 * 1024) -> str:
    """Start the servers, measure, stop them; the Markdown section."""
    with RedisServer() as server, RedisClusterServers(primaries=3, replicas=1) as cluster:
        raw = server.client()
        try:
            version = raw.info("server")["redis_version"]
        finally:
            raw.close()
        rows, mgets = measure(server, cluster, rounds, size)
        rows += measure_listing(cluster, rounds)
    with RedisSentinelSet() as sentinels:
        rows += measure_role_check(sentinels, rounds, size)
    lines = [
        "### Redis Cluster backend\n",
        f"redis-server {version} (standalone, and a cluster of 3 primaries with a replica each, "
        f"all on this machine's loopback), redis-py {redis.__version__}, hiredis "
        f"{HIREDIS_AVAILABLE}, Python {sys.version.split()[0]}; values of {size} B; {rounds} "
        "interleaved rounds; medians (ratio: median of per-round ratios, IQR beside it; above 1: "
        "the first one is slower)\n",
        "| measurement | first (µs/call) | second (µs/call) | ratio | IQR |",
        "|---|---:|---:|---:|---|",
    ]
    for result in rows:
        low, high = result.spread
        lines.append(
            f"| {result.name} | {result.ours_us:.1f} | {result.baseline_us:.1f} | "
            f"{result.ratio:.2f}x | {low:.2f}-{high:.2f} |"
        )
    lines.append(
        f"\nOne `get_many({KEYS})`, `MGET` commands counted by the servers (INFO commandstats): "
        + ", ".join(f"{name} {count}" for name, count in mgets.items())
        + ". The cluster's are sent as one pipeline per primary (3 round trips, overlapping)."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=31, help="interleaved rounds")
    parser.add_argument("--size", type=int, default=7 * 1024, help="value size in bytes")
    args = parser.parse_args(argv)
    print(report(args.rounds, args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
