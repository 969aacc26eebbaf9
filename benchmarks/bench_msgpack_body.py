"""Experiment (issue 17, not a change of the stored format): what a msgpack body would save.

A changed session saved and loaded through Redis pays, on our side, the strict JSON write
(``orjson.dumps`` and the strict check's ``marshal.dumps``, :mod:`session_store.codec.jsonsafe`)
and a full ``orjson.loads`` on the load after the save. The peers write pickle (cachelib,
dogpile.cache) or msgpack (Flask-Session) with no check. This measures, on the legacy-shaped
medium and large sessions of ``payloads.py`` (the envelope ``{schema, version, data}``), the CPU
of each step in one process with the cyclic collector off (as ``bench_e2e`` times), in
interleaved rounds, medians:

* **JSON today**: ``jsonsafe.dumps`` (``orjson.dumps`` + the strict check) and ``orjson.loads``;
* **msgpack body**: ``ormsgpack.packb`` with every passthrough option and a raising default
  (Enum, UUID, dataclasses, datetimes, subclasses, ints beyond 64 bits refused in C; a tuple
  written as an array, as JSON does) plus a scan for NaN / infinity in its bytes, and
  ``ormsgpack.unpackb``: what a new envelope format would cost instead;
* **JSON + msgpack snapshot**: today's JSON body, the strict check done by that ``packb``
  instead of ``marshal.dumps``, and the load after a save reading the packed snapshot
  (``unpackb``) instead of parsing the JSON: exact, since msgpack has no shared references
  and the default writes a tuple as an array (what the near cache could keep; not built);
* pickle and msgspec's msgpack, the peers' formats, for reference.

Run: ``python -m benchmarks.bench_msgpack_body`` (needs ``ormsgpack``, in the ``bench`` extra
only: it is not a dependency of session-store).
"""

from __future__ import annotations

import gc
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from benchmarks.payloads import legacy_session
from session_store.codec import jsonsafe

#: Calls per round and rounds, per size.
PLAN = {"medium": (100, 15), "large": (10, 15)}


def _strict_msgpack() -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    """``packb`` refusing what JSON here refuses (NaN and infinity by a scan of its bytes), and
    ``unpackb``."""
    import ormsgpack

    option = (
        ormsgpack.OPT_PASSTHROUGH_SUBCLASS
        | ormsgpack.OPT_PASSTHROUGH_DATETIME
        | ormsgpack.OPT_PASSTHROUGH_DATACLASS
        | ormsgpack.OPT_PASSTHROUGH_ENUM
        | ormsgpack.OPT_PASSTHROUGH_UUID
        | ormsgpack.OPT_PASSTHROUGH_TUPLE
        | ormsgpack.OPT_PASSTHROUGH_BIG_INT
    )

    def default(value: Any) -> Any:
        if type(value) is tuple:
            return list(value)  # an array, as JSON writes it
        raise TypeError(f"{type(value).__qualname__} is not storable")

    def pack(value: Any) -> bytes:
        packed = ormsgpack.packb(value, default=default, option=option)
        # a float64 is 0xcb and 8 bytes big-endian: NaN / infinity start 7f f? or ff f?
        # (one byte looked for: bytes.find of one byte is memchr, of two a slower loop)
        at = packed.find(0xCB)
        while at != -1:
            head = packed[at + 1 : at + 3]  # (0xcb may also be a last byte: an int's)
            if len(head) == 2 and head[0] & 0x7F == 0x7F and head[1] >= 0xF0:
                raise ValueError("NaN or infinity (or a false alarm: walk it)")
            at = packed.find(0xCB, at + 1)
        return packed

    return pack, ormsgpack.unpackb


def steps(size: str) -> dict[str, Callable[[], object]]:
    """The steps timed for one payload size."""
    import msgspec

    pack, unpack = _strict_msgpack()
    envelope = {"schema": "dict", "version": 1, "data": legacy_session(size)}
    body = orjson.dumps(envelope)
    packed = pack(envelope)
    pickled = pickle.dumps(envelope, protocol=5)
    assert unpack(packed) == orjson.loads(body) == envelope
    kept: list[object] = []

    def keep(obj: object) -> None:  # freed on the next call, as a caller drops a session
        kept[:] = [obj]

    return {
        "JSON today: strict dumps": lambda: jsonsafe.dumps(envelope),
        "JSON today: orjson.dumps alone": lambda: orjson.dumps(envelope),
        "JSON today: orjson.loads": lambda: keep(orjson.loads(body)),
        "msgpack: strict packb + NaN scan": lambda: pack(envelope),
        "msgpack: unpackb": lambda: keep(unpack(packed)),
        "snapshot: orjson.dumps + strict packb": lambda: (orjson.dumps(envelope), pack(envelope)),
        "pickle: dumps": lambda: pickle.dumps(envelope, protocol=5),
        "pickle: loads": lambda: keep(pickle.loads(pickled)),
        "msgspec msgpack: encode": lambda: msgspec.msgpack.encode(envelope),
        "msgspec msgpack: decode": lambda: keep(msgspec.msgpack.decode(packed)),
    }


def measure(size: str) -> dict[str, float]:
    """Median CPU microseconds per call of each step, collector off, interleaved rounds."""
    ops = steps(size)
    calls, rounds = PLAN[size]
    samples: dict[str, list[float]] = {name: [] for name in ops}
    names = list(ops)
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
    return {name: statistics.median(values) for name, values in samples.items()}


def report(results: dict[str, dict[str, float]]) -> str:
    """The steps and the save + load of each way, in µs and as a ratio to JSON today."""
    lines = ["| size | step | CPU µs / call |", "|---|---|---:|"]
    for size, figures in results.items():
        lines += [f"| {size} | {name} | {us:,.1f} |" for name, us in figures.items()]
    lines += [
        "",
        "| size | save + load (codec only) | CPU µs | / JSON today |",
        "|---|---|---:|---:|",
    ]
    for size, f in results.items():
        ways = {
            "JSON today (strict dumps + orjson.loads)": f["JSON today: strict dumps"]
            + f["JSON today: orjson.loads"],
            "msgpack body (strict packb + unpackb)": f["msgpack: strict packb + NaN scan"]
            + f["msgpack: unpackb"],
            "JSON body + msgpack check/snapshot (load after save: unpackb)": f[
                "snapshot: orjson.dumps + strict packb"
            ]
            + f["msgpack: unpackb"],
            "pickle (cachelib, dogpile.cache)": f["pickle: dumps"] + f["pickle: loads"],
            "msgspec msgpack (Flask-Session)": f["msgspec msgpack: encode"]
            + f["msgspec msgpack: decode"],
        }
        today = next(iter(ways.values()))
        lines += [f"| {size} | {way} | {us:,.1f} | {us / today:.2f} |" for way, us in ways.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    sizes = argv or ["medium", "large"]
    print(report({size: measure(size) for size in sizes}))


if __name__ == "__main__":
    main(sys.argv[1:])
