"""Near-cache hit cost: coherence on vs off, and a warm hit vs a codec decode (goal: >= 20x).

    python -m benchmarks.bench_near_cache [--rounds 15] [--calls 20000]

A ``memory | redis`` chain over a redis-server this script starts, the session the small
(~7 KB) typed, vision-heavy one from :mod:`benchmarks.payloads`, encoded by the default codec
(zstd, no encryption). Every read below is a near-cache hit (a warm memory tier), cycling over
50 keys; what differs is what the tiered backend does on a hit:

1. coherence on (``max_staleness=1.0``) against off, both with stamps, so that only the check
   differs: a dict lookup, a clock read and the (cached) hash of the bytes, plus one
   revalidation per key per second, which goes to Redis;
2. coherence on against the plain chain (no stamps, no coherence: what existing chains run);
3. coherence and stamps on against the plain chain (the header costs one copy of the value);
4. a codec decode of the same payload against a warm hit with stamps and coherence on: the hit
   must be at least 20x faster, or the near cache saves little next to the decode every load
   does anyway.

Redis client-side caching (``CLIENT TRACKING`` through redis-py's RESP3 cache) is the other known
way; redis-py enables it only against Redis 7.4 or later, so it is measured when the server here
is new enough, and reported as not available otherwise.

Variants run in interleaved rounds (contender, baseline, ...); each ratio is of the medians.
Absolute times are context only. Prints Markdown.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import redis

from benchmarks.harness import Ratio, machine_line, markdown_table, measure_ratio
from benchmarks.payloads import vision_session
from session_store import Codec, SessionBackend, open_backend
from session_store.schema import schema_for_class
from session_store_redis.testing import RedisServer

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


def _client_tracking_hit(server: RedisServer, payload: bytes, calls: int) -> Callable[[], None]:
    """redis-py's RESP3 client-side cache: a GET served locally, kept coherent by Redis's
    invalidation messages. Raises ``redis.ConnectionError`` before Redis 7.4."""
    from redis.cache import CacheConfig

    client = redis.Redis(host=server.host, port=server.port, protocol=3, cache_config=CacheConfig())
    for key in KEYS:
        client.set(f"csc:{key}", payload)
        client.get(f"csc:{key}")
    return _loop(lambda key: client.get(f"csc:{key}"), calls)


def measure(rounds: int = 15, calls: int = 20_000) -> tuple[list[Ratio], list[str]]:
    """The ratios, and notes (what could not be measured, and why)."""
    codec = Codec(encryption=None)
    session = vision_session("small")
    payload = codec.encode("user-0", session)
    info = schema_for_class(type(session))
    notes = [f"payload: {len(payload):,} bytes encoded (~7 KB of JSON before zstd)"]
    ratios: list[Ratio] = []
    with RedisServer() as server:
        url = f"memory://?max_entries=1000 | {server.url_for(prefix='bench-near-cache:')}"
        plain = open_backend(url)
        stamped_only = open_backend(url, stamps=True)
        coherent = open_backend(url, max_staleness=1.0)
        stamped = open_backend(url, stamps=True, max_staleness=1.0)
        chains = (plain, stamped_only, coherent, stamped)
        try:
            for chain in chains:
                _warm(chain, payload)
            plain_hit = _loop(plain.get, calls)
            pairs: tuple[tuple[str, SessionBackend, SessionBackend], ...] = (
                ("hit: coherence on / off (both with stamps)", stamped, stamped_only),
                ("hit: coherence on / off (no stamps; off = plain chain)", coherent, plain),
                ("hit: coherence + stamps / plain chain", stamped, plain),
            )
            for name, contender, baseline in pairs:
                ratios.append(
                    measure_ratio(
                        name,
                        _loop(contender.get, calls),
                        _loop(baseline.get, calls),
                        rounds=rounds,
                        goal="context",
                        met=lambda r: True,
                    )
                )
            decode_calls = max(calls // 50, 100)
            ratios.append(
                measure_ratio(
                    "codec decode / warm hit (coherence on + stamps)",
                    _loop(lambda key: codec.decode(key, payload, as_schema=info), decode_calls),
                    _loop(stamped.get, decode_calls),
                    rounds=rounds,
                    goal=f">= {DECODE_GOAL:g}x",
                    met=lambda r: r >= DECODE_GOAL,
                )
            )
            try:
                tracking = _client_tracking_hit(server, payload, calls)
            except redis.ConnectionError as exc:
                notes.append(f"CLIENT TRACKING (redis-py RESP3 cache) not measured: {exc}")
            else:
                ratios.append(
                    measure_ratio(
                        "redis-py CLIENT TRACKING cache hit / plain chain hit",
                        tracking,
                        plain_hit,
                        rounds=rounds,
                        goal="context",
                        met=lambda r: True,
                    )
                )
        finally:
            for chain in chains:
                chain.close()
    return ratios, notes


def report(rounds: int = 15, calls: int = 20_000) -> str:
    """The near-cache figures as a Markdown section."""
    ratios, notes = measure(rounds, calls)
    rows = []
    for ratio in ratios:
        per_call = calls if "decode" not in ratio.name else max(calls // 50, 100)
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
        "## Near cache: hit cost with coherence on vs off, hit vs decode",
        "",
        f"_{machine_line()}; medians of {rounds} interleaved rounds of {calls:,} hits_",
        "",
        table,
        "",
        *[f"- {note}" for note in notes],
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    started = time.perf_counter()
    print(report(args.rounds, args.calls))
    print(f"_took {time.perf_counter() - started:.1f} s_")
    return 0


if __name__ == "__main__":
    sys.exit(main())
