"""End to end, store + load through a real redis-server: ours against the peers and the raw floor.

For each payload size (the seeded legacy-shaped session of ``payloads.py``: small ~7 KB, medium
~60 KB, large ~600 KB), one "operation" is a store followed by a load of the same session, with
a 24 h TTL, on a redis-server this module starts on a free port:

* **ours**: ``SessionStore(redis_url, dict, ttl=...)`` ``save`` + ``load`` with the default codec
  (strict JSON envelope; on Redis alone written uncompressed, as the peers write);
* **ours, zstd (opt-in)**: the same with ``compression=True`` (zstd level 1 above 1 KiB: about
  4.6x less Redis memory, for CPU), for context;
* **floor**: the same codec's ``encode`` + raw redis-py ``SET PX`` + ``GET`` + ``decode``: what
  remains if the store and backend layers cost nothing (goal: ours within 1.10x);
* **cachelib** ``RedisCache`` ``set`` + ``get`` (pickle);
* **dogpile.cache** region on the ``dogpile.cache.redis`` backend, ``set`` + ``get`` (pickle);
* **Flask-Session** ``RedisSessionInterface``: the storage half of ``save_session`` /
  ``open_session`` (``_upsert_session`` + ``_retrieve_session_data``, msgspec msgpack), without
  the request and cookie handling that is not storage.

Goal: ours ahead of every peer. Every contender round-trips the same dict and is checked to
load it back equal before it is timed. All run in interleaved rounds, their order rotating,
and every ratio is the median of per-round ratios. Also, for the typed vision-heavy session
(``EnhancedSessionData``), ours against the typed floor.

Run: ``python -m benchmarks.bench_e2e``; ``--breakdown`` splits one store + load of each into
this process's CPU, the server's CPU and the bytes on the wire (:func:`where_time_goes`).
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import redis

from benchmarks.harness import (
    Goal,
    interleaved,
    machine_line,
    markdown_table,
    no_gc,
    profile_top,
    ratio_of_rounds,
)
from benchmarks.payloads import SIZES, legacy_session, vision_session
from session_store import SessionStore
from session_store.codec import Codec
from session_store.schema import EnhancedSessionData
from session_store_redis.testing import RedisServer

TTL = 24 * 3600
FLOOR_GOAL = 1.10
PEERS = ("cachelib", "dogpile.cache", "Flask-Session")
#: Context: ours with zstd opted into (``compression=True``), to show what it costs on loopback
#: and what Redis memory it saves.
ZSTD = "ours, zstd (opt-in)"
#: Ours with one field of the session changed before every save, so no load can reuse what the
#: near cache kept for the bytes before (a save of unchanged bytes keeps it): the cost of a
#: session that changes on every request.
CHANGED = "ours, changed every save"
#: Calls per round and rounds, per size: enough calls that one round takes a few ms.
PLAN = {"small": (40, 41), "medium": (12, 41), "large": (2, 21)}
#: The floor timed against itself: the spread of that ratio is the resolution of the run.
AA = "floor again (A/A)"
#: With ``SESSION_STORE_BENCH_BEFORE=<rev>``: ours as it was at that commit, side by side (the
#: package imported as ``session_store_before``, see :func:`benchmarks.bench_hot.before_package`),
#: over the same Redis backend object.
BEFORE_ENV = "SESSION_STORE_BENCH_BEFORE"
BEFORE = "ours before"

Op = Callable[[], object]

#: The key each contender stores the session under (``MEMORY USAGE`` reads it).
STORED_KEY = {
    "ours": "ours:\x1fe2e",
    ZSTD: "ours:\x1fe2e",
    CHANGED: "ours:\x1fe2e-changed",
    "floor": "floor:e2e",
    "cachelib": "cl:e2e",
    "dogpile.cache": "dp:e2e",
    "Flask-Session": "fs:e2e",
}


@dataclass
class SizeResult:
    """The figures of one payload size."""

    size: str
    per_call_us: dict[str, float]
    ratios: dict[str, float]  # contender / ours (for ours: ours / floor)
    spread: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: Redis' ``MEMORY USAGE`` of the key each contender stored the session under, in bytes
    memory: dict[str, int] = field(default_factory=dict)


@dataclass
class E2EResult:
    sizes: list[SizeResult]
    typed_ratio: float
    versions: dict[str, str]
    goals: list[Goal]


def _ours(url: str, payload: dict[str, Any], *, compress: bool = False) -> Op:
    """The default store, or (``compress``) the one that opted into zstd."""
    store: SessionStore[dict[str, Any]]
    if not compress:
        store = SessionStore(url, dict, ttl=TTL)
    else:
        try:
            store = SessionStore(url, dict, ttl=TTL, compression=True)
        except TypeError:  # a --base tree from before the option: its default codec compressed
            store = SessionStore(url, dict, ttl=TTL, codec=Codec(legacy_schema="dict"))

    def run() -> object:
        store.save("e2e", payload)
        return store.load("e2e")

    return run


def _ours_changed(url: str, payload: dict[str, Any]) -> Op:
    """The default store, saving the session with a counter field changed every time."""
    store: SessionStore[dict[str, Any]] = SessionStore(url, dict, ttl=TTL)
    mine = dict(payload)
    counter = itertools.count()

    def run() -> object:
        mine["bench_seq"] = next(counter)
        store.save("e2e-changed", mine)
        loaded = store.load("e2e-changed")
        assert loaded is not None and loaded["bench_seq"] == mine["bench_seq"]
        return {k: v for k, v in loaded.items() if k != "bench_seq"}

    return run


def _before(url: str, payload: dict[str, Any]) -> Op | None:
    """``ours`` as it was at ``$SESSION_STORE_BENCH_BEFORE``, or None when it is not set."""
    rev = os.environ.get(BEFORE_ENV)
    if not rev:
        return None
    from benchmarks.bench_hot import before_package
    from session_store import open_backend

    before = before_package(rev)
    if before is None:
        return None
    store = before.SessionStore(open_backend(url), dict, ttl=TTL)

    def run() -> object:
        store.save("e2e-before", payload)
        return store.load("e2e-before")

    return run


def _floor(server: RedisServer, store: SessionStore[Any], payload: Any) -> Op:
    raw = redis.Redis(host=server.host, port=server.port, db=0)  # redis-py as it comes
    codec = store.codec
    stored = "floor:e2e"

    def run() -> object:
        raw.set(stored, codec.encode("e2e", payload), px=TTL * 1000)
        data = raw.get(stored)
        assert isinstance(data, bytes)
        return codec.decode("e2e", data).obj

    return run


def _cachelib(server: RedisServer, payload: dict[str, Any]) -> Op:
    from cachelib.redis import RedisCache

    cache = RedisCache(host=server.host, port=server.port, key_prefix="cl:", default_timeout=TTL)

    def run() -> object:
        cache.set("e2e", payload)
        return cache.get("e2e")

    return run


def _dogpile(server: RedisServer, payload: dict[str, Any]) -> Op:
    from dogpile.cache import make_region

    region = make_region().configure(
        "dogpile.cache.redis",
        expiration_time=TTL,
        arguments={
            "host": server.host,
            "port": server.port,
            "db": 0,
            "redis_expiration_time": TTL,
        },
    )

    def run() -> object:
        region.set("dp:e2e", payload)
        return region.get("dp:e2e")

    return run


def _flask_session(server: RedisServer, payload: dict[str, Any]) -> Op:
    from flask import Flask
    from flask_session.redis import (  # type: ignore[import-untyped]
        RedisSession,
        RedisSessionInterface,
    )

    app = Flask("bench")
    client = redis.Redis(host=server.host, port=server.port, db=0)
    interface = RedisSessionInterface(app, client=client, key_prefix="fs:")
    lifetime = timedelta(seconds=TTL)
    sid = "e2e"
    store_id = interface._get_store_id(sid)

    def run() -> object:
        interface._upsert_session(lifetime, RedisSession(payload, sid=sid), store_id)
        data = interface._retrieve_session_data(store_id)
        return RedisSession(data, sid=sid)

    return run


def _peer_goal(size: str, ratios: dict[str, float], what: str) -> Goal:
    """Goal: every peer's time over ours (``ratios``) at least 1, judged by the fastest peer."""
    fastest = min(PEERS, key=lambda peer: ratios[peer])
    behind = [peer for peer in PEERS if ratios[peer] < 1.0]
    return Goal(
        f"e2e {size}: fastest peer ({fastest}) time / ours{what}",
        ratios[fastest],
        1.0,
        higher_is_better=True,
        note=f"behind {', '.join(behind)}" if behind else "",
    )


