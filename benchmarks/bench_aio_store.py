"""The async store against the sync store: ``save`` + ``load`` of the 2 KB web session, over
the same backend, in one run. Goal (issue 18): the async store within 1.2x of the sync store.

Two ways of measuring, because wall time on this shared 2-core machine swings by a third:

* **Paired rounds** (default): each round times a batch of sync calls, then a batch of async
  calls on asyncio and on uvloop (the order rotating), both as wall time and as this process's
  CPU time; a ratio is the median of the per-round ratios.
* **Instructions** (``--instructions``): each contender runs in a child process under
  ``valgrind --tool=callgrind`` twice, with N and 2N calls; the difference divided by N is the
  instructions per ``save`` + ``load`` with start-up and warm-up cancelled out. Counts are
  repeatable under load; they count this process only (not redis-server, not waiting).

Backends: ``memory`` (the store's own cost, no I/O) and ``redis`` (a redis-server this script
starts on a free loopback port). Run: ``python -m benchmarks.bench_aio_store [--instructions]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.harness import machine_line, markdown_table

ROOT = Path(__file__).resolve().parents[1]
BLOB = "".join(chr(97 + (i * 7) % 26) for i in range(2000))  # 2 KB of text, as bench_web
DATA: dict[str, Any] = {"blob": BLOB, "n": 1, "user": "ann", "cart": ["book", "lamp"]}
KEYS = 50


def _loops() -> dict[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop] | None] = {"asyncio": None}
    try:
        import uvloop

        loops["uvloop"] = uvloop.new_event_loop
    except ImportError:
        pass
    return loops


def _urls(kind: str, redis_url: str | None) -> tuple[str, str]:
    if kind == "memory":
        return "memory://", "memory://"
    assert redis_url is not None
    return redis_url + "?prefix=bench-sync:", redis_url + "?prefix=bench-async:"


# -- one batch of calls ---------------------------------------------------------------------------
class SyncRunner:
    """``calls`` sync ``save`` + ``load`` pairs per :meth:`run`."""

    def __init__(self, url: str) -> None:
        from session_store import SessionStore

        self.store: Any = SessionStore(url, dict)
        for i in range(KEYS):
            self.store.save(f"k{i}", DATA)

    def run(self, calls: int) -> None:
        store = self.store
        for i in range(calls):
            key = f"k{i % KEYS}"
            store.save(key, DATA)
            store.load(key)

    def close(self) -> None:
        self.store.close()


class AsyncRunner:
    """``calls`` async ``save`` + ``load`` pairs per :meth:`run`, on a loop kept for the run."""

    def __init__(self, url: str, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None):
        from session_store.aio import AsyncSessionStore

        self.runner = asyncio.Runner(loop_factory=loop_factory)
        self.store: Any = AsyncSessionStore(url, dict)
        self.runner.run(self._warm())

    async def _warm(self) -> None:
        for i in range(KEYS):
            await self.store.save(f"k{i}", DATA)

    async def _body(self, calls: int) -> None:
        store = self.store
        for i in range(calls):
            key = f"k{i % KEYS}"
            await store.save(key, DATA)
            await store.load(key)

    def run(self, calls: int) -> None:
        self.runner.run(self._body(calls))

    def close(self) -> None:
        self.runner.run(self.store.aclose())
        self.runner.close()


def _make(name: str, url: str) -> SyncRunner | AsyncRunner:
    return SyncRunner(url) if name == "sync" else AsyncRunner(url, _loops()[name])


# -- paired rounds --------------------------------------------------------------------------------
def paired(kind: str, redis_url: str | None, rounds: int, calls: int) -> dict[str, Any]:
    """Per-call wall and CPU seconds of each contender, and the medians of per-round ratios."""
    sync_url, async_url = _urls(kind, redis_url)
    names = ["sync", *_loops()]
    runners = {name: _make(name, sync_url if name == "sync" else async_url) for name in names}
    for runner in runners.values():
        runner.run(calls // 4)  # warm-up
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            started, started_cpu = time.perf_counter(), time.process_time()
            runners[name].run(calls)
            wall[name].append((time.perf_counter() - started) / calls)
            cpu[name].append((time.process_time() - started_cpu) / calls)
    for runner in runners.values():
        runner.close()
    result: dict[str, Any] = {"sync_wall_us": statistics.median(wall["sync"]) * 1e6}
    result["sync_cpu_us"] = statistics.median(cpu["sync"]) * 1e6
    for name in names[1:]:
        result[name] = {
            "wall": statistics.median(a / s for a, s in zip(wall[name], wall["sync"], strict=True)),
            "cpu": statistics.median(a / s for a, s in zip(cpu[name], cpu["sync"], strict=True)),
            "wall_us": statistics.median(wall[name]) * 1e6,
        }
    return result


# -- instruction counts ---------------------------------------------------------------------------
def _child(name: str, url: str, calls: int) -> None:
    """Run in a child under callgrind: warm up, then ``calls`` pairs."""
    runner = _make(name, url)
    runner.run(KEYS)
    runner.run(calls)
    runner.close()


def _instructions(name: str, url: str, calls: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "benchmarks.bench_aio_store",
            "--child",
            name,
            url,
            str(calls),
        ]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
        found = re.search(r"Collected : (\d+)", done.stderr)
        assert found is not None, done.stderr[-2000:]
        return int(found.group(1))


def instructions(kind: str, redis_url: str | None, calls: int) -> dict[str, float]:
    """Instructions per ``save`` + ``load`` of each contender: (I(2N) - I(N)) / N."""
    sync_url, async_url = _urls(kind, redis_url)
    counts: dict[str, float] = {}
    for name in ["sync", *_loops()]:
        url = sync_url if name == "sync" else async_url
        many, few = _instructions(name, url, 2 * calls), _instructions(name, url, calls)
        counts[name] = (many - few) / calls
    return counts


# -- a redis-server of our own ------------------------------------------------------------------
@contextmanager
def redis_server() -> Iterator[str]:
    """A throw-away redis-server on a free loopback port (no persistence)."""
    import socket

    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("needs a redis-server binary")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def report(quick: bool = False, counted: bool = False) -> str:
    rounds, calls = (5, 500) if quick else (15, 2000)
    rows: list[list[str]] = []
    with redis_server() as url:
        for kind in ("memory", "redis"):
            result = paired(kind, url, rounds, calls)
            for loop in _loops():
                r = result[loop]
                rows.append(
                    [
                        kind,
                        loop,
                        f"{result['sync_wall_us']:.1f} / {r['wall_us']:.1f}",
                        f"{r['wall']:.2f}",
                        f"{r['cpu']:.2f}",
                        "<= 1.2",
                    ]
                )
            if counted:
                counts = instructions(kind, url, 300 if quick else 1000)
                for loop in _loops():
                    rows.append(
                        [
                            kind,
                            f"{loop}, instructions",
                            f"{counts['sync'] / 1e3:,.1f}k / {counts[loop] / 1e3:,.1f}k",
                            f"{counts[loop] / counts['sync']:.2f}",
                            "",
                            "<= 1.2",
                        ]
                    )
    header = ["backend", "loop", "sync / async per save+load (us)", "wall ratio", "CPU ratio"]
    table = markdown_table(rows, [*header, "goal"])
    return f"{machine_line()}\n\n{table}\n(medians of {rounds} paired rounds of {calls} calls)\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--instructions", action="store_true", help="also count with callgrind")
    parser.add_argument(
        "--child", nargs=3, metavar=("NAME", "URL", "CALLS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        name, url, calls = args.child
        _child(name, url, int(calls))
        return
    os.environ.setdefault("PYTHONHASHSEED", "0")
    print(report(args.quick, args.instructions))


if __name__ == "__main__":
    main()
