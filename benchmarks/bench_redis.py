"""Benchmark the Redis backend against plain redis-py, on a redis-server this script starts.

    python benchmarks/bench_redis.py [--rounds 41] [--size 7168]

1. ``get_many(100)`` against 100 single ``get`` calls, 7 KB values (goal: >= 20x faster), with
   the ``INFO commandstats`` delta of one ``get_many`` proving it is a single ``MGET``. The same
   ratio for raw redis-py (one ``MGET`` against 100 ``GET``) is measured in the same rounds: it is
   the ceiling this machine allows, set by its loopback round trip against the time 700 KB take.
2. The backend's ``set`` + ``get`` of pre-encoded 7 KB bytes against raw redis-py ``SET`` + ``GET``
   of the same bytes on the same server (goal: <= 1.10x: the backend adds next to nothing). Raw
   redis-py is also timed against itself (an A/A row): the spread of that ratio is the resolution
   of the measurement on this machine.

3. ``--callgrind``: the instructions this process spends per call (the server's are not
   counted) of the backend's ``get``, ``set``, ``get_versioned`` and ``set_if`` against raw
   redis-py doing the same on the wire (``GET``, ``SET``, ``GET``, ``EVALSHA`` of the same
   compare-and-set script with the same arguments), under ``valgrind --tool=callgrind``: each
   operation runs in a process of its own, once with N calls after a warm-up and once with the
   warm-up alone; the difference over N is the cost of one call. redis-py's own count moves by
   a few per cent from run to run (how a reply arrives decides how often it reads the socket),
   so ``--repeat`` runs each measurement several times and reports the median.
4. ``--callgrind`` also counts the backend over a stand-in client (a ``redis.Redis`` whose
   ``get`` / ``set`` / ``evalsha`` answer at once, no socket): the instructions our own code
   adds around redis-py, without its noise, minus the stand-in's own call.

Recorded (callgrind, 7 KB values, before = the commit before the wrapper was trimmed, after =
this one; redis-py 8.1.0 with hiredis, Python 3.11.7). Our code over the stand-in, 5000 calls,
``PYTHONHASHSEED=0`` (repeatable to ~1 %), minus the stand-in's own ~1,600 per call:

==================  ========  =======  ============================================
operation           before    after    note
==================  ========  =======  ============================================
``get``              5,624    4,112    of which ``validate_key`` ~2,300
``set``              8,181    5,580    ``validate_key`` ~2,300
``get_versioned``  104,628  100,302    the SHA-1 token of 7 KB alone: ~93,400
``set_if``          38,162   13,115    was redis-py's ``Script`` (an import per call)
==================  ========  =======  ============================================

Against a real server (1000 calls, one run each; redis-py's own count moves by a few per cent):
``get`` 157,325 -> 155,268 (raw redis-py ``GET`` 142.4k), ``set`` 190,636 -> 189,413 (raw
``SET`` 172.5k), ``get_versioned`` 256,058 -> 252,009, ``set_if`` 209,833 -> 185,877 (raw
``EVALSHA`` 163.4k); ``get_versioned`` + ``set_if`` 465.9k -> 437.9k (-6 %). What is left
between us and raw redis-py is not the wrapper: our client's blocking pool and health checks
(~9-10k per command: "through our client" against "raw") and, in ``get_versioned``, the SHA-1
digest a value without a chain's frame is compared by (framed values get short tokens).

All timed variants of a measurement run in interleaved rounds, their order rotating from round to
round, and each ratio reported is the median of the per-round ratios, so drift in the machine's
load hits every variant alike. Absolute times are context only. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import redis
from redis.utils import HIREDIS_AVAILABLE

from benchmarks.harness import interleaved
from session_store import open_backend
from session_store_redis import RedisBackend
from session_store_redis.scripts import CAS_SHA, cas_args
from session_store_redis.testing import RedisServer

GET_MANY_GOAL = 20.0
OVERHEAD_GOAL = 1.10


@dataclass
class Row:
    name: str
    ours_us: float
    baseline_us: float
    ratio: float
    spread: tuple[float, float]  # interquartile range of the per-round ratios
    goal: str
    met: bool | None


def row(
    name: str,
    samples: dict[str, list[float]],
    ours: str,
    baseline: str,
    *,
    speedup: bool,
    goal: str,
    target: float | None,
) -> Row:
    """Compare two variants round by round: ``ours / baseline``, or its inverse for a speedup."""
    ratios = [
        (b / a) if speedup else (a / b)
        for a, b in zip(samples[ours], samples[baseline], strict=True)
    ]
    quartiles = statistics.quantiles(ratios, n=4)
    ratio = statistics.median(ratios)
    met = None if target is None else (ratio >= target if speedup else ratio <= target)
    return Row(
        name,
        statistics.median(samples[ours]) * 1e6,
        statistics.median(samples[baseline]) * 1e6,
        ratio,
        (quartiles[0], quartiles[2]),
        goal,
        met,
    )


def bench_get_many(
    server: RedisServer, backend: RedisBackend, raw: redis.Redis, size: int, rounds: int
) -> tuple[list[Row], dict[str, int]]:
    keys = [f"many:{i}" for i in range(100)]
    stored = [backend.namespace.encode(key) for key in keys]
    backend.set_many({key: os.urandom(size) for key in keys})
    assert len(backend.get_many(keys)) == 100 and all(raw.mget(stored))

    before = server.command_calls()
    backend.get_many(keys)
    after = server.command_calls()
    delta = {name: after.get(name, 0) - before.get(name, 0) for name in ("mget", "get")}

    samples = interleaved(
        {
            "get_many": (lambda: backend.get_many(keys), 20),
            "gets": (lambda: [backend.get(key) for key in keys], 1),
            "raw_mget": (lambda: raw.mget(stored), 20),
            "raw_gets": (lambda: [raw.get(key) for key in stored], 1),
        },
        rounds,
    )
    rows = [
        row(
            "`get_many(100)` vs 100 x `get`",
            samples,
            "get_many",
            "gets",
            speedup=True,
            goal=f">= {GET_MANY_GOAL:.0f}x faster",
            target=GET_MANY_GOAL,
        ),
        row(
            "ceiling: raw redis-py `MGET` vs 100 x `GET`",
            samples,
            "raw_mget",
            "raw_gets",
            speedup=True,
            goal="reference",
            target=None,
        ),
        row(
            "backend `get_many(100)` vs raw redis-py `MGET`",
            samples,
            "get_many",
            "raw_mget",
            speedup=False,
            goal="context",
            target=None,
        ),
    ]
    return rows, delta


def bench_overhead(backend: RedisBackend, raw: redis.Redis, size: int, rounds: int) -> list[Row]:
    value = os.urandom(size)
    stored = backend.namespace.encode("one")

    def ours() -> object:
        backend.set("one", value)
        return backend.get("one")

    def plain() -> object:
        raw.set(stored, value)
        return raw.get(stored)

    assert ours() == value and plain() == value
    samples = interleaved(
        {"ours": (ours, 200), "raw": (plain, 200), "raw_again": (plain, 200)}, rounds
    )
    return [
        row(
            "backend `set`+`get` vs raw redis-py `SET`+`GET`",
            samples,
            "ours",
            "raw",
            speedup=False,
            goal=f"<= {OVERHEAD_GOAL:.2f}x",
            target=OVERHEAD_GOAL,
        ),
        row(
            "A/A: raw redis-py vs itself (noise floor)",
            samples,
            "raw_again",
            "raw",
            speedup=False,
            goal="reference",
            target=None,
        ),
    ]


@dataclass
class RedisResult:
    """Both measurements, with what they ran on."""

    rows: list[Row]
    delta: dict[str, int]
    version: str
    rounds: int
    size: int


def measure(rounds: int = 41, size: int = 7 * 1024) -> RedisResult:
    """Run both measurements on a redis-server of our own."""
    with RedisServer() as server:
        backend = open_backend(server.url_for(prefix="bench:"))
        assert isinstance(backend, RedisBackend)
        raw = redis.Redis(host=server.host, port=server.port, db=0)  # redis-py as it comes
        version = raw.info("server")["redis_version"]
        gc.collect()
        gc.disable()  # a collection inside one variant's timing would be noise, not overhead
        try:
            many, delta = bench_get_many(server, backend, raw, size, rounds)
            overhead = bench_overhead(backend, raw, size, rounds)
        finally:
            gc.enable()
            backend.close()
            raw.close()
    return RedisResult([*many, *overhead], delta, str(version), rounds, size)


def render(result: RedisResult) -> str:
    """The Markdown section for a measurement."""
    lines = [
        "### Redis backend\n",
        f"redis-server {result.version}, redis-py {redis.__version__}, hiredis "
        f"{HIREDIS_AVAILABLE}, Python {sys.version.split()[0]}; values of {result.size} B; "
        f"{result.rounds} interleaved rounds; medians (ratio: median of per-round ratios, IQR "
        "beside it)\n",
        "| measurement | ours (µs/call) | baseline (µs/call) | ratio | IQR | goal | met |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for entry in result.rows:
        met = "" if entry.met is None else ("yes" if entry.met else "NO")
        low, high = entry.spread
        lines.append(
            f"| {entry.name} | {entry.ours_us:.1f} | {entry.baseline_us:.1f} | "
            f"{entry.ratio:.2f}x | {low:.2f}-{high:.2f} | {entry.goal} | {met} |"
        )
    delta = result.delta
    one_mget = delta == {"mget": 1, "get": 0}
    lines.append(
        f"\nOne `get_many(100)`: INFO commandstats delta mget={delta['mget']}, "
        f"get={delta['get']} ({'one MGET' if one_mget else 'NOT one MGET: a bug'})."
    )
    return "\n".join(lines) + "\n"


def report(rounds: int = 41, size: int = 7 * 1024) -> str:
    """Run both measurements on a redis-server of our own; the Markdown section."""
    return render(measure(rounds, size))


#: Our operations measured with callgrind.
CALLGRIND_OURS = ("get", "set", "get_versioned", "set_if")

#: Callgrind rows: our operation; the same command through the backend's own redis-py client
#: (its blocking pool, health checks, timeouts); the same through redis-py as it comes.
CALLGRIND_ROWS = (
    ("get", "client GET", "raw GET"),
    ("set", "client SET", "raw SET"),
    ("get_versioned", "client GET", "raw GET"),
    ("set_if", "client EVALSHA", "raw EVALSHA"),
)


class StandIn(redis.Redis):
    """A client that answers at once (no socket): what the backend adds around redis-py."""

    def __init__(self, value: bytes) -> None:  # no pool, no connection
        self.connection_pool = redis.ConnectionPool()
        self.value = value

    def get(self, name: object) -> bytes:
        return self.value

    def set(self, *args: object, **kwargs: object) -> bool:
        return True

    def evalsha(self, *args: object) -> int:
        return 1


def _one_operation(url: str, op: str, calls: int, size: int) -> None:
    """Run ``op`` ``calls`` times after a warm-up (the child process of ``--callgrind``)."""
    value = os.urandom(size)
    stand_in = op.startswith("stand-in ")
    if stand_in:
        op = op.removeprefix("stand-in ")
        backend = RedisBackend(StandIn(value), description="stand-in")
        raw: redis.Redis = backend.client
    else:
        opened = open_backend(url)
        assert isinstance(opened, RedisBackend)
        backend = opened
        raw = redis.Redis.from_url(url.split("?")[0])  # redis-py as it comes
    key = "cg"
    stored = backend.namespace.encode(key)
    backend.set(key, value)
    read = backend.get_versioned(key)
    assert read is not None
    token = read.token
    argv = cas_args(token, value, None)
    run: Callable[[], object] = {
        "get": lambda: backend.get(key),
        "set": lambda: backend.set(key, value),
        "get_versioned": lambda: backend.get_versioned(key),
        "set_if": lambda: backend.set_if(key, value, token),
        "client GET": lambda: backend.client.get(stored),
        "client SET": lambda: backend.client.set(stored, value),
        "client EVALSHA": lambda: backend.client.evalsha(CAS_SHA, 1, stored, *argv),
        "raw GET": lambda: raw.get(stored),
        "raw SET": lambda: raw.set(stored, value),
        "raw EVALSHA": lambda: raw.evalsha(CAS_SHA, 1, stored, *argv),
    }[op]
    for _ in range(50):  # warm-up: connections open, script loaded, caches filled
        assert run() is not None or op.endswith(("set", "SET"))
    gc.collect()
    gc.disable()
    for _ in range(calls):
        run()
    gc.enable()
    backend.close()
    raw.close()


def _instructions(url: str, op: str, calls: int, size: int, repeat: int = 1) -> float:
    """Instructions per call of ``op``: the median over ``repeat`` pairs of runs."""
    runs = [
        (_collected(url, op, calls, size) - _collected(url, op, 0, size)) / calls
        for _ in range(repeat)
    ]
    return statistics.median(runs)


def _collected(url: str, op: str, calls: int, size: int) -> int:
    """Instructions callgrind counted in a child running ``op`` ``calls`` times."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--one",
            op,
            "--url",
            url,
            "--calls",
            str(calls),
            "--size",
            str(size),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # the same dict layouts in every run
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    assert found is not None, done.stderr[-2000:]
    return int(found.group(1))


