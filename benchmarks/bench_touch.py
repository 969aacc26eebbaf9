"""The chain's ``touch``: what the conditional touch (touch only the version read) costs.

``python -m benchmarks.bench_touch [--calls N] [--repeat R] [--against OLD_TREE --rounds R]``

1. **Client instructions** (callgrind, this process only; the server's work is not counted):
   ``touch`` through ``memory:// | redis:// | diskcache://`` and through ``memory:// |
   diskcache://``, each in a child process of its own, once with N calls after a warm-up and once
   with the warm-up alone; the difference over N is one call (median of ``--repeat`` pairs).
2. **Redis's own time per call** (``INFO commandstats``, microseconds): the commands the chain's
   touch sent, per touch (a script's row includes the commands it runs, which have rows too).

Measured on the loaded 2-core machine of this commit (load average 14-20; Redis 7.0.15, redis-py
8.1, Python 3.11, 2 KiB session, 300 touches after a warm-up, median of 3 callgrind pairs):
client instructions per chain touch 855,372 -> 924,038 (``memory | redis | diskcache``, +8.0 %)
and 300,123 -> 359,283 (``memory | diskcache``, +19.7 %: the diskcache transaction that reads
the value before touching it). Redis: ``PEXPIRE`` ~1.1-1.5 us against ~7-11 us for the script
(``EVALSHA`` alone costs ~3 us here), measured alone on one server. The paired wall-clock ratio
(this tree / the one before, 9 interleaved rounds) was 0.73 with rounds from 0.24 to 3.1: the
machine's noise swamps the difference.
3. **Wall clock, paired** (``--against <older tree>``, a checkout of an earlier commit):
   interleaved rounds, each a child process on the older tree then one on this tree doing the
   same touches against the same server; the median of the per-round ratios, and Redis's own
   time per touch in each.

Parts 1 and 2 of an older tree: run this file with ``PYTHONPATH=<tree>:<tree>/backends/redis:
<tree>/backends/diskcache``.
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


def timed(url: str, directory: str, calls: int) -> float:
    """Seconds per touch over ``calls`` touches (the child process of ``--against``)."""
    chain = open_backend(_chain("redis", url, directory))
    chain.set("w", os.urandom(2048), ttl=30)
    for _ in range(50):
        chain.touch("w")
    started = time.perf_counter()
    for _ in range(calls):
        chain.touch("w")
    elapsed = time.perf_counter() - started
    chain.close()
    return elapsed / calls


def _timed_child(tree: str | None, url: str, calls: int) -> tuple[float, float]:
    """A child's seconds per touch, run on ``tree`` (``None``: this one), and the microseconds
    Redis spent per touch meanwhile (every command, ``INFO commandstats``)."""
    env = dict(os.environ)
    if tree is not None:
        paths = (tree, f"{tree}/backends/redis", f"{tree}/backends/diskcache")
        env["PYTHONPATH"] = os.pathsep.join(paths)
    client = redis.Redis.from_url(url.split("?")[0])
    client.config_resetstat()
    with tempfile.TemporaryDirectory() as directory:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--timed",
                *("--url", url),
                *("--dir", directory),
                *("--calls", str(calls)),
            ],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
    usec = sum(row["usec"] for row in client.info("commandstats").values())
    client.close()
    return float(done.stdout.strip()), usec / (calls + 51)


def paired(url: str, against: str, rounds: int, calls: int) -> str:
    """Interleaved rounds of this tree and the tree ``against`` (a checkout of an older
    commit): the median ratio of seconds per touch (this / that), and Redis's time per touch."""
    ratios, ours_usec, theirs_usec = [], [], []
    for _ in range(rounds):
        theirs, theirs_server = _timed_child(against, url, calls)
        ours, ours_server = _timed_child(None, url, calls)
        ratios.append(ours / theirs)
        ours_usec.append(ours_server)
        theirs_usec.append(theirs_server)
    return (
        f"wall, this tree / {against}: {statistics.median(ratios):.3f} (median of {rounds} "
        f"interleaved rounds of {calls} touches; min {min(ratios):.3f}, max {max(ratios):.3f})\n"
        f"redis per touch, all commands (those a script runs count twice: in the script's time "
        f"and on their own): {statistics.median(ours_usec):.2f} us here, "
        f"{statistics.median(theirs_usec):.2f} us there"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--against", help="an older tree: paired wall-clock rounds against it")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    if args.one:
        one(args.one, args.url, args.dir, args.calls)
        return 0
    if args.timed:
        print(timed(args.url, args.dir, args.calls))
        return 0
    with tempfile.TemporaryDirectory() as work, RedisServer(directory=Path(work)) as server:
        url = server.url_for(prefix="bench:")
        for variant in VARIANTS:
            count = instructions(variant, url, args.calls, args.repeat)
            print(f"instructions per touch, chain with {variant}: {count:,.0f}")
        for name, (calls, usec) in sorted(server_time(url, args.calls).items()):
            print(f"redis per touch: {name}: {calls:.2f} calls, {usec:.2f} us")
        if args.against:
            print(paired(url, args.against, args.rounds, args.calls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
