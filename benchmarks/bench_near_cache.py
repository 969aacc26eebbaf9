"""The default chain's costs: a coherent near-cache hit, a save, against the bare tiers.

    python -m benchmarks.bench_near_cache [--rounds 15] [--calls 20000]

A ``memory | redis`` chain (and ``memory | redis | diskcache``) over a redis-server this script
starts, the session the small (~7 KB) typed, vision-heavy one from :mod:`benchmarks.payloads`,
encoded by the default codec (zstd, no encryption), cycling over 50 keys. Every chain is the
default one: versioned copies, ordered writes, tombstones, a coherent near cache.

1. **a warm coherent near-cache hit** (the invalidation stream up) against a bare
   ``MemoryBackend.get`` of the same bytes. Goal: at most 1.3x;
2. the same hit with the stream off (the ``max_staleness`` version check): context;
3. **a save through the chain** against the sum of its tiers' own ``set`` of the same bytes
   (bare backends of the same kinds, on the same server and a directory of their own).
   Goal: at most 1.15x for ``memory | redis``; ``memory | redis | diskcache`` is shown beside it,
   and ``memory | redis`` without the invalidation stream (what the stream's own invalidation of
   each write costs);
4. where a save's cost goes, as ratios of this run (context): the writes the consistency model
   needs (the ordered write on Redis, a Lua script that reads the version it lands after, and
   the near copy) against the tiers' plain ``set``; the chain's own work against those writes;
   and the invalidation stream's cost (the writer process receives its own write's
   invalidation on its listener thread) as stream up against stream off;
5. a codec decode of the same payload against a warm hit: at least 20x, or the near cache saves
   little next to the decode every load does anyway.

Variants run in interleaved rounds (contender, baseline, ...); each ratio is of the medians, so
both sides of a ratio ran in the same run on the same machine. Absolute times are context only.
Prints Markdown.

    python -m benchmarks.bench_near_cache --callgrind [--calls 1000]

counts instead the instructions this process spends per warm hit (100,000 gets) and per save
(every thread, the server's not counted) under ``valgrind --tool=callgrind``: each variant runs
in a child process of its own, once with N calls after a warm-up and once with the warm-up
alone; the difference over N is the cost of one call. ``--hits`` (with or without
``--callgrind``) measures the near-cache hit alone. Not noisy, but blind to what valgrind
changes: it runs one thread at a time and ~50x slower, so the invalidation listener wakes for
every message (the wall-clock rows measure how it batches them), and the server's work (the Lua
script) is not in it.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis as redis_module

from benchmarks.floor import FloorWriter
from benchmarks.harness import Ratio, machine_line, markdown_table, measure_ratio
from benchmarks.payloads import vision_session
from session_store import Codec, MemoryBackend, SessionBackend, TieredBackend, open_backend, stamps
from session_store.schema import schema_for_class
from session_store.tiered.writes import write_after
from session_store_redis.testing import RedisServer

redis_client = redis_module.Redis.from_url

HIT_GOAL = 1.3
SAVE_GOAL = 1.15
DECODE_GOAL = 20.0
KEYS = [f"user-{i}" for i in range(50)]


def _loop(fn: Callable[[str], object], calls: int) -> Callable[[], None]:
    keys = (KEYS * (calls // len(KEYS) + 1))[:calls]

    def run() -> None:
        for key in keys:
            fn(key)

    return run


def _warm(chain: SessionBackend, payload: bytes) -> None:
    for key in KEYS:
        chain.set(key, payload, ttl=3600)
        assert chain.get(key) == payload


def _wait_coherent(chain: TieredBackend) -> None:
    deadline = time.monotonic() + 10
    while not chain.coherent:
        if time.monotonic() > deadline:
            raise RuntimeError("the invalidation stream did not connect")
        time.sleep(0.01)


def measure(
    rounds: int = 15, calls: int = 20_000, hits_only: bool = False
) -> tuple[list[Ratio], list[str]]:
    """The ratios, and notes (``hits_only``: the two hit ratios alone)."""
    codec = Codec(encryption=None)
    session = vision_session("small")
    payload = codec.encode("user-0", session)
    info = schema_for_class(type(session))
    notes = [f"payload: {len(payload):,} bytes encoded (~7 KB of JSON before zstd)"]
    ratios: list[Ratio] = []
    save_calls = max(calls // 20, 200)
    with RedisServer() as server, tempfile.TemporaryDirectory() as scratch:
        redis_url = server.url_for(prefix="bench-chain:")
        bare_redis_url = server.url_for(prefix="bench-bare:")
        disk_url = f"diskcache://{Path(scratch) / 'chain'}"
        bare_disk_url = f"diskcache://{Path(scratch) / 'bare'}"
        coherent = open_backend(f"memory://?max_entries=1000 | {redis_url}")
        checked_url = server.url_for(prefix="bench-checked:")
        checked = open_backend(f"tiered://?invalidation=false | memory:// | {checked_url}")
        three_redis = server.url_for(prefix="bench-three:")  # its writes invalidate no other
        three = open_backend(f"memory://?max_entries=1000 | {three_redis} | {disk_url}")
        bare_memory = MemoryBackend(max_entries=1000)
        bare_redis = open_backend(bare_redis_url)
        bare_disk = open_backend(bare_disk_url)
        opened = (coherent, checked, three, bare_redis, bare_disk)
        extra: list[SessionBackend] = []
        try:
            assert isinstance(coherent, TieredBackend) and isinstance(checked, TieredBackend)
            _wait_coherent(coherent)
            for chain in (coherent, checked, three):
                _warm(chain, payload)
            for key in KEYS:
                bare_memory.set(key, payload)
            bare_hit = _loop(bare_memory.get, calls)
            ratios.append(
                measure_ratio(
                    "warm coherent near-cache hit (stream up) / bare MemoryBackend.get",
                    _loop(coherent.get, calls),
                    bare_hit,
                    rounds=rounds,
                    goal=f"<= {HIT_GOAL:g}x",
                    met=lambda r: r <= HIT_GOAL,
                )
            )
            ratios.append(
                measure_ratio(
                    "warm near-cache hit, version check (no stream) / bare MemoryBackend.get",
                    _loop(checked.get, calls),
                    bare_hit,
                    rounds=rounds,
                    goal="context",
                    met=lambda r: True,
                )
            )

            if hits_only:
                notes.append(f"hits: {calls:,} per round")
                return ratios, notes

            def bare_two(key: str) -> None:
                bare_redis.set(key, payload, 3600)
                bare_memory.set(key, payload, 3600)

            def bare_three(key: str) -> None:
                bare_disk.set(key, payload, 3600)
                bare_redis.set(key, payload, 3600)
                bare_memory.set(key, payload, 3600)

            ratios.append(
                measure_ratio(
                    "save through memory, redis / sum of the tiers' set",
                    _loop(lambda key: coherent.set(key, payload, 3600), save_calls),
                    _loop(bare_two, save_calls),
                    rounds=rounds,
                    goal=f"<= {SAVE_GOAL:g}x",
                    met=lambda r: r <= SAVE_GOAL,
                )
            )
            ratios.append(
                measure_ratio(
                    "save through memory, redis, no stream / sum of the tiers' set",
                    _loop(lambda key: checked.set(key, payload, 3600), save_calls),
                    _loop(bare_two, save_calls),
                    rounds=rounds,
                    goal="context",
                    met=lambda r: True,
                )
            )
            ratios.append(
                measure_ratio(
                    "save through memory, redis, diskcache / sum of the tiers' set",
                    _loop(lambda key: three.set(key, payload, 3600), save_calls),
                    _loop(bare_three, save_calls),
                    rounds=rounds,
                    goal=f"<= {SAVE_GOAL:g}x",
                    met=lambda r: r <= SAVE_GOAL,
                )
            )
            # Where a save's cost goes (each a ratio in this same run):
            framed = stamps.frame(payload, stamps.clock.now(), 3600)
            ordered_redis = open_backend(server.url_for(prefix="bench-ordered:"))
            extra.append(ordered_redis)

            def ordered_two(key: str) -> None:
                write_after(ordered_redis, key, framed, 3600)  # the ordered write, by arrival
                bare_memory.set(key, payload, 3600)  # the near copy

            ratios.append(
                measure_ratio(
                    "breakdown: the model's writes (ordered redis write + memory set) / "
                    "sum of the tiers' set",
                    _loop(ordered_two, save_calls),
                    _loop(bare_two, save_calls),
                    rounds=rounds,
                    goal="context",
                    met=lambda r: True,
                )
            )
            ratios.append(
                measure_ratio(
                    "breakdown: save through memory, redis, no stream / the model's writes",
                    _loop(lambda key: checked.set(key, payload, 3600), save_calls),
                    _loop(ordered_two, save_calls),
                    rounds=rounds,
                    goal="context",
                    met=lambda r: True,
                )
            )
            ratios.append(
                measure_ratio(
                    "breakdown: save through memory, redis, stream up / no stream",
                    _loop(lambda key: coherent.set(key, payload, 3600), save_calls),
                    _loop(lambda key: checked.set(key, payload, 3600), save_calls),
                    rounds=rounds,
                    goal="context",
                    met=lambda r: True,
                )
            )
            decode_calls = max(calls // 50, 100)
            ratios.append(
                measure_ratio(
                    "codec decode / warm coherent hit",
                    _loop(lambda key: codec.decode(key, payload, as_schema=info), decode_calls),
                    _loop(coherent.get, decode_calls),
                    rounds=rounds,
                    goal=f">= {DECODE_GOAL:g}x",
                    met=lambda r: r >= DECODE_GOAL,
                )
            )
        finally:
            for backend in (*opened, *extra):
                backend.close()
    notes.append(f"saves: {save_calls:,} per round; hits: {calls:,} per round")
    return ratios, notes


def _per_call(ratio: Ratio, calls: int) -> int:
    if "decode" in ratio.name:
        return max(calls // 50, 100)
    if "save" in ratio.name or "breakdown" in ratio.name:
        return max(calls // 20, 200)
    return calls


def report(rounds: int = 15, calls: int = 20_000, hits_only: bool = False) -> str:
    """The chain's costs as a Markdown section."""
    ratios, notes = measure(rounds, calls, hits_only)
    rows = []
    for ratio in ratios:
        per_call = _per_call(ratio, calls)
        rows.append(
            [
                ratio.name,
                f"{ratio.contender_s / per_call * 1e6:.2f} µs",
                f"{ratio.baseline_s / per_call * 1e6:.2f} µs",
                f"{ratio.ratio:.2f}x",
                ratio.goal,
                "yes" if ratio.met else "**no**",
            ]
        )
    table = markdown_table(rows, ["measure", "contender", "baseline", "ratio", "goal", "met"])
    lines = [
        "## The default chain: coherent near-cache hit and save against the bare tiers",
        "",
        f"_{machine_line()}; medians of {rounds} interleaved rounds_",
        "",
        table,
        "",
        *[f"- {note}" for note in notes],
        "",
    ]
    return "\n".join(lines)


