"""Rewrite every session of a store in the current format: a resumable, idempotent walk.

:func:`rewrite_all` brings stored sessions up to what the store's codec writes today:

* **Schema version**: a payload stored at an older version of its schema (or as headerless
  legacy JSON, when ``legacy_schema`` names its schema) is migrated and written at the version
  the codec writes (the schema's current one, or the one ``Codec(write_versions=...)`` pins
  during a rolling deploy).
* **Encryption binding**: a payload encrypted in byte format 1 (ambiguous associated data) is
  re-encrypted in format 2 (see :mod:`session_store.codec.format`).
* **Encryption key**: with keys rotated (new key first, old keys after it, see
  :class:`~session_store.codec.AesGcmStage`), a payload encrypted under any key but the first is
  re-encrypted under the first. Without encryption configured, an encrypted payload fails
  (it cannot be opened) and an unencrypted one is current.

**Only sessions.** A value is rewritten only when it is provably a session: it carries the
session-store header, or it is legacy JSON and the caller named its schema (``legacy_schema``,
``session-store migrate --legacy SCHEMA``). Anything else another program stored in the same
place is left alone and counted in ``not_sessions``. Plaintext is read even by an encrypted
store's codec here (``allow_plaintext``): rewriting is how it gets encrypted.

Compression is not part of "current": whether a payload is compressed depends on its size.

**Safe beside live traffic.** Each rewrite is a compare-and-set on the version just read
(``get_versioned`` / ``set_if``, the same mechanism as ``SessionStore.update``): if the
application changed the session in between, the rewrite reads it again and retries (with
backoff, up to the store's ``update_timeout``), so a concurrent writer is never overwritten. A
session deleted meanwhile stays deleted. The session's remaining time to live is kept; a
rewrite does not count as an access (``last_accessed`` is not stamped).

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
import copy
import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from session_store import stamps
from session_store.backend import SessionBackend
from session_store.codec import Codec
from session_store.codec.format import FORMAT_VERSION, MAGIC, is_legacy, parse_header
from session_store.codec.stages import STAGE_AESGCM
from session_store.errors import (
    BackendError,
    ConfigurationError,
    ConflictError,
    SessionStoreError,
)
from session_store.keys import validate_scan_prefix
from session_store.schema.registry import get_schema
from session_store.store import SessionStore

__all__ = ["CHECKPOINT_FORMAT", "RewriteFailure", "RewriteReport", "rewrite_all"]

#: Version of the checkpoint file format (its first line says which).
CHECKPOINT_FORMAT = 1
_KEY_ID_LENGTH = 4
_MAX_PAUSE = 0.25


@dataclass(frozen=True)
class RewriteFailure:
    """A session the walk could not bring up to date.

    Attributes:
        key: the session key.
        error: the name of the typed error (``"CorruptPayloadError"``, ``"ConflictError"``, ...).
        message: the error's message (session-store messages never hold secrets or contents).
    """

    key: str
    error: str
    message: str


@dataclass
class RewriteReport:
    """What :func:`rewrite_all` did.

    Attributes:
        rewritten: sessions written again in the current format.
        current: sessions already in the current format, left alone.
        vanished: sessions listed but deleted or expired before they could be read or rewritten.
        skipped: sessions finished by an earlier, interrupted run (known from the checkpoint).
        not_sessions: values left alone because nothing proves they are sessions: no
            session-store header, and not legacy JSON given a ``legacy_schema`` (a raw value
            some other code stored, such as ``b'{"documents": 3}'`` or a counter).
        failures: the sessions that could not be rewritten, with their typed errors.
        complete: the walk reached the end of the listing, and the listing is complete.
            ``False`` in a report still being filled, or when the backend's listing says it
            could not be proven complete (``listing.complete is False``: a Redis Cluster whose
            slots kept moving); the checkpoint is then kept, so running again finishes the job.
            (A backend error raises instead, and the checkpoint keeps what was done.)
    """

    rewritten: int = 0
    current: int = 0
    vanished: int = 0
    skipped: int = 0
    not_sessions: int = 0
    failures: list[RewriteFailure] = field(default_factory=list)
    complete: bool = False

    @property
    def failed(self) -> int:
        """How many sessions failed."""
        return len(self.failures)

    @property
    def examined(self) -> int:
        """Sessions this run looked at (not counting those skipped from the checkpoint)."""
        return self.rewritten + self.current + self.vanished + self.failed + self.not_sessions

    def summary(self) -> str:
        """One line for a human: the counts, and the failures by error type."""
        kinds: dict[str, int] = {}
        for failure in self.failures:
            kinds[failure.error] = kinds.get(failure.error, 0) + 1
        detail = ", ".join(f"{name}: {count}" for name, count in sorted(kinds.items()))
        return (
            f"rewritten {self.rewritten}, already current {self.current}, failed {self.failed}"
            + (f" ({detail})" if detail else "")
            + f", vanished {self.vanished}, not sessions (left alone) {self.not_sessions}"
            + f", skipped from checkpoint {self.skipped}"
            + ("" if self.complete else ", INCOMPLETE")
        )


def rewrite_all(
    store: SessionStore[Any],
    *,
    prefix: str = "",
    checkpoint: Path | None = None,
    batch: int = 100,
    progress: Callable[[int, int], None] | None = None,
    legacy_schema: str | None = None,
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
    codec = _reader(store.codec, legacy_schema)
    legacy = legacy_schema is not None
    backend = store.backend
    target = _target(codec, prefix)
    report = RewriteReport()
    done_before = _read_checkpoint(checkpoint, target) if checkpoint is not None else set()
    total = sum(1 for _ in backend.scan(prefix)) if progress is not None else 0
    listing = backend.scan(prefix)
    with _CheckpointWriter(checkpoint, target, fresh=not done_before) as record:
        for keys in _batches(listing, batch):
            todo = [key for key in keys if _digest(key) not in done_before]
            report.skipped += len(keys) - len(todo)
            finished = _rewrite_batch(store, codec, todo, report, legacy) if todo else []
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


# -- the walk -----------------------------------------------------------------------------------
def _reader(codec: Codec, legacy_schema: str | None) -> Codec:
    """The store's codec, reading plaintext too (rewriting is how plaintext gets encrypted), and
    legacy JSON as ``legacy_schema``."""
    reader = copy.copy(codec)
    reader.allow_plaintext = True
    if legacy_schema is not None:
        if get_schema(legacy_schema) is None:
            raise ConfigurationError(f"no schema named {legacy_schema!r} is registered")
        reader.legacy_schema = legacy_schema
    return reader


def _batches(keys: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for key in keys:
        chunk.append(key)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _rewrite_batch(
    store: SessionStore[Any], codec: Codec, keys: list[str], report: RewriteReport, legacy: bool
) -> list[str]:
    """Bring ``keys`` up to date; the keys finished (failed ones are not: a rerun retries them)."""
    found = store.backend.get_many(keys)
    finished: list[str] = []
    for key in keys:
        raw = found.get(key)
        data = None if raw is None else stamps.session_bytes(raw)  # a chain's frame, read through
        try:
            if data is None:
                outcome = "vanished"
            elif not _is_session(data, legacy):
                outcome = "not a session"
            elif _is_current(codec, key, data):
                outcome = "current"
            else:
                outcome = _rewrite_one(store, codec, key, legacy)
        except BackendError:
            raise
        except SessionStoreError as exc:
            report.failures.append(RewriteFailure(key, type(exc).__name__, str(exc)))
            continue
        if outcome == "rewritten":
            report.rewritten += 1
        elif outcome == "current":
            report.current += 1
        elif outcome == "not a session":
            report.not_sessions += 1
        else:
            report.vanished += 1
        finished.append(key)
    return finished


def _is_session(data: bytes, legacy: bool) -> bool:
    """Whether ``data`` is provably a session: it has our header, or it is legacy JSON and the
    caller named the legacy schema. Anything else (a raw value some other code stored, a counter,
    a blob) is left alone."""
    return data[: len(MAGIC)] == MAGIC or (legacy and is_legacy(data))


def _rewrite_one(store: SessionStore[Any], codec: Codec, key: str, legacy: bool) -> str:
    """Rewrite one session with compare-and-set: ``rewritten``, ``current``, ``vanished`` or
    ``not a session`` (replaced meanwhile by a value that is not one).

    Raises:
        ConflictError: the session changed under every attempt for ``update_timeout`` seconds.
        SessionStoreError: it does not decode, or cannot be encoded again.
    """
    backend: SessionBackend = store.backend
    deadline = time.monotonic() + store.update_timeout
    attempt = 0
    while True:
        read = backend.get_versioned(key)
        stored = None if read is None else stamps.session_bytes(read.value)
        if read is None or stored is None:
            return "vanished"
        if not _is_session(stored, legacy):
            return "not a session"
        if _is_current(codec, key, stored):
            return "current"  # a concurrent writer already wrote it in the current format
        left = backend.ttl(key)
        if left is None:
            return "vanished"
        payload = codec.encode(key, codec.decode(key, stored).obj)
        if stored is not read.value and stamps.version_of(read.value):
            # one tier of a chain, read alone: the rewrite is a newer version of the session
            payload = stamps.frame(payload, stamps.clock.now(), stamps.own_ttl(read.value))
        # NO_EXPIRY passes on as "never", not as "the backend's default TTL"
        if backend.set_if(key, payload, read.token, left):
            return "rewritten"
        attempt += 1
        if time.monotonic() >= deadline:
            raise ConflictError(
                f"the session changed under {attempt} rewrites in {store.update_timeout:g} s; "
                "left as it was",
                key=key,
                backend=backend.describe(),
            )
        cap = min(0.001 * 2 ** min(attempt, 10), _MAX_PAUSE)
        time.sleep(max(0.0, min(random.uniform(0, cap), deadline - time.monotonic())))


def _is_current(codec: Codec, key: str, data: bytes) -> bool:
    """Whether ``data`` is what ``codec`` writes today (apart from compression and the nonce).

    Decodes it (so a payload that does not decode raises its typed error here).
    """
    if is_legacy(data):
        codec.decode(key, data)  # raises if it does not even decode
        return False
    header = parse_header(data, key=key)
    decoded = codec.decode(key, data)
    info = get_schema(decoded.schema)
    if info is None:  # pragma: no cover - decode already refused an unknown schema
        return False
    if decoded.stored_version != codec.write_versions.get(info.name, info.version):
        return False
    encrypted = bool(header.stages) and header.stages[-1] == STAGE_AESGCM
    if codec.encryption is None:
        return STAGE_AESGCM not in header.stages
    if not encrypted or header.format_version < FORMAT_VERSION:
        return False  # format 1 bound its associated data ambiguously: re-encrypt in format 2
    start = header.payload_offset
    key_id = data[start : start + _KEY_ID_LENGTH].hex()
    return key_id == codec.encryption.key_ids[0]


# -- the checkpoint -----------------------------------------------------------------------------
def _target(codec: Codec, prefix: str) -> dict[str, Any]:
    """What a checkpoint is valid for: the key prefix walked and the encrypting key's id."""
    key_id = codec.encryption.key_ids[0] if codec.encryption is not None else None
    return {"prefix": prefix, "key_id": key_id}


