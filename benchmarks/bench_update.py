"""Throughput of 4-process ``update`` on Redis, as a ratio to plain ``save`` (goal: >= 80 %, issue
17's acceptance; it was 50 % before).

    python -m benchmarks.bench_update [--rounds 5] [--seconds 0.5] [--processes 4]

Four worker processes (``multiprocessing`` with *spawn*, each with its own ``SessionStore`` on a
redis-server this script starts) run, in turns, for a fixed time each:

* ``save``: ``save(own key, session)``, the baseline: one ``SET`` per call;
* ``update, own session``: ``update(own key, +1)``, what a web app does (each user has their
  session): the function on an object rebuilt from the near cache's kept body (the bytes are
  the ones this process wrote: no read, no stage undone), encode, and the compare-and-set
  script against exactly those bytes (one round trip; the script compares them whole with what
  Redis holds, see ``session_store_redis.scripts``);
* ``update, one shared session``: all four ``update`` the same key, the worst case: most attempts
  lose the race and retry (with backoff), and only the winners count;
* ``update, own session, one-script``: as ``update, own session`` with the compare-and-set's
  new value passed through Lua as the previous releases did (``STAGED_WRITES`` off in the
  workers; values under ``staged.STAGE_CAS_FROM`` always go this way), against the staged
  default (``MULTI``, ``SET`` of a staging key, a script that compares and ``RENAME``-s:
  ``session_store_redis.scripts``): the before/after of that change in one run.

Per workload it also gives Redis's side: redis-server's CPU per call (``/proc/<pid>/stat``) and
the ``usec_per_call`` of the commands sent (``INFO commandstats``, reset before each workload).

The session is the small (~7 KB) legacy-shaped one from :mod:`benchmarks.payloads`, compressed
(zstd), not encrypted. The three workloads run in interleaved rounds, their order rotating, and
each ratio is the median of the per-round ratios, so drift in the machine's load hits them alike.
Each ratio is completed ``update`` calls per second over ``save`` calls per second; the goal
applies to the ``own session`` row. Prints Markdown.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from typing import Any

import redis

from benchmarks.floor import FloorWriter
from benchmarks.payloads import legacy_session
from session_store import Codec, SessionStore
from session_store_redis import staged
from session_store_redis.testing import RedisServer

GOAL = 0.8
WORKLOADS = (
    "save",
    "update, own session",
    "update, one shared session",
    "update, own session, one-script",
    # the floor (benchmarks/floor.py): the lean client, nothing of ours around it
    "floor: encode + raw SET",
    "floor: encode + minimal CAS, one EVALSHA",
    "floor: encode + minimal CAS, staged MULTI",
    "floor: raw SET of the bytes",
    "floor: minimal CAS of the bytes, one EVALSHA",
)
#: (floor workload, its baseline): the floor's ratios (context).
FLOOR_PAIRS = (
    (WORKLOADS[5], WORKLOADS[0]),
    (WORKLOADS[6], WORKLOADS[0]),
    (WORKLOADS[5], WORKLOADS[4]),
    (WORKLOADS[6], WORKLOADS[4]),
    (WORKLOADS[8], WORKLOADS[7]),
    (WORKLOADS[1], WORKLOADS[6]),
)
_TICK = os.sysconf("SC_CLK_TCK")
_NOT_UPDATES = (WORKLOADS[0], *WORKLOADS[4:])  # no counter to check


@dataclass
class Sample:
    """One workload in one round: completed calls per second (all processes), and retries."""

    ops_per_s: float
    retries: int
    server_us: float = 0.0  # redis-server CPU per completed call
    commands: str = ""  # INFO commandstats: usec_per_call of what was sent
    lost: int = 0  # completed updates the stored counters do not show (must be 0)


def _worker(url: str, index: int, barrier: Barrier, inbox: Connection) -> None:
    """Run the workloads the parent names, each for the seconds it says, after the barrier."""
    store: SessionStore[dict[str, Any]] = SessionStore(
        url, dict, codec=Codec(encryption=None), access_interval=None, update_timeout=60.0
    )
    session = legacy_session("small", seed=index)
    codec = Codec(encryption=None)
    floor = FloorWriter(redis.Redis.from_url(url.split("?")[0]), "bench-floor:")
    floor_write = {
        WORKLOADS[4]: floor.set,
        WORKLOADS[5]: floor.cas,
        WORKLOADS[6]: floor.cas_staged,
        WORKLOADS[7]: floor.set,
        WORKLOADS[8]: floor.cas,
    }
    calls = 0

    def bump(current: dict[str, Any] | None) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        data = dict(current or session)
        data["n"] = data.get("n", 0) + 1
        return data

    while True:
        command = inbox.recv()
        if command is None:
            break
        workload, seconds = command
        staged.STAGED_WRITES = workload != WORKLOADS[3]
        key = "shared" if workload == WORKLOADS[2] else f"own-{index}"
        if workload in floor_write:
            write = floor_write[workload]
            encode = "encode" in workload
            _floor(floor, write, encode, key, seconds, (barrier, inbox), codec, session)
            continue
        store.save(key, session)  # warm: connection open, script loaded, key present
        store.update(key, bump)
        calls = done = 0
        barrier.wait()  # every warm-up written: nothing writes until the next wait
        start = _count(store.load(key))
        barrier.wait()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            if workload == WORKLOADS[0]:
                store.save(key, session)
            else:
                store.update(key, bump)
            done += 1
        inbox.send((done, max(0, calls - done), key, start))
    store.close()
    floor.close()


def _floor(
    floor: FloorWriter,
    write: Callable[[str, bytes, int], None],
    encode: bool,
    key: str,
    seconds: float,
    talk: tuple[Barrier, Connection],
    codec: Codec,
    session: dict[str, Any],
) -> None:
    """One floor workload in a worker: the session encoded anew every call (as ``save`` and
    ``update`` must) if ``encode``, else the same bytes every call."""
    barrier, inbox = talk
    payload = codec.encode(key, session)
    floor.set(key, payload, 3_600_000)  # warm, and the head a compare-and-set expects
    write(key, payload, 3_600_000)
    done = 0
    barrier.wait()
    barrier.wait()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        if encode:
            payload = codec.encode(key, session)
        write(key, payload, 3_600_000)
        done += 1
    inbox.send((done, 0, key, 0))


def _count(data: dict[str, Any] | None) -> int:
    """The counter ``update`` increments in a stored session."""
    return int((data or {}).get("n", 0))


def measure(
    rounds: int = 5, seconds: float = 0.5, processes: int = 4
) -> tuple[dict[str, list[Sample]], str]:
    """The samples of every workload, round by round, and the redis-server version."""
    context = multiprocessing.get_context("spawn")
    samples: dict[str, list[Sample]] = {name: [] for name in WORKLOADS}
    with RedisServer() as server:
        client = server.client()
        version = str(client.info("server")["redis_version"])
        pid = server.pid
        assert pid is not None
        url = server.url_for(prefix="bench-update:")
        reader: SessionStore[dict[str, Any]] = SessionStore(
            url, dict, codec=Codec(encryption=None), decoded_cache_bytes=0
        )
        barrier = context.Barrier(processes)
        pipes = [context.Pipe() for _ in range(processes)]
        workers = [
            context.Process(target=_worker, args=(url, index, barrier, pipes[index][1]))
            for index in range(processes)
        ]
        for process in workers:
            process.start()
        try:
            for index in range(rounds):
                shift = index % len(WORKLOADS)
                for workload in WORKLOADS[shift:] + WORKLOADS[:shift]:
                    for parent, _ in pipes:
                        parent.send((workload, seconds))
                    client.config_resetstat()  # (the workers' warm-up may land after: few)
                    cpu = _server_cpu(pid)
                    results = [parent.recv() for parent, _ in pipes]
                    cpu = _server_cpu(pid) - cpu
                    done = sum(result[0] for result in results)
                    samples[workload].append(
                        Sample(
                            done / seconds,
                            sum(result[1] for result in results),
                            cpu / max(done, 1) * 1e6,
                            _commands(client),
                            0 if workload in _NOT_UPDATES else _lost(reader, results),
                        )
                    )
        finally:
            reader.close()
            client.close()
            for parent, _ in pipes:
                parent.send(None)
            for process in workers:
                process.join(30)
                if process.is_alive():
                    process.kill()
                    process.join(10)
    return samples, version


def _lost(reader: SessionStore[dict[str, Any]], results: list[Any]) -> int:
    """Updates the workers completed that the stored counters do not show: per key, the
    counter read before the start plus every completed update, minus the counter stored now."""
    expected: dict[str, int] = {}
    for done, _, key, start in results:
        expected[key] = expected.get(key, start) + done
    return sum(count - _count(reader.load(key)) for key, count in expected.items())


def _server_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _commands(client: Any) -> str:
    stats = client.info("commandstats")
    shown = []
    for name, row in sorted(stats.items()):
        command = name.removeprefix("cmdstat_")
        if command not in ("config|resetstat", "info", "ping") and int(row["calls"]) > 100:
            shown.append(f"{command} {float(row['usec_per_call']):.1f}")
    return ", ".join(shown)


def report(rounds: int = 5, seconds: float = 0.5, processes: int = 4) -> str:
    """Measure, then the Markdown section."""
    samples, version = measure(rounds, seconds, processes)
    base = samples[WORKLOADS[0]]
    lines = [
        f"### `update` vs `save`: {processes} processes on one redis-server\n",
        f"redis-server {version}, Python {sys.version.split()[0]}, {processes} processes "
        f"(spawn), small (~7 KB) session, zstd, no encryption; {rounds} interleaved rounds of "
        f"{seconds:g} s per workload; ratio: median of the per-round ratios\n",
        "| workload | calls/s (all processes) | retries/s | ratio to `save` | goal | met "
        "| lost updates | redis-server CPU µs/call | Redis usec_per_call |",
        "|---|---:|---:|---:|---|---|---:|---:|---|",
    ]
    for workload in WORKLOADS:
        mine = samples[workload]
        ratio = statistics.median(
            sample.ops_per_s / baseline.ops_per_s
            for sample, baseline in zip(mine, base, strict=True)
        )
        ops = statistics.median(sample.ops_per_s for sample in mine)
        retries = statistics.median(sample.retries for sample in mine) / seconds
        goal, met = "", ""
        if workload == WORKLOADS[1]:
            goal = f">= {GOAL:.0%}"
            met = "yes" if ratio >= GOAL else "NO"
        shown = "100% (baseline)" if workload == WORKLOADS[0] else f"{ratio:.0%}"
        server = statistics.median(sample.server_us for sample in mine)
        commands = max((sample.commands for sample in mine), key=len)
        lost = "" if workload in _NOT_UPDATES else str(sum(sample.lost for sample in mine))
        lines.append(
            f"| {workload} | {ops:,.0f} | {retries:,.0f} | {shown} | {goal} | {met} | {lost} "
            f"| {server:.1f} | {commands} |"
        )
    lines += _floor_lines(samples)
    lines.append(
        "\nAn `update` of its own session is one round trip (the compare-and-set, against the "
        "bytes this process last wrote) plus a rebuild from the near cache (no stage undone) "
        "and an encode; a `save` is one `SET` and an encode. Staged (the default from 1 KiB, "
        "`staged.STAGE_CAS_FROM`; smaller values go through one script), the new "
        "value travels in a plain `SET` of a staging key and the script `RENAME`s it over the "
        "key, so only what the check needs passes through Lua: for a bare session the current "
        "value (`GET`) and its SHA-1 or the expected bytes (session_store_redis.scripts). The "
        "one-script row passes the new value through Lua too, as earlier releases did. On one "
        "shared session the losers of each race retry after a jittered backoff, so completed "
        "updates per second drop: that row is the price of never losing one."
    )
    return "\n".join(lines) + "\n"


def _floor_lines(samples: dict[str, list[Sample]]) -> list[str]:
    """The floor's ratios (context), and what they prove."""
    lines = [
        "\n| throughput ratio (median of per-round ratios) | calls/s | redis-server CPU/call |",
        "|---|---:|---:|",
    ]
    for contender, baseline in FLOOR_PAIRS:
        mine, base = samples[contender], samples[baseline]
        ops = statistics.median(a.ops_per_s / b.ops_per_s for a, b in zip(mine, base, strict=True))
        cpu = statistics.median(
            a.server_us / b.server_us for a, b in zip(mine, base, strict=True) if b.server_us
        )
        lines.append(f"| {contender} / {baseline} | {ops:.0%} | {cpu:.2f}x |")
    lines.append(
        "\n*floor* (`benchmarks/floor.py`): each worker writes its own key through the lean "
        "client with nothing of ours around it: a plain `SET`, or the cheapest compare-and-set "
        "Redis 7.0 allows (no native one: `SET ... IFEQ`, Redis 8.4, compares the whole "
        "value): a script that compares the stored value's first 16 bytes (`GETRANGE 0 15`, a "
        "short version) with the expected ones and `SET`s with `PX` (one `EVALSHA`), or "
        "`RENAME`s a staging key `SET` in the same `MULTI`/`EXEC`. *encode*: the session is "
        "encoded by the same codec every call, as `save` and `update` must; *the bytes*: "
        "encoded once. An `update` cannot do less than encode + compare-and-set, so when "
        "*floor: encode + minimal CAS / save* is below 80 %, issue 17's goal is out of reach "
        "on this Redis and this machine whatever the design; *update / floor CAS* is ours."
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--seconds", type=float, default=0.5, help="seconds per workload")
    parser.add_argument("--processes", type=int, default=4, help="worker processes")
    args = parser.parse_args(argv)
    print(report(args.rounds, args.seconds, args.processes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
