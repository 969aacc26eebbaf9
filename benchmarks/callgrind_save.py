"""Client instructions per save through the default chain ``memory | redis`` and per save of its
bare tiers (issue 12's save cost), counted by callgrind instead of timed.

    python -m benchmarks.callgrind_save [--calls 1000] [--variants chain,bare,floor]
    python -m benchmarks.callgrind_save --profile chain --out /tmp/chain.callgrind

The saves are those of ``benchmarks.bench_chain_save``: the small typed session encoded by
``Codec(encryption=None)`` (~2.6 KB), ``set(key, payload, 3600)`` cycling over 50 keys, on a
redis-server this script starts; ``chain`` is ``memory://?max_entries=1000 | redis://...`` with
its invalidation stream connected (its listener thread's instructions count: it reads one
invalidation per save), ``bare`` the memory backend's ``set`` plus a plain ``RedisBackend.set``
under an untracked prefix, ``floor`` the memory ``set`` plus the floor's staged ordered write
(``benchmarks.floor``). Each variant runs in a child process of its own under ``valgrind
--tool=callgrind`` (``PYTHONHASHSEED=0``), once with ``--calls`` saves after a warm-up of 200
and once with the warm-up alone (both at once): the difference over the calls is one save's
client instructions (redis-server's are not counted), by thread: the main thread's (the save
itself) and the others' (the chain's invalidation listener, which handles each save's own
invalidation too). ``--profile`` keeps the long run's callgrind output, one file per thread
(for ``callgrind_annotate``). Prints Markdown.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks.floor import FloorWriter
from benchmarks.payloads import vision_session
from session_store import Codec, MemoryBackend, TieredBackend, open_backend
from session_store_redis.testing import RedisServer

VARIANTS = ("chain", "bare", "floor")
WARM = 200
KEYS = [f"user-{i}" for i in range(50)]


def _one(variant: str, calls: int, url: str) -> None:
    """The child process: ``calls`` saves of ``variant`` after the warm-up."""
    payload = Codec(encryption=None).encode("user-0", vision_session("small"))
    keys = (KEYS * ((WARM + calls) // len(KEYS) + 1))[: WARM + calls]
    memory = MemoryBackend(max_entries=1000)
    prefix = f"callgrind-{variant}-{calls}:"  # (the two runs at once: keys of their own)
    if variant == "chain":
        chain = open_backend(f"memory://?max_entries=1000 | {url}{prefix}")
        deadline = time.monotonic() + 30
        while not (isinstance(chain, TieredBackend) and chain.coherent):
            if time.monotonic() > deadline:
                raise RuntimeError("the invalidation stream did not connect")
            time.sleep(0.01)
        for key in keys:
            chain.set(key, payload, 3600)
        chain.close()
    elif variant == "bare":
        tier = open_backend(f"{url}{prefix}")
        for key in keys:
            tier.set(key, payload, 3600)
            memory.set(key, payload, 3600)
        tier.close()
    else:
        import redis

        floor = FloorWriter(redis.Redis.from_url(url), prefix)
        for key in keys:
            floor.set_if_newer_staged(key, payload, 3_600_000)
            memory.set(key, payload, 3600)
        floor.close()


def _collected(variant: str, calls: int, url: str, out: str) -> dict[str, int]:
    """Instructions of one child run by thread (``"main"``, ``"others"``: the invalidation
    listener's, and redis-py's if any), its callgrind output under ``out`` (one per thread)."""
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=yes",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "benchmarks.callgrind_save",
            "--one",
            variant,
            "--calls",
            str(calls),
            "--url",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    counts = {"main": 0, "others": 0}
    for path in sorted(glob.glob(out + "-*")):
        with open(path, encoding="utf-8") as dump:
            found = re.search(r"^summary: (\d+)", dump.read(), re.MULTILINE)
        assert found is not None, path
        counts["main" if path.endswith("-01") else "others"] += int(found.group(1))
    return counts


def _base_url(server: RedisServer) -> str:
    """The server's URL with an empty prefix query left open (``...?prefix=``)."""
    url = server.url_for(prefix="X")
    assert url.endswith("X"), url
    return url[:-1]


def instructions(variants: tuple[str, ...], calls: int) -> dict[str, dict[str, float]]:
    """Client instructions per save of each variant by thread (long run minus warm-up alone;
    the two runs at once, each in a process of its own)."""
    per_call = {}
    with RedisServer() as server, tempfile.TemporaryDirectory() as scratch:
        url = _base_url(server)
        for variant in variants:
            with ThreadPoolExecutor(2) as pool:
                full = pool.submit(_collected, variant, calls, url, f"{scratch}/{variant}-full")
                warm = pool.submit(_collected, variant, 0, url, f"{scratch}/{variant}-warm")
                long, short = full.result(), warm.result()
            per_call[variant] = {k: (long[k] - short[k]) / calls for k in long}
    return per_call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--profile", help="a variant: keep its long run's callgrind output")
    parser.add_argument("--out", default="/tmp/callgrind_save.out")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        _one(args.one, args.calls, args.url)
        return 0
    if args.profile:
        with RedisServer() as server:
            _collected(args.profile, args.calls, _base_url(server), args.out)
        print(f"{args.out}-01 (main thread), {args.out}-02 ...")
        return 0
    counts = instructions(tuple(args.variants.split(",")), args.calls)
    print(
        "| per save | client instructions | main thread | other threads | main, to `bare` |\n"
        "|---|---:|---:|---:|---:|"
    )
    base = counts.get("bare", {}).get("main")
    for variant, count in counts.items():
        ratio = f"{count['main'] / base:.2f}x" if base else ""
        print(
            f"| {variant} | {(count['main'] + count['others']) / 1000:,.1f}k"
            f" | {count['main'] / 1000:,.1f}k | {count['others'] / 1000:,.1f}k | {ratio} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
