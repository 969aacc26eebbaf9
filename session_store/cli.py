"""The ``session-store`` command line.

``session-store demo`` runs the main job on the embedded default, with no server: the sample
data-room sessions are stored through :class:`SessionManager` in a ``memory | diskcache``
chain (Redis in the middle when ``REDIS_URL`` or ``SESSION_STORE_URL`` names one), read back
through the manager's read APIs by a fresh store as a restarted app would, compared, and
summarised in a table with their quality scores. Errors are one line on stderr and a non-zero exit,
never a traceback; URLs are shown with their secrets masked.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from session_store.dataroom import SessionManager
from session_store.errors import SessionStoreError
from session_store.samples import legacy_sessions
from session_store.schema import EnhancedSessionData
from session_store.store import SessionStore
from session_store.tiered import TieredBackend
from session_store.urls import parse_url, redact_url

__all__ = ["default_demo_url", "main"]

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


def _fail(message: str) -> None:
    click.echo(f"session-store: error: {message}", err=True)
    sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="session-store")
def main() -> None:
    """Server-side session storage with pluggable backends."""


@main.command()
@click.option(
    "--url",
    default=None,
    help="Backend URL or chain string (default: $SESSION_STORE_URL, else memory | diskcache).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of the disk tier (default: the user's cache directory).",
)
def demo(url: str | None, directory: Path | None) -> None:
    """Store the sample data-room sessions, read them back from a fresh store, show a table."""
    try:
        url = url or default_demo_url(directory)
        _run_demo(url, redact_url(url))
    except SessionStoreError as exc:
        _fail(str(exc))


def _run_demo(url: str, shown: str) -> None:
    sessions = legacy_sessions()
    click.echo(f"backend: {shown}")
    with SessionStore(url, EnhancedSessionData, ttl=DEMO_TTL) as store:
        writer = SessionManager(store)
        start = time.perf_counter()
        for user_id, data in sessions.items():
            writer.store_enhanced_session(user_id, data)
        write_ms = (time.perf_counter() - start) * 1000
    click.echo(f"stored {len(sessions)} data-room sessions in {write_ms:.1f} ms")

    # A fresh store: what the app sees after a restart (its memory tier starts empty).
    with SessionStore(url, EnhancedSessionData, ttl=DEMO_TTL) as store:
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
                _fail(f"session {user_id!r} did not read back")
                return
            stored = store.codec.to_data(session)
            if any(stored.get(key) != value for key, value in data.items()):
                _fail(f"session {user_id!r} did not read back whole")
                return
            raw = store.backend.get(user_id) or b""
            quality = analysis["session_quality"]["overall_quality_score"]
            rows.append((user_id, len(analysis["documents"]), len(raw), quality, cold_ms, warm_ms))
        _print_table(rows)
        backend = store.backend
        if isinstance(backend, TieredBackend):
            for index, tier in enumerate(backend.tier_states()):
                counters = tier["counters"]
                click.echo(
                    f"tier {index} {tier['backend']}: hits={counters['hits']} "
                    f"misses={counters['misses']} writes={counters['writes']}"
                )
    click.echo("ok: every session read back whole after a restart")


def _print_table(rows: list[tuple[str, int, int, float, float, float]]) -> None:
    header = (
        f"{'session':<12} {'docs':>4} {'stored B':>8} {'quality':>7} "
        f"{'cold read':>10} {'warm read':>10}"
    )
    click.echo(header)
    click.echo("-" * len(header))
    for user, docs, size, quality, cold, warm in rows:
        click.echo(f"{user:<12} {docs:>4} {size:>8} {quality:>7.2f} {cold:>8.2f}ms {warm:>8.2f}ms")


if __name__ == "__main__":  # pragma: no cover
    main()