#: The --callgrind variants: what one call does (see _one_variant).
CALLGRIND_VARIANTS = (
    "bare memory + redis set",
    "ordered redis write + memory set",
    "save, memory | redis, no stream",
    "save, memory | redis",
    "bare memory + redis + diskcache set",
    "save, memory | redis | diskcache",
    # the floor (benchmarks/floor.py): the lean client alone, nothing of ours around it
    "floor: raw SET + memory set",
    "floor: minimal ordered write, one EVALSHA + memory set",
    "floor: minimal ordered write, staged MULTI + memory set",
)


#: The --callgrind hit variants: one ``get`` of a warm key (see _one_hit_variant).
CALLGRIND_HIT_VARIANTS = (
    "bare MemoryBackend.get",
    "near-cache hit, memory | redis (stream up)",
    "near-cache hit, memory | redis, no stream",
)


def _one_hit_variant(variant: str, calls: int, redis_url: str) -> None:
    """The child process of ``--callgrind`` for a hit: ``calls`` gets of ``variant`` after a
    warm-up, every key's copy checked (its own write's invalidation handled first)."""
    payload = Codec(encryption=None).encode("user-0", vision_session("small"))
    index = CALLGRIND_HIT_VARIANTS.index(variant)
    url = f"{redis_url}?prefix=hit-{index}:"
    target: SessionBackend
    if index == 0:
        target = MemoryBackend(max_entries=1000)
        for key in KEYS:
            target.set(key, payload)  # (no TTL, as the wall-clock baseline of measure())
    else:
        # max_staleness=60: valgrind runs ~50x slower, and within 1 s of wall time a copy's
        # own check (no stream) or the stream's last answer would lapse, timing revalidations
        # instead of hits; the hit path is the same code whatever the bound
        stream = "true" if index == 1 else "false"
        options = f"tiered://?max_staleness=60&invalidation={stream}"
        target = open_backend(f"{options} | memory://?max_entries=1000 | {url}")
        assert isinstance(target, TieredBackend)
        if index == 1:
            _wait_coherent(target)
        _warm(target, payload)
        deadline = time.monotonic() + 10
        while index == 1 and target.counters.get("invalidations") < len(KEYS):
            if time.monotonic() > deadline:
                raise RuntimeError("the writes' own invalidations did not arrive")
            time.sleep(0.01)
        for key in KEYS:
            target.get(key)  # (checked again after its own invalidation)
    _loop(target.get, 200)()
    _loop(target.get, calls)()


