"""``stats``: per-tier metrics of a store, measured by a short read-only probe.

Counters live in the process that counts, so a fresh command sees zeros. ``stats`` therefore
measures: it counts the sessions of every tier (not a chain's tombstones, the deleted sessions
a ``delete`` leaves in each tier, even of a key that was never there; telling them apart reads
the values, through a second instance of the store whose counters are not shown), then reads a
sample of them from each tier directly (one ``get`` per key and one ``get_many`` of the whole
sample, nothing written, nothing promoted), timing each call into that tier's latency
histogram. What it prints is
:func:`session_store.metrics.snapshot` of that probe: per tier its keys, hits, misses, errors,
evictions, fallbacks, promotions and latency percentiles. An application reads the live numbers
of its own store with the same ``snapshot`` (or exports them: ``session_store.metrics``).
"""

from __future__ import annotations

import time
from typing import Any

import click

from session_store.backend import SessionBackend
from session_store.cli.common import (
    console,
    echo_json,
    note_degraded,
    opened,
    resolve_url,
)
from session_store.cli.tierreads import live_keys, tiers_of
from session_store.errors import BackendError, BackendUnavailableError
from session_store.metrics import format_seconds, snapshot

__all__ = ["probe", "stats"]


def _count(tier: SessionBackend, limit: int) -> tuple[int, list[str]]:
    """The tier's sessions (up to ``limit``): its keys without tombstones."""
    keys: list[str] = []
    for key in live_keys(tier, tier.scan("")):
        keys.append(key)
        if len(keys) >= limit:
            break
    return len(keys), keys


def _stored_evictions(tier: SessionBackend) -> int | None:
    """The evictions a tier keeps a total of across processes (diskcache does), else ``None``:
    a fresh command's own counters would only ever show zero."""
    stored = getattr(tier, "stored_evictions", None)
    if stored is None:
        return None
    try:
        return int(stored())
    except BackendError:
        return None


def probe(
    backend: SessionBackend,
    *,
    sample: int,
    scan_limit: int,
    counting: SessionBackend | None = None,
) -> dict[str, Any]:
    """Run the probe on ``backend`` and return the snapshot, with ``keys`` per tier.

    Args:
        counting: another instance of the same store (same URL), which counts each tier's
            sessions; telling a session from a tombstone reads its value, and those reads
            would otherwise show in ``backend``'s counters as the probe's (default:
            ``backend`` itself).

    Raises:
        BackendUnavailableError: a plain backend (not a chain) is down, or every tier is.
    """
    tiers = tiers_of(backend)
    counters = tiers_of(counting) if counting is not None else tiers
    if len(counters) != len(tiers):
        raise ValueError("counting must be an instance of the same store as backend")
    counted: list[int | None] = []
    union: dict[str, None] = {}
    errors: dict[int, str] = {}
    for index, tier in enumerate(counters):
        try:
            count, keys = _count(tier, scan_limit)
        except BackendUnavailableError as exc:
            if len(tiers) == 1:
                raise
            counted.append(None)
            errors[index] = exc.message
            continue
        counted.append(count)
        union.update(dict.fromkeys(keys))
    if len(errors) == len(tiers):
        raise BackendUnavailableError("every tier is unavailable", backend=backend.describe())
    chosen = list(union)[:sample]
    for index, tier in enumerate(tiers):
        if index in errors:
            continue
        try:
            for key in chosen:
                start = time.perf_counter()
                tier.get(key)
                tier.counters.observe("get", time.perf_counter() - start)
            if chosen:
                start = time.perf_counter()
                tier.get_many(chosen)
                tier.counters.observe("get_many", time.perf_counter() - start)
        except BackendUnavailableError as exc:
            if len(tiers) == 1:
                raise
            errors[index] = exc.message
    result = snapshot(backend)
    for index, message in errors.items():
        note_degraded(tiers[index].describe(), message)
    for index, entry in enumerate(result["tiers"]):
        stored = _stored_evictions(tiers[index]) if index not in errors else None
        if stored is not None:  # evictions every process made, kept by the tier itself
            entry["counters"]["evictions"] = max(entry["counters"]["evictions"], stored)
        entry["keys"] = counted[index]
        entry["keys_capped"] = counted[index] is not None and counted[index] == scan_limit
        entry["error"] = errors.get(index)
        if index in errors:
            entry["up"] = False
    result["sample"] = len(chosen)
    return result


@click.command()
@click.argument("url", required=False, metavar="[URL]")
@click.option(
    "--sample", type=click.IntRange(min=0), default=100, show_default=True, help="Keys read."
)
@click.option(
    "--scan-limit",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Stop counting a tier's keys here.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as JSON.")
def stats(url: str | None, sample: int, scan_limit: int, as_json: bool) -> None:
    """Per-tier metrics: keys, hits, misses, errors, evictions, fallbacks, promotions, latency.

    Counters live in the process that counts, so a fresh command would only see zeros: stats
    measures instead, with a short read-only probe. Evictions are the total a tier keeps across
    processes where it keeps one (diskcache: every eviction past size_limit since the directory
    was created). It counts every tier's sessions (up to --scan-limit; a chain's tombstones,
    deleted sessions, are not counted), then reads a sample of them (--sample) from each tier
    directly, one get per key and one get_many of the whole sample, timing each call; nothing
    is written or promoted.
    An application reads its own live numbers with session_store.metrics.snapshot.
    """
    target = resolve_url(url)
    with opened(target) as backend, opened(target, note_memory=False) as counting:
        result = probe(backend, sample=sample, scan_limit=scan_limit, counting=counting)
    if as_json:
        echo_json(result)
        return
    _print(result)


def _print(result: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    out.print(f"backend: {result['backend']}", overflow="fold")
    out.print(f"probe: {result['sample']} keys read from every tier, one get each + one get_many")
    # Whole backend names above the table (folded, never cut short); the table names each tier
    # by number and scheme, so that it fits 80 columns.
    for tier in result["tiers"]:
        out.print(f"tier {tier['tier']}: {tier['backend']}", overflow="fold")
    table = Table(box=None, pad_edge=False, collapse_padding=True)
    for name in ("tier", "scheme", "up", "keys", "hits", "misses", "errors", "evictions"):
        table.add_column(name, justify="left" if name in ("scheme", "up") else "right")
    for name in ("get p50", "get p99", "get_many p50"):
        table.add_column(name, justify="right")
    for column in table.columns:
        column.overflow = "fold"
    for tier in result["tiers"]:
        counts = tier["counters"]
        latency = tier["latency"]
        keys = tier["keys"]
        table.add_row(
            str(tier["tier"]),
            tier["backend"].partition(":")[0],
            "yes" if tier["up"] else "DOWN",
            "-" if keys is None else f"{keys:,}{'+' if tier['keys_capped'] else ''}",
            str(counts["hits"]),
            str(counts["misses"]),
            str(counts["errors"]),
            str(counts["evictions"]),
            format_seconds(latency.get("get", {}).get("p50", 0.0)),
            format_seconds(latency.get("get", {}).get("p99", 0.0)),
            format_seconds(latency.get("get_many", {}).get("p50", 0.0)),
        )
    out.print(table)
    if result["chain"] is not None:
        chain = result["chain"]
        out.print(
            "chain: "
            + ", ".join(f"{name}={chain[name]}" for name in ("fallbacks", "promotions", "errors"))
        )
    for tier in result["tiers"]:
        if tier.get("error"):
            out.print(f"tier {tier['tier']} is down: {tier['error']}", overflow="fold")
