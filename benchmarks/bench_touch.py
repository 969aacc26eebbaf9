"""The chain's ``touch``: what the conditional touch (touch only the version read) costs.

``python -m benchmarks.bench_touch [--calls N] [--repeat R] [--skip-wall]``

1. **Client instructions** (callgrind, this process only; the server's work is not counted):
   ``touch`` through ``memory:// | redis:// | diskcache://`` and through ``memory:// |
   diskcache://``, each in a child process of its own, once with N calls after a warm-up and once
   with the warm-up alone; the difference over N is one call (median of ``--repeat`` pairs).
2. **Redis's own time per call** (``INFO commandstats``, microseconds): the commands the chain's
   touch sent, per touch.
3. **Wall clock** (interleaved rounds, the ratio of medians): a chain ``touch`` against a chain
   ``get`` that misses the near cache (the same tier reads), measured in one run.

Run it against an older tree to compare (``PYTHONPATH=<old tree>:<old tree>/backends/redis:<old
tree>/backends/diskcache``): the numbers of this file's first commit are in its report.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from session_store import open_backend
from session_store_redis.testing import RedisServer

VARIANTS = ("redis", "disk")


def _chain(variant: str, url: str, directory: str) -> str:
    middle = f" | {url}" if variant == "redis" else ""
    return f"memory://{middle} | diskcache://{directory}"


def one(variant: str, url: str, directory: str, calls: int) -> None:
    """``calls`` touches after a warm-up (the child process of the callgrind runs)."""
    chain = open_backend(_chain(variant, url, directory))
    chain.set("cg", os.urandom(2048), ttl=30)
    for _ in range(50):
        chain.touch("cg")
    for _ in range(calls):
        chain.touch("cg")
    chain.close()


def _collected(variant: str, url: str, directory: str, calls: int) -> int:
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "benchmarks.bench_touch",
            "--one",
            variant,
            "--url",
            url,
            "--dir",
            directory,
            "--calls",
            str(calls),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    assert found is not None, done.stderr[-2000:]
    return int(found.group(1))


def instructions(variant: str, url: str, calls: int, repeat: int) -> float:
    """Instructions per ``touch`` (median over ``repeat`` pairs of runs)."""
    runs = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as directory:
            full = _collected(variant, url, directory, calls)
        with tempfile.TemporaryDirectory() as directory:
            base = _collected(variant, url, directory, 0)
        runs.append((full - base) / calls)
    return statistics.median(runs)


def server_time(url: str, calls: int) -> dict[str, tuple[float, float]]:
    """Per touch: each command's calls and Redis's own microseconds (``INFO commandstats``)."""
    client = redis.Redis.from_url(url.split("?")[0])
    with tempfile.TemporaryDirectory() as directory:
        chain = open_backend(_chain("redis", url, directory))
        chain.set("st", os.urandom(2048), ttl=30)
        chain.touch("st")
        client.config_resetstat()
        for _ in range(calls):
            chain.touch("st")
        stats = client.info("commandstats")
        chain.close()
    client.close()
    return {
        name.removeprefix("cmdstat_"): (row["calls"] / calls, row["usec"] / calls)
        for name, row in stats.items()
    }


def wall_ratio(url: str, rounds: int = 15, calls: int = 200) -> float:
    """Median over interleaved rounds of (time of a touch) / (time of a get past the near
    cache), both through the same chain: the touch's extra cost over its reads."""
    with tempfile.TemporaryDirectory() as directory:
        chain = open_backend(f"tiered://?max_staleness=0 | {_chain('redis', url, directory)}")
        chain.set("w", os.urandom(2048), ttl=30)
        ratios = []
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(calls):
                chain.touch("w")
            touched = time.perf_counter() - started
            started = time.perf_counter()
            for _ in range(calls):
                chain.get("w")
            read = time.perf_counter() - started
            ratios.append(touched / read)
        chain.close()
    return statistics.median(ratios)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-wall", action="store_true")
    args = parser.parse_args(argv)
    if args.one:
        one(args.one, args.url, args.dir, args.calls)
        return 0
    with tempfile.TemporaryDirectory() as work, RedisServer(directory=Path(work)) as server:
        url = server.url_for(prefix="bench:")
        for variant in VARIANTS:
            count = instructions(variant, url, args.calls, args.repeat)
            print(f"instructions per touch, chain with {variant}: {count:,.0f}")
        for name, (calls, usec) in sorted(server_time(url, args.calls).items()):
            print(f"redis per touch: {name}: {calls:.2f} calls, {usec:.2f} us")
        if not args.skip_wall:
            print(f"wall: touch / get past the near cache: {wall_ratio(url):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