def _one_variant(variant: str, calls: int, redis_url: str, scratch: str) -> None:
    """The child process of ``--callgrind``: ``calls`` saves of ``variant`` after a warm-up."""
    if variant in CALLGRIND_HIT_VARIANTS:
        _one_hit_variant(variant, calls, redis_url)
        return
    codec = Codec(encryption=None)
    payload = codec.encode("user-0", vision_session("small"))
    framed = stamps.frame(payload, stamps.clock.now(), 3600)
    memory = MemoryBackend(max_entries=1000)
    index = CALLGRIND_VARIANTS.index(variant)
    disk = f"diskcache://{Path(scratch) / f'disk-{index}'}"
    redis = open_backend(f"{redis_url}?prefix=bare-{index}:")
    chain: SessionBackend | None = None
    bare_disk = open_backend(disk) if variant == CALLGRIND_VARIANTS[4] else None

    def bare(key: str) -> None:
        if bare_disk is not None:
            bare_disk.set(key, payload, 3600)
        redis.set(key, payload, 3600)
        memory.set(key, payload, 3600)

    def ordered(key: str) -> None:
        write_after(redis, key, framed, 3600)
        memory.set(key, payload, 3600)

    def save(key: str) -> None:
        assert chain is not None
        chain.set(key, payload, 3600)

    fn: Callable[[str], None] = save
    if variant.startswith("floor"):
        floor = FloorWriter(redis_client(redis_url), f"floor-{index}:")
        write = (floor.set, floor.set_if_newer, floor.set_if_newer_staged)[index - 6]

        def fn(key: str) -> None:
            write(key, payload, 3_600_000)
            memory.set(key, payload, 3600)

    elif variant in (CALLGRIND_VARIANTS[0], CALLGRIND_VARIANTS[4]):
        fn = bare
    elif variant == CALLGRIND_VARIANTS[1]:
        fn = ordered
    else:
        url = f"{redis_url}?prefix=chain-{index}:"
        if variant == CALLGRIND_VARIANTS[2]:
            chain = open_backend(f"tiered://?invalidation=false | memory:// | {url}")
        elif variant == CALLGRIND_VARIANTS[3]:
            chain = open_backend(f"memory://?max_entries=1000 | {url}")
        else:
            chain = open_backend(f"memory://?max_entries=1000 | {url} | {disk}")
        if isinstance(chain, TieredBackend) and variant != CALLGRIND_VARIANTS[2]:
            _wait_coherent(chain)
    _loop(fn, 200)()  # warm: connections open, scripts loaded, keys present
    _loop(fn, calls)()
    time.sleep(0.2)  # the listener's last messages, in both runs alike


