"""What ``import session_store`` costs: ``python -m benchmarks.bench_import [--runs N]``.

Each case is a fresh interpreter, run alternately with a bare ``python -c pass`` in the same run
so that a busy machine slows both alike (both print their loaded modules the same way).
Reported per case: the median wall time, the time above bare Python, the ratio to bare Python,
the cumulative import time Python itself reports (``-X importtime``, top-level entries from the
first ``session_store`` one on), the modules loaded, and whether the codec's optional
dependencies or the attrs schema were among them. Nothing here is asserted: the test suite
checks which modules load, this file records how long it takes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from benchmarks.harness import machine_line

#: Case name -> code run in a fresh interpreter (the last line prints the loaded modules).
CASES = {
    "import session_store": "import session_store",
    "protocol + registry + memory": (
        "from session_store import MemoryBackend, SessionBackend, open_backend\n"
        "open_backend('memory://').set('k', b'v')"
    ),
    "SessionStore (codec, schema)": "from session_store import SessionStore",
    "import session_store.aio": "import session_store.aio",
    "async protocol + registry + memory": (
        "import asyncio\n"
        "from session_store.aio import AsyncSessionBackend, open_async_backend\n"
        "asyncio.run(open_async_backend('memory://').set('k', b'v'))"
    ),
    "AsyncSessionStore (codec, schema)": "from session_store.aio import AsyncSessionStore",
}
HEAVY = ("cryptography", "zstandard", "orjson", "session_store.schema", "attrs", "cattrs")
_SHOW = "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"


def _wall(code: str) -> tuple[float, list[str]]:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code + _SHOW], check=True, capture_output=True, text=True
    ).stdout
    return (time.perf_counter() - started) * 1000, json.loads(out.splitlines()[-1])


def _self_reported_ms(code: str) -> float:
    """Python's own cumulative import time, in ms, of what ``code`` imports: the top-level
    entries of ``-X importtime`` from the first ``session_store`` one on (startup excluded)."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], check=True, capture_output=True, text=True
    ).stderr
    total, started = 0, False
    for line in err.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3:
            continue
        name = parts[2]
        started = started or name.strip().startswith("session_store")
        depth = len(name) - len(name.lstrip())
        if started and depth == 1 and parts[1].strip().isdigit():
            total += int(parts[1])
    return total / 1000


def measure(runs: int = 15) -> list[dict[str, object]]:
    """Median timings of every case and of bare Python, interleaved in one run."""
    rows: list[dict[str, object]] = []
    for name, code in CASES.items():
        bare, wall = [], []
        modules: list[str] = []
        for _ in range(runs):
            bare.append(_wall("pass")[0])  # bare python, printing its modules the same way
            elapsed, modules = _wall(code)
            wall.append(elapsed)
        b, w = statistics.median(bare), statistics.median(wall)
        loaded = [m for m in modules if m.startswith("session_store")]
        rows.append(
            {
                "case": name,
                "bare_ms": round(b, 1),
                "ms": round(w, 1),
                "above_bare_ms": round(w - b, 1),
                "ratio": round(w / b, 2),
                "importtime_ms": round(
                    statistics.median(_self_reported_ms(code) for _ in range(5)), 1
                ),
                "modules": len(modules),
                "session_store_modules": len(loaded),
                "heavy": [h for h in HEAVY if h in modules],
            }
        )
    return rows


def report(runs: int = 15) -> str:
    """The measurements as a Markdown table."""
    lines = [
        "| case | bare python ms | ms | above bare ms | ratio | -X importtime ms | modules "
        "| session_store modules | heavy modules loaded |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines.insert(0, f"{machine_line()}, median of {runs} runs\n")
    for r in measure(runs):
        heavy = ", ".join(r["heavy"]) or "none"  # type: ignore[arg-type]
        lines.append(
            f"| {r['case']} | {r['bare_ms']} | {r['ms']} | {r['above_bare_ms']} | {r['ratio']} "
            f"| {r['importtime_ms']} | {r['modules']} | {r['session_store_modules']} | {heavy} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    print(report(parser.parse_args().runs))


if __name__ == "__main__":
    main()
