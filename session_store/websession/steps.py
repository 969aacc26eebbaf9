"""The store calls that apply a request's :class:`~session_store.websession.plan.Plan`, written
once as a generator of calls so the sync and the async integrations run the very same steps
(:mod:`session_store.websession.storeio` makes the calls, blocking or awaited)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, NamedTuple

from session_store.backend import Versioned, VersionToken
from session_store.errors import ConflictError, CorruptPayloadError, UnknownSchemaVersionError
from session_store.stamps import VERSION_END, VERSION_START, tombstone
from session_store.websession.ids import new_session_id
from session_store.websession.memo import written_data
from session_store.websession.plan import Action, Outcome, Plan, merge_changes, plan_commit
from session_store.websession.state import Data, SessionState

if TYPE_CHECKING:
    from session_store.aio.store import AsyncSessionStore
    from session_store.store import SessionStore

__all__ = ["RETIRED", "RETIRED_TTL", "Call", "Steps", "commit_steps"]


def _written(plan: Plan, sid: str | None, result: Data | None) -> Outcome:
    return Outcome(sid, plan.action) if result is not None else Outcome(None, Action.GONE)


#: How many times a MOVE copies the old id's session again because another request committed
#: to it while it was being copied (then it moves what it has).
MOVE_ATTEMPTS = 10

#: What a MOVE writes over the old id, by compare-and-set against the read it copied, before it
#: deletes it: a tombstone frame, which every reader takes for a deleted session
#: (:func:`session_store.stamps.session_bytes`), so a request that commits to the old id after
#: the copy is told GONE (Django: ``UpdateError``) instead of WRITE, and no acknowledged change
#: is deleted unseen. Backends have no conditional delete of a given version; this is one. The
#: marker is then removed by the store's ``_discard`` (through a chain, a tombstone), not by
#: ``SessionStore.delete``, which leaves a marker alone (a logout with the old cookie).
RETIRED = tombstone(bytes(VERSION_END - VERSION_START))

#: The TTL of :data:`RETIRED` (seconds): it is deleted right after; this bounds a crash between.
RETIRED_TTL = 60.0


def _now_stored(
    store: SessionStore[Data] | AsyncSessionStore[Data],
    session: SessionState,
    found: Versioned | None,
) -> Data | None:
    """The session the old id holds now (``get_versioned``'s ``found``), as stored; the
    request's own read if it no longer decodes."""
    if found is None:
        return None
    assert session.sid is not None
    try:
        current: Data | None = store._decode_stored(session.sid, found.value)
    except (CorruptPayloadError, UnknownSchemaVersionError):
        return session.stored.data if session.stored is not None else None
    return current


def _always(data: Data | None) -> Callable[[Data | None], Data | None]:
    """An ``update`` function writing ``data`` whatever is stored (the new id is fresh)."""
    return lambda current: data


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _plain_json(value: Any) -> bool:
    """Whether ``value`` is made of exactly the types JSON decodes to (``dict`` with ``str``
    keys, ``list``, ``str``, ``int``, ``float``, ``bool``, ``None``): then decoding what it
    encodes to gives back an equal object of the same types (a tuple would come back a list)."""
    kind = type(value)
    if kind in _PLAIN:
        return True
    if kind is dict:
        return all(type(k) is str and _plain_json(v) for k, v in value.items())
    if kind is list:
        return all(map(_plain_json, value))
    return False


def _plain_changes(changed: Data) -> bool:
    """:func:`_plain_json` of a request's changes, without a call for each plain scalar."""
    for key, value in changed.items():
        if type(key) is not str or (type(value) not in _PLAIN and not _plain_json(value)):
            return False
    return True


class FirstTry(NamedTuple):
    """The compare-and-set of the merge onto what the request read (see :func:`_first_try`),
    or the create-if-absent of a session under a fresh id (``token`` ``None``, see
    :func:`_create`)."""

    sid: str
    payload: bytes
    token: VersionToken | None
    merged: Data
    stamped: Data
    plain: Any


def _first_try(
    store: SessionStore[Data] | AsyncSessionStore[Data],
    plan: Plan,
    session: SessionState,
    write_ttl: float | None,
) -> FirstTry | None:
    """The payload of the merge onto what this request read (recording ``write_ttl`` where it
    is not the store's: :mod:`session_store.ownttl`), and the token to write it with: one
    compare-and-set instead of a read and a compare-and-set. ``None``: nothing was read."""
    if session.stored is None or session.sid is None:
        return None
    merged = merge_changes(
        session.stored.data, plan.changed, plan.removed, replace=plan.replace, existing=True
    )
    assert merged is not None
    stamped, payload, plain = store._prepare_recorded(session.sid, merged, write_ttl)
    return FirstTry(session.sid, payload, session.stored.token, merged, stamped, plain)


def _remember(
    store: SessionStore[Data] | AsyncSessionStore[Data], plan: Plan, first: FirstTry
) -> None:
    """After ``first`` was written: tell the store's decoded-object cache what those bytes
    decode to, so the next request that reads them back skips the decode, and keep the data
    itself (:mod:`~session_store.websession.memo`), so it skips the parse of the body too. Only
    when that is exactly what a decode would give: the merge's base came from a decode, and the
    request's changes are plain JSON types (else the cache is left alone, and the next read
    decodes)."""
    cache = store._decoded
    if cache.max_bytes > 0 and _plain_changes(plan.changed):
        cache.put(first.sid, first.payload, first.stamped, first.plain)
        written_data(store).remember(first.sid, first.plain, first.stamped)


#: How many fresh ids a create tries before giving up (a second one is already a 2^-256 event:
#: a backend answering "taken" every time is broken, and must not be written to blindly).
CREATE_ATTEMPTS = 3


def _create(
    store: SessionStore[Data] | AsyncSessionStore[Data],
    plan: Plan,
    data: Data,
    ttl: float | None,
) -> Generator[Call, Any, str]:
    """Write ``data`` under a fresh id with one create-if-absent (``set_if`` with no token):
    no read first, since nobody else holds a 256-bit id made a moment ago (an ``update`` read
    it, found nothing, and then made the very same ``set_if``). Returns the id. An id found
    taken is never written to (that would be someone else's session): another is drawn. A TTL
    other than the store's is recorded with the payload (:mod:`session_store.ownttl`)."""
    write_ttl = store._ttl(ttl)
    for _ in range(CREATE_ATTEMPTS):
        new = new_session_id()
        stamped, payload, plain = store._prepare_recorded(new, data, write_ttl)
        if (yield "set_if", (new, payload, None, write_ttl)):
            _remember(store, plan, FirstTry(new, payload, None, data, stamped, plain))
            return new
    raise ConflictError(
        f"{CREATE_ATTEMPTS} fresh session ids were all reported taken; nothing written",
        backend=store.backend.describe(),
    )


#: One store call the commit needs: the method's name (``set_if`` and
#: ``get_versioned`` go to the store's backend)
#: and its arguments. The commit's decisions are a generator of these, so the sync and the
#: async integrations run the very same steps, one with calls and one with awaits.
Call = tuple[str, tuple[Any, ...]]
Steps = Generator[Call, Any, Outcome]


def _emptied(
    store: SessionStore[Data] | AsyncSessionStore[Data],
    plan: Plan,
    session: SessionState,
    ttl: float | None,
) -> Steps:
    """The request removed the last keys it read (no ``clear()``): delete the session only if
    it is still the version read (retired by compare-and-set, then deleted, as a MOVE retires
    its old id), so that a key another request committed since survives: the removals are then
    merged into what is stored now, as any other change (retired again if nothing is left).
    ``GONE`` if it was deleted meanwhile."""
    assert session.sid is not None and session.stored is not None
    sid = session.sid
    token: VersionToken | None = session.stored.token  # the version last read, if not stale
    write_ttl = store._ttl(ttl)
    for _ in range(MOVE_ATTEMPTS):
        if token is not None and (yield "set_if", (sid, RETIRED, token, store._ttl(RETIRED_TTL))):
            yield "_discard", (sid,)  # our own marker: store.delete would leave it
            return Outcome(None, Action.DELETE)
        found: Versioned | None = yield "get_versioned", (sid,)
        current = _now_stored(store, session, found)
        if found is None or current is None:  # deleted or moved meanwhile: nothing to write
            return Outcome(None, Action.GONE)
        token = found.token
        merged = merge_changes(current, plan.changed, plan.removed, existing=True)
        if merged:  # another request's keys are left: write them back without ours
            payload = store._prepare_recorded(sid, merged, write_ttl)[1]
            if (yield "set_if", (sid, payload, token, write_ttl)):
                return Outcome(sid, Action.WRITE)
            token = None  # just proven stale: read again rather than retire with it
    written = yield "update", (sid, plan.merge(True), ttl)  # overtaken every time: merge
    if written is None:
        return Outcome(None, Action.GONE)
    if written:
        return Outcome(sid, Action.WRITE)
    return (yield from _retire_empty(store, session))


def _retire_empty(
    store: SessionStore[Data] | AsyncSessionStore[Data], session: SessionState
) -> Steps:
    """After :func:`_emptied`'s last ``update`` stored an empty session: end it as the rest of
    :func:`_emptied` does (retired by compare-and-set against a read that finds it still empty,
    then deleted; the cookie expired). A key another request committed since is kept (WRITE)."""
    assert session.sid is not None
    sid = session.sid
    found: Versioned | None = yield "get_versioned", (sid,)
    current = _now_stored(store, session, found)
    if found is None or current is None:
        return Outcome(None, Action.GONE)
    if not current and (yield "set_if", (sid, RETIRED, found.token, store._ttl(RETIRED_TTL))):
        yield "_discard", (sid,)
        return Outcome(None, Action.DELETE)
    return Outcome(sid, Action.WRITE)  # written to since: what it holds now is kept


def commit_steps(
    store: SessionStore[Data] | AsyncSessionStore[Data],
    session: SessionState,
    ttl: float | None,
    sliding: bool = True,
) -> Steps:
    """The store calls that apply :func:`plan_commit`'s decision; each yields a :data:`Call`
    and receives its result. Returns the :class:`Outcome`."""
    plan = plan_commit(session, sliding=sliding)
    sid = session.sid
    if plan.action is Action.NOTHING:
        return Outcome(sid, plan.action)
    if plan.action is Action.DELETE:
        if not plan.replace and session.stored is not None:  # emptied by removals
            return (yield from _emptied(store, plan, session, ttl))
        yield "delete", (sid,)  # a logout (clear()): whatever is stored now goes
        return Outcome(None, plan.action)
    if plan.action is Action.TOUCH:  # gone: deleted or moved by another request, cookie kept
        alive = yield "touch", (sid, ttl)
        return Outcome(sid, plan.action) if alive else Outcome(None, Action.GONE)
    if plan.action is Action.WRITE:
        write_ttl = store._ttl(ttl)
        first = _first_try(store, plan, session, write_ttl)  # no write since our read: one trip
        if first is not None and (
            yield "set_if", (first.sid, first.payload, first.token, write_ttl)
        ):
            _remember(store, plan, first)
            return Outcome(first.sid, plan.action)
        if sid is None:  # created by this request
            data = merge_changes(
                None, plan.changed, plan.removed, replace=plan.replace, existing=False
            )
            assert data is not None
            return Outcome((yield from _create(store, plan, data, ttl)), plan.action)
        return _written(plan, sid, (yield "update", (sid, plan.merge(True), ttl)))
    # MOVE: what the old id holds *now* (another request may have committed a change to it
    # since this one read it), merged with this request's changes, under a fresh id; then the
    # old id is retired by a compare-and-set against the copy's read (copied again if another
    # request committed to it meanwhile), and deleted.
    if sid is None:
        data = merge_changes(None, plan.changed, plan.removed, replace=plan.replace, existing=False)
        assert data is not None
        return Outcome((yield from _create(store, plan, data, ttl)), plan.action)
    found: Versioned | None = yield "get_versioned", (sid,)
    new = ""
    for _ in range(MOVE_ATTEMPTS):
        base = _now_stored(store, session, found)
        data = merge_changes(base, plan.changed, plan.removed, replace=plan.replace, existing=False)
        assert data is not None
        if not new:  # the first copy creates the new id
            new = yield from _create(store, plan, data, ttl)
        else:  # a later one replaces that copy (the new id is not in any cookie yet)
            yield "update", (new, _always(data), ttl)
        if found is None:
            return Outcome(new, plan.action)  # gone (a logout): no request can write it back
        if (yield "set_if", (sid, RETIRED, found.token, store._ttl(RETIRED_TTL))):
            break  # nothing committed to the old id since the copy's read; now it reads as gone
        found = yield "get_versioned", (sid,)
    yield "_discard", (sid,)  # our marker; after MOVE_ATTEMPTS copies overtaken, the session
    return Outcome(new, plan.action)
