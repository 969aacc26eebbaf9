"""Rewrite every session of a store in the current format: a resumable, idempotent walk.

:func:`rewrite_all` brings stored sessions up to what the store's codec writes today:

* **Schema version**: a payload stored at an older version of its schema (or as headerless
  legacy JSON, when ``legacy_schema`` names its schema) is migrated and written at the version
  the codec writes (the schema's current one, or the one ``Codec(write_versions=...)`` pins
  during a rolling deploy).
* **Encryption binding**: a payload encrypted in a byte format that is not current
  (:func:`~session_store.codec.format.is_current_encryption`) is re-encrypted: format 1
  (ambiguous associated data) always; format 2 where the store binds its backend's key prefix,
  into format 3, unless the copy sits in a chain's version frame (one tier of a chain read
  alone, or a store's framed write): such a copy is rewritten, and kept, in format 2, since a
  chain copies it to tiers whose prefixes may differ; format 3 through a chain whose tiers'
  prefixes differ (bound to one tier's prefix only), into format 2.
* **Encryption key**: with keys rotated (new key first, old keys after it, see
  :class:`~session_store.codec.AesGcmStage`), a payload encrypted under any key but the first is
  re-encrypted under the first. Without encryption configured, an encrypted payload fails
  (it cannot be opened) and an unencrypted one is current.

**Only sessions.** A value is rewritten only when it is provably a session: it carries the
session-store header, or it is legacy JSON and the caller named its schema (``legacy_schema``,
``session-store migrate --legacy SCHEMA``). Anything else another program stored in the same
place is left alone and counted in ``not_sessions``.

**Plaintext only when asked.** An encrypted store refuses plaintext, because anyone able to
write to the backend could have forged it; a rewrite keeps refusing it (each such session is a
failure, left as it is), unless ``encrypt_plaintext=True`` (``session-store migrate
--encrypt-plaintext``) says the store is being switched to encryption: then plaintext sessions
are read and written encrypted. A rotation of an already encrypted store must not use it, or a
session planted in plaintext comes out encrypted under the new key and is accepted.

Compression is not part of "current": whether a payload is compressed depends on its size.

**Safe beside live traffic.** Each rewrite is a compare-and-set on the version just read
(``get_versioned`` / ``set_if``, the same mechanism as ``SessionStore.update``): if the
application changed the session in between, the rewrite reads it again and retries (with
backoff, up to the store's ``update_timeout``), so a concurrent writer is never overwritten. A
session deleted meanwhile stays deleted. The session's remaining time to live is kept, and so
is the TTL it records as its own (the one ``touch`` restarts it with; through a chain the
rewrite is the chain's ``set_if_with_own_ttl``); a rewrite does not count as an access
(``last_accessed`` is not stamped).

**Idempotent.** A session already current is read and left alone, so running the walk twice
changes nothing the second time.

**Resumable.** With ``checkpoint=Path(...)``, progress is appended to that file after every
batch (one JSON line per batch, flushed and ``fsync``-ed). A run killed mid-way (``kill -9``,
a deploy, a lost connection) and started again with the same checkpoint skips the sessions the
earlier runs finished and does the rest. The file holds 128-bit BLAKE2b digests of the keys,
never the keys themselves (a session key may be a bearer token), and is created with mode
``0600``. Its first line names the target (namespace prefix and encrypting key id): a checkpoint
written for another target is refused with :class:`~session_store.errors.ConfigurationError`
rather than silently skipping sessions that were never brought to *this* target. When a walk
finishes, the file is deleted; running again then starts a fresh, idempotent pass. Resuming
keeps one digest per finished key in memory (about 100 bytes each).

**Failures** of a single session (bytes that do not decode, a schema version from the future, a
payload that needs a stage or key that is not configured, a value that cannot be re-encoded, a
session that kept changing for ``update_timeout`` seconds) are recorded in the report by key and
error type; the walk goes on with the next key, and a later run tries those keys again. A
backend failure (:class:`~session_store.errors.BackendError`, such as a server that went away)
stops the walk and propagates; the checkpoint lets the next run resume.

Example (what ``session-store migrate`` does)::

    store = SessionStore(url, codec=Codec(encryption=AesGcmStage([new_key, old_key])))
    report = rewrite_all(store, checkpoint=Path("/var/tmp/sessions.rewrite"), legacy_schema="dict")
    print(report.summary())
    # every session now opens with AesGcmStage([new_key]) alone: retire old_key
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from session_store.errors import ConfigurationError
from session_store.keys import batches, validate_scan_prefix
from session_store.rewrite.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointWriter,
    checkpoint_target,
    digest,
    read_checkpoint,
)
from session_store.rewrite.report import RewriteFailure, RewriteReport
from session_store.rewrite.walk import reader, rewrite_batch
from session_store.schema.registry import require_schema
from session_store.store import SessionStore

__all__ = ["CHECKPOINT_FORMAT", "RewriteFailure", "RewriteReport", "rewrite_all"]


def rewrite_all(
    store: SessionStore[Any],
    *,
    prefix: str = "",
    checkpoint: Path | None = None,
    batch: int = 100,
    progress: Callable[[int, int], None] | None = None,
    legacy_schema: str | None = None,
    encrypt_plaintext: bool = False,
) -> RewriteReport:
    """Rewrite every session whose key starts with ``prefix`` in the store's current format.

    See the module documentation for what "current" means and for the guarantees.

    Args:
        store: the store; its backend is walked and its codec decides the target format (give
            it the new encryption key first and the old ones after it).
        prefix: only keys starting with this literal text.
        checkpoint: a file recording progress, so that a run interrupted at any point resumes
            where it stopped; deleted when the walk completes. ``None``: no checkpoint.
        batch: keys read per round trip (``get_many``), and per checkpoint record.
        progress: called after every batch with ``(sessions done, sessions listed at the
            start)``; done counts the skipped ones too, so it ends at (about) the total.
        legacy_schema: the schema headerless legacy JSON is a session of. Without it, legacy
            JSON is not rewritten (counted in ``not_sessions``): a bare JSON object may be any
            value another program stored, and rewriting it as a session would change it.
        encrypt_plaintext: read plaintext sessions even though the store's codec is
            encrypted, and write them encrypted (switching a store to encryption). Without it,
            plaintext in an encrypted store is a failure, never laundered into a session the
            new key vouches for.

    Returns:
        The counts and the failures.

    Raises:
        ConfigurationError: a bad ``batch``, or a checkpoint written for another target or not
            a checkpoint at all.
        InvalidKeyError: ``prefix`` is not a valid key prefix.
        BackendError: the backend failed (the checkpoint keeps what was done).
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigurationError(f"batch must be an integer >= 1, got {batch!r}")
    validate_scan_prefix(prefix)
    codec = reader(store.codec, legacy_schema, encrypt_plaintext=encrypt_plaintext)
    legacy = None if legacy_schema is None else require_schema(legacy_schema)
    backend = store.backend
    target = checkpoint_target(codec, prefix, backend.describe())
    report = RewriteReport()
    done_before = read_checkpoint(checkpoint, target) if checkpoint is not None else set()
    total = sum(1 for _ in backend.scan(prefix)) if progress is not None else 0
    listing = backend.scan(prefix)
    with CheckpointWriter(checkpoint, target, fresh=not done_before) as record:
        for keys in batches(listing, batch):
            todo = [key for key in keys if digest(key) not in done_before]
            report.skipped += len(keys) - len(todo)
            finished = rewrite_batch(store, codec, todo, report, legacy) if todo else []
            record(finished)
            if progress is not None:
                progress(report.examined + report.skipped, total)
    # A listing that says it could not be proven complete (a cluster mid-resharding, see
    # session_store_redis.listing) keeps the checkpoint: running again finishes the job.
    report.complete = getattr(listing, "complete", None) is not False
    if checkpoint is not None and report.complete:
        with contextlib.suppress(FileNotFoundError):
            checkpoint.unlink()
    return report
