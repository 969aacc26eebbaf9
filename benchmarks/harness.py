"""Shared benchmark plumbing: interleaved rounds, medians, ratios, a Markdown table.

Every figure we publish is a ratio against a baseline measured in the same run, in interleaved
rounds (contender, baseline, contender, ...), so that a noisy shared machine slows both alike.
Absolute times are printed beside the ratios as context only.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["Ratio", "machine_line", "markdown_table", "measure_ratio"]


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
        f"{platform.machine()} {platform.system()}, "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}"
    )


def markdown_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
