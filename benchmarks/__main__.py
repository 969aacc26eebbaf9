"""Run the benchmark suite: ``python -m benchmarks [--quick]``.

One command, one run: the codec against the peers' serializers, end to end through a real
redis-server against cachelib, dogpile.cache, Flask-Session and the raw redis-py floor, the
memory tier at 1,000 vs 1,000,000 entries, bulk ``get_many``, 1/2/4 processes, and the
sections other modules add when they are present (``bench_update``, ``bench_near_cache``,
``bench_cluster``, each with ``report() -> str``). Every figure is a ratio measured in the same
run. It prints Markdown and writes ``benchmarks/RESULTS.md`` and ``benchmarks/results.png``
(machine and date in both). A goal that is missed is listed with how far off it is and a
profile of our side of it. Peers come from the ``bench`` extra: ``pip install -e .[bench]``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import (
    bench_codec,
    bench_concurrency,
    bench_e2e,
    bench_hot,
    bench_memory,
    bench_redis,
)
from benchmarks.harness import Goal, machine_line, markdown_table, profile_top
from benchmarks.plot import plot

#: Sections written by other modules, included when importable.
OPTIONAL = (
    "bench_update",
    "bench_near_cache",
    "bench_chain_save",
    "bench_cluster",
    "bench_web",
    "bench_aio_chain",
)
HERE = Path(__file__).parent


def _optional_sections() -> list[str]:
    sections = []
    for name in OPTIONAL:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ImportError as exc:
            if exc.name != f"benchmarks.{name}":
                sections.append(f"### {name}\n\nnot run: {exc}\n")
            continue
        report: Callable[[], str] | None = getattr(module, "report", None)
        if report is None:
            continue
        _say(f"{name} ...")
        try:
            sections.append(report())
        except Exception as exc:  # one broken section must not lose the others
            sections.append(f"### {name}\n\nfailed: {type(exc).__name__}: {exc}\n")
    return sections


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _memory_goal(result: dict[str, float]) -> Goal:
    goal = Goal("memory tier: slowdown 1k -> 1M entries / dict's", result["normalised"], 1.3)
    if not goal.met:
        from session_store import MemoryBackend

        n = 1_000_000
        backend = MemoryBackend(max_entries=n, max_bytes=None)
        backend.set_many({f"user:{i}": bench_memory.VALUE for i in range(n)})
        run = bench_memory._run_ours(backend, bench_memory._workload(n, seed=n)[:20_000])
        goal.profile = profile_top(run, calls=3)
    return goal


def _redis_goals(result: bench_redis.RedisResult) -> list[Goal]:
    many, ceiling, overhead = result.rows[0], result.rows[1], result.rows[3]
    one = "one MGET" if result.delta == {"mget": 1, "get": 0} else "NOT one MGET"
    return [
        Goal(
            "bulk: get_many(100) speed-up over 100 x get (Redis)",
            many.ratio,
            bench_redis.GET_MANY_GOAL,
            higher_is_better=True,
            note=f"{one}; this machine's ceiling, raw redis-py MGET vs 100 GET: "
            f"{ceiling.ratio:.1f}x",
        ),
        Goal(
            "Redis backend set+get / raw redis-py SET+GET",
            overhead.ratio,
            bench_redis.OVERHEAD_GOAL,
        ),
    ]


def _goal_table(goals: list[Goal]) -> str:
    rows = [
        (g.name, f"{g.ratio:.3f}x", g.target, "met" if g.met else "**MISSED**", g.note)
        for g in goals
    ]
    return markdown_table(rows, ("goal", "measured", "target", "verdict", "note"))


def _missed_notes(goals: list[Goal]) -> str:
    missed = [g for g in goals if not g.met]
    if not missed:
        return "### Missed goals\n\nNone.\n"
    parts = ["### Missed goals: by how much, and where the time goes\n"]
    for goal in missed:
        parts.append(f"**{goal.name}**: {goal.missed_by}. {goal.note}".rstrip())
        if goal.profile:
            parts.append(f"\n```\n{goal.profile}\n```\n")
    parts.append(WHY)
    return "\n".join(parts) + "\n"


#: The reading of the profiles, kept with the code that produces them.
WHY = """How to read them: in the codec profiles, the time is in orjson itself, the generated
(un)structure functions, the strict JSON check of the parts declared types cannot vouch for
(`jsonsafe._only_plain`: `marshal.dumps` in C, then a scan of its bytes for NaN and infinity),
which refuses what JSON cannot hold instead of `default=str`, and zstd (not written by a bare
`memory://` store with its near cache: see docs/performance.md); msgspec and a bare `orjson`
round trip do no typed conversion and no check. In the hot-path rows, a warm load of a mutable
schema costs a parse of the checked JSON body the near cache keeps (a fresh object per load:
the isolation the near cache guarantees; a frozen schema is shared without one). End to end,
the peers store pickle (cachelib, dogpile.cache) or msgpack (Flask-Session) without
compression or a check, and `pickle.loads` of a string-heavy dict costs far less than any JSON
parse; the row "ours, no zstd" shows what the compression stage alone costs on loopback, where
the smaller payload buys nothing back."""


README_START = "<!-- benchmark table: written by python -m benchmarks -->"
README_END = "<!-- end of benchmark table -->"


def update_readme(readme: Path, machine: str, table: str) -> bool:
    """Replace the goal table between the README's markers with this run's (the same table
    as RESULTS.md's). Returns whether the README had the markers."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    body = (
        f"{README_START}\n_{machine}; every figure a ratio from one run, details in "
        f"[benchmarks/RESULTS.md](benchmarks/RESULTS.md)._\n\n{table}\n"
    )
    readme.write_text(text[:start] + body + text[end:], encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the benchmark suite.")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--out", type=Path, default=HERE, help="where RESULTS.md and the PNG go")
    args = parser.parse_args(argv)
    scale = 0.34 if args.quick else 1.0
    started = time.perf_counter()
    machine = machine_line()
    goals: list[Goal] = []

    _say("codec ...")
    codec = bench_codec.measure_sizes(quick=args.quick)
    goals += bench_codec.goals(codec)
    _say("end to end through redis-server ...")
    e2e = bench_e2e.measure(scale=scale)
    goals += e2e.goals
    _say("memory tier ...")
    memory = bench_memory.measure(rounds=3 if args.quick else 5)
    goals.append(_memory_goal(memory))
    _say("bulk and overhead on Redis ...")
    redis_result = bench_redis.measure(rounds=15 if args.quick else 41)
    goals += _redis_goals(redis_result)
    _say("concurrency ...")
    levels = bench_concurrency.measure(ops=150 if args.quick else 400)
    _say("hot path, before and after ...")
    hot = bench_hot.measure(rounds=3 if args.quick else 7)
    goals += hot.goals
    optional = _optional_sections()

    sections = [
        f"_{machine}_\n",
        "### Goals\n",
        _goal_table(goals) + "\n",
        bench_codec.report_sizes(codec),
        bench_e2e.report(e2e),
        bench_memory.report(memory),
        bench_redis.render(redis_result),
        bench_concurrency.report(levels),
        bench_hot.report(hot),
        *optional,
        _missed_notes(goals),
        f"_Whole run: {time.perf_counter() - started:.0f} s; plot: `results.png`._\n",
    ]
    text = "\n".join(sections)
    print(text)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "RESULTS.md").write_text("# Benchmark results\n\n" + text, encoding="utf-8")
    if out.resolve() == HERE.resolve():
        update_readme(HERE.parent / "README.md", machine, _goal_table(goals))
    plot(
        out / "results.png",
        title=machine,
        goals=goals,
        codec=codec,
        e2e={
            entry.size: {name: entry.ratios[name] for name in (*bench_e2e.PEERS, bench_e2e.ZSTD)}
            | {"floor": 1 / entry.ratios["ours"]}
            for entry in e2e.sizes
        },
        concurrency=[
            (lv.processes, lv.save["p50"], lv.save["p99"], lv.load["p50"], lv.load["p99"])
            for lv in levels
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
