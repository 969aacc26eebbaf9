"""Concurrency: 1, 2 and 4 processes saving and loading through one redis-server.

Every process opens its own ``SessionStore`` on the same server (after the fork, as a web
worker would), waits at a barrier, then runs the same seeded sequence: ``save`` then ``load``
of the medium legacy-shaped session under keys of its own, timing every call. Reported per
process count: p50 and p99 of ``save`` and of ``load`` over all processes, the aggregate
throughput, and the p50 relative to one process (the cost of sharing the machine: this one has
the cores ``os.cpu_count()`` says, and the redis-server needs one of them too).

Run: ``python -m benchmarks.bench_concurrency``.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from typing import Any

from benchmarks.harness import machine_line, markdown_table
from benchmarks.payloads import legacy_session
from session_store import SessionStore
from session_store_redis.testing import RedisServer

PROCESSES = (1, 2, 4)
TTL = 24 * 3600


@dataclass
class Level:
    """The figures of one process count."""

    processes: int
    save: dict[str, float]
    load: dict[str, float]
    ops_per_s: float


def _percentiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"p50": statistics.median(ordered), "p99": at(0.99)}


def _worker(url: str, worker: int, ops: int, barrier: Barrier, out: Connection) -> None:
    payload = legacy_session("medium")
    store: SessionStore[dict[str, Any]] = SessionStore(url, dict, ttl=TTL)
    keys = [f"w{worker}:{n % 50}" for n in range(ops)]
    for key in keys[:20]:  # warm-up: connections, caches
        store.save(key, payload)
        store.load(key)
    saves: list[float] = []
    loads: list[float] = []
    barrier.wait()
    started = time.perf_counter()
    for key in keys:
        t0 = time.perf_counter()
        store.save(key, payload)
        t1 = time.perf_counter()
        store.load(key)
        t2 = time.perf_counter()
        saves.append(t1 - t0)
        loads.append(t2 - t1)
    elapsed = time.perf_counter() - started
    store.close()
    out.send((saves, loads, elapsed))
    out.close()


def measure(ops: int = 400) -> list[Level]:
    """Run the workload at every process count on a redis-server of our own."""
    context = (
        multiprocessing.get_context("fork")
        if hasattr(os, "fork")
        else multiprocessing.get_context("spawn")
    )
    levels: list[Level] = []
    with RedisServer() as server:
        url = server.url_for(prefix="conc:")
        for count in PROCESSES:
            barrier = context.Barrier(count)
            pipes = [context.Pipe(duplex=False) for _ in range(count)]
            workers = [
                context.Process(target=_worker, args=(url, n, ops, barrier, pipes[n][1]))
                for n in range(count)
            ]
            for process in workers:
                process.start()
            results = [receive.recv() for receive, _ in pipes]
            for process in workers:
                process.join(60)
                if process.exitcode != 0:
                    raise RuntimeError(f"a benchmark worker failed (exit {process.exitcode})")
            saves = [t for result in results for t in result[0]]
            loads = [t for result in results for t in result[1]]
            wall = max(result[2] for result in results)
            levels.append(
                Level(count, _percentiles(saves), _percentiles(loads), 2 * count * ops / wall)
            )
    return levels


def report(levels: list[Level]) -> str:
    """The Markdown section."""
    base = levels[0]
    rows = [
        (
            str(level.processes),
            f"{level.save['p50'] * 1e6:,.0f} µs",
            f"{level.save['p99'] * 1e6:,.0f} µs",
            f"{level.load['p50'] * 1e6:,.0f} µs",
            f"{level.load['p99'] * 1e6:,.0f} µs",
            f"{level.ops_per_s:,.0f}",
            f"{level.save['p50'] / base.save['p50']:.2f}x / "
            f"{level.load['p50'] / base.load['p50']:.2f}x",
        )
        for level in levels
    ]
    table = markdown_table(
        rows,
        (
            "processes",
            "save p50",
            "save p99",
            "load p50",
            "load p99",
            "ops/s (all)",
            "p50 vs 1 process (save / load)",
        ),
    )
    return (
        "### Concurrency: processes sharing one redis-server (medium session)\n\n"
        f"{table}\n\n"
        f"{os.cpu_count()} cores for the processes and redis-server together: beyond that, "
        "latency grows with the queue for a core, not with contention inside session-store "
        "(each process has its own connection pool and keys; nothing is locked across "
        "processes).\n"
    )


if __name__ == "__main__":
    print(f"_{machine_line()}_\n")
    print(report(measure()))
