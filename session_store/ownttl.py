"""A session's own TTL, recorded with its payload, so that sliding expiry keeps it on every
backend (issue 12: "a session saved with its own TTL keeps it after any number of reads").

A chain (:class:`~session_store.tiered.TieredBackend`, ``keeps_own_ttl``) frames every copy it
stores with the TTL the write asked for (:mod:`session_store.stamps`), and its ``touch`` keeps
that TTL. A single backend (``memory://``, ``redis://``, ``diskcache://``, a plugin) keeps only
an expiry time, so a store over it could not tell, at a ``touch``, what TTL a session was saved
with. The rules, written once here for both stores and the web integrations:

* **What a write stores.** A write whose TTL is the store's own (``save(key, s)``, or any TTL
  equal to the store's ``ttl``) stores the payload as it is: byte for byte what it always did,
  at no cost. A write with another TTL (``save(key, s, ttl=30)``, ``save_many``, ``update``, a
  web integration's commit with its cookie's lifetime) over a backend that is not a chain stores
  the payload inside a chain's version frame (:func:`session_store.stamps.frame`) recording that
  TTL, with a fresh version from the process's :data:`~session_store.stamps.clock` (25 bytes).
  A chain frames the write itself and is not framed twice.
* **Who reads it.** Everything that reads sessions unframes: both stores, the web integrations,
  a single-tier reader, the CLI (:func:`~session_store.stamps.session_bytes`); any payload still
  round-trips exactly (a frame holds the caller's bytes as they are, and a session payload never
  begins with the frame's magic). A payload stored without a frame (every session written before
  this, and every session saved with the store's TTL) loads as it always did.
* **What a touch keeps.** ``touch(key)`` without a TTL and ``touch_on_load`` restart a framed
  session with the TTL its frame records, and an unframed one with the store's ``ttl`` *as
  configured now*: a store started later with another default moves the sessions saved with
  the default to the new default, and leaves each session saved with a TTL of its own at that
  TTL. A ``touch`` given a TTL uses it, and a later write decides again (``save`` or ``update``
  without ``ttl`` gives the store's TTL, and drops the record).
* **Why a frame, and not the backend's own TTL.** A backend reports what is *left* of a key's
  TTL (``ttl``, ``get_with_ttl``), not what it was set to; keeping the original would take a
  protocol change in every backend and plugin, and a second field per key. The frame already
  exists, is read by every reader, and gives Redis's compare-and-set its short token.

**Touching only a session.** A key can hold a value that is *no session*: the marker a login's
id rotation leaves on the old id (``websession.steps.RETIRED``), a chain's tombstone read through
one tier. A touch must neither call it live nor restart its expiry (a tombstone must outlive every
racing promotion). So a store over a single backend touches through the backend's
``touch_session(key, ttl, keep_own)``: one atomic step that judges the value on its first
:data:`~session_store.touchrules.HEAD_SPAN` bytes
(:func:`~session_store.touchrules.touch_decision`: a marker is never longer than 50 bytes, and a
frame's recorded TTL lies in its first 25), and restarts the expiry of a session only, with the
TTL its frame records when ``keep_own`` (``touch(key)``, ``touch_on_load``), else with ``ttl``.
On Redis it is one script that reads only that head (``GETRANGE``), on memory and diskcache one
step under the backend's lock or transaction; the default for any other backend
(:func:`~session_store.touchrules.touch_session_steps`) reads, judges, and touches by the
backend's conditional touch only a value that cannot have become a marker since. Nothing can
land between the judgement and the touch: a racing save keeps the expiry it was just given.
"""

from __future__ import annotations

from session_store.backend import SessionBackend
from session_store.stamps import clock, frame, own_ttl

__all__ = ["keeps_own_ttl", "kept_ttl", "recorded", "records", "touch_kept"]


def keeps_own_ttl(backend: object) -> bool:
    """Whether ``backend`` keeps each session's own TTL itself (a chain's frames), also as the
    sync backend an async wrapper runs (``ThreadedBackend(TieredBackend(...))``: framed by the
    store too, the chain's tiers would hold a frame in a frame, which a single-tier reader
    could not decode)."""
    return bool(
        getattr(backend, "keeps_own_ttl", False)
        or getattr(getattr(backend, "sync", None), "keeps_own_ttl", False)
    )


def records(ttl: float | None, store_ttl: float, backend: object) -> bool:
    """Whether a write with the (normalized) TTL ``ttl`` is stored framed, recording it: the
    TTL differs from the store's and ``backend`` does not record it itself."""
    return not (ttl is None or ttl == store_ttl or keeps_own_ttl(backend))


def recorded(payload: bytes, ttl: float | None, store_ttl: float, backend: object) -> bytes:
    """The bytes a store writes for ``payload`` with the (normalized) write TTL ``ttl``: the
    payload itself unless :func:`records` (then framed; its encryption bound to no key prefix,
    see ``StoreRules._codec_for_frames``)."""
    if not records(ttl, store_ttl, backend):
        return payload
    return frame(payload, clock.now(), ttl)


def kept_ttl(data: bytes, store_ttl: float) -> float:
    """The TTL a ``touch`` of the stored ``data`` keeps: the one its frame records, else the
    store's."""
    own = own_ttl(data)
    return store_ttl if own is None else own


def touch_kept(backend: SessionBackend, key: str, store_ttl: float) -> bool:
    """``touch(key)`` keeping the session's own TTL: the TTL the stored frame records (a
    chain's: the newest copy's), else ``store_ttl``, judged and applied by the backend
    (``touch_session``; one step over a single backend): a write landing meanwhile keeps the
    expiry it was just given. ``False`` when the key holds no session (a chain's retired id
    too). Never "no expiry" for a value that records no TTL (a chain touching a session it did
    not write)."""
    return backend.touch_session(key, store_ttl, keep_own=True)
