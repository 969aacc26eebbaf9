"""``session-store demo``: the main job on the embedded default, with no server.

The sample data-room sessions are stored through :class:`SessionManager` in a
``memory | diskcache`` chain (Redis in the middle when ``REDIS_URL`` is set; ``SESSION_STORE_URL``
or ``--url`` replaces the chain), read back through the manager's read APIs by a fresh store as a
restarted app would, compared, and summarised in a table with their quality scores, then each
tier's hits and read latency. The demo's keys start with ``demo:`` (never a real user's id) and
are deleted at the end unless ``--keep``. URLs are shown with their secrets masked.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import click

from session_store.backend import Scope
from session_store.cli.common import CommandError, remember_secrets
from session_store.dataroom import SessionManager
from session_store.dataroom.quality import document_count
from session_store.errors import BackendUnavailableError
from session_store.metrics import format_seconds, snapshot
from session_store.samples import legacy_sessions
from session_store.schema import EnhancedSessionData
from session_store.store import SessionStore
from session_store.urls import parse_url, redact_url

__all__ = ["default_demo_url", "demo"]

DEMO_TTL = 24 * 3600.0  # the data-room app's SESSION_TTL_HOURS default


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "session-store" / "demo"


def default_demo_url(directory: Path | None = None) -> str:
    """The demo's chain: ``SESSION_STORE_URL`` if set, else memory | [redis |] diskcache."""
    explicit = os.environ.get("SESSION_STORE_URL")
    if explicit:
        return explicit
    disk = f"diskcache://{(directory or _cache_dir()).resolve()}?prefix=demo:"
    redis = os.environ.get("REDIS_URL")
    middle = ""
    if redis:  # the demo's keys get their own prefix, unless the URL already chose one
        joiner = "" if "prefix" in parse_url(redis).params else ("&" if "?" in redis else "?")
        middle = f" | {redis}{joiner}prefix=demo:" if joiner else f" | {redis}"
    return f"memory://?max_entries=1000{middle} | {disk}"


@click.command()
@click.option(
    "--url",
    default=None,
    help="Backend URL or chain string (default: $SESSION_STORE_URL, else memory | "
    "[$REDIS_URL |] diskcache in the user's cache directory).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of the disk tier (default: the user's cache directory).",
)
@click.option("--keep", is_flag=True, help="Leave the demo sessions in the store afterwards.")
def demo(url: str | None, directory: Path | None, keep: bool) -> None:
    """Store the sample data-room sessions, read them back from a fresh store, show a table.

    The demo's sessions are stored under keys starting with "demo:", never under a real
    user's id, and deleted at the end unless --keep is given.
    """
    chosen = url or default_demo_url(directory)
    remember_secrets(chosen)
    redis = os.environ.get("REDIS_URL") if url is None else None
    try:
        _run_demo(chosen, redact_url(chosen), keep=keep)
    except BackendUnavailableError as exc:
        if not redis or redis not in chosen:
            raise
        raise CommandError(
            f"{exc}; the demo put $REDIS_URL ({redact_url(redis)}) in its chain: start that "
            "Redis, or run the demo without it: `env -u REDIS_URL session-store demo`"
        ) from exc


#: Demo sessions live under their own keys, so the demo can never overwrite a real session.
DEMO_KEY_PREFIX = "demo:"


def _run_demo(url: str, shown: str, *, keep: bool) -> None:
    sessions = {DEMO_KEY_PREFIX + uid: data for uid, data in legacy_sessions().items()}
    click.echo(f"backend: {shown}")
    writer_store = SessionStore(url, EnhancedSessionData, ttl=DEMO_TTL)
    process_local = writer_store.backend.scope is Scope.PROCESS
    try:
        writer = SessionManager(writer_store)
        start = time.perf_counter()
        for user_id, data in sessions.items():
            writer.store_enhanced_session(user_id, data)
        write_ms = (time.perf_counter() - start) * 1000
        click.echo(f"stored {len(sessions)} data-room sessions in {write_ms:.1f} ms")
        if process_local:
            # Nothing outlives this process: read back through the same store.
            click.echo("(process-local backend: reading back without a restart)")
            _read_back(writer_store, sessions)
        else:
            # A fresh store: what the app sees after a restart (its memory tier starts empty).
            with SessionStore(url, EnhancedSessionData, ttl=DEMO_TTL) as reader_store:
                _read_back(reader_store, sessions)
        if not keep:
            writer_store.backend.delete_many(list(sessions))
    finally:
        writer_store.close()
    restart = "" if process_local else " after a restart"
    click.echo(f"ok: every session read back whole{restart}")


def _read_back(store: SessionStore[EnhancedSessionData], sessions: dict[str, Any]) -> None:
    reader = SessionManager(store)
    rows = []
    for user_id, data in sessions.items():
        start = time.perf_counter()
        analysis = reader.get_comprehensive_analysis_data(user_id)
        cold_ms = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        session = reader.get_enhanced_session(user_id)
        warm_ms = (time.perf_counter() - start) * 1000
        if analysis is None or session is None:
            raise CommandError(f"session {user_id!r} did not read back")
        stored = store.codec.to_data(session)
        if any(stored.get(key) != value for key, value in data.items()):
            raise CommandError(f"session {user_id!r} did not read back whole")
        raw = store.backend.get(user_id) or b""
        quality = analysis["session_quality"]["overall_quality_score"]
        rows.append((user_id, document_count(session), len(raw), quality, cold_ms, warm_ms))
    _print_table(rows)
    for tier in snapshot(store)["tiers"]:
        counters = tier["counters"]
        reads = tier["latency"].get("get_with_ttl", {})
        latency = f" read p50={format_seconds(reads['p50'])}" if reads.get("count") else ""
        click.echo(
            f"tier {tier['tier']} {tier['backend']}: hits={counters['hits']} "
            f"misses={counters['misses']} writes={counters['writes']}{latency}"
        )


def _print_table(rows: list[tuple[str, int, int, float, float, float]]) -> None:
    header = (
        f"{'session':<17} {'docs':>4} {'stored B':>8} {'quality':>7} "
        f"{'cold read':>10} {'warm read':>10}"
    )
    click.echo(header)
    click.echo("-" * len(header))
    for user, docs, size, quality, cold, warm in rows:
        click.echo(f"{user:<17} {docs:>4} {size:>8} {quality:>7.2f} {cold:>8.2f}ms {warm:>8.2f}ms")