def _check(name: str, op: Op, payload: dict[str, Any]) -> None:
    loaded = op()
    if dict(loaded) != payload:  # type: ignore[call-overload]
        raise AssertionError(f"{name} did not load back what it stored")


def measure(sizes: tuple[str, ...] = tuple(SIZES), *, scale: float = 1.0) -> E2EResult:
    """Run every contender at every size on a redis-server of our own."""
    results: list[SizeResult] = []
    goals: list[Goal] = []
    profiles: dict[str, str] = {}
    with RedisServer() as server:
        url = server.url_for(prefix="ours:")
        admin = server.client()
        for size in sizes:
            payload = legacy_session(size)
            ours = _ours(url, payload)
            reference: SessionStore[dict[str, Any]] = SessionStore(url, dict, ttl=TTL)
            variants: dict[str, Op] = {
                "ours": ours,
                ZSTD: _ours(url, payload, compress=True),
                CHANGED: _ours_changed(url, payload),
                "floor": _floor(server, reference, payload),
                AA: _floor(server, reference, payload),
                "cachelib": _cachelib(server, payload),
                "dogpile.cache": _dogpile(server, payload),
                "Flask-Session": _flask_session(server, payload),
            }
            before = _before(url, payload)
            if before is not None:
                variants[BEFORE] = before
            memory: dict[str, int] = {}
            for name, op in variants.items():
                _check(name, op, payload)
                if name in STORED_KEY:  # what it just stored (ours and ZSTD share the key)
                    memory[name] = int(admin.memory_usage(STORED_KEY[name], samples=0) or 0)
            calls, rounds = PLAN[size]
            rounds = max(5, int(rounds * scale))
            with no_gc():
                samples = interleaved({n: (op, calls) for n, op in variants.items()}, rounds)
            per_call = {n: statistics.median(s) * 1e6 for n, s in samples.items()}
            ratios = {
                "ours": ratio_of_rounds(samples, "ours", "floor"),
                AA: ratio_of_rounds(samples, AA, "floor"),
            }
            spread = {}
            for name in ("ours", AA):
                per_round = [a / b for a, b in zip(samples[name], samples["floor"], strict=True)]
                quartiles = statistics.quantiles(per_round, n=4)
                spread[name] = (quartiles[0], quartiles[2])
            for peer in (*PEERS, ZSTD, CHANGED, *([BEFORE] if before is not None else [])):
                ratios[peer] = ratio_of_rounds(samples, peer, "ours")
                per_round = [p / o for p, o in zip(samples[peer], samples["ours"], strict=True)]
                quartiles = statistics.quantiles(per_round, n=4)
                spread[peer] = (quartiles[0], quartiles[2])
            results.append(SizeResult(size, per_call, ratios, spread, memory))
            low, high = spread[AA]
            floor_goal = Goal(
                f"e2e {size}: ours / (raw redis-py SET+GET + our codec)",
                ratios["ours"],
                FLOOR_GOAL,
                note=f"A/A of the floor: {ratios[AA]:.2f}x (IQR {low:.2f}-{high:.2f})",
            )
            peer_goal = _peer_goal(size, ratios, "")
            changed = {peer: ratio_of_rounds(samples, peer, CHANGED) for peer in PEERS}
            changed_goal = _peer_goal(size, changed, ", changed every save")
            goals += [floor_goal, peer_goal, changed_goal]
            if (not floor_goal.met or not peer_goal.met) and size not in profiles:
                profiles[size] = profile_top(ours, calls=max(20, calls * 5))
            reference.close()
        typed = vision_session("medium")
        typed_store: SessionStore[EnhancedSessionData] = SessionStore(
            url, EnhancedSessionData, ttl=TTL, access_interval=None
        )

        def typed_ours() -> object:
            typed_store.save("typed", typed)
            return typed_store.load("typed")

        typed_floor = _floor(server, typed_store, typed)
        with no_gc():
            samples = interleaved(
                {"ours": (typed_ours, 12), "floor": (typed_floor, 12)}, max(5, int(21 * scale))
            )
        typed_ratio = ratio_of_rounds(samples, "ours", "floor")
        typed_store.close()
        info = server.client().info("server")
    for goal in goals:
        size = goal.name.split()[1].rstrip(":")
        if not goal.met and size in profiles:
            goal.profile = profiles[size]
    versions = {"redis-server": str(info["redis_version"]), "redis-py": redis.__version__}
    for module, dist in (
        ("cachelib", "cachelib"),
        ("dogpile", "dogpile.cache"),
        ("flask_session", "Flask-Session"),
    ):
        versions[dist] = getattr(sys.modules.get(module), "__version__", "?")
    if versions["Flask-Session"] == "?":
        from importlib.metadata import version

        versions["Flask-Session"] = version("Flask-Session")
        versions["dogpile.cache"] = version("dogpile.cache")
    return E2EResult(results, typed_ratio, versions, goals)


