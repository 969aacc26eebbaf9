"""Client instructions per ``update`` of a process's own session and per ``save``, on Redis
(issue 17: ``update`` at least 0.8x of ``save``), counted by callgrind instead of timed.

    python -m benchmarks.callgrind_update [--calls 1000] [--variants save,update]

Each variant runs in a child process of its own under ``valgrind --tool=callgrind``
(``PYTHONHASHSEED=0``, so every run lays its dicts out alike): ``--calls`` calls after a
warm-up of 200, counted only inside the call that runs them (``functools.reduce``, which
nothing else on these paths calls: ``--toggle-collect``), so one run per variant gives one
call's client instructions (this process only; redis-server's are not counted), with no
warm-up-alone run to subtract and no interpreter start-up in the count (two identical runs of a
scratch script differed by 50M instructions before their first call). The session and the
store are those of ``benchmarks.bench_update``'s workers: the small (~7 KB) legacy-shaped
session, ``Codec(encryption=None)`` (zstd), a ``dict`` store, and ``update(own key, +1)`` whose
function copies the dict it gets (``dict(current)``) and bumps a counter. Repeatable on a loaded
machine (wall clock on 2 shared cores is not), but blind to waits: a round trip's kernel and
server time are not in it. Prints Markdown.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import subprocess
import sys
from typing import Any

from benchmarks.payloads import legacy_session
from session_store import Codec, SessionStore
from session_store_redis.testing import RedisServer

#: What one call of each variant does (see :func:`_one`).
VARIANTS = ("save", "update")
WARM = 200


def _one(variant: str, calls: int, url: str) -> None:
    """The child process: ``calls`` calls of ``variant`` after the warm-up."""
    store: SessionStore[dict[str, Any]] = SessionStore(
        url, dict, codec=Codec(encryption=None), access_interval=None, update_timeout=60.0
    )
    session = legacy_session("small", seed=0)
    key = f"own-{variant}"

    def bump(current: dict[str, Any] | None) -> dict[str, Any]:
        data = dict(current or session)
        data["n"] = data.get("n", 0) + 1
        return data

    def save(_: object, __: int) -> None:
        store.save(key, session)

    def update(_: object, __: int) -> None:
        store.update(key, bump)

    store.save(key, session)
    call = save if variant == "save" else update
    for n in range(WARM):  # not counted: only inside reduce(), below
        call(None, n)
    functools.reduce(call, range(calls), None)
    if variant != "save":
        assert (store.load(key) or {})["n"] == WARM + calls
    store.close()


def _collected(variant: str, calls: int, url: str) -> int:
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            "--collect-atstart=no",
            "--toggle-collect=functools_reduce",
            sys.executable,
            "-m",
            "benchmarks.callgrind_update",
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
    found = re.search(r"Collected : (\d+)", done.stderr)
    assert found is not None, done.stderr[-2000:]
    return int(found.group(1))


def instructions(variants: tuple[str, ...], calls: int) -> dict[str, float]:
    """Client instructions per call of each variant."""
    per_call = {}
    with RedisServer() as server:
        url = server.url_for(prefix="callgrind-update:")
        for variant in variants:
            per_call[variant] = _collected(variant, calls, url) / calls
    return per_call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        _one(args.one, args.calls, args.url)
        return 0
    counts = instructions(tuple(args.variants.split(",")), args.calls)
    print("| per call | client instructions | to `save` |\n|---|---:|---:|")
    base = counts.get("save")
    for variant, count in counts.items():
        ratio = f"{count / base:.2f}x" if base else ""
        print(f"| {variant} | {count / 1000:,.0f}k | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