def _collected(variant: str, calls: int, redis_url: str, scratch: str) -> int:
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "benchmarks.bench_near_cache",
            "--one",
            variant,
            "--calls",
            str(calls),
            "--url",
            redis_url,
            "--scratch",
            scratch,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # the same dict layouts in every run
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    assert found is not None, done.stderr[-2000:]
    return int(found.group(1))


def _instructions(variants: tuple[str, ...], calls: int) -> dict[str, float]:
    """Instructions per call of each variant: ``calls`` calls after the warm-up, minus the
    warm-up alone, each in a child process of its own under callgrind."""
    per_call = {}
    with RedisServer() as server, tempfile.TemporaryDirectory() as scratch:
        url = server.url_for()
        for variant in variants:
            full = _collected(variant, calls, url, scratch)
            warm = _collected(variant, 0, url, scratch)
            per_call[variant] = (full - warm) / calls
    return per_call


def _callgrind_table(
    title: str, what: str, variants: tuple[str, ...], calls: int, base: Callable[[str], str]
) -> str:
    """A Markdown section: instructions per ``what`` of each variant (:func:`_instructions`),
    and its ratio to the variant ``base(variant)`` names."""
    counts = _instructions(variants, calls)
    rows = [
        [
            variant.replace("|", "\\|"),  # (a Markdown table cell)
            f"{count:,.0f}",
            f"{count / counts[base(variant)]:.3f}x",
        ]
        for variant, count in counts.items()
    ]
    return "\n".join(
        [
            f"## {title}: instructions per call (callgrind, this process only)",
            "",
            f"_{machine_line()}; {calls:,} {what}s after a warm-up of 200, minus the warm-up"
            " alone_",
            "",
            markdown_table(
                rows, ["variant", f"instructions per {what}", "ratio to the bare tiers"]
            ),
            "",
        ]
    )


