"""The async chain against the sync chain: ``save`` + ``load`` of a 2 KB session through
``memory | redis | diskcache``, as ratios measured in the same run.

Both stores run on the same redis-server and temporary directory, each with its own key prefix;
rounds alternate sync, async on asyncio and async on uvloop (where installed), and the ratio of
each round's times is taken before the median. A ``save`` goes through every tier (Redis, then
the disk: the async chain's disk calls hop to a worker thread); a ``load`` right after it is a
near-cache hit in both chains. The same pairs are also timed one level down, ``set`` + ``get``
of the encoded bytes on the chains themselves: the chain's own cost, apart from the stores'
(the sync store's ``load`` of unchanged bytes skips decoding through its decoded-object cache,
which the async store does not have yet). Run alone: ``python -m benchmarks.bench_aio_chain``.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness import machine_line, markdown_table

BLOB = "x" * 2000


def measure(redis_url: str, disk: Path, rounds: int, calls: int) -> tuple[dict[str, float], float]:
    """Median ratio async / sync per event loop, and the sync chain's µs per save + load."""
    from session_store import SessionStore
    from session_store.aio import AsyncSessionStore

    data = {"blob": BLOB, "n": 1}

    def chain(prefix: str) -> str:
        return f"memory:// | {redis_url}?prefix={prefix} | diskcache://{disk}?prefix={prefix}"

    sync: SessionStore[dict[str, Any]] = SessionStore(chain("bench-sync:"), dict)

    payload = sync.codec.encode("k", data)

    def run_sync() -> tuple[float, float]:
        started = time.perf_counter()
        for i in range(calls):
            sync.save(f"k{i % 50}", data)
            sync.load(f"k{i % 50}")
        middle = time.perf_counter()
        for i in range(calls):
            sync.backend.set(f"b{i % 50}", payload)
            sync.backend.get(f"b{i % 50}")
        return (middle - started) / calls, (time.perf_counter() - middle) / calls

    def run_async(
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
    ) -> tuple[float, float]:
        async def body() -> tuple[float, float]:
            store: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(
                chain("bench-async:"), dict
            )
            for i in range(50):  # warm the connection and the worker threads
                await store.save(f"k{i}", data)
            started = time.perf_counter()
            for i in range(calls):
                await store.save(f"k{i % 50}", data)
                await store.load(f"k{i % 50}")
            middle = time.perf_counter()
            for i in range(calls):
                await store.backend.set(f"b{i % 50}", payload)
                await store.backend.get(f"b{i % 50}")
            ended = time.perf_counter()
            await store.aclose()
            return (middle - started) / calls, (ended - middle) / calls

        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(body())

    loops: dict[str, Callable[[], asyncio.AbstractEventLoop] | None] = {"asyncio": None}
    try:
        import uvloop

        loops["uvloop"] = uvloop.new_event_loop
    except ImportError:
        pass
    run_sync()  # warm-up
    samples: dict[str, list[tuple[float, float]]] = {"sync": [], **{name: [] for name in loops}}
    for _ in range(rounds):
        samples["sync"].append(run_sync())
        for name, factory in loops.items():
            samples[name].append(run_async(factory))
    sync.close()
    ratios: dict[str, float] = {}
    for name in loops:
        pairs = list(zip(samples[name], samples["sync"], strict=True))
        ratios[f"store, {name}"] = statistics.median(a[0] / s[0] for a, s in pairs)
        ratios[f"chain, {name}"] = statistics.median(a[1] / s[1] for a, s in pairs)
    return ratios, statistics.median(s[0] for s in samples["sync"]) * 1e6


def report(quick: bool = False) -> str:
    """The Markdown section."""
    from session_store_redis.testing import RedisServer

    rounds, calls = (3, 200) if quick else (7, 1000)
    directory = Path(tempfile.mkdtemp(prefix="bench-aio-chain-"))
    server = RedisServer(directory=directory / "redis").start()
    try:
        ratios, sync_us = measure(server.url_for(), directory / "disk", rounds, calls)
    finally:
        server.stop()
    rows = [[f"async / sync ({name})", f"{ratio:.2f}"] for name, ratio in ratios.items()]
    return (
        "### Async chain (bench_aio_chain)\n\n"
        f"{machine_line()}. `save` + `load` of a 2 KB session through "
        f"`memory | redis | diskcache` (store: `save` + `load`; chain: `set` + `get` of the "
        f"encoded bytes), {rounds} alternating rounds of {calls} pairs; the sync store takes "
        f"{sync_us:,.0f} µs per pair.\n\n" + markdown_table(rows, ["", "time ratio"])
    )


if __name__ == "__main__":
    print(report())
