"""A save through the default chain against its tiers' own ``set``, split into client and
Redis cost, with the baseline measured both ways (issue 12's cost goal: at most 1.15x).

    python -m benchmarks.bench_chain_save [--rounds 9] [--calls 2000]

The session is the small (~7 KB JSON, ~2.6 KB after zstd) typed one of
:mod:`benchmarks.payloads`, cycling over 50 keys, on a redis-server this script starts.

**Two baselines, both shown.** A chain's near cache listens to Redis's invalidations of its
prefix (``CLIENT TRACKING ... BCAST PREFIX``). With that tracking on, *every* write of a key
under the prefix costs Redis an invalidation push to the listening process, whoever writes it:
a chain-less ``set`` of the same key, running in production beside the chains, pays it too.

* **untracked**: the bare tiers write under a prefix no stream listens to (what
  ``bench_near_cache`` compares with): the tiers' cost with no coherence anywhere;
* **tracked**: the bare Redis ``set`` writes under the chain's own tracked prefix (keys of its
  own, ``bare-...``), so Redis pushes each write's invalidation to this process's listener, as
  it would for any writer of that prefix. The goal is stated against the untracked baseline,
  as issue 12 has it; the tracked row says how much of what is left is the tracking itself.

**The ordered write, both ways.** The chain's arbiter write is an ordered write by arrival.
``staged`` (the default) sends the value with a plain ``SET`` of a staging key and runs a script
that only compares 16 bytes and ``RENAME``-s it (``session_store_redis.scripts``); ``one
script`` is the earlier text that takes the value into Lua. Both run here, interleaved (the
switch is ``session_store_redis.staged.STAGED_WRITES``).

Each variant runs in interleaved rounds, the order rotating; per variant the table gives the
median wall time per save, this process's CPU per save (every thread: the listener included),
redis-server's CPU per save (``/proc/<pid>/stat``) and Redis's own ``usec_per_call`` of the
commands the save sent (``INFO commandstats``; a script's or ``EXEC``'s time includes the
commands it runs). Each ratio is the median of the per-round ratios (both sides measured in
the same round). Prints Markdown.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from benchmarks.floor import FloorWriter
from benchmarks.harness import machine_line, markdown_table
from benchmarks.payloads import vision_session
from session_store import Codec, MemoryBackend, SessionBackend, TieredBackend, open_backend
from session_store_redis import staged
from session_store_redis.testing import RedisServer

GOAL = 1.15
#: The floor's variants (:mod:`benchmarks.floor`): the memory tier's ``set`` plus the cheapest
#: write to Redis there is (a plain ``SET``) or the cheapest ordered one, through the lean client.
FLOOR_RAW = "floor: memory set + raw SET (lean client)"
FLOOR_ONE = "floor: memory set + minimal ordered write, one EVALSHA (lean client)"
FLOOR_STAGED = "floor: memory set + minimal ordered write, staged MULTI (lean client)"
FLOOR_TRACKED = "floor: memory set + minimal ordered write, one EVALSHA, tracked"
KEYS = [f"user-{i}" for i in range(50)]
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    """One variant in one round, per save."""

    wall_us: float
    client_us: float
    server_us: float
    commands: dict[str, tuple[int, float]] = field(default_factory=dict)


@dataclass
class Variant:
    name: str
    run: Callable[[str], object]
    staged: bool = True
    samples: list[Sample] = field(default_factory=list)


def _server_cpu(pid: int) -> float:
    """Seconds redis-server's main thread (every command runs there) spent on a CPU, in
    nanoseconds' resolution (``/proc/<pid>/schedstat``; the tick-counted ``stat`` is 10 ms)."""
    try:
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as stat:
            return int(stat.read().split()[0]) / 1e9
    except OSError:  # pragma: no cover - a kernel without schedstats
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK


