"""``bench``: the quick benchmark, on any store, in a few seconds.

It stores the sample data-room sessions shipped with the package under keys of its own
(``session-store-bench-<random>-N``, deleted afterwards) and times each operation one call at a
time: the codec alone (encode + decode, no I/O), ``save``, ``load``, an atomic ``update`` and
``load_many`` of all of them. Beside the absolute figures it prints two ratios measured in the
same run: the typed codec round trip against a plain ``orjson`` round trip of the same dict,
and ``save`` + ``load`` against the codec alone (what the backend adds). The full suite, with
the peers, is ``python -m benchmarks`` in a source checkout.
"""

from __future__ import annotations

import os
import secrets
import statistics
import time
from collections.abc import Callable
from typing import Any

import click
import orjson

from session_store.cli.common import console, echo_json, make_codec, remember_secrets
from session_store.metrics import format_seconds
from session_store.samples import legacy_sessions
from session_store.schema import EnhancedSessionData
from session_store.store import SessionStore
from session_store.urls import redact_url

__all__ = ["bench", "run_bench"]


def _timed(fn: Callable[[], object], rounds: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    median = statistics.median(ordered)
    return {"p50": median, "p99": p99, "ops_per_s": 1 / median if median else 0.0}


def run_bench(url: str, rounds: int) -> dict[str, Any]:
    """Run the quick benchmark on ``url``; the figures as a plain dict."""
    samples = legacy_sessions()
    run = secrets.token_hex(4)
    keys = [f"session-store-bench-{run}-{n}" for n in range(len(samples))]
    results: dict[str, dict[str, float]] = {}
    with SessionStore(url, EnhancedSessionData, access_interval=None, codec=make_codec()) as store:
        typed = {}
        for key, data in zip(keys, samples.values(), strict=True):
            typed[key] = store.codec.decode(key, orjson.dumps(data)).obj
        sizes = [len(store.codec.encode(k, v)) for k, v in typed.items()]
        try:
            key = keys[sizes.index(max(sizes))]  # the largest sample session
            obj = typed[key]
            raw = store.codec.to_data(obj)
            codec = store.codec

            results["orjson round trip (floor)"] = _summary(
                _timed(lambda: orjson.loads(orjson.dumps(raw)), rounds)
            )
            results["codec encode + decode"] = _summary(
                _timed(lambda: codec.decode(key, codec.encode(key, obj)), rounds)
            )
            results["save"] = _summary(_timed(lambda: store.save(key, obj), rounds))
            results["load"] = _summary(_timed(lambda: store.load(key), rounds))
            results["update (compare-and-set)"] = _summary(
                _timed(lambda: store.update(key, lambda current: current or obj), rounds)
            )
            store.save_many(typed)
            results[f"load_many({len(keys)})"] = _summary(
                _timed(lambda: store.load_many(keys), max(1, rounds // 4))
            )
            shown = store.backend.describe()
        finally:
            store.backend.delete_many(keys)
    floor = results["orjson round trip (floor)"]["p50"]
    codec_p50 = results["codec encode + decode"]["p50"]
    return {
        "backend": shown,
        "rounds": rounds,
        "payload_bytes": {"min": min(sizes), "max": max(sizes)},
        "operations": results,
        "ratios": {
            "codec_vs_orjson": codec_p50 / floor if floor else 0.0,
            "save_load_vs_codec": (results["save"]["p50"] + results["load"]["p50"]) / codec_p50
            if codec_p50
            else 0.0,
        },
    }


@click.command()
@click.argument("url", required=False, metavar="[URL]")
@click.option(
    "--rounds", type=click.IntRange(min=5), default=200, show_default=True, help="Calls per op."
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench(url: str | None, rounds: int, as_json: bool) -> None:
    """The quick benchmark: the sample sessions through the codec and the store at URL.

    URL defaults to $SESSION_STORE_URL, else memory://. It writes keys of its own
    (session-store-bench-*) and deletes them afterwards.
    """
    target = url or os.environ.get("SESSION_STORE_URL", "").strip() or "memory://"
    remember_secrets(target)
    result = run_bench(target, rounds)
    if as_json:
        echo_json(result)
        return
    from rich.table import Table

    out = console()
    out.print(f"backend: {redact_url(target)}  ({rounds} calls per operation)")
    table = Table(box=None, pad_edge=False)
    for name in ("operation", "p50", "p99", "ops/s"):
        table.add_column(name, justify="left" if name == "operation" else "right")
    for name, figures in result["operations"].items():
        table.add_row(
            name,
            format_seconds(figures["p50"]),
            format_seconds(figures["p99"]),
            f"{figures['ops_per_s']:,.0f}",
        )
    out.print(table)
    ratios = result["ratios"]
    out.print(
        f"codec round trip / orjson round trip: {ratios['codec_vs_orjson']:.2f}x; "
        f"save + load / codec round trip: {ratios['save_load_vs_codec']:.2f}x"
    )
