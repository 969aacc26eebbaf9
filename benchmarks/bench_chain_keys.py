"""What listing the sessions of a chain costs: instructions of one ``SessionStore.keys()``
over ``memory:// | redis:// | diskcache://`` holding N sessions (and a few retired ids, the
marker a login's id rotation leaves), against the chain's byte-level listing (iterating
``scan()``: what ``keys()`` cost before it left retired ids out), the obvious fix (a second
``get_many`` per batch over that listing) and a store over the Redis tier alone.

    python benchmarks/bench_chain_keys.py [--keys 2000] [--repeat 3] [--before SRC]

Each cell runs in a fresh process (a CLI ``ls`` is one) under ``valgrind --tool=callgrind``,
twice: opening the store and listing once, and opening it alone; the difference is the cost of
one listing (this process only: redis-server's work is not counted, the round trips are
printed). ``--before SRC`` also runs ``keys()`` on another checkout's code (``SRC`` a source
tree, e.g. /work/main, put first on ``PYTHONPATH`` with its plugins), in the same run, on the
same redis-server and data. Run it as a file, not with ``-m``, so that the checkout's own
directory is not put ahead of ``SRC``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

MODES = ("keys", "values", "second-read", "redis-alone")
RETIRED = 5


def _child(mode: str, chain_url: str, redis_url: str, listings: int) -> None:
    """Open the store, then list ``listings`` times (the measured process)."""
    from session_store import SessionStore

    url = redis_url if mode == "redis-alone" else chain_url
    with SessionStore(url, dict) as store:
        backend = store.backend
        calls = {"get_many": 0}
        get_many = backend.get_many

        def counted(keys: Iterable[str]) -> dict[str, bytes]:
            calls["get_many"] += 1
            return get_many(keys)

        backend.get_many = counted  # type: ignore[method-assign]
        for _ in range(listings):
            if mode in ("keys", "redis-alone"):
                found = list(store.keys())
            elif mode == "values":
                found = list(backend.scan())
            else:
                found = list(store._live_keys(iter(backend.scan())))
            print(len(found), calls["get_many"], file=sys.stderr)


def _fill(chain_url: str, keys: int) -> None:
    from session_store import SessionStore
    from session_store.websession.steps import RETIRED as MARKER

    with SessionStore(chain_url, dict) as store:
        for i in range(keys):
            store.save(f"s{i:06d}", {"user": i, "csrf": "x" * 32})
        for i in range(RETIRED):
            store.backend.set(f"r{i:06d}", MARKER, 86400)  # outlives the run


def _instructions(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                str(Path(__file__).resolve()),
                "--child",
                *args,
            ],
            check=True,
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp,
        )
        found = re.search(rb"^(?:summary|totals): (\d+)", out.read_bytes(), re.M)
        assert found is not None
        lines = [line for line in done.stderr.splitlines() if re.fullmatch(r"\d+ \d+", line)]
        return int(found.group(1)), (lines[-1] if lines else "")


def per_listing(mode: str, chain: str, redis: str, env: dict[str, str]) -> tuple[float, str]:
    listed, seen = _instructions([mode, chain, redis, "1"], env)
    opened, _ = _instructions([mode, chain, redis, "0"], env)
    return listed - opened, seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", default=None, help="another checkout's source tree")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, chain, redis, listings = args.child
        _child(mode, chain, redis, int(listings))
        return 0
    from session_store_redis.testing.server import RedisServer

    server = RedisServer().start()
    base = {**os.environ, "PYTHONHASHSEED": "0"}
    base.pop("PYTHONPATH", None)
    envs = {"after": base}
    if args.before:
        src = Path(args.before)
        tree = [src, src / "backends" / "redis", src / "backends" / "diskcache"]
        envs["before"] = {**base, "PYTHONPATH": os.pathsep.join(map(str, tree))}
    try:
        with tempfile.TemporaryDirectory() as disk:
            redis = server.url_for(prefix="bench-keys:")
            chain = f"memory:// | {redis} | diskcache://{disk}"
            _fill(chain, args.keys)
            print(f"{args.keys} sessions + {RETIRED} retired ids; instructions per listing")
            print("| code | listing | instructions | per key | listed, get_many calls |")
            print("|---|---|---|---|---|")
            for code, env in envs.items():
                # the other code's store keys() is the cell to compare (the rest is unchanged)
                for mode in MODES if code == "after" else ("keys",):
                    runs = [per_listing(mode, chain, redis, env) for _ in range(args.repeat)]
                    cost = statistics.median(run[0] for run in runs)
                    print(
                        f"| {code} | {mode} | {cost:,.0f} | {cost / args.keys:,.0f} "
                        f"| {runs[-1][1]} |",
                        flush=True,
                    )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
