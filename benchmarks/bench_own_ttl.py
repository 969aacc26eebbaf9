"""What recording a session's own TTL costs on the hot path: instructions per ``save`` + ``load``
of one small session through ``SessionStore`` over ``memory://`` and ``redis://``, with the
store's TTL (``save(key, s)``: stored as before, byte for byte) and with a TTL of its own
(``save(key, s, ttl=30)``: framed, see :mod:`session_store.ownttl`), with and without
``touch_on_load``.

    python -m benchmarks.bench_own_ttl [--calls 2000] [--repeat 3]

Each cell runs in a process of its own under ``valgrind --tool=callgrind`` twice, once with
``--calls`` rounds after a warm-up and once with the warm-up alone; the difference over the
calls is the cost of one round (this process only: redis-server's work is not counted). The
median of ``--repeat`` measurements is printed, as Markdown. Start it on the commit before and
the one after a change to compare them (the script itself does not depend on the change).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WARMUP = 200
SESSION: dict[str, object] = {
    "user_id": "u-1234",
    "csrf": "x" * 32,
    "cart": [1, 2, 3],
    "step": "reset",
}
CELLS = [
    (kind, ttl, touch)
    for kind in ("memory", "redis")
    for touch in (False, True)
    for ttl in (None, 30.0)
]


def _child(url: str, ttl: float | None, touch: bool, calls: int) -> None:
    """Warm up, then ``calls`` rounds of save + load (the measured process)."""
    from session_store import SessionStore

    with SessionStore(url, dict, touch_on_load=touch) as store:
        session = dict(SESSION)
        for i in range(WARMUP + calls):
            session["n"] = i
            store.save("bench", session, ttl=ttl)
            assert store.load("bench") is not None


def _instructions(url: str, ttl: float | None, touch: bool, calls: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "benchmarks.bench_own_ttl",
                "--child",
                url,
                "none" if ttl is None else str(ttl),
                "1" if touch else "0",
                str(calls),
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        found = re.search(rb"^(?:summary|totals): (\d+)", out.read_bytes(), re.M)
        assert found is not None
        return int(found.group(1))


def per_round(url: str, ttl: float | None, touch: bool, calls: int) -> float:
    """Instructions of one save + load: (warm-up + calls) minus warm-up, over calls."""
    return (_instructions(url, ttl, touch, calls) - _instructions(url, ttl, touch, 0)) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        url, ttl, touch, calls = args.child
        _child(url, None if ttl == "none" else float(ttl), touch == "1", int(calls))
        return 0
    from session_store_redis.testing.server import RedisServer

    server = RedisServer().start()
    try:
        urls = {"memory": "memory://", "redis": server.url_for(prefix="bench-own-ttl")}
        print("| backend | touch_on_load | ttl | instructions per save + load |")
        print("|---|---|---|---|")
        for kind, ttl, touch in CELLS:
            counts = [per_round(urls[kind], ttl, touch, args.calls) for _ in range(args.repeat)]
            shown = "store's" if ttl is None else f"own ({ttl:g} s)"
            print(f"| {kind} | {touch} | {shown} | {statistics.median(counts):,.0f} |", flush=True)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
