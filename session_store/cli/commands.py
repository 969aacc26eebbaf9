"""``inspect``, ``delete`` and ``copy``: look inside a store and move data (``get``:
:mod:`session_store.cli.get`, ``ls``: :mod:`session_store.cli.ls`).

Reading commands never write: a chain is read tier by tier, fastest first, without promoting
anything, and ``last_accessed`` is not stamped.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from session_store.backend import Scope, SessionBackend
from session_store.cli.common import (
    ENV_URL,
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    JSON_OPTION,
    NAMESPACE_OPTION,
    CommandError,
    ProgressBar,
    echo_json,
    make_codec,
    missing,
    opened,
    resolve_url,
    shown_key,
    ttl_for_json,
    ttl_text,
    url_and_one,
)
from session_store.cli.kinds import NO_SESSION, PLAIN, SESSION_KINDS, kind_of, newest, what_is
from session_store.cli.tierreads import TierRead, live_keys, read_first, read_tiers
from session_store.codec.format import (
    FORMAT_VERSION,
    MAGIC,
    is_current_encryption,
    is_legacy,
    parse_header,
)
from session_store.errors import ConfigurationError, SessionStoreError
from session_store.keys import storage_heads, validate_key, validate_scan_prefix
from session_store.ownttl import keeps_own_ttl
from session_store.schema.registry import get_schema
from session_store.stamps import frame
from session_store.ttl import NO_EXPIRY
from session_store.urls import redact_url

__all__ = ["copy", "delete", "inspect_"]


def _first_hit(reads: list[TierRead]) -> TierRead | None:
    return next((read for read in reads if read.value is not None), None)


# -- inspect ---------------------------------------------------------------------------------------
def _facts(size: int, format: str, stages: list[str]) -> dict[str, Any]:
    """What ``inspect`` shows of a payload, the facts decoding it may add still ``None``."""
    return {
        "size": size,
        "format": format,
        "stages": stages,
        **dict.fromkeys(
            ("key_id", "schema", "stored_version", "current_version", "up_to_date", "note")
        ),
    }


#: What ``inspect`` shows as the format of headerless JSON (the first app's sessions).
_LEGACY_FORMAT = "legacy JSON (no header)"
#: ... and of headerless JSON that is no session (``get``'s "plain JSON").
_PLAIN_FORMAT = "plain JSON (no header, not a session)"


def _describe_payload(
    key: str, data: bytes, namespace: str, backend: object, *, framed: bool = False
) -> tuple[dict[str, Any], str | None]:
    """What the payload says about itself, and the error that stopped decoding it (if any).
    ``framed``: it sits in a chain's frame in a single backend (one tier read alone), where
    ``migrate`` counts encryption format 2 current too (``is_current_encryption``)."""
    if what_is(data, key)[0] == PLAIN:  # as `get` and `ls` judge it: no session to decode
        return _facts(len(data), _PLAIN_FORMAT, []), (
            "not a session: plain JSON with none of the data-room app's keys (`session-store "
            "get` shows it as stored; `migrate --legacy dict` would store it as a dict session)"
        )
    codec = make_codec(namespace, backend)
    try:
        header = codec.inspect(data, key=key)
    except SessionStoreError as exc:  # not a session-store payload, or a future format
        facts = _facts(len(data), "not a session-store payload", [])
        return facts, f"{type(exc).__name__}: {exc.message}"
    facts = _facts(
        header.size,
        _LEGACY_FORMAT if header.legacy else f"v{header.format_version}",
        list(header.stages),
    )
    if not is_legacy(data) and header.stages and header.stages[-1] == "aes-gcm":
        offset = parse_header(data, key=key).payload_offset
        facts["key_id"] = data[offset : offset + 4].hex()
    try:
        decoded = codec.decode(key, data)
    except ConfigurationError as exc:  # encrypted, and no key configured: shown, not decoded
        facts["note"] = exc.message
        return facts, f"cannot decode: {exc.message}"
    except SessionStoreError as exc:
        return facts, f"{type(exc).__name__}: {exc.message}"
    info = get_schema(decoded.schema)
    facts["schema"] = decoded.schema
    facts["stored_version"] = decoded.stored_version
    facts["current_version"] = info.version if info else None
    current = info is not None and decoded.stored_version == info.version and not header.legacy
    if current and codec.encryption is not None:
        current = facts["key_id"] == codec.encryption.key_ids[0]
        written = codec.encrypted_format
        current = current and is_current_encryption(header.format_version, written, framed=framed)
    facts["up_to_date"] = current
    return facts, None


@click.command("inspect")
@click.argument("args", nargs=-1, required=True, metavar="[URL] KEY")
@NAMESPACE_OPTION
@JSON_OPTION
def inspect_(args: tuple[str, ...], namespace: str, as_json: bool) -> None:
    """Show what is stored under KEY: schema, version, size, TTL left, stages, tiers holding it.

    The header (format, stages, key id) is read without any key; the schema and version need
    the payload decoded, so an encrypted one needs SESSION_STORE_KEYS (without it, the rest is
    shown). Exit code 1 if the payload does not decode, an encrypted one without its key
    included; what could be read (size, format, TTL, the tiers holding it) is still shown, also
    for a value that is not a session at all.
    """
    url, key = url_and_one(args, "KEY")
    validate_key(key)
    with opened(url) as backend:
        reads = read_tiers(backend, key)
        shown = backend.describe()
    hit = _first_hit(reads)
    if hit is None or hit.value is None:
        raise missing(key, url)
    framed = bool(hit.version) and not keeps_own_ttl(backend)  # as migrate judges it
    facts, problem = _describe_payload(key, hit.value, namespace, backend, framed=framed)
    tiers = [
        {
            "tier": read.index,
            "backend": read.backend,
            "holds": read.value is not None,
            "ttl": ttl_for_json(read.ttl),
            "size": None if read.value is None else len(read.value),
            "down": read.down,
        }
        for read in reads
    ]
    result = {
        "key": key,
        "backend": shown,
        **facts,
        "ttl": ttl_for_json(hit.ttl),
        "expires": hit.ttl != NO_EXPIRY,
        "tiers": tiers,
        "error": problem,
    }
    if as_json:
        echo_json(result)
    else:
        _print_inspection(result)
    if problem is not None:
        raise CommandError(f"{problem} (key {key!r})", EXIT_ERROR)


def _migrate_advice(result: dict[str, Any]) -> str:
    """The command that brings the inspected session up to date. ``migrate`` rewrites headerless
    JSON only when told its schema (anything else may share the store), so for a legacy value
    the advice names the schema this inspection assumed; without it the command would leave
    the value alone and the advice would loop."""
    if result["format"] == _LEGACY_FORMAT:
        return f"session-store migrate --legacy {result['schema']}"
    return "session-store migrate"


def _print_inspection(result: dict[str, Any]) -> None:
    def line(name: str, value: object) -> None:
        click.echo(f"{name + ':':<16}{value}")

    line("key", shown_key(result["key"]))
    line("backend", result["backend"])
    line("size", f"{result['size']:,} B")
    line("format", result["format"])
    line("stages", ", ".join(result["stages"]) or "none")
    if result["key_id"]:
        line("key id", result["key_id"])
    if result["schema"] is not None:
        line("schema", result["schema"])
        current = result["current_version"]
        note = "current" if result["stored_version"] == current else f"current is {current}"
        line("version", f"{result['stored_version']} ({note})")
        line("up to date", "yes" if result["up_to_date"] else f"no: `{_migrate_advice(result)}`")
    elif result["note"]:
        line("schema", f"unknown: {result['note']}")
    line("ttl left", ttl_text(result["ttl"]) if result["expires"] else "never")
    for tier in result["tiers"]:
        if tier["down"]:
            state = f"down ({tier['down']})"
        elif tier["holds"]:
            ttl = "never" if tier["ttl"] is None else ttl_text(tier["ttl"])
            state = f"holds it ({tier['size']:,} B, ttl {ttl})"
        else:
            state = "-"
        line(f"tier {tier['tier']}", f"{tier['backend']}: {state}")


# -- delete ----------------------------------------------------------------------------------------
@click.command()
@click.argument("args", nargs=-1, required=True, metavar="[URL] KEY")
def delete(args: tuple[str, ...]) -> None:
    """Delete what KEY holds, from every tier: a session, or a value `get` shows that is not
    one (plain JSON, opaque bytes; the output says so).

    Exit code 0 when something was deleted; 3 when there was nothing to delete, as `get` exits
    3 on that key: no key, or a key holding no value (the marker of a retired id, a chain's
    tombstone read through one tier), which is left alone.
    """
    url, key = url_and_one(args, "KEY")
    validate_key(key)
    with opened(url) as backend:
        hit = newest(backend, key)
        kind = None if hit is None else kind_of(hit[0], key)
        # absent in every tier that answered: deleted anyway (a chain leaves its tombstones, so
        # a copy in a tier that is down does not come back); a marker is left alone
        existed = kind not in NO_SESSION and backend.delete(key)
    if kind in NO_SESSION:
        raise CommandError(
            f"{missing(key, url).message}: {NO_SESSION[kind]}, left alone", EXIT_NOT_FOUND
        )
    if not existed:
        raise missing(key, url)
    plain = kind is None or kind in SESSION_KINDS  # None: written since it was read
    click.echo(f"deleted {key}" + ("" if plain else f" ({kind}, not a session)"))


# -- copy ------------------------------------------------------------------------------------------
def carried(value: bytes, found: TierRead, dst: SessionBackend) -> bytes:
    """What ``copy`` writes for the session ``found`` (its payload ``value``): the payload,
    framed again with the TTL its source recorded (:mod:`session_store.ownttl`) when it
    recorded one, so that a ``touch`` in the destination restarts it with that TTL and not the
    destination store's; the frame carries the source's version. A chain destination frames
    every write itself: it is given the bare payload (:func:`_write` passes the TTL)."""
    if found.own_ttl is None or keeps_own_ttl(dst):
        return value
    return frame(value, found.version, found.own_ttl)


def bound_to_its_prefix(payload: bytes) -> bool:
    """Whether ``payload`` is encrypted in byte format 3, bound to the key prefix of the store
    that wrote it: a copy under another prefix does not open (``copy`` says so)."""
    return payload[: len(MAGIC)] == MAGIC and payload[len(MAGIC) : len(MAGIC) + 1] == bytes(
        (FORMAT_VERSION,)
    )


def _write(dst: SessionBackend, key: str, value: bytes, found: TierRead, absent: bool) -> bool:
    """Write a copy expiring after the time ``found`` has left (``absent``: only where the
    destination holds none); a chain destination records the session's own TTL as the TTL
    ``touch`` restarts it with: the one its source recorded, else none (a session saved with
    its store's TTL: a store's ``touch`` then slides it by the destination store's TTL, never
    by the time it had left when copied)."""
    from session_store.tiered import TieredBackend

    ttl, own = found.ttl, found.own_ttl
    if isinstance(dst, TieredBackend):
        if absent:
            return dst.set_if_with_own_ttl(key, value, None, ttl, own)
        dst.set_with_own_ttl(key, value, ttl, own)
    elif absent:
        return dst.set_if(key, value, None, ttl)
    else:
        dst.set(key, value, ttl)
    return True


@click.command()
@click.argument("args", nargs=-1, required=True, metavar="[SRC_URL] DST_URL")
@click.option("--prefix", default="", help="Only keys starting with this literal text.")
@click.option(
    "--skip-existing", is_flag=True, help="Leave keys the destination already holds alone."
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: when on a terminal)."
)
@JSON_OPTION
def copy(
    args: tuple[str, ...], prefix: str, skip_existing: bool, progress: bool | None, as_json: bool
) -> None:
    """Copy every session from SRC_URL to DST_URL: the stored bytes as they are, TTL kept
    (a key that never expires never expires in the destination either, whatever its default),
    and so is the TTL a session was saved with, when it was not the store's.

    Payloads are not decoded, so encrypted ones stay encrypted (and open in the destination
    under the same key and namespace). Running it again is harmless while the destination takes
    no other writes: a key is either copied again or, with --skip-existing, left alone; a
    session deleted in the destination since (a logout) is copied again.
    """
    if len(args) == 2:
        source, target = resolve_url(args[0]), resolve_url(args[1])
    elif len(args) == 1:
        if not os.environ.get(ENV_URL, "").strip():
            raise CommandError(
                f"expected [SRC_URL] DST_URL: one URL given, the destination, and {ENV_URL} "
                "(the source) is not set; give SRC_URL DST_URL",
                EXIT_USAGE,
            )
        source, target = resolve_url(None), resolve_url(args[0])
    else:
        raise click.UsageError(f"expected [SRC_URL] DST_URL, got {len(args)} arguments")
    if source.strip() == target.strip():
        raise CommandError("source and destination are the same URL")
    validate_scan_prefix(prefix)
    counts = {"copied": 0, "skipped": 0, "vanished": 0}
    bound = 0  # format-3 copies that will not open under the destination's other prefix
    with opened(source, note_memory=False) as src, opened(target, note_memory=False) as dst:
        elsewhere = set(storage_heads(src)) != set(storage_heads(dst))
        if dst.scope is Scope.PROCESS:
            raise CommandError(
                f"the destination {dst.describe()} keeps sessions in this command's own "
                "memory: they would vanish when it exits; copy to a shared or on-disk store"
            )
        listing = src.scan(prefix)
        keys = sorted(live_keys(src, listing))  # one tier of a chain: not its tombstones
        # False when the source says its listing could not be proven complete (a resharding)
        complete = getattr(listing, "complete", None) is not False
        show = sys.stderr.isatty() if progress is None else progress
        with ProgressBar(show, len(keys), "copy") as advance:
            for key in keys:
                found = read_first(src, key)  # from a chain: nothing promoted in the source
                if found is None or found.value is None or found.ttl is None:
                    counts["vanished"] += 1
                else:
                    # NO_EXPIRY passes on as "never": not the destination's default TTL
                    value = carried(found.value, found, dst)
                    stored = _write(dst, key, value, found, skip_existing)
                    counts["copied" if stored else "skipped"] += 1
                    bound += stored and elsewhere and bound_to_its_prefix(found.value)
                advance()
        shown = f"{src.describe()} -> {dst.describe()}"
    if bound:
        click.echo(
            f"warning: {bound} encrypted session{'s' if bound != 1 else ''} (byte format 3) "
            "bound to the source's key prefix: the copies do not open under the destination's "
            "(copy between stores with the same prefix, or load and save them through a store)",
            err=True,
        )
    if as_json:
        echo_json(
            {
                **counts,
                "bound_to_source_prefix": bound,
                "complete": complete,
                "source": redact_url(source),
                "destination": redact_url(target),
            }
        )
    else:
        click.echo(
            f"copied {counts['copied']}, skipped {counts['skipped']}, "
            f"vanished {counts['vanished']} ({shown})"
            + ("" if complete else "; INCOMPLETE: the source listing was not proven complete")
        )