def _own_cpu() -> float:
    """Seconds this process (every thread) spent on a CPU, in microseconds' resolution."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _commands(admin: redis.Redis) -> dict[str, tuple[int, float]]:
    stats = admin.info("commandstats")
    found = {}
    for name, row in stats.items():
        command = name.removeprefix("cmdstat_")
        if command in ("config|resetstat", "info", "ping"):
            continue
        found[command] = (int(row["calls"]), float(row["usec_per_call"]))
    return found


def _wait_coherent(chain: SessionBackend) -> None:
    deadline = time.monotonic() + 10
    while not (isinstance(chain, TieredBackend) and chain.coherent):
        if time.monotonic() > deadline:
            raise RuntimeError("the invalidation stream did not connect")
        time.sleep(0.01)


def _one(variant: Variant, calls: int, admin: redis.Redis, pid: int) -> Sample:
    staged.STAGED_WRITES = variant.staged
    run = variant.run
    keys = (KEYS * (calls // len(KEYS) + 1))[:calls]
    for key in KEYS:  # warm (and this variant's script loaded) outside the count
        run(key)
    time.sleep(0.01)  # the listener's messages of the warm-up
    admin.config_resetstat()
    server, own = _server_cpu(pid), _own_cpu()
    started = time.perf_counter()
    for key in keys:
        run(key)
    wall = time.perf_counter() - started
    time.sleep(0.01)  # the invalidations of the last saves reach the listener
    server, own = _server_cpu(pid) - server, _own_cpu() - own
    return Sample(wall / calls * 1e6, own / calls * 1e6, server / calls * 1e6, _commands(admin))


def measure(rounds: int = 9, calls: int = 2000) -> tuple[dict[str, Variant], str]:
    """Every variant's samples, and the payload's size (a note)."""
    codec = Codec(encryption=None)
    payload = codec.encode("user-0", vision_session("small"))
    with RedisServer() as server, tempfile.TemporaryDirectory() as scratch:
        assert server.pid is not None
        admin = server.client()
        two_url = server.url_for(prefix="bench-two:")
        three_url = server.url_for(prefix="bench-three:")
        two = open_backend(f"memory://?max_entries=1000 | {two_url}")
        three = open_backend(
            f"memory://?max_entries=1000 | {three_url} | diskcache://{Path(scratch) / 'chain'}"
        )
        memory = MemoryBackend(max_entries=1000)
        untracked = open_backend(server.url_for(prefix="bench-bare:"))
        # the chains' own prefixes (their keys begin "bare-"): tracked by the chains' streams
        tracked_two = open_backend(two_url)
        tracked_three = open_backend(three_url)
        disk = open_backend(f"diskcache://{Path(scratch) / 'bare'}")
        floor = FloorWriter(server.client(), "bench-floor:")  # untracked, as the goal's base
        # under the chain's tracked prefix (keys "floor-..."): pays the invalidation push and
        # the listener's read of it, as any write beside a coherent near cache does
        tracked_floor = FloorWriter(server.client(), "bench-two:floor-")
        opened = (two, three, untracked, tracked_two, tracked_three, disk)
        try:
            _wait_coherent(two)
            _wait_coherent(three)

            def bare(
                redis_tier: SessionBackend, with_disk: bool, tracked: bool = False
            ) -> Callable[[str], None]:
                def run(key: str) -> None:
                    if with_disk:
                        disk.set(key, payload, 3600)
                    redis_tier.set(key, payload, 3600)
                    memory.set(key, payload, 3600)

                def run_tracked(key: str) -> None:
                    run("bare-" + key)  # not the chain's keys: its near cache never holds them

                return run_tracked if tracked else run

            def floored(write: Callable[[str, bytes, int], None]) -> Callable[[str], None]:
                def run(key: str) -> None:
                    write(key, payload, 3_600_000)
                    memory.set(key, payload, 3600)

                return run

            variants = [
                Variant("save, memory | redis", lambda key: two.set(key, payload, 3600)),
                Variant(
                    "save, memory | redis (one-script ordered write)",
                    lambda key: two.set(key, payload, 3600),
                    staged=False,
                ),
                Variant("bare memory + redis set, untracked", bare(untracked, False)),
                Variant("bare memory + redis set, tracked", bare(tracked_two, False, tracked=True)),
                Variant(
                    "save, memory | redis | diskcache", lambda key: three.set(key, payload, 3600)
                ),
                Variant(
                    "save, memory | redis | diskcache (one-script ordered write)",
                    lambda key: three.set(key, payload, 3600),
                    staged=False,
                ),
                Variant("bare memory + redis + diskcache set, untracked", bare(untracked, True)),
                Variant(
                    "bare memory + redis + diskcache set, tracked",
                    bare(tracked_three, True, tracked=True),
                ),
                Variant(FLOOR_RAW, floored(floor.set)),
                Variant(FLOOR_ONE, floored(floor.set_if_newer)),
                Variant(FLOOR_STAGED, floored(floor.set_if_newer_staged)),
                Variant(FLOOR_TRACKED, floored(tracked_floor.set_if_newer)),
            ]
            for index in range(rounds):
                shift = index % len(variants)
                for variant in variants[shift:] + variants[:shift]:
                    variant.samples.append(_one(variant, calls, admin, server.pid))
        finally:
            staged.STAGED_WRITES = True
            for backend in opened:
                backend.close()
            floor.close()
            tracked_floor.close()
            admin.close()
    return {variant.name: variant for variant in variants}, f"{len(payload):,} bytes encoded"


def _paired(a: Variant, b: Variant, what: str = "wall_us") -> float:
    """The median of the per-round ratios of ``what`` (``"cpu_us"``: client plus server)."""

    def of(sample: Sample) -> float:
        if what == "cpu_us":
            return sample.client_us + sample.server_us
        return float(getattr(sample, what))

    return statistics.median(
        of(x) / of(y) for x, y in zip(a.samples, b.samples, strict=True) if of(y) > 0
    )


def _median(variant: Variant, what: str) -> float:
    return statistics.median(float(getattr(sample, what)) for sample in variant.samples)


def _redis_line(variant: Variant) -> str:
    last = variant.samples[len(variant.samples) // 2].commands
    calls = max((count for count, _ in last.values()), default=1)
    shown = [f"{name} {usec:.2f}" for name, (count, usec) in sorted(last.items()) if count]
    return ", ".join(shown) + f" (per call; {calls:,} calls)"


def report(rounds: int = 9, calls: int = 2000) -> str:
    """Measure, then the Markdown section."""
    variants, size = measure(rounds, calls)
    rows = [
        [
            name.replace("|", "\\|"),
            f"{_median(v, 'wall_us'):.1f}",
            f"{_median(v, 'client_us'):.1f}",
            f"{_median(v, 'server_us'):.1f}",
            _redis_line(v),
        ]
        for name, v in variants.items()
    ]
    ratios = []
    for tiers, bare_names in (
        ("memory | redis", "bare memory + redis set"),
        ("memory | redis | diskcache", "bare memory + redis + diskcache set"),
    ):
        for suffix in ("", " (one-script ordered write)"):
            chain = variants[f"save, {tiers}{suffix}"]
            for baseline in ("untracked", "tracked"):
                base = variants[f"{bare_names}, {baseline}"]
                wall = _paired(chain, base)
                met = "yes" if wall <= GOAL else "**no**"
                ratios.append(
                    [
                        f"save, {tiers}{suffix} / bare tiers' set, {baseline}".replace("|", "\\|"),
                        f"{wall:.2f}x",
                        f"{_paired(chain, base, 'client_us'):.2f}x",
                        f"{_paired(chain, base, 'server_us'):.2f}x",
                        f"{_paired(chain, base, 'cpu_us'):.2f}x",
                        f"<= {GOAL:g}x" if baseline == "untracked" and not suffix else "context",
                        met if baseline == "untracked" and not suffix else "",
                    ]
                )
        staged, one = (
            variants[f"save, {tiers}"],
            variants[f"save, {tiers} (one-script ordered write)"],
        )
        ratios.append(
            [
                f"save, {tiers}: staged / one-script ordered write".replace("|", "\\|"),
                f"{_paired(staged, one):.2f}x",
                f"{_paired(staged, one, 'client_us'):.2f}x",
                f"{_paired(staged, one, 'server_us'):.2f}x",
                f"{_paired(staged, one, 'cpu_us'):.2f}x",
                "context",
                "",
            ]
        )
    ratios += _floor_ratios(variants)
    return "\n".join(
        [
            "## A save through the chain against its tiers' own `set`: client and Redis cost",
            "",
            f"_{machine_line()}; {calls:,} saves per round, medians of {rounds} interleaved "
            f"rounds; payload {size}_",
            "",
            markdown_table(
                rows,
                ["variant", "wall µs/save", "client CPU µs", "redis-server CPU µs", "Redis usec"],
            ),
            "",
            markdown_table(
                ratios,
                [
                    "ratio (median of paired rounds)",
                    "wall",
                    "client CPU",
                    "redis CPU",
                    "client + redis CPU",
                    "goal (wall)",
                    "met",
                ],
            ),
            "",
            "- *tracked*: the bare Redis `set` writes under the chain's tracked prefix, so it pays "
            "the invalidation push a chain-less writer pays beside chains in production; "
            "*untracked*: under a prefix no stream tracks (issue 12's baseline).",
            "- client CPU: this process, every thread (the chain's invalidation listener "
            "included, `getrusage`); redis-server CPU: its main thread's time on a CPU "
            "(`/proc/<pid>/schedstat`). On a loaded machine the CPU ratios are the steadier "
            "figure: wall time also counts waiting for a core.",
            "- *floor* (`benchmarks/floor.py`): the cheapest write to Redis 7.0 that keeps issue "
            "12's rule (never replace a newer copy with an older one), with nothing of ours "
            "around it: a script that compares the stored value's first 16 bytes "
            "(`GETRANGE 0 15`) with the new head as one Lua string comparison and `SET`s the "
            "value with `PX` (one `EVALSHA`), or the same check `RENAME`-ing a staging key "
            "`SET` in the same `MULTI`/`EXEC`; sent by the lean client (hiredis' reader, "
            "commands packed by `hiredis.pack_command`), plus the memory tier's `set`. Redis "
            "7.0 has no native set-if-newer (`SET ... IFEQ`, Redis 8.4, compares the whole "
            "value), so no design that keeps the rule writes for less: when *floor / bare "
            "tiers' set* is above 1.15x, issue 12's goal is out of reach on this Redis, and "
            "*save / floor* is what is ours above it. *tracked*: the floor's writes under the "
            "chain's own prefix, so Redis pushes each one's invalidation to the chain's "
            "listener, as the coherent near cache (on by default, issue 12) makes it do for "
            "every write: the floor of the default chain.",
            "",
        ]
    )


def _floor_ratios(variants: dict[str, Variant]) -> list[list[str]]:
    """The floor's rows (context): each floor against the goal's baseline and the raw ``SET``,
    and the chain's save against the cheaper floor of this run."""
    base = variants["bare memory + redis set, untracked"]
    raw, one, staged = variants[FLOOR_RAW], variants[FLOOR_ONE], variants[FLOOR_STAGED]
    cheaper = min((one, staged), key=lambda v: _median(v, "wall_us"))
    pairs = (
        (f"{FLOOR_ONE} / bare tiers' set, untracked", one, base),
        (f"{FLOOR_STAGED} / bare tiers' set, untracked", staged, base),
        (f"{FLOOR_TRACKED} / bare tiers' set, untracked", variants[FLOOR_TRACKED], base),
        (f"{FLOOR_RAW} / bare tiers' set, untracked", raw, base),
        ("floor: one EVALSHA / raw SET (the ordered write's own price)", one, raw),
        ("floor: staged MULTI / raw SET (the ordered write's own price)", staged, raw),
        (
            f"save, memory | redis / the cheaper floor ({cheaper.name.split(', ')[-1]})",
            variants["save, memory | redis"],
            cheaper,
        ),
        (
            "save, memory | redis / the tracked floor (what is ours above it)",
            variants["save, memory | redis"],
            variants[FLOOR_TRACKED],
        ),
    )
    return [
        [
            name.replace("|", "\\|"),
            f"{_paired(a, b):.2f}x",
            f"{_paired(a, b, 'client_us'):.2f}x",
            f"{_paired(a, b, 'server_us'):.2f}x",
            f"{_paired(a, b, 'cpu_us'):.2f}x",
            "context",
            "",
        ]
        for name, a, b in pairs
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds")
    parser.add_argument("--calls", type=int, default=2000, help="saves per variant per round")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(report(args.rounds, args.calls))
    print(f"_took {time.perf_counter() - started:.1f} s_")
    return 0


if __name__ == "__main__":
    sys.exit(main())