def report(result: E2EResult) -> str:
    """The Markdown section."""
    rows = []
    for entry in result.sizes:
        for name in ("ours", "floor", AA, *PEERS, ZSTD, CHANGED, BEFORE):
            if name not in entry.per_call_us:
                continue
            us = entry.per_call_us[name]
            if name in ("ours", AA):
                low, high = entry.spread[name]
                ratio = f"{entry.ratios[name]:.2f}x the floor (IQR {low:.2f}-{high:.2f})"
            elif name == "floor":
                ratio = "1.00 (floor)"
            else:
                low, high = entry.spread[name]
                ratio = f"{entry.ratios[name]:.2f}x ours (IQR {low:.2f}-{high:.2f})"
            stored = entry.memory.get(name)
            kib = "" if stored is None else f"{stored / 1024:,.1f} KiB"
            rows.append((entry.size, name, ratio, f"{us:,.0f} µs", kib))
    table = markdown_table(
        rows, ("size", "contender", "ratio", "context: per store+load", "Redis MEMORY USAGE")
    )
    versions = ", ".join(f"{k} {v}" for k, v in result.versions.items())
    goals = markdown_table(
        [
            (
                g.name,
                f"{g.ratio:.3f}x",
                g.target,
                ("met" if g.met else "MISSED") + (f" ({g.note})" if g.note else ""),
            )
            for g in result.goals
        ],
        ("goal", "measured", "target", "verdict"),
    )
    return (
        "### End to end through redis-server: store + load\n\n"
        f"{versions}. Peers' ratios are their time over ours (above 1: we are faster); "
        "ours is over the floor (raw redis-py SET/GET of our codec's bytes).\n\n"
        f"{table}\n\n{goals}\n\n"
        f"Typed vision-heavy session (medium), ours / typed floor: {result.typed_ratio:.2f}x.\n"
    )


