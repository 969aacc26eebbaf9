"""Issue 17, option (a) (body17): the strict check's msgpack bytes as the load's snapshot.

A changed session saved and loaded through Redis pays, on our side, the strict JSON write and,
on the load after the save, a rebuild of the session. Before body17 that was ``orjson.dumps``
plus the strict check's ``marshal.dumps`` (thrown away), then ``orjson.loads`` of the body;
now the check is a strict ``ormsgpack.packb`` whose bytes the near cache keeps, and the load
is ``ormsgpack.unpackb`` of them (:mod:`session_store.codec.strictpack`). The stored JSON body
is the same. The peers write pickle (cachelib, dogpile.cache) or msgpack (Flask-Session) with
no check. On the legacy-shaped medium and large sessions of ``payloads.py`` (the envelope
``{schema, version, data}``), the CPU of each step in one process with the cyclic collector
off, in interleaved rounds, medians:

* **before**: the previous commit's ``jsonsafe.dumps`` (imported side by side as
  ``session_store_before`` from ``$SESSION_STORE_BENCH_BEFORE``, default ``main``) and
  ``orjson.loads``;
* **now**: ``jsonsafe.dumps_packed`` (``orjson.dumps`` + strict ``packb`` + NaN scan) and
  ``unpackb`` of its bytes;
* **msgpack body**: the option not taken (a new stored format): strict ``packb`` alone and
  ``unpackb``;
* pickle and msgspec's msgpack, the peers' formats, for reference.

``--e2e``: the "changed every save" row through a redis-server of its own, this process's CPU
(``time.process_time``, collector off, interleaved rounds): ours now, ours before, cachelib,
dogpile.cache and Flask-Session, as ratios of per-round times.

Run: ``python -m benchmarks.bench_msgpack_body [--e2e] [sizes...]``.
"""

from __future__ import annotations

import gc
import os
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from benchmarks.payloads import legacy_session
from session_store.codec import jsonsafe, strictpack

#: Calls per round and rounds, per size.
PLAN = {"medium": (100, 15), "large": (10, 15)}
#: Store + load calls per round and rounds, per size, for ``--e2e``.
E2E_PLAN = {"medium": (12, 41), "large": (3, 41)}
#: The revision "before" is read from (``main``: the code this branch started from).
BEFORE_REV = os.environ.get("SESSION_STORE_BENCH_BEFORE", "main")


def _before_dumps() -> Callable[[Any], bytes] | None:
    """The previous revision's strict ``jsonsafe.dumps`` (``orjson`` + ``marshal``), or None."""
    os.environ.setdefault("SESSION_STORE_BENCH_BEFORE", BEFORE_REV)
    from benchmarks.bench_hot import before_package

    before = before_package(BEFORE_REV)
    if before is None:
        return None
    import importlib

    dumps: Callable[[Any], bytes] = importlib.import_module(
        "session_store_before.codec.jsonsafe"
    ).dumps
    return dumps


def steps(size: str) -> dict[str, Callable[[], object]]:
    """The steps timed for one payload size."""
    import msgspec

    envelope = {"schema": "dict", "version": 1, "data": legacy_session(size)}
    body, packed = jsonsafe.dumps_packed(envelope)
    assert packed is not None
    pickled = pickle.dumps(envelope, protocol=5)
    assert strictpack.unpack(packed) == orjson.loads(body) == envelope
    kept: list[object] = []

    def keep(obj: object) -> None:  # freed on the next call, as a caller drops a session
        kept[:] = [obj]

    before = _before_dumps()
    ops: dict[str, Callable[[], object]] = {}
    if before is not None:
        assert before(envelope) == body
        ops["before: strict dumps (orjson + marshal)"] = lambda: before(envelope)
    ops |= {
        "orjson.dumps alone": lambda: orjson.dumps(envelope),
        "orjson.loads (the load before)": lambda: keep(orjson.loads(body)),
        "now: dumps_packed (orjson + strict packb + scan)": lambda: jsonsafe.dumps_packed(envelope),
        "strict packb + scan alone": lambda: strictpack.finite(strictpack.pack(envelope) or b""),
        "unpackb (the load now; a msgpack body's load)": lambda: keep(strictpack.unpack(packed)),
        "pickle: dumps": lambda: pickle.dumps(envelope, protocol=5),
        "pickle: loads": lambda: keep(pickle.loads(pickled)),
        "msgspec msgpack: encode": lambda: msgspec.msgpack.encode(envelope),
        "msgspec msgpack: decode": lambda: keep(msgspec.msgpack.decode(packed)),
    }
    return ops


