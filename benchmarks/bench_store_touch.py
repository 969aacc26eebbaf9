"""A store's sliding expiry over a single Redis: ``touch(key)`` (keep the session's own TTL) and
``touch(key, ttl)`` (every web integration's read-only request), this tree against an older one
in the same run, on the same redis-server.

``python -m benchmarks.bench_store_touch --against OLD_TREE [--calls N] [--sizes 256,4096]``

1. **Redis's own time per touch** (``INFO commandstats``: the sum of every command's ``usec``,
   so a script's inner commands count twice, in the script's row and their own) and the
   commands sent per touch (round trips), for sessions saved with the store's TTL (stored
   unframed: the case where the older ``touch(key)`` sent the whole payload as its condition).
2. **Client instructions per touch** (``valgrind --tool=callgrind``, this process only): a child
   doing N touches after a warm-up minus one doing the warm-up alone.

Each child process runs on one tree (``PYTHONPATH=<tree>:<tree>/backends/redis:...``), the two
trees interleaved; wall time is not measured (a loaded 2-core machine).

Measured (touchguard, load 21-29, Redis 7.0.15, ``--against`` main at 6ed6b9b, ``--calls 150
--sizes 256,65536``; callgrind over 50 touches, one pair of runs each, so +-10 % or so):

=================  =========================  ==================  =======================
touch               Redis us/touch old -> new  round trips         client instr old -> new
=================  =========================  ==================  =======================
``touch(key)`` 256 B   21.56 -> 7.77 (0.36x)   2 -> 1              354,843 -> 123,110
``touch(key)`` 64 KiB  150.09 -> 7.48 (0.05x)  2 -> 1              600,886 -> 59,108
``touch(k, ttl)`` 256 B  0.75 -> 9.14          1 -> 1              50,269 -> 59,901 (1.19x)
``touch(k, ttl)`` 64 KiB 0.86 -> 8.54          1 -> 1              50,369 -> 58,407 (1.16x)
=================  =========================  ==================  =======================

An earlier run without callgrind (200 touches): ``touch(key)`` 0.67x / 0.29x / 0.03x the Redis
time at 256 B / 4 KiB / 64 KiB; ``touch(key, ttl)`` 0.44-1.19 -> 5.3-7.9 us. The old
``touch(key)`` was ``GET`` + the ``touch_if`` script with the whole payload as its condition;
the old ``touch(key, ttl)`` a bare ``PEXPIRE``, which could not tell a session from a marker.

``--diskcache`` (client instructions, the whole cost there; same load, 50 touches): ``touch(key)``
295,088 -> 212,897 (0.72x) at 256 B, 365,523 -> 277,024 (0.76x) at 64 KiB; ``touch(key, ttl)``
165,272 -> 206,877 (1.25x) at 256 B and 163,294 -> 271,288 (1.66x) at 64 KiB: a write
transaction reading the head before the touch, and a value held in a file (above 32 KiB) read
whole by ``SessionCache.head``'s fallback.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import redis

from session_store_redis.testing import RedisServer

HERE = str(Path(__file__).resolve().parents[1])
MODES = ("kept", "given")


def child(url: str, mode: str, size: int, calls: int) -> None:
    """``calls`` touches of one session of ``size`` bytes after 20 of warm-up."""
    import session_store
    from session_store import SessionStore

    assert session_store.__file__.startswith(os.environ["PYTHONPATH"].split(os.pathsep)[0])

    store: SessionStore[dict[str, str]] = SessionStore(url, dict, ttl=3600)
    blob = base64.b64encode(os.urandom(size)).decode()[:size]  # compresses to about its size
    store.save("bench", {"blob": blob})
    ttl = None if mode == "kept" else 3600.0
    for _ in range(20 + calls):
        assert store.touch("bench", ttl)
    store.close()


def _env(tree: str) -> dict[str, str]:
    paths = (tree, f"{tree}/backends/redis", f"{tree}/backends/diskcache")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONHASHSEED": "0"}


def _run(tree: str, url: str, mode: str, size: int, calls: int, valgrind: bool) -> int:
    # the file, not -m: sys.path[0] is then benchmarks/, so the tree comes from PYTHONPATH only
    command = [sys.executable, __file__, "--child"]
    command += [url, mode, str(size), str(calls)]
    if valgrind:
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command]
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=_env(tree))
    if not valgrind:
        return 0
    found = re.search(r"Collected : (\d+)", done.stderr)
    assert found is not None, done.stderr[-2000:]
    return int(found.group(1))


def server(tree: str, url: str, mode: str, size: int, calls: int) -> tuple[float, float, str]:
    """Redis microseconds per touch, commands per touch, and which commands."""
    client = redis.Redis.from_url(url.split("?")[0])
    client.config_resetstat()
    _run(tree, url, mode, size, calls, valgrind=False)
    rows = {
        name.removeprefix("cmdstat_"): row
        for name, row in client.info("commandstats").items()
        if not name.startswith(("cmdstat_config", "cmdstat_info", "cmdstat_set", "cmdstat_hello"))
        and not name.startswith(("cmdstat_client", "cmdstat_script", "cmdstat_ping"))
    }
    client.close()
    touches = 20 + calls
    usec = sum(row["usec"] for row in rows.values()) / touches
    scripts = sum(rows.get(name, {"calls": 0})["calls"] for name in ("evalsha", "eval"))
    sent = sum(row["calls"] for row in rows.values()) - 2 * scripts  # GETRANGE, PEXPIRE inside
    names = ",".join(f"{name}:{row['calls'] / touches:g}" for name, row in sorted(rows.items()))
    return usec, sent / touches, names


def instructions(tree: str, url: str, mode: str, size: int, calls: int) -> float:
    full = _run(tree, url, mode, size, calls, valgrind=True)
    base = _run(tree, url, mode, size, 0, valgrind=True)
    return (full - base) / calls


def _diskcache(args: argparse.Namespace) -> int:
    """Client instructions per touch over ``diskcache://`` (no server: the whole cost is the
    client's, SQLite included), each tree on a fresh directory."""
    for mode in MODES:
        for size in map(int, args.sizes.split(",")):
            per: dict[str, float] = {}
            for name, tree in {"older": args.against, "this": HERE}.items():
                with tempfile.TemporaryDirectory() as directory:
                    url = f"diskcache://{directory}"
                    per[name] = instructions(tree, url, mode, size, args.calls // 3)
            print(
                f"diskcache touch({mode}) {size:>6} B: {per['older']:,.0f} -> {per['this']:,.0f} "
                f"instr/touch ({per['this'] / per['older']:.3f}x)",
                flush=True,
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--against", required=False, help="an older tree (a checkout)")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--sizes", default="256,4096,65536")
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--diskcache", action="store_true", help="client instructions only")
    args = parser.parse_args(argv)
    if args.child:
        url, mode, size, calls = args.child
        child(url, mode, int(size), int(calls))
        return 0
    if args.diskcache:
        return _diskcache(args)
    trees = {"older": args.against, "this": HERE}
    with RedisServer() as redis_server:
        url = redis_server.url_for(prefix="bench-touch")
        for mode in MODES:
            for size in map(int, args.sizes.split(",")):
                results = {}
                for name, tree in trees.items():
                    usec, sent, names = server(tree, url, mode, size, args.calls)
                    cg = (
                        0.0
                        if args.no_callgrind
                        else instructions(tree, url, mode, size, args.calls // 3)
                    )
                    results[name] = usec
                    print(
                        f"touch({mode}) {size:>6} B {name:>5}: redis {usec:6.2f} us/touch, "
                        f"{sent:g} commands/touch ({names}), client {cg:,.0f} instr/touch",
                        flush=True,
                    )
                ratio = results["this"] / results["older"]
                print(f"  redis time this / older: {ratio:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
