"""``migrate``: rewrite every session at the current schema version and encryption key."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from session_store.cli.common import (
    CommandError,
    ProgressBar,
    echo_json,
    make_codec,
    note_chain,
    resolve_url,
)
from session_store.store import SessionStore
from session_store.urls import redact_url

__all__ = ["default_checkpoint", "migrate"]


def default_checkpoint(url: str, prefix: str, namespace: str) -> Path:
    """Where a walk over ``url`` keeps its progress: the user's cache directory, under a digest
    of the target (never the URL itself, which may hold a password)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    digest = hashlib.blake2b(
        "\x00".join((url, prefix, namespace)).encode(), digest_size=8
    ).hexdigest()
    return Path(base) / "session-store" / f"migrate-{digest}.checkpoint"


@click.command()
@click.argument("url", required=False, metavar="[URL]")
@click.option("--prefix", default="", help="Only keys starting with this literal text.")
@click.option("--namespace", default="", help="The store's namespace, bound into encryption.")
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Progress file, to resume an interrupted run (default: in the user's cache directory).",
)
@click.option("--no-checkpoint", is_flag=True, help="Keep no progress file.")
@click.option(
    "--batch", type=click.IntRange(min=1), default=100, show_default=True, help="Keys per read."
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: when on a terminal)."
)
@click.option(
    "--legacy",
    "legacy_schema",
    metavar="SCHEMA",
    default=None,
    help="Also rewrite headerless legacy JSON, as sessions of SCHEMA (e.g. dataroom, dict). "
    "Without it, legacy JSON is left alone.",
)
@click.option(
    "--encrypt-plaintext",
    is_flag=True,
    help="Switching a store to encryption: read plaintext sessions and write them encrypted. "
    "Never for a key rotation of an encrypted store (a session planted in plaintext would come "
    "out encrypted under the new key); without it, plaintext in an encrypted store fails.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def migrate(
    url: str | None,
    prefix: str,
    namespace: str,
    checkpoint: Path | None,
    no_checkpoint: bool,
    batch: int,
    progress: bool | None,
    legacy_schema: str | None,
    encrypt_plaintext: bool,
    as_json: bool,
) -> None:
    """Rewrite every session at the current schema version, under the current encryption key.

    To rotate keys: put the new key first in SESSION_STORE_KEYS, the old ones after it, run
    this, then drop the old keys. Each rewrite is a compare-and-set (a concurrent write by the
    app wins), keeps the TTL left, and skips sessions already current, so the walk is
    idempotent; it is resumable: run it again after an interruption and it goes on where it
    stopped. Exit code 1 if any session could not be rewritten (listed, by key and error).

    Only values proven to be sessions are rewritten: those with a session-store header, and
    headerless legacy JSON when --legacy SCHEMA names its schema. Anything else (a raw value
    another program stored) is left alone and reported as not a session; that is no failure.
    Plaintext in an encrypted store fails, unless --encrypt-plaintext says the store is being
    switched to encryption (then it is read and encrypted). A session that
    never expires keeps never expiring.
    """
    from session_store.rewrite import rewrite_all

    target = resolve_url(url)
    if no_checkpoint:
        checkpoint = None
    elif checkpoint is None:
        checkpoint = default_checkpoint(target, prefix, namespace)
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
    resuming = checkpoint is not None and checkpoint.exists()
    show = sys.stderr.isatty() if progress is None else progress
    store: SessionStore[Any]
    with SessionStore(target, codec=make_codec(namespace), access_interval=None) as store:
        if resuming and not as_json:
            click.echo(f"resuming from {checkpoint}")
        with ProgressBar(show, 0, "migrate") as advance:
            report = rewrite_all(
                store,
                prefix=prefix,
                checkpoint=checkpoint,
                batch=batch,
                progress=advance,
                legacy_schema=legacy_schema,
                encrypt_plaintext=encrypt_plaintext,
            )
        shown = store.backend.describe()
        note_chain(store.backend)
    if as_json:
        echo_json(
            {
                "backend": redact_url(target),
                "rewritten": report.rewritten,
                "current": report.current,
                "vanished": report.vanished,
                "deleted": report.deleted,
                "skipped": report.skipped,
                "not_sessions": report.not_sessions,
                "failed": report.failed,
                "failures": [
                    {"key": f.key, "error": f.error, "message": f.message} for f in report.failures
                ],
                "complete": report.complete,
            }
        )
    else:
        click.echo(f"{shown}: {report.summary()}")
        for failure in report.failures:
            click.echo(f"  failed {failure.key}: {failure.error}: {failure.message}")
        if report.not_sessions and legacy_schema is None and not report.failures:
            # (a run with failures ends with its one error line instead)
            click.echo(
                f"session-store: note: {report.not_sessions} value(s) without a session-store "
                "header left alone; legacy JSON among them (`ls` lists the data-room app's as "
                "`legacy data-room session`) is migrated with `--legacy dataroom` (`--legacy "
                "dict` for plain dicts); `ls --all` shows each key's kind",
                err=True,
            )
    if report.failures:
        lasting = sum(
            1
            for failure in report.failures
            if failure.error in _LASTING and not _unkeyed(failure.error, failure.message)
        )
        plaintext = sum(1 for failure in report.failures if _PLAINTEXT in failure.message)
        if plaintext and not encrypt_plaintext:
            raise CommandError(
                f"{plaintext} of {report.failed} failed session(s) are plaintext in a store "
                "that SESSION_STORE_KEYS encrypts: switching this store to encryption, run "
                "once `session-store migrate --encrypt-plaintext` (see `--help`: only before "
                "any untrusted writer could reach the store); a rotation never encrypts them"
            )
        unkeyed = sum(1 for failure in report.failures if _unkeyed(failure.error, failure.message))
        if unkeyed == report.failed:
            raise CommandError(
                f"{unkeyed} session(s) are encrypted under a key SESSION_STORE_KEYS does not "
                "hold (it is unset, or lacks their key): set it, new key first, and run again"
            )
        if lasting == report.failed:
            raise CommandError(
                f"{lasting} session(s) cannot be rewritten as they are (a value the codec never "
                "stores, such as NaN, or a payload it cannot read): running again will not help"
            )
        missing_key = (
            f"; {unkeyed} encrypted under a key SESSION_STORE_KEYS does not hold: add it after "
            "the new key"
            if unkeyed
            else ""
        )
        raise CommandError(
            f"{report.failed} session(s) could not be rewritten ({lasting} of them as they "
            f"are{missing_key}); run again to retry the others"
        )


#: What the codec's refusal of plaintext in an encrypted store says (a failure's message).
_PLAINTEXT = "refuses plaintext"
#: Failures a rerun cannot fix: what the session holds, not a passing outage.
_LASTING = frozenset({"SerializationError", "CorruptPayloadError", "UnknownSchemaVersionError"})


def _unkeyed(error: str, message: str) -> bool:
    """Whether a failure is a session encrypted under a key ``SESSION_STORE_KEYS`` does not
    hold: none at all (``ConfigurationError``: the aes-gcm stage is not configured), or not
    its key (``CorruptPayloadError``: "encrypted with key id ..., which is not configured").
    A rerun with that key added rewrites it, so it is not among the failures that last."""
    if error == "ConfigurationError":
        return "aes-gcm" in message
    return error == "CorruptPayloadError" and "encrypted with key id" in message
