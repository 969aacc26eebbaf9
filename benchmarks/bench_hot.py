"""The hot path (issue 17): every figure of the issue's table as a ratio, before and after.

"Before" is the code as it was before issue 17 (``BEFORE_REV``), imported side by side as
``session_store_before`` from ``git archive`` (same process, same payloads, interleaved
rounds); "after" is this checkout. Without git, the before rows are left out.

* typed save + load through ``memory://`` with the default settings (zstd, the decoded near
  cache) / msgspec encode + decode of the same attrs object: small, medium, large (goal <= 2.0,
  stretch 1.5); also with the near cache off (every load decodes);
* the typed codec round trip (encode + decode) with zstd and with no stages / msgspec Structs,
  and the anchors: msgspec on the attrs class, cattrs' stock preconf orjson and msgspec
  converters;
* a warm typed ``load`` through ``memory | redis | diskcache`` (coherence on) / a bare decode
  of the same bytes (goal: at most 1/50), small, medium and large, the default (mutable)
  schema's copy of the master, its rebuild from the body (as before), and a frozen schema;
* ``MemoryBackend`` get/set at 1,000 entries / a dict (goal: half of before);
* the chain's memory-tier ``get`` hit / the memory backend alone (the chain's own work; shown).

Short runs (a shared 2-core machine): each figure is a median of per-round ratios over a few
interleaved rounds; the spread is in RESULTS.md beside it.

Run: ``python -m benchmarks.bench_hot``; ``python -m benchmarks.bench_hot --callgrind`` counts
instead the instructions of one warm load (cloned from the master, and rebuilt from the body as
before) and of one bare decode, small, medium and large, mutable and frozen, under ``valgrind
--tool=callgrind`` (each variant a child process, run with N calls and with none).
"""

from __future__ import annotations

import importlib
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import msgspec
import orjson

from benchmarks.bench_codec import MSession
from benchmarks.harness import Goal, interleaved, markdown_table, no_gc, ratio_of_rounds
from benchmarks.payloads import vision_session
from session_store import MemoryBackend, SessionStore, open_backend
from session_store.codec import Codec
from session_store.schema import (
    EnhancedSessionData,
    SchemaInfo,
    get_schema,
    register_schema,
    schema_for_class,
)

#: The last commit before issue 17's changes; ``SESSION_STORE_BENCH_BEFORE`` names another
#: (to compare against a branch point instead).
BEFORE_REV = os.environ.get("SESSION_STORE_BENCH_BEFORE", "84e0b25")
ROOT = Path(__file__).resolve().parents[1]
SAVE_LOAD_GOAL = 2.0
WARM_GOAL = 1 / 50
Op = Callable[[], object]


@dataclass
class Row:
    """One comparison: the median of per-round ratios, with the quartiles of those ratios."""

    name: str
    ratio: float
    low: float
    high: float
    goal: str = "context"
    context: str = ""


@dataclass
class HotResult:
    rows: dict[str, list[Row]] = field(default_factory=dict)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def before_package(rev: str = BEFORE_REV) -> ModuleType | None:
    """The package as it was at ``rev``, importable as ``session_store_before`` (or None)."""
    if "session_store_before" in sys.modules:
        return sys.modules["session_store_before"]
    if shutil.which("git") is None:
        return None
    target = Path(tempfile.mkdtemp(prefix="session-store-before-"))
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "session_store"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    except (subprocess.CalledProcessError, OSError):
        return None
    package = target / "session_store_before"
    (target / "session_store").rename(package)
    imports = re.compile(r"\b(from|import) session_store(?=[\s.])")
    # the package's lazy attributes import their modules by name: those names too
    by_name = re.compile(r"\bimport_module\((f?[\"'])session_store\.")
    for path in package.rglob("*.py"):
        text = imports.sub(r"\1 session_store_before", path.read_text(encoding="utf-8"))
        text = by_name.sub(r"import_module(\1session_store_before.", text)
        path.write_text(text, encoding="utf-8")
    sys.path.insert(0, str(target))
    module = importlib.import_module("session_store_before")
    assert module.SessionStore.__module__.startswith("session_store_before"), "not side by side"
    # Its registry finds the entry points of this checkout's schemas as foreign objects: give
    # it the same schemas as its own SchemaInfo (the same attrs classes, so results compare).
    for name in ("dataroom", "dict"):
        info = get_schema(name)
        assert info is not None
        module.register_schema(
            module.SchemaInfo(info.name, info.cls, info.version, info.migrations, info.downgrades)
        )
    return module


