"""The PNG beside RESULTS.md: four panels of ratios measured in one run (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from benchmarks.harness import Goal, Ratio

__all__ = ["plot"]

_SHORTER = (
    ("codec medium: ", "codec: "),
    ("e2e ", ""),
    ("typed round trip", "ours"),
    ("our ours", "ours"),
    (" round trip", ""),
    ("(raw redis-py SET+GET + our codec)", "floor"),
    (" (never stored)", ""),
    ("legacy shape", "legacy"),
    ("vision shape", "vision"),
)


def _short(label: str) -> str:
    for long, short in _SHORTER:
        label = label.replace(long, short)
    return label if len(label) <= 48 else label[:47] + "…"


def plot(
    path: Path,
    *,
    title: str,
    goals: Sequence[Goal],
    codec: dict[str, list[Ratio]] | None,
    e2e: dict[str, dict[str, float]] | None,
    concurrency: list[tuple[int, float, float, float, float]] | None,
) -> None:
    """Write the figure.

    Args:
        goals: every goal; panel 1 shows how far each is on the right side of its limit.
        codec: per size, the codec ratios (panel 2).
        e2e: per size, contender -> time relative to ours (panel 3).
        concurrency: (processes, save p50, save p99, load p50, load p99) in seconds (panel 4).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    fig, axes = plt.subplots(2, 2, figsize=(15, 10.5))
    fig.suptitle(f"session-store benchmarks: every figure a ratio from one run\n{title}")

    ax = axes[0][0]
    names = [_short(g.name) for g in goals]
    values = [g.attainment for g in goals]
    colors = ["#2a9d8f" if g.met else "#e76f51" for g in goals]
    ax.barh(range(len(goals)), values, color=colors)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(range(len(goals)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_title("Goals: limit / measured (right of 1 = met, green)", fontsize=10)

    ax = axes[0][1]
    if codec:
        sizes = list(codec)
        rows = [r.name for r in codec[sizes[0]]]
        width = 0.8 / len(sizes)
        for offset, size in enumerate(sizes):
            ax.barh(
                [i + offset * width for i in range(len(rows))],
                [r.ratio for r in codec[size]],
                height=width,
                label=size,
            )
        ax.set_yticks([i + width for i in range(len(rows))], [_short(r) for r in rows], fontsize=7)
        ax.invert_yaxis()
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=8)
    ax.set_title("Codec round trips: time / time (log)", fontsize=10)

    ax = axes[1][0]
    if e2e:
        sizes = list(e2e)
        contenders = list(e2e[sizes[0]])
        width = 0.8 / len(contenders)
        for offset, name in enumerate(contenders):
            ax.bar(
                [i + offset * width for i in range(len(sizes))],
                [e2e[size][name] for size in sizes],
                width=width,
                label=name,
            )
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(sizes))], sizes)
        ax.axhline(1.0, color="black", linewidth=1)
        ax.legend(fontsize=7, loc="lower right")
    ax.set_title("End to end via redis-server: time relative to ours (ours = 1)", fontsize=10)

    ax = axes[1][1]
    if concurrency:
        procs = [row[0] for row in concurrency]
        for index, label in enumerate(("save p50", "save p99", "load p50", "load p99"), 1):
            ax.plot(procs, [row[index] * 1e3 for row in concurrency], marker="o", label=label)
        ax.set_xticks(procs)
        ax.set_xlabel("processes")
        ax.set_ylabel("ms")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    ax.set_title("Concurrency: latency per call, medium session", fontsize=10)

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