def _digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest()


def _read_checkpoint(path: Path, target: dict[str, Any]) -> set[bytes]:
    """The digests of the keys earlier runs finished; empty if there is no checkpoint yet.

    A last line cut short by a crash is ignored (its keys are simply done again).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return set()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the checkpoint {path}: {exc}") from None
    lines = text.split("\n")
    try:
        header = json.loads(lines[0])
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("session-store-rewrite") != CHECKPOINT_FORMAT:
        raise ConfigurationError(f"{path} is not a rewrite checkpoint; refusing to use it")
    if header.get("target") != target:
        raise ConfigurationError(
            f"the checkpoint {path} was written for another rewrite (prefix or encryption key "
            "differ); delete it to start over"
        )
    done: set[bytes] = set()
    for line in lines[1:]:
        try:
            record = json.loads(line)
            done.update(bytes.fromhex(item) for item in record["done"])
        except (ValueError, TypeError, KeyError):
            continue  # an empty last line, or one torn by a crash
    return done


class _CheckpointWriter:
    """Appends one line per batch to the checkpoint, flushed and fsync-ed; a no-op without one."""

    def __init__(self, path: Path | None, target: dict[str, Any], *, fresh: bool) -> None:
        self._path = path
        self._target = target
        self._fresh = fresh
        self._file: IO[str] | None = None

    def __enter__(self) -> Callable[[list[str]], None]:
        if self._path is not None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if self._fresh else 0)
            try:
                fd = os.open(self._path, flags, 0o600)
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot write the checkpoint {self._path}: {exc}"
                ) from None
            self._file = os.fdopen(fd, "a", encoding="utf-8")
            if self._fresh:
                header = {"session-store-rewrite": CHECKPOINT_FORMAT, "target": self._target}
                self._write(json.dumps(header))
        return self._record

    def _record(self, keys: list[str]) -> None:
        if self._file is not None and keys:
            self._write(json.dumps({"done": [_digest(key).hex() for key in keys]}))

    def _write(self, line: str) -> None:
        assert self._file is not None
        self._file.write(line + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def __exit__(self, *exc_info: object) -> None:
        if self._file is not None:
            self._file.close()
