"""Memory tier: does our per-operation cost grow with size? (issue 4's goal: ratio <= 1.3)

For N = 1,000 and N = 1,000,000 entries, the same seeded sequence of operations (80 % get,
20 % set of an existing key, keys drawn uniformly) runs against a ``MemoryBackend`` and against a
plain ``dict``. Bigger tables are slower for everyone (CPU caches); what we report is our
slowdown divided by the dict's slowdown on the same keys, so only overhead that grows with size
(a sort, a scan) would push it above 1.

Run: ``python -m benchmarks.bench_memory``.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

from benchmarks.harness import machine_line, markdown_table
from session_store import MemoryBackend

OPS = 200_000
VALUE = b"x" * 100


def _workload(n: int, seed: int) -> list[tuple[bool, str]]:
    rng = random.Random(seed)
    return [(rng.random() < 0.2, f"user:{rng.randrange(n)}") for _ in range(OPS)]


def _run_ours(backend: MemoryBackend, ops: list[tuple[bool, str]]) -> Callable[[], None]:
    get, set_ = backend.get, backend.set

    def run() -> None:
        for write, key in ops:
            if write:
                set_(key, VALUE)
            else:
                get(key)

    return run


def _run_dict(table: dict[str, bytes], ops: list[tuple[bool, str]]) -> Callable[[], None]:
    def run() -> None:
        for write, key in ops:
            if write:
                table[key] = VALUE
            else:
                table.get(key)

    return run


def _median_time(fn: Callable[[], None], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(rounds: int = 5, sizes: tuple[int, int] = (1_000, 1_000_000)) -> dict[str, float]:
    """Median seconds per run for ours and dict at both sizes, and the size-normalised ratio."""
    out: dict[str, float] = {}
    for n in sizes:
        keys = {f"user:{i}": VALUE for i in range(n)}
        backend = MemoryBackend(max_entries=n, max_bytes=None)
        backend.set_many(keys)
        ops = _workload(n, seed=n)
        ours, plain = _run_ours(backend, ops), _run_dict(dict(keys), ops)
        ours()
        plain()
        o_times, d_times = [], []
        for _ in range(rounds):  # interleaved: noise hits both
            o_times.append(_median_time(ours, 1))
            d_times.append(_median_time(plain, 1))
        out[f"ours_{n}"] = statistics.median(o_times)
        out[f"dict_{n}"] = statistics.median(d_times)
        del backend, keys
    small, big = sizes
    ours_growth = out[f"ours_{big}"] / out[f"ours_{small}"]
    dict_growth = out[f"dict_{big}"] / out[f"dict_{small}"]
    out["ours_growth"] = ours_growth
    out["dict_growth"] = dict_growth
    out["normalised"] = ours_growth / dict_growth
    return out


def report(result: dict[str, float]) -> str:
    """The Markdown section for this benchmark."""
    per_op = 1e9 / OPS
    rows = [
        (
            "MemoryBackend",
            f"{result['ours_1000'] * per_op:.0f} ns",
            f"{result['ours_1000000'] * per_op:.0f} ns",
            f"{result['ours_growth']:.2f}x",
        ),
        (
            "dict (baseline)",
            f"{result['dict_1000'] * per_op:.0f} ns",
            f"{result['dict_1000000'] * per_op:.0f} ns",
            f"{result['dict_growth']:.2f}x",
        ),
    ]
    table = markdown_table(rows, ("contender", "per op @1k", "per op @1M", "1M / 1k"))
    verdict = "met" if result["normalised"] <= 1.3 else "MISSED"
    return (
        "### Memory tier: cost at 1,000,000 vs 1,000 entries\n\n"
        f"{table}\n\n"
        f"**Our slowdown / dict's slowdown = {result['normalised']:.2f}** "
        f"(goal <= 1.3: {verdict}). {OPS:,} ops per run, 80 % get / 20 % set.\n"
    )


if __name__ == "__main__":
    print(f"_{machine_line()}_\n")
    print(report(measure()))
