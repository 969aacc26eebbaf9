"""Shared benchmark plumbing: interleaved rounds, medians, ratios, a Markdown table.

Every figure we publish is a ratio against a baseline measured in the same run, in interleaved
rounds (contender, baseline, contender, ...), so that a noisy shared machine slows both alike.
Absolute times are printed beside the ratios as context only.
"""

from __future__ import annotations

import cProfile
import gc
import io
import os
import platform
import pstats
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "Goal",
    "Ratio",
    "interleaved",
    "machine_line",
    "markdown_table",
    "measure_ratio",
    "no_gc",
    "profile_top",
    "ratio_of_rounds",
]


@dataclass(frozen=True)
class Ratio:
    """``contender / baseline`` as a median over rounds, with the absolute medians as context."""

    name: str
    contender_s: float
    baseline_s: float
    ratio: float
    goal: str
    met: bool


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_ratio(
    name: str,
    contender: Callable[[], object],
    baseline: Callable[[], object],
    *,
    rounds: int = 7,
    goal: str,
    met: Callable[[float], bool],
) -> Ratio:
    """Time both callables in interleaved rounds; the ratio of the medians."""
    contender()  # warm-up
    baseline()
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(rounds):
        ours.append(_time(contender))
        theirs.append(_time(baseline))
    c, b = statistics.median(ours), statistics.median(theirs)
    ratio = c / b
    return Ratio(name, c, b, ratio, goal, met(ratio))


def machine_line() -> str:
    """Where and when the figures were taken."""
    return (
        f"{platform.python_implementation()} {platform.python_version()} on "
        f"{platform.machine()} {platform.system()}, {_cpu()} ({os.cpu_count()} cores), "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}"
    )


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


@dataclass
class Goal:
    """One goal of the issue, as measured: the ratio, the target, and why it was missed."""

    name: str
    ratio: float
    limit: float
    higher_is_better: bool = False
    note: str = ""
    profile: str = field(default="", repr=False)

    @property
    def met(self) -> bool:
        """Whether the measured ratio is on the right side of the limit."""
        return self.ratio >= self.limit if self.higher_is_better else self.ratio <= self.limit

    @property
    def target(self) -> str:
        """The goal as text: ``<= 1.10`` or ``>= 20``."""
        return f"{'>=' if self.higher_is_better else '<='} {self.limit:g}"

    @property
    def attainment(self) -> float:
        """Above 1 when met: how far on the right side of the limit (for the plot)."""
        if self.higher_is_better:
            return self.ratio / self.limit
        return self.limit / self.ratio if self.ratio else float("inf")

    @property
    def missed_by(self) -> str:
        """How far from the goal, as text (empty when met)."""
        if self.met:
            return ""
        factor = self.limit / self.ratio if self.higher_is_better else self.ratio / self.limit
        return f"missed by {(factor - 1) * 100:.0f} % ({self.ratio:.2f}x against {self.target})"


def _per_call(fn: Callable[[], object], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat


def interleaved(
    variants: dict[str, tuple[Callable[[], object], int]], rounds: int
) -> dict[str, list[float]]:
    """Seconds per call of each variant ``(fn, calls per round)``, one sample per round, the
    order rotating each round so that drift in the machine's load hits every variant alike."""
    names = list(variants)
    for fn, _ in variants.values():  # warm-up
        fn()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            fn, repeat = variants[name]
            samples[name].append(_per_call(fn, repeat))
    return samples


def ratio_of_rounds(samples: dict[str, list[float]], contender: str, baseline: str) -> float:
    """The median of the per-round ratios ``contender / baseline``."""
    return statistics.median(
        a / b for a, b in zip(samples[contender], samples[baseline], strict=True)
    )


@contextmanager
def no_gc() -> Iterator[None]:
    """Collect once, then keep the cyclic collector out of the timings."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def profile_top(fn: Callable[[], object], calls: int = 50, lines: int = 14) -> str:
    """Where ``fn`` spends its time: cProfile over ``calls`` calls, top functions by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        fn()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(lines)
    text = out.getvalue()
    start = text.find("   ncalls")
    body = text[start:] if start >= 0 else text
    return f"cProfile of {calls} calls, by own time:\n" + body.rstrip()


def markdown_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