# -- where the time goes: client CPU, server CPU, bytes on the wire ---------------------------
def _server_counts(client: redis.Redis) -> tuple[float, int]:
    """Microseconds the server spent in commands, and bytes it read plus wrote, so far."""
    stats = client.info("commandstats")
    usec = sum(float(v["usec"]) for k, v in stats.items() if k.startswith("cmdstat_"))
    net = client.info("stats")
    return usec, int(net["total_net_input_bytes"]) + int(net["total_net_output_bytes"])


def where_time_goes(size: str = "medium", calls: int = 200, rounds: int = 7) -> str:
    """One store + load of each contender split three ways, medians over ``rounds``: this
    process's CPU time (``time.process_time``), the redis-server's CPU time in commands (``INFO
    commandstats``), and the bytes the server read and wrote (``INFO stats``, both directions,
    protocol included). Instructions (callgrind) are in docs/performance.md."""
    import time

    payload = legacy_session(size)
    rows = []
    with RedisServer() as server:
        url = server.url_for(prefix="ours:")
        admin = server.client()
        contenders: dict[str, Op] = {
            "ours": _ours(url, payload),
            ZSTD: _ours(url, payload, compress=True),
            "cachelib": _cachelib(server, payload),
            "dogpile.cache": _dogpile(server, payload),
            "Flask-Session": _flask_session(server, payload),
        }
        figures: dict[str, list[tuple[float, float, float]]] = {n: [] for n in contenders}
        for name, op in contenders.items():
            _check(name, op, payload)
        with no_gc():
            for _ in range(rounds):
                for name, op in contenders.items():
                    usec0, net0 = _server_counts(admin)
                    cpu0 = time.process_time()
                    for _ in range(calls):
                        op()
                    cpu = (time.process_time() - cpu0) / calls * 1e6
                    usec1, net1 = _server_counts(admin)
                    # the INFO calls themselves: two commands, counted once per sample
                    figures[name].append(((usec1 - usec0) / calls, cpu, (net1 - net0) / calls))
    for name, samples in figures.items():
        server_us = statistics.median(s[0] for s in samples)
        client_us = statistics.median(s[1] for s in samples)
        wire = statistics.median(s[2] for s in samples)
        rows.append(
            (name, f"{client_us:,.0f} µs", f"{server_us:,.1f} µs", f"{wire / 1024:,.1f} KiB")
        )
    table = markdown_table(
        rows, ("contender", "client CPU / op", "server CPU / op", "bytes on the wire / op")
    )
    return (
        f"#### Where a store + load goes ({size} session, {calls} ops x {rounds} rounds)\n\n"
        f"{table}\n"
    )


