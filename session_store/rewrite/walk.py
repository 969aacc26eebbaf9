"""The walk itself: which stored values are sessions, which are current, and the
compare-and-set rewrite of one session (see :mod:`session_store.rewrite` for the guarantees)."""

from __future__ import annotations

import copy
import random
import time
from typing import Any, NamedTuple

from session_store import stamps
from session_store.backend import SessionBackend, Versioned
from session_store.codec import Codec, Decoded, Snapshot, strictpack
from session_store.codec.format import MAGIC, is_current_encryption, is_legacy, parse_header
from session_store.codec.legacyjson import loads_legacy
from session_store.codec.stages import STAGE_AESGCM
from session_store.errors import (
    BackendError,
    ConfigurationError,
    ConflictError,
    CorruptPayloadError,
    SessionStoreError,
)
from session_store.rewrite.report import RewriteFailure, RewriteReport
from session_store.schema.registry import SchemaInfo, get_schema
from session_store.store import SessionStore
from session_store.tiered import TieredBackend
from session_store.tiered.cas_steps import ChainToken

__all__ = ["Judged", "is_current", "is_session", "judge", "reader", "rewrite_batch", "rewrite_one"]

_KEY_ID_LENGTH = 4
_MAX_PAUSE = 0.25
#: :attr:`Judged.outcome` of a session to rewrite.
_STALE = "stale"


class Judged(NamedTuple):
    """What :func:`judge` made of the session bytes ``data`` (read ``framed`` or not):
    ``outcome`` ``not a session``, ``current`` or ``stale``, and for a stale one its decode."""

    data: bytes
    framed: bool
    outcome: str
    decoded: Decoded | None = None


def judge(codec: Codec, key: str, data: bytes, legacy: SchemaInfo | None, framed: bool) -> Judged:
    """Whether ``data`` is a session (:func:`is_session`) and current (:func:`is_current`),
    decoding it once: the decode that tells whether it is current is the one a rewrite encodes
    again. Legacy JSON that the schema must recognise (``legacy_keys``) is parsed once too: that
    parse (:func:`~session_store.codec.legacyjson.loads_legacy`, which warns about and counts
    each NaN, infinity, lone surrogate and int beyond 64 bits) is handed to the codec as the
    body's snapshot (:class:`~session_store.codec.Snapshot`), unless msgpack cannot hold it (an
    int beyond 64 bits: the codec parses it again, and that session cannot be saved anyway).

    Raises:
        SessionStoreError: a session that does not decode (as :func:`is_current`).
    """
    if data[: len(MAGIC)] == MAGIC:
        decoded = codec.decode(key, data)
        if _current(codec, key, data, decoded, framed):
            return Judged(data, framed, "current")
        return Judged(data, framed, _STALE, decoded)
    if legacy is None or not is_legacy(data):
        return Judged(data, framed, "not a session")
    if legacy.legacy_keys is None:
        return Judged(data, framed, _STALE, codec.decode(key, data))
    try:
        value = loads_legacy(data, key=key)
    except CorruptPayloadError:
        codec.unwrap(key, data)  # plaintext in an encrypted store: that refusal first, as before
        raise
    if not (isinstance(value, dict) and not legacy.legacy_keys.isdisjoint(value)):
        return Judged(data, framed, "not a session")
    plain = codec.unwrap(key, data)  # (refuses plaintext in an encrypted store)
    packed = strictpack.pack(value)
    if packed is not None:
        plain = plain._replace(snapshot=Snapshot(packed))
    return Judged(data, framed, _STALE, codec.from_plain(key, plain))


def reader(codec: Codec, legacy_schema: str | None, *, encrypt_plaintext: bool = False) -> Codec:
    """The store's codec, reading legacy JSON as ``legacy_schema``, and plaintext in an
    encrypted store only with ``encrypt_plaintext`` (switching a store to encryption)."""
    reader = copy.copy(codec)
    reader.allow_plaintext = codec.allow_plaintext or encrypt_plaintext
    if legacy_schema is not None:
        if get_schema(legacy_schema) is None:
            raise ConfigurationError(f"no schema named {legacy_schema!r} is registered")
        reader.legacy_schema = legacy_schema
    return reader


def rewrite_batch(
    store: SessionStore[Any],
    codec: Codec,
    keys: list[str],
    report: RewriteReport,
    legacy: SchemaInfo | None,
) -> list[str]:
    """Bring ``keys`` up to date; the keys finished (failed ones are not: a rerun retries them)."""
    found = store.backend.get_many(keys)
    finished: list[str] = []
    for key in keys:
        raw = found.get(key)
        data = None if raw is None else stamps.session_bytes(raw)  # a chain's frame, read through
        try:
            if raw is None:
                outcome = "vanished"
            elif data is None:
                outcome = "deleted"  # one tier of a chain: a tombstone is not a session
            else:
                judged = judge(codec, key, data, legacy, _framed_here(store.backend, raw, data))
                outcome = judged.outcome
                if outcome == _STALE:
                    outcome = rewrite_one(store, codec, key, legacy, judged)
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
        elif outcome == "deleted":
            report.deleted += 1
        else:
            report.vanished += 1
        finished.append(key)
    return finished


def is_session(data: bytes, legacy: SchemaInfo | None, key: str = "") -> bool:
    """Whether ``data`` is provably a session: it has our header, or it is legacy JSON, the
    caller named the legacy schema, and the schema recognises it (``SchemaInfo.legacy_keys``:
    the data-room schema wants one of its keys, as ``session-store get`` does). Anything else
    (a raw value some other code stored, a counter, a blob, plain JSON) is left alone."""
    if data[: len(MAGIC)] == MAGIC:
        return True
    if legacy is None or not is_legacy(data):
        return False
    if legacy.legacy_keys is None:
        return True
    try:
        value = loads_legacy(data, key=key)
    except CorruptPayloadError:
        return True  # legacy JSON that does not parse: the rewrite reports it, as before
    return isinstance(value, dict) and not legacy.legacy_keys.isdisjoint(value)