def _timed(ops: dict[str, Callable[[], object]], calls: int, rounds: int) -> dict[str, list[float]]:
    """CPU microseconds per call of each op, one sample per round, collector off, the order
    rotating each round."""
    samples: dict[str, list[float]] = {name: [] for name in ops}
    names = list(ops)
    for op in ops.values():  # warm-up
        op()
    gc.collect()
    gc.disable()
    try:
        for index in range(rounds):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                op = ops[name]
                start = time.process_time()
                for _ in range(calls):
                    op()
                samples[name].append((time.process_time() - start) / calls * 1e6)
    finally:
        gc.enable()
    return samples


def measure(size: str) -> dict[str, float]:
    """Median CPU microseconds per call of each step, collector off, interleaved rounds."""
    calls, rounds = PLAN[size]
    samples = _timed(steps(size), calls, rounds)
    return {name: statistics.median(values) for name, values in samples.items()}


def report(results: dict[str, dict[str, float]]) -> str:
    """The steps and the save + load of each way, in µs and as a ratio to before."""
    lines = ["| size | step | CPU µs / call |", "|---|---|---:|"]
    for size, figures in results.items():
        lines += [f"| {size} | {name} | {us:,.1f} |" for name, us in figures.items()]
    lines += [
        "",
        "| size | save + load (codec only) | CPU µs | / before |",
        "|---|---|---:|---:|",
    ]
    for size, f in results.items():
        unpack = f["unpackb (the load now; a msgpack body's load)"]
        ways = {
            "before (strict dumps with marshal + orjson.loads)": f.get(
                "before: strict dumps (orjson + marshal)", float("nan")
            )
            + f["orjson.loads (the load before)"],
            "now (dumps_packed + unpackb of its bytes)": f[
                "now: dumps_packed (orjson + strict packb + scan)"
            ]
            + unpack,
            "msgpack body, not taken (strict packb + unpackb)": f["strict packb + scan alone"]
            + unpack,
            "pickle (cachelib, dogpile.cache)": f["pickle: dumps"] + f["pickle: loads"],
            "msgspec msgpack (Flask-Session)": f["msgspec msgpack: encode"]
            + f["msgspec msgpack: decode"],
        }
        first = next(iter(ways.values()))
        lines += [f"| {size} | {way} | {us:,.1f} | {us / first:.2f} |" for way, us in ways.items()]
    return "\n".join(lines) + "\n"


def e2e(sizes: list[str]) -> str:
    """The "changed every save" row through Redis, now and before, against the peers: CPU of
    this process per store + load, and each one's time over ours now (above 1: we are faster)."""
    import itertools

    from benchmarks import bench_e2e
    from session_store_redis.testing import RedisServer

    before_dumps = _before_dumps()  # imports session_store_before
    lines = [
        "| size | ours now µs | ours before / now | cachelib / now | dogpile.cache / now "
        "| Flask-Session / now |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    with RedisServer() as server:
        url = server.url_for(prefix="ours:")
        for size in sizes:
            payload = legacy_session(size)
            ops: dict[str, Callable[[], object]] = {"now": bench_e2e._ours_changed(url, payload)}
            if before_dumps is not None:
                from session_store import open_backend

                old = sys.modules["session_store_before"].SessionStore(
                    open_backend(url), dict, ttl=bench_e2e.TTL
                )
                mine, counter = dict(payload), itertools.count()

                def before_op(old: Any = old, mine: Any = mine, counter: Any = counter) -> object:
                    mine["bench_seq"] = next(counter)
                    old.save("e2e-changed-before", mine)
                    return old.load("e2e-changed-before")

                ops["before"] = before_op
            ops["cachelib"] = bench_e2e._cachelib(server, payload)
            ops["dogpile.cache"] = bench_e2e._dogpile(server, payload)
            ops["Flask-Session"] = bench_e2e._flask_session(server, payload)
            calls, rounds = E2E_PLAN[size]
            samples = _timed(ops, calls, rounds)

            def ratio(name: str, samples: dict[str, list[float]] = samples) -> str:
                if name not in samples:
                    return "n/a"
                per_round = [a / b for a, b in zip(samples[name], samples["now"], strict=True)]
                return f"{statistics.median(per_round):.2f}"

            now = statistics.median(samples["now"])
            lines.append(
                f"| {size} | {now:,.0f} | {ratio('before')} | {ratio('cachelib')} | "
                f"{ratio('dogpile.cache')} | {ratio('Flask-Session')} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    sizes = [a for a in argv if not a.startswith("--")] or ["medium", "large"]
    if "--e2e" in argv:
        print(e2e(sizes))
        return
    print(report({size: measure(size) for size in sizes}))


if __name__ == "__main__":
    main(sys.argv[1:])
