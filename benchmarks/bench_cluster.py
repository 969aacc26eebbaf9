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

Every figure is a ratio of medians of per-round ratios (IQR beside it), measured in the same
run; absolute times are context only. Prints a Markdown section.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Callable

import redis
from redis.crc import key_slot
from redis.utils import HIREDIS_AVAILABLE

from benchmarks.bench_redis import Row, interleaved, row
from session_store import open_backend
from session_store_redis import RedisBackend, RedisClusterBackend
from session_store_redis.testing import RedisClusterServers, RedisServer

__all__ = ["main", "report"]

KEYS = 100


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


def report(rounds: int = 31, size: int = 7 * 1024) -> str:
    """Start the servers, measure, stop them; the Markdown section."""
    with RedisServer() as server, RedisClusterServers(primaries=3, replicas=1) as cluster:
        raw = server.client()
        try:
            version = raw.info("server")["redis_version"]
        finally:
            raw.close()
        rows, mgets = measure(server, cluster, rounds, size)
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
