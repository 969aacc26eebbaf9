"""``ls``: the keys of the stored sessions, or with ``--all`` every key with what it holds
(:mod:`session_store.cli.kinds`). Reading never writes: a chain is read tier by tier."""

from __future__ import annotations

from typing import Any

import click

from session_store.cli.common import (
    JSON_OPTION,
    console,
    echo_json,
    opened,
    resolve_url,
    shown_key,
    ttl_for_json,
    ttl_text,
)
from session_store.cli.kinds import KINDS, SESSION_KINDS, kinds, listed, newest
from session_store.keys import validate_scan_prefix
from session_store.stamps import session_bytes

__all__ = ["ls"]


# -- ls --------------------------------------------------------------------------------------------
@click.command()
@click.argument("url", required=False, metavar="[URL]")
@click.option("--prefix", default="", help="Only keys starting with this literal text.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many keys.")
@click.option("-l", "--long", "long_", is_flag=True, help="Also size and TTL (one read per key).")
@click.option(
    "-a",
    "--all",
    "every",
    is_flag=True,
    help="Every key, with what it holds (KEY<tab>KIND): also plain JSON, opaque bytes, "
    "retired ids and a chain's tombstones (deleted).",
)
@JSON_OPTION
def ls(
    url: str | None, prefix: str, limit: int | None, long_: bool, every: bool, as_json: bool
) -> None:
    """List the keys of the stored sessions, sorted (a chain: the union of its tiers).

    A session is what `get` decodes as one (our payloads, legacy data-room JSON); a key holding
    anything else (plain JSON or bytes another program stored, the marker of a retired id, a
    chain's tombstone) is counted on stderr, not listed: --all lists every key with its kind.
    One key per line, a backslash doubled and non-printable characters escaped (\\x1f, \\n),
    so that every line is one key; --json gives the keys exactly.
    """
    target = resolve_url(url)
    validate_scan_prefix(prefix)
    with opened(target) as backend:
        found = list(kinds(backend, listed(backend, prefix)))
        shown = [(key, kind) for key, kind in found if every or kind in SESSION_KINDS]
        if limit is not None:
            shown = shown[:limit]
        rows = [(key, kind, newest(backend, key) if long_ else None) for key, kind in shown]
    if not every:
        _note_left_out([kind for _, kind in found if kind not in SESSION_KINDS])
    if as_json:
        echo_json([_json_row(key, kind, hit, long_, every) for key, kind, hit in rows])
    elif not rows:
        click.echo("0 keys", err=True)  # stderr: stdout stays a list of keys
    elif long_:
        _print_long(rows, every)
    else:
        for key, kind, _ in rows:  # one line each, control characters escaped
            click.echo(f"{shown_key(key)}\t{kind}" if every else shown_key(key))


def _note_left_out(kinds_left_out: list[str]) -> None:
    """One line on stderr: how many keys ``ls`` did not list, by kind."""
    if not kinds_left_out:
        return
    counts = ", ".join(
        f"{kind} {kinds_left_out.count(kind)}" for kind in KINDS if kind in kinds_left_out
    )
    n = len(kinds_left_out)
    click.echo(
        f"session-store: note: {n} key{'s' if n != 1 else ''} holding no session not listed "
        f"({counts}); `ls --all` lists every key with its kind",
        err=True,
    )


def _stored_size(hit: tuple[bytes, float] | None) -> int | None:
    value = None if hit is None else session_bytes(hit[0])
    return None if value is None else len(value)


def _json_row(
    key: str, kind: str, hit: tuple[bytes, float] | None, long_: bool, every: bool
) -> Any:
    if not long_:
        return {"key": key, "kind": kind} if every else key
    ttl = None if hit is None else hit[1]
    row = {"key": key, "size": _stored_size(hit), "ttl": ttl_for_json(ttl)}
    return {**row, "kind": kind} if every else row


def _print_long(rows: list[tuple[str, str, tuple[bytes, float] | None]], every: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False)
    table.add_column("key", overflow="fold")
    table.add_column("size", justify="right")
    table.add_column("ttl left", justify="right")
    if every:
        table.add_column("kind")
    for key, kind, hit in rows:
        size = _stored_size(hit)
        ttl = "-" if hit is None else ttl_text(hit[1])
        shown = "-" if size is None else f"{size:,} B"
        # Text: a key is shown as it is, never read as markup
        table.add_row(Text(shown_key(key)), shown, ttl, *([kind] if every else []))
    console().print(table)