def rewrite_one(
    store: SessionStore[Any],
    codec: Codec,
    key: str,
    legacy: SchemaInfo | None,
    judged: Judged | None = None,
) -> str:
    """Rewrite one session with compare-and-set: ``rewritten``, ``current``, ``vanished``,
    ``deleted`` (a chain's tombstone now) or ``not a session`` (replaced meanwhile by a value that
    is not one).

    ``judged``: what :func:`judge` made of the value a read just found (the walk's batch read);
    a copy read here with the same bytes is not decoded again (a legacy session's warnings about
    what its JSON held are logged, and counted, once per value, not once per look at it).

    Raises:
        ConflictError: the session changed under every attempt for ``update_timeout`` seconds.
        SessionStoreError: it does not decode, or cannot be encoded again.
    """
    backend: SessionBackend = store.backend
    deadline = time.monotonic() + store.update_timeout
    attempt = 0
    while True:
        read = backend.get_versioned(key)
        if read is None:
            return "vanished"
        stored = stamps.session_bytes(read.value)
        if stored is None:
            return "deleted"  # deleted through the chain meanwhile: its tombstone stays
        framed = _framed_here(backend, read.value, stored)
        if judged is None or judged.data != stored or judged.framed != framed:
            judged = judge(codec, key, stored, legacy, framed)
        if judged.outcome != _STALE:  # not a session, or already current (a concurrent writer)
            return judged.outcome
        left = backend.ttl(key)
        if left is None:
            return "vanished"
        writer = codec.for_frames() if framed else codec  # a chain may copy it to any tier
        assert judged.decoded is not None
        payload = writer.encode(key, judged.decoded.obj)
        # NO_EXPIRY passes on as "never", not as "the backend's default TTL"
        if _set_if_kept(backend, key, payload, read, framed, left):
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


def _framed_here(backend: SessionBackend, raw: bytes, stored: bytes) -> bool:
    """Whether the copy ``raw`` (its session bytes ``stored``) sits in a chain's version frame
    that the walk itself keeps when it rewrites it (:func:`_set_if_kept`): one tier of a chain
    read alone, or a single backend holding a framed session; never through a chain, which
    hands out its sessions' bytes and frames its writes itself."""
    if isinstance(backend, TieredBackend):
        return False
    return stored is not raw and bool(stamps.version_of(raw))


def _set_if_kept(
    backend: SessionBackend, key: str, payload: bytes, read: Versioned, framed: bool, left: float
) -> bool:
    """The rewrite's compare-and-set of ``payload`` over the copy ``read``: expiring after the
    ``left`` seconds it had, and keeping the TTL the copy records as the session's own (so
    ``touch`` slides it by that, not by what was left).

    Through a chain, the chain frames the write: it records the TTL the token's copy recorded,
    or none if it recorded none (a session saved with its store's TTL, a legacy one: a store's
    ``touch`` slides it by its own TTL, not by the time it had left). ``framed``
    (:func:`_framed_here`: one tier of a chain read alone, or a single backend holding a framed
    session): the rewrite is framed here, a newer version recording the frame's TTL, so a chain
    takes it; its payload is then encrypted bound to no key prefix (format 2), since the chain
    may copy it to a tier whose prefix differs. An unframed session (saved with the store's
    TTL) stays unframed."""
    token = read.token
    if isinstance(backend, TieredBackend) and isinstance(token, ChainToken):
        return backend.set_if_with_own_ttl(key, payload, token, left, token.own_ttl)
    if framed:
        payload = stamps.frame(payload, stamps.clock.now(), stamps.own_ttl(read.value))
    return backend.set_if(key, payload, token, left)


def is_current(codec: Codec, key: str, data: bytes, *, framed: bool = False) -> bool:
    """Whether ``data`` is what ``codec`` writes today (apart from compression and the nonce).

    ``framed``: ``data`` was read inside a chain's frame from one tier (or a single backend),
    where encryption format 2 is current as well (:func:`is_current_encryption`).
    Decodes it (so a payload that does not decode raises its typed error here).
    """
    if is_legacy(data):
        codec.decode(key, data)  # raises if it does not even decode
        return False
    return _current(codec, key, data, codec.decode(key, data), framed)


def _current(codec: Codec, key: str, data: bytes, decoded: Decoded, framed: bool) -> bool:
    """:func:`is_current` of a payload with our header, given its decode."""
    header = parse_header(data, key=key)
    info = get_schema(decoded.schema)
    if info is None:  # pragma: no cover - decode already refused an unknown schema
        return False
    if decoded.stored_version != codec.write_versions.get(info.name, info.version):
        return False
    encrypted = bool(header.stages) and header.stages[-1] == STAGE_AESGCM
    if codec.encryption is None:
        return STAGE_AESGCM not in header.stages
    current = is_current_encryption(header.format_version, codec.encrypted_format, framed=framed)
    if not encrypted or not current:
        # format 1 bound its associated data ambiguously, format 2 (unframed) not to the
        # backend's key prefix, format 3 through a chain whose tiers' prefixes differ to one
        # tier's only: re-encrypt in the format the store writes there
        return False
    start = header.payload_offset
    key_id = data[start : start + _KEY_ID_LENGTH].hex()
    return key_id == codec.encryption.key_ids[0]