# -- instructions: callgrind, this process only ----------------------------------------------
#: The contenders :func:`instructions` counts (``ours`` and ``ours, zstd (opt-in)`` from the
#: checkout it runs in, or from ``--base``'s tree).
COUNTED = ("ours", ZSTD, CHANGED, "cachelib", "dogpile.cache", "Flask-Session")
#: ``--only``'s names for them (no commas).
CLI_NAMES = dict(
    zip(("ours", "zstd", "changed", "cachelib", "dogpile", "flask-session"), COUNTED, strict=True)
)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _counted_op(name: str, host: str, port: int, payload: dict[str, Any]) -> Op:
    """The contender ``name`` against the redis-server at ``host:port`` (in a child)."""
    from types import SimpleNamespace
    from typing import cast

    # the peers use only the server's address
    server = cast(RedisServer, SimpleNamespace(host=host, port=port))
    # a prefix of its own: children run side by side, and one that read another's write would
    # miss its near cache
    url = f"redis://{host}:{port}/0?prefix=ours{os.getpid()}:"
    makers: dict[str, Callable[[], Op]] = {
        "ours": lambda: _ours(url, payload),
        ZSTD: lambda: _ours(url, payload, compress=True),
        CHANGED: lambda: _ours_changed(url, payload),
        "cachelib": lambda: _cachelib(server, payload),
        "dogpile.cache": lambda: _dogpile(server, payload),
        "Flask-Session": lambda: _flask_session(server, payload),
    }
    return makers[name]()


def _child(name: str, size: str, host: str, port: int, calls: int) -> None:
    """Run under callgrind: build the contender, check and warm it, then ``calls`` store+loads."""
    payload = legacy_session(size)
    op = _counted_op(name, host, port, payload)
    _check(name, op, payload)
    for _ in range(5):
        op()
    for _ in range(calls):
        op()


