"""Run the benchmark suite: ``python -m benchmarks`` prints Markdown, writes benchmarks/RESULTS.md.

Every figure is a ratio against a baseline measured in the same run.
"""

from __future__ import annotations

import sys
from pathlib import Path

from benchmarks import bench_codec, bench_memory, bench_redis
from benchmarks.harness import machine_line


def main() -> int:
    sections = [
        f"_{machine_line()}_\n",
        bench_memory.report(bench_memory.measure()),
        bench_codec.report(bench_codec.measure()),
        bench_redis.report(),
    ]
    text = "\n".join(sections)
    print(text)
    Path(__file__).with_name("RESULTS.md").write_text("# Latest results\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