def _row(samples: dict[str, list[float]], contender: str, baseline: str, **kw: Any) -> Row:
    per_round = sorted(a / b for a, b in zip(samples[contender], samples[baseline], strict=True))
    ratio = ratio_of_rounds(samples, contender, baseline)
    low, high = per_round[len(per_round) // 4], per_round[(3 * len(per_round)) // 4]
    return Row(f"{contender} / {baseline}", ratio, low, high, **kw)


def _us(samples: dict[str, list[float]], name: str) -> str:
    values = sorted(samples[name])
    return f"{values[len(values) // 2] * 1e6:,.1f} µs"


# -- typed save + load through memory:// -------------------------------------------------------
def _save_load(store: Any, session: Any) -> Op:
    def run() -> object:
        store.save("hot", session)
        return store.load("hot")

    return run


def save_load(size: str, rounds: int, before: ModuleType | None) -> list[Row]:
    session = vision_session(size)
    encoder, decoder = msgspec.json.Encoder(), msgspec.json.Decoder(EnhancedSessionData)
    assert decoder.decode(encoder.encode(session)) == session
    calls = {"small": 200, "medium": 25, "large": 3}[size]
    ours = SessionStore(MemoryBackend(), EnhancedSessionData, access_interval=None)
    cold = SessionStore(
        MemoryBackend(), EnhancedSessionData, access_interval=None, decoded_cache_bytes=0
    )
    variants: dict[str, tuple[Op, int]] = {
        "msgspec (attrs)": (lambda: decoder.decode(encoder.encode(session)), calls),
        "ours": (_save_load(ours, session), calls),
        "ours, near cache off": (_save_load(cold, session), calls),
    }
    if before is not None:
        old = before.SessionStore(before.MemoryBackend(), EnhancedSessionData, access_interval=None)
        variants["before"] = (_save_load(old, session), calls)
    for name, (op, _) in variants.items():
        loaded = op()
        if name != "msgspec (attrs)":  # last_accessed is stamped on save
            assert isinstance(loaded, EnhancedSessionData) and loaded.extraction_results == (
                session.extraction_results
            ), name
    with no_gc():
        samples = interleaved(variants, rounds)
    base = "msgspec (attrs)"
    return [
        _row(
            samples,
            name,
            base,
            goal=f"<= {SAVE_LOAD_GOAL:g}" if name == "ours" else "context",
            context=f"{_us(samples, name)} vs {_us(samples, base)}",
        )
        for name in variants
        if name != base
    ]


# -- the codec alone ---------------------------------------------------------------------------
def codec_round_trips(rounds: int, before: ModuleType | None) -> list[Row]:
    import cattrs.preconf.msgspec as cattrs_msgspec
    import cattrs.preconf.orjson as cattrs_orjson

    session = vision_session("medium")
    calls = 20
    zstd, plain = Codec(encryption=None), Codec(encryption=None, compression=None)
    data = plain.to_data(session)
    struct = msgspec.json.decode(orjson.dumps(data), type=MSession)
    s_enc, s_dec = msgspec.json.Encoder(), msgspec.json.Decoder(MSession)
    a_dec = msgspec.json.Decoder(EnhancedSessionData)
    stock_orjson = cattrs_orjson.make_converter()
    stock_msgspec = cattrs_msgspec.make_converter()

    def rt(codec: Any) -> Op:
        return lambda: codec.decode("k", codec.encode("k", session))

    variants: dict[str, tuple[Op, int]] = {
        "msgspec Structs": (lambda: s_dec.decode(s_enc.encode(struct)), calls),
        "ours, zstd": (rt(zstd), calls),
        "ours, no stages": (rt(plain), calls),
        "orjson on the plain dict": (lambda: orjson.loads(orjson.dumps(data)), calls),
        "msgspec on the attrs class": (lambda: a_dec.decode(s_enc.encode(session)), calls),
        "cattrs preconf orjson, stock": (
            lambda: stock_orjson.loads(stock_orjson.dumps(session), EnhancedSessionData),
            calls,
        ),
    }
    try:
        stock_msgspec.loads(stock_msgspec.dumps(session), EnhancedSessionData)
    except Exception as exc:  # a peer's limitation, reported as such
        skipped = f"cattrs preconf msgspec, stock: cannot round-trip the schema ({exc!r:.80})"
    else:
        skipped = ""
        variants["cattrs preconf msgspec, stock"] = (
            lambda: stock_msgspec.loads(stock_msgspec.dumps(session), EnhancedSessionData),
            calls,
        )
    if before is not None:
        variants["before, zstd"] = (rt(before.Codec(encryption=None)), calls)
        variants["before, no stages"] = (
            rt(before.Codec(encryption=None, compression=None)),
            calls,
        )
    with no_gc():
        samples = interleaved(variants, rounds)
    base = "msgspec Structs"
    rows = [
        _row(samples, name, base, context=f"{_us(samples, name)} vs {_us(samples, base)}")
        for name in variants
        if name != base
    ]
    rows.append(_row(samples, "ours, zstd", "orjson on the plain dict"))
    if skipped:
        rows.append(Row(skipped, float("nan"), float("nan"), float("nan")))
    return rows


# -- a frozen twin of the vision session: what an immutable schema gets ----------------------
@attrs.frozen
class FrozenPage:
    """A vision extraction, immutable (tuples instead of lists and dicts)."""

    page_number: int
    content_type: str
    description: str
    extracted_text: str
    series: tuple[float, ...]
    confidence: float
    model: str
    cost_usd: float


@attrs.frozen
class FrozenDocument:
    """A document's extraction results, immutable."""

    document_id: str
    filename: str
    text_content: str
    pages: tuple[FrozenPage, ...]
    insights: tuple[str, ...]
    quality_score: float


@attrs.frozen
class FrozenSession:
    """The vision-heavy session as a frozen schema: its snapshots are shared, never copied."""

    user_id: str
    created_at: datetime
    last_accessed: datetime
    documents: tuple[FrozenDocument, ...]


FROZEN = SchemaInfo("bench-frozen-session", FrozenSession, 1)


def _field(item: Any, name: str) -> Any:
    """A field of an extraction entry, stored as the plan's dict or as an object."""
    return item[name] if isinstance(item, dict) else getattr(item, name)


def frozen_twin(session: EnhancedSessionData) -> FrozenSession:
    """The same content as a :class:`FrozenSession` (extraction results are the plan's dicts)."""
    assert session.created_at is not None and session.last_accessed is not None
    return FrozenSession(
        session.user_id,
        session.created_at,
        session.last_accessed,
        tuple(
            FrozenDocument(
                doc["document_id"],
                doc["filename"],
                doc["text_content"],
                tuple(
                    FrozenPage(
                        _field(v, "page_number"),
                        _field(v, "content_type"),
                        _field(v, "description"),
                        _field(v, "extracted_text"),
                        tuple(_field(v, "data_points").get("series", ())),
                        _field(v, "confidence"),
                        _field(v, "model"),
                        _field(v, "cost_usd"),
                    )
                    for v in doc["vision_extractions"] or ()
                ),
                tuple(doc["comprehensive_insights"]),
                doc["extraction_quality_score"],
            )
            for doc in session.extraction_results.values()
        ),
    )


# -- a warm load through the chain --------------------------------------------------------------
def _rebuilding(store: Any) -> Any:
    """``store`` with its near cache never making a master copy: every warm load of a mutable
    session rebuilds it from the kept body, as before the master copies (issue 17)."""
    store._decoded.hits_before_master = 2**62
    return store


def warm_chain_load(
    rounds: int, before: ModuleType | None, size: str = "medium"
) -> tuple[list[Row], list[str]]:
    from session_store_redis.testing import RedisServer

    session = vision_session(size)
    calls = {"small": 50, "medium": 20, "large": 3}[size]
    notes: list[str] = []
    with RedisServer() as server, tempfile.TemporaryDirectory() as disk:
        url = f"memory://?max_entries=1000 | {server.url_for(prefix='hot:')} | diskcache://{disk}"
        try:
            chain = open_backend(url, max_staleness=1.0)
            notes.append("chain with coherence on (max_staleness=1)")
        except Exception as exc:  # the chain's options are being redesigned
            chain = open_backend(url)
            notes.append(f"chain without the coherence option ({exc!r:.60})")
        store = SessionStore(chain, EnhancedSessionData, access_interval=None)
        store.save("hot", session)
        payload = chain.get("hot")
        assert payload is not None
        rebuilding = _rebuilding(SessionStore(chain, EnhancedSessionData, access_interval=None))
        info = schema_for_class(EnhancedSessionData)
        register_schema(FROZEN)
        frozen = SessionStore(chain, FrozenSession, access_interval=None)
        frozen.save("frozen", frozen_twin(session))
        frozen_payload = chain.get("frozen")
        assert frozen_payload is not None and frozen.load("frozen") is frozen.load("frozen")
        for _ in range(3):  # past the second hit: the master copy is made
            assert store.load("hot") == rebuilding.load("hot")
        variants: dict[str, tuple[Op, int]] = {
            "bare decode": (lambda: store.codec.decode("hot", payload, as_schema=info), calls),
            "warm load": (lambda: store.load("hot"), calls),
            "warm load, rebuilt from the body": (lambda: rebuilding.load("hot"), calls),
            "frozen schema: bare decode": (
                lambda: frozen.codec.decode("frozen", frozen_payload, as_schema=FROZEN),
                calls,
            ),
            "frozen schema: warm load": (lambda: frozen.load("frozen"), calls),
            "chain get (bytes)": (lambda: chain.get("hot"), calls),
        }
        memory = MemoryBackend()
        memory.set("hot", payload)
        variants["memory backend get"] = (lambda: memory.get("hot"), calls)
        if before is not None:
            old = before.SessionStore(chain, EnhancedSessionData, access_interval=None)
            variants["before: warm load"] = (lambda: old.load("hot"), calls)
        with no_gc():
            samples = interleaved(variants, rounds)
        chain.close()
    goal = f"<= 1/{1 / WARM_GOAL:g}"
    rows = [
        _row(
            samples,
            "warm load",
            "bare decode",
            goal=goal,
            context=f"{_us(samples, 'warm load')} vs {_us(samples, 'bare decode')}",
        ),
        _row(samples, "warm load, rebuilt from the body", "bare decode"),
        _row(samples, "warm load", "warm load, rebuilt from the body"),
        _row(
            samples,
            "frozen schema: warm load",
            "frozen schema: bare decode",
            goal=goal,
            context=f"{_us(samples, 'frozen schema: warm load')} vs "
            f"{_us(samples, 'frozen schema: bare decode')}",
        ),
        _row(samples, "chain get (bytes)", "memory backend get", goal="<= 1.5 (chain work)"),
    ]
    if before is not None:
        rows.insert(1, _row(samples, "before: warm load", "bare decode"))
    return rows, notes


# -- the memory backend ---------------------------------------------------------------------------
def memory_backend(rounds: int, before: ModuleType | None) -> list[Row]:
    n, value = 1_000, b"x" * 100
    rng = random.Random(17)
    ops = [(rng.random() < 0.2, f"user:{rng.randrange(n)}") for _ in range(20_000)]

    def ours(cls: Any) -> Op:
        backend = cls(max_entries=n, max_bytes=None)
        for i in range(n):
            backend.set(f"user:{i}", value)
        get, set_ = backend.get, backend.set

        def run() -> None:
            for write, key in ops:
                if write:
                    set_(key, value)
                else:
                    get(key)

        return run

    table = {f"user:{i}": value for i in range(n)}

    def plain() -> None:
        for write, key in ops:
            if write:
                table[key] = value
            else:
                table.get(key)

    variants: dict[str, tuple[Op, int]] = {
        "dict": (plain, 1),
        "MemoryBackend": (ours(MemoryBackend), 1),
    }
    if before is not None:
        variants["before: MemoryBackend"] = (ours(before.MemoryBackend), 1)
    with no_gc():
        samples = interleaved(variants, rounds)
    per_op = {k: sorted(v)[len(v) // 2] / len(ops) * 1e9 for k, v in samples.items()}
    rows = [
        _row(samples, name, "dict", context=f"{per_op[name]:.0f} ns/op vs {per_op['dict']:.0f}")
        for name in variants
        if name != "dict"
    ]
    if before is not None:
        rows.append(_row(samples, "MemoryBackend", "before: MemoryBackend", goal="<= 0.5"))
    return rows


def measure(rounds: int = 7) -> HotResult:
    """Every section, in one run."""
    before = before_package()
    result = HotResult()
    if before is None:
        result.notes.append(f"before ({BEFORE_REV}) not available: no git checkout")
    for size in ("small", "medium", "large"):
        result.rows[f"typed save + load through memory:// ({size})"] = save_load(
            size, rounds, before
        )
    result.rows["typed codec round trip (medium)"] = codec_round_trips(rounds, before)
    for size in ("small", "medium", "large"):
        rows, notes = warm_chain_load(rounds, before, size)
        result.rows[f"warm typed load through memory | redis | diskcache ({size})"] = rows
        if size == "medium":
            warm = rows
            result.notes += notes
    result.rows["MemoryBackend at 1,000 entries, 80 % get / 20 % set"] = memory_backend(
        rounds, before
    )
    for size in ("small", "medium", "large"):
        row = result.rows[f"typed save + load through memory:// ({size})"][0]
        result.goals.append(
            Goal(f"hot {size}: typed save+load via memory:// / msgspec (attrs)", row.ratio, 2.0)
        )
    result.goals.append(Goal("hot: warm chain load / bare decode", warm[0].ratio, WARM_GOAL))
    frozen_row = next(r for r in warm if r.name.startswith("frozen"))
    result.goals.append(
        Goal("hot: warm chain load / bare decode, frozen schema", frozen_row.ratio, WARM_GOAL)
    )
    memory_rows = result.rows["MemoryBackend at 1,000 entries, 80 % get / 20 % set"]
    halved = [r for r in memory_rows if r.name == "MemoryBackend / before: MemoryBackend"]
    if halved:
        result.goals.append(Goal("hot: MemoryBackend op / before", halved[0].ratio, 0.5))
    return result


def report(result: HotResult) -> str:
    """The Markdown section."""
    parts = [
        "### The hot path (issue 17): before and after, in one run\n",
        f"Before = commit `{BEFORE_REV}` imported side by side; medians of per-round ratios "
        "(IQR of the per-round ratios beside); short runs on a shared 2-core machine, so read "
        "the spread. Above 1: the left side is slower.\n",
    ]
    for title, rows in result.rows.items():
        table = markdown_table(
            [
                (
                    r.name,
                    f"{r.ratio:.3f}x" if r.ratio == r.ratio else "n/a",
                    f"{r.low:.2f}-{r.high:.2f}" if r.low == r.low else "",
                    r.goal,
                    r.context,
                )
                for r in rows
            ],
            ("comparison (time / time)", "ratio", "IQR", "goal", "context"),
        )
        parts.append(f"**{title}**\n\n{table}\n")
    if result.notes:
        parts.append("Notes: " + "; ".join(result.notes) + ".\n")
    return "\n".join(parts)


# -- callgrind: instructions per warm load, clone against rebuild, in one run --------------------
#: The ``--callgrind`` variants: one call each (see :func:`_callgrind_child`).
CALLGRIND_VARIANTS = (
    "bare decode",
    "warm load, rebuilt from the body",
    "warm load, cloned from the master",
    "frozen schema: bare decode",
    "frozen schema: warm load",
)


def _callgrind_child(size: str, variant: str, calls: int) -> None:
    """``calls`` calls of ``variant`` after the warm-up (3 loads: past the master copy), with
    the garbage collector off; the parent runs it with 0 calls too and takes the difference."""
    import gc

    session = vision_session(size)
    backend = MemoryBackend()
    codec = Codec(encryption=None)  # zstd above 1 KiB, as the chain's tiers store it
    store = SessionStore(backend, EnhancedSessionData, codec=codec, access_interval=None)
    if "rebuilt" in variant:
        _rebuilding(store)
    store.save("hot", session)
    register_schema(FROZEN)
    frozen = SessionStore(backend, FrozenSession, codec=codec, access_interval=None)
    frozen.save("frozen", frozen_twin(session))
    payload, frozen_payload = backend.get("hot"), backend.get("frozen")
    assert payload is not None and frozen_payload is not None
    info = schema_for_class(EnhancedSessionData)
    run: Op = {
        "bare decode": lambda: codec.decode("hot", payload, as_schema=info),
        "warm load, rebuilt from the body": lambda: store.load("hot"),
        "warm load, cloned from the master": lambda: store.load("hot"),
        "frozen schema: bare decode": lambda: codec.decode(
            "frozen", frozen_payload, as_schema=FROZEN
        ),
        "frozen schema: warm load": lambda: frozen.load("frozen"),
    }[variant]
    for _ in range(3):
        run()
    gc.collect()
    gc.disable()
    for _ in range(calls):
        run()


def _main_thread_instructions(size: str, variant: str, calls: int) -> int:
    """Instructions of the main thread of a child running ``calls`` calls of ``variant``."""
    with tempfile.TemporaryDirectory() as out:
        target = os.path.join(out, "cg")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--separate-threads=yes",
                f"--callgrind-out-file={target}",
                sys.executable,
                "-m",
                "benchmarks.bench_hot",
                "--callgrind-child",
                size,
                variant,
                str(calls),
            ],
            check=True,
            capture_output=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        text = Path(f"{target}-01").read_text(encoding="utf-8")
    found = re.search(r"^summary: (\d+)", text, re.MULTILINE)
    assert found is not None
    return int(found.group(1))


def callgrind_report() -> str:
    """Instructions per call of each variant (N calls minus none, over N: the setup's own
    ~0.1 % noise is why N is large), warm load / bare decode beside; a Markdown table."""
    calls = {"small": 1000, "medium": 200, "large": 20}
    table = []
    for size, n in calls.items():
        per = {
            v: (_main_thread_instructions(size, v, n) - _main_thread_instructions(size, v, 0)) / n
            for v in CALLGRIND_VARIANTS
        }
        decode, frozen_decode = per["bare decode"], per["frozen schema: bare decode"]
        for v in CALLGRIND_VARIANTS:
            base = frozen_decode if v.startswith("frozen") else decode
            table.append((size, v, f"{per[v]:,.0f}", f"{per[v] / base:.3f}x"))
    return markdown_table(table, ("size", "variant", "instructions / call", "/ bare decode"))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--callgrind-child"]:
        _callgrind_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        sys.exit(0)
    if sys.argv[1:2] == ["--callgrind"]:
        print(callgrind_report())
        sys.exit(0)
    from benchmarks.harness import machine_line

    print(f"_{machine_line()}_\n")
    print(report(measure(rounds=int(sys.argv[1]) if len(sys.argv) > 1 else 7)))
