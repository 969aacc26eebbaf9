"""The web integrations' store I/O: reading a session with its version token, and running the
commit's steps (:func:`~session_store.websession.steps.commit_steps`) through a sync or an async
store. Errors about a session show a digest of its id, never the id."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from session_store.backend import Versioned
from session_store.backend_base import trusted
from session_store.errors import (
    CorruptPayloadError,
    SessionStoreError,
    UnknownSchemaVersionError,
)
from session_store.stamps import session_bytes
from session_store.websession.ids import hide, unreadable
from session_store.websession.memo import WrittenData, written_data
from session_store.websession.plan import Action, Outcome
from session_store.websession.state import Data, Read, SessionState
from session_store.websession.steps import Call, Steps, commit_steps

if TYPE_CHECKING:
    from session_store.aio.store import AsyncSessionStore
    from session_store.store import SessionStore

__all__ = ["acommit", "aread_session", "commit", "decode_read", "read_session"]


def read_session(store: SessionStore[Data], sid: str) -> Read | None:
    """The stored session ``sid`` (an id that passed ``is_session_id``) with its version
    token, or ``None``; one backend read.

    The bytes go through the store's decoded-object cache (:mod:`session_store.decoded`): when
    they are the very bytes this process last wrote for ``sid`` (the next request of the same
    user, see :func:`commit_steps`), the data is a copy of what was written, with no decode."""
    memo = written_data(store)
    calls = memo.trusted
    if calls is None or calls[0] is not store.backend:
        calls = _trust(memo, store)
    try:
        return _decode_read(store, memo, sid, calls[1].get_versioned(sid))
    except SessionStoreError as exc:
        hide(exc, sid)
        raise


def _trust(memo: WrittenData, store: SessionStore[Data]) -> tuple[Any, Any]:
    """``store``'s backend calls without the argument checks (:func:`trusted`), kept with the
    store's :class:`~session_store.websession.memo.WrittenData` as ``(backend, calls)``. Every
    id the integrations pass has passed ``is_session_id`` (43 URL-safe characters) or was made
    here; every TTL went through the store's own ``_ttl``."""
    calls = memo.trusted = (store.backend, trusted(store.backend))
    return calls


async def aread_session(store: AsyncSessionStore[Data], sid: str) -> Read | None:
    """:func:`read_session` through an async store."""
    try:
        return decode_read(store, sid, await store.backend.get_versioned(sid))
    except SessionStoreError as exc:
        hide(exc, sid)
        raise


def decode_read(
    store: SessionStore[Data] | AsyncSessionStore[Data], sid: str, found: Versioned | None
) -> Read | None:
    """What the backend's ``get_versioned`` found for ``sid``, decoded through the store's
    decoded-object cache; ``None`` if absent or unreadable (logged: the user gets a new
    session rather than an error page on every request)."""
    return _decode_read(store, written_data(store), sid, found)


def _decode_read(
    store: SessionStore[Data] | AsyncSessionStore[Data],
    memo: WrittenData,
    sid: str,
    found: Versioned | None,
) -> Read | None:
    """:func:`decode_read`, given ``store``'s :class:`WrittenData`."""
    if found is None:
        return None
    payload = session_bytes(found.value)  # a chain's version frame read through, as load does
    if payload is None:
        return None  # a chain's tombstone: deleted
    try:
        rebuild = memo.rebuild  # the data this process just wrote: no parse
        data = found.value  # the cache is keyed by the bytes as stored, frame and all
        decode = store._decode_plain if payload is data else store._decode_framed
        decoded = store._decoded.load(sid, data, decode, rebuild)
    except (CorruptPayloadError, UnknownSchemaVersionError) as exc:
        unreadable(sid, exc)
        return None
    return Read(decoded, found.token)


#: The calls of :func:`commit_steps` made to the store's backend (the others go to the store).
_BACKEND_CALLS = frozenset({"set_if", "get_versioned"})


class _Run:
    """Drives :func:`commit_steps` for :func:`commit` and :func:`acommit` (which only make
    the calls, blocking or awaited): the next call, the outcome, and the errors' ids hidden."""

    __slots__ = ("key", "outcome", "sid", "steps")

    def __init__(self, sid: str | None, steps: Steps) -> None:
        self.sid = sid
        self.steps = steps
        self.key: str | None = None  # the id of the call under way (a new one, on a move)
        self.outcome = Outcome(sid, Action.NOTHING)

    def send(self, result: Any) -> Call:
        """The next call, given the last one's result; ``("", ())`` once the steps are done."""
        try:
            name, args = self.steps.send(result)  # the encode of the first try, too
        except StopIteration as done:
            self.outcome = done.value
            return "", ()
        self.key = args[0]
        return name, args

    def hide(self, exc: SessionStoreError) -> None:
        """Make ``exc`` show digests of the ids, never the ids."""
        hide(exc, self.key)
        hide(exc, self.sid)


def commit(
    store: SessionStore[Data], session: SessionState, ttl: float | None, sliding: bool = True
) -> Outcome:
    """Apply :func:`plan_commit`'s decision through a sync store. An error shows a digest of
    the session's id (and of a new id, on regenerate), never the id."""
    calls = written_data(store).trusted
    if calls is None or calls[0] is not store.backend:
        calls = _trust(written_data(store), store)
    backend = calls[1]  # the ids are checked (see _trust), the TTLs are the store's
    run = _Run(session.sid, commit_steps(store, session, ttl, sliding))
    try:
        name, args = run.send(None)
        while name:
            name, args = run.send(
                getattr(backend if name in _BACKEND_CALLS else store, name)(*args)
            )
    except SessionStoreError as exc:
        run.hide(exc)
        raise
    return run.outcome


async def acommit(
    store: AsyncSessionStore[Data], session: SessionState, ttl: float | None, sliding: bool = True
) -> Outcome:
    """Apply :func:`plan_commit`'s decision through an async store (errors as :func:`commit`)."""
    run = _Run(session.sid, commit_steps(store, session, ttl, sliding))
    try:
        name, args = run.send(None)
        while name:
            target = store.backend if name in _BACKEND_CALLS else store
            name, args = run.send(await getattr(target, name)(*args))
    except SessionStoreError as exc:
        run.hide(exc)
        raise
    return run.outcome