def callgrind_hits(calls: int = 100_000) -> str:
    """Instructions per warm hit of each hit variant, against a bare ``MemoryBackend.get``."""
    bare = CALLGRIND_HIT_VARIANTS[0]
    return _callgrind_table(
        "The near-cache hit", "get", CALLGRIND_HIT_VARIANTS, calls, lambda _: bare
    )


def callgrind_report(calls: int = 1000) -> str:
    """Instructions per save of each variant, and the ratios of the module doc (callgrind)."""
    two, three = CALLGRIND_VARIANTS[0], CALLGRIND_VARIANTS[4]
    return _callgrind_table(
        "The default chain's save",
        "save",
        CALLGRIND_VARIANTS,
        calls,
        lambda variant: three if "diskcache" in variant else two,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument("--callgrind", action="store_true", help="instructions, not time")
    parser.add_argument("--hits", action="store_true", help="the near-cache hit alone")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child of --callgrind
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _one_variant(args.one, args.calls, args.url, args.scratch)
        return 0
    started = time.perf_counter()
    if args.callgrind and args.hits:
        print(callgrind_hits(args.calls or 100_000))
    elif args.callgrind:
        print(callgrind_hits())
        print(callgrind_report(args.calls or 1000))
    else:
        print(report(args.rounds, args.calls or 20_000, hits_only=args.hits))
    print(f"_took {time.perf_counter() - started:.1f} s_")
    return 0


if __name__ == "__main__":
    sys.exit(main())