def callgrind_report(size: int = 7 * 1024, calls: int = 1000, repeat: int = 3) -> str:
    """Instructions per call of our operations and raw redis-py's (see the module doc, 3-4)."""
    with RedisServer() as server:
        url = server.url_for(prefix="bench:")
        ops = dict.fromkeys(name for row in CALLGRIND_ROWS for name in row)
        per_call = {op: _instructions(url, op, calls, size, repeat) for op in ops}
        stand_in = {
            op: _instructions(url, f"stand-in {op}", calls, size)  # no I/O: no noise
            for op in (*CALLGRIND_OURS, "client GET")
        }
    lines = [
        "### Redis backend: instructions per call (callgrind, this process only)\n",
        f"redis-py {redis.__version__}, hiredis {HIREDIS_AVAILABLE}, Python "
        f"{sys.version.split()[0]}; values of {size} B; {calls} calls after a warm-up, median "
        f"of {repeat} runs\n",
        "| operation | ours | through our client | raw redis-py | ours - client | ours / raw |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for ours, client, raw in CALLGRIND_ROWS:
        a, c, b = per_call[ours], per_call[client], per_call[raw]
        lines.append(
            f"| `{ours}` | {a:,.0f} | {c:,.0f} ({client}) | {b:,.0f} ({raw}) | {a - c:,.0f} | "
            f"{a / b:.3f}x |"
        )
    call = stand_in["client GET"]
    lines += [
        "\nOur code alone, over a stand-in client that answers at once (instructions per call "
        f"minus the stand-in's own {call:,.0f}):\n",
        "| operation | our code |",
        "|---|---:|",
        *(
            f"| `{op}` | {stand_in[op] - call:,.0f} |"
            for op in ("get", "set", "get_versioned", "set_if")
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=41, help="interleaved rounds per measurement")
    parser.add_argument("--size", type=int, default=7 * 1024, help="value size in bytes")
    parser.add_argument("--callgrind", action="store_true", help="instructions per call instead")
    parser.add_argument("--calls", type=int, default=1000, help="calls per callgrind run")
    parser.add_argument("--repeat", type=int, default=3, help="callgrind runs per measurement")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a callgrind child: this operation
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        _one_operation(args.url, args.one, args.calls, args.size)
        return 0
    if args.callgrind:
        print(callgrind_report(args.size, args.calls, args.repeat))
        return 0
    text = report(args.rounds, args.size)
    print(text)
    return 0 if "NOT one MGET" not in text else 1


if __name__ == "__main__":
    sys.exit(main())