def _collected(name: str, size: str, host: str, port: int, calls: int, base: str | None) -> int:
    """Instructions callgrind counts for one child run of ``calls`` operations."""
    import re
    import subprocess
    import tempfile

    paths = [ROOT] if base is None else [base, os.path.join(base, "backends", "redis"), ROOT]
    code = (
        f"import sys; sys.path[:0] = {paths!r}; from benchmarks.bench_e2e import _child; "
        f"_child({name!r}, {size!r}, {host!r}, {port}, {calls})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={tmp}/callgrind.out",
            sys.executable,
            "-c",
            code,
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}  # (else two counts differ by up to 2 %)
        done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, check=True, env=env)
    found = re.search(r"Collected : (\d+)", done.stderr)
    assert found is not None, done.stderr[-2000:]
    return int(found.group(1))


def instructions(
    sizes: tuple[str, ...] = ("medium",),
    names: tuple[str, ...] = COUNTED,
    *,
    base: str | None = None,
    workers: int = 4,
) -> dict[tuple[str, str], float]:
    """Instructions per store + load of each contender (this process only, not redis-server):
    ``(I(2N) - I(N)) / N`` under ``valgrind --tool=callgrind``, so start-up and warm-up cancel.
    Repeatable under any load, unlike wall time. With ``base`` (a tree holding ``session_store``
    and ``backends/redis`` of another revision, e.g. ``git archive main``), ``ours`` rows are
    also counted from it, as ``<name> @base``."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    jobs: dict[tuple[str, str], tuple[str, str | None, int]] = {}
    for size in sizes:
        calls = {"small": 40, "medium": 10, "large": 2}[size]
        for name in names:
            jobs[(size, name)] = (name, None, calls)
            if base is not None and name in ("ours", ZSTD, CHANGED):
                jobs[(size, f"{name} @base")] = (name, base, calls)
    with RedisServer() as server, ThreadPoolExecutor(workers) as pool:
        # the children run side by side: each counts its own instructions only
        runs = {
            (label, n): pool.submit(_collected, name, label[0], server.host, server.port, n, tree)
            for label, (name, tree, calls) in jobs.items()
            for n in (calls, 2 * calls)
        }
        counts: dict[tuple[str, str], float] = {}
        for label, (_, _, calls) in jobs.items():
            try:
                many, few = runs[(label, 2 * calls)].result(), runs[(label, calls)].result()
            except subprocess.CalledProcessError as exc:  # reported, the others still counted
                print(f"{label}: the child failed: {exc.stderr[-1500:]}", file=sys.stderr)
                continue
            counts[label] = (many - few) / calls
        return counts


def instructions_report(counts: dict[tuple[str, str], float]) -> str:
    """The Markdown table of :func:`instructions`: thousands of instructions, and the ratio of
    each to ``ours`` of the same size."""
    rows = []
    for (size, name), count in counts.items():
        ours = counts.get((size, "ours"))
        ratio = f"{count / ours:.2f}" if ours else ""
        rows.append((size, name, f"{count / 1000:,.0f}k", ratio))
    table = markdown_table(rows, ("size", "contender", "instructions / store+load", "/ ours"))
    return f"#### Instructions per store + load (callgrind, this process only)\n\n{table}\n"


def _main(argv: list[str]) -> None:
    if argv[:1] == ["--instructions"]:
        import argparse

        parser = argparse.ArgumentParser(prog="bench_e2e --instructions")
        parser.add_argument("--sizes", default="medium")
        parser.add_argument("--only", default=",".join(CLI_NAMES), help=", ".join(CLI_NAMES))
        parser.add_argument("--base", default=None, help="a tree of another revision")
        parser.add_argument("--workers", type=int, default=4, help="callgrind runs at once")
        args = parser.parse_args(argv[1:])
        names = tuple(CLI_NAMES[name] for name in args.only.split(","))
        sizes = tuple(args.sizes.split(","))
        counts = instructions(sizes, names, base=args.base, workers=args.workers)
        print(instructions_report(counts))
        return
    print(f"_{machine_line()}_\n")
    if "--breakdown" in argv:
        print(where_time_goes())
    else:
        print(report(measure()))


if __name__ == "__main__":
    _main(sys.argv[1:])
