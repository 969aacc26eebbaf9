"""What every web integration shares: session ids, the lazy session mapping, and the decision of
what a request's end does to the store. No I/O and no framework here; ``session_store.flask``,
``session_store.starlette`` and ``session_store.django`` add the calls (sync or awaited) and the
cookie of their framework.

The rules, the same in every framework:

* **Ids** are 256 random bits (``secrets.token_urlsafe(32)``, 43 characters). A cookie that is
  not such an id is ignored without a store lookup, and an id the store does not hold is never
  adopted: the session gets a fresh id when it is first written (no session fixation).
* **Lazy**: nothing is read before the app touches the session; a request that never does costs
  the store nothing, and one that only reads writes no payload.
* **Merged writes**: at the end of a request only the top-level keys it changed or removed are
  written, through the store's ``update`` (compare-and-set, retried on conflict). Two concurrent
  requests of one user that change different keys both keep their change.
* **Regenerate** (on login) moves the data to a new id and deletes the old one; **clearing** a
  session down to nothing (logout) deletes it server-side and expires the cookie.
* **Sliding expiry**: a request that read an existing session without changing it restarts its
  TTL with ``touch`` (no payload write).
"""

from __future__ import annotations

import contextlib
import copy
import enum
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Callable, Generator, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, TypeGuard

from session_store.backend import VersionToken
from session_store.codec import Codec
from session_store.codec.stages import ZstdStage
from session_store.errors import CorruptPayloadError, SessionStoreError, UnknownSchemaVersionError

if TYPE_CHECKING:
    from session_store.aio.store import AsyncSessionStore
    from session_store.store import SessionStore

log = logging.getLogger("session_store.web")

__all__ = [
    "Action",
    "DictSession",
    "Outcome",
    "Plan",
    "Read",
    "ServerSession",
    "SessionState",
    "acommit",
    "aread_session",
    "commit",
    "commit_steps",
    "diff",
    "hiding",
    "is_session_id",
    "merge_changes",
    "new_session_id",
    "plan_commit",
    "read_session",
    "shown_id",
    "store_url",
    "web_codec",
]


def store_url(configured: str | None) -> str:
    """The store URL a web integration opens: the configured one, else ``SESSION_STORE_URL``,
    else ``memory://``, with a warning (once per process): sessions in one process's memory are
    lost on restart and not seen by the other workers of a pre-forking server."""
    url = configured or os.environ.get("SESSION_STORE_URL")
    if url:
        return url
    global _warned_memory
    if not _warned_memory:
        _warned_memory = True
        log.warning(
            "no SESSION_STORE_URL configured: sessions are kept in this process's memory "
            "(lost on restart, not shared between workers); set it to a shared store"
        )
    return "memory://"


_warned_memory = False


def _unreadable(sid: str, exc: SessionStoreError) -> None:
    """A stored session that cannot be decoded is treated as no session (the user gets a new
    id, as Django's own backends do with corrupt data), logged, and left as it is for
    inspection (``session-store inspect``): a permanent error page helps nobody."""
    log.warning("session %s cannot be read, a new one is started: %s", shown_id(sid), exc.message)


def shown_id(sid: str) -> str:
    """How a session id appears in errors and logs: a short digest, never the id itself (a
    session id is a bearer credential: whoever reads it from a log can log in as its user)."""
    return "sid-sha256:" + hashlib.sha256(sid.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@contextlib.contextmanager
def hiding(sid: str | None) -> Iterator[None]:
    """Run a store call about session ``sid``; an error it raises (and any error it was raised
    from) shows :func:`shown_id` instead of the id."""
    try:
        yield
    except SessionStoreError as exc:
        if sid is not None:
            seen: set[int] = set()
            error: BaseException | None = exc
            while error is not None and id(error) not in seen:
                seen.add(id(error))
                if isinstance(error, SessionStoreError) and error.key == sid:
                    error.key = shown_id(sid)
                error = error.__cause__ or error.__context__
        raise


#: Web sessions are compressed only above this many bytes: a request-sized session (a few KB)
#: costs more CPU to compress on every request (~60 us for 2 KB here) than it saves on the wire.
WEB_COMPRESSION_THRESHOLD = 16 * 1024


def web_codec() -> Codec:
    """The codec of the stores the integrations open from a URL: the default one (strict JSON
    envelope, encryption when ``SESSION_STORE_KEYS`` is set) with compression above 16 KiB."""
    return Codec(legacy_schema="dict", compression=ZstdStage(threshold=WEB_COMPRESSION_THRESHOLD))


#: Random bytes in a session id (256 bits).
SESSION_ID_BYTES = 32
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")


def new_session_id() -> str:
    """A fresh session id: 256 bits from the OS's CSPRNG, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def is_session_id(value: object) -> TypeGuard[str]:
    """Whether a cookie value has the shape of an id we issue (anything else is not looked up)."""
    return isinstance(value, str) and _SESSION_ID.fullmatch(value) is not None


Data = dict[str, Any]


class Read(NamedTuple):
    """A session as read from the store: its data and the version token of that read, so the
    end of the request can write with one compare-and-set instead of reading again."""

    data: Data
    token: VersionToken


def read_session(store: SessionStore[Data], sid: str) -> Read | None:
    """The stored session ``sid`` with its version token, or ``None``; one backend read.

    The bytes go through the store's decoded-object cache (:mod:`session_store.decoded`): when
    they are the very bytes this process last wrote for ``sid`` (the next request of the same
    user, see :func:`commit_steps`), the data is a copy of what was written, with no decode."""
    with hiding(sid):
        found = store.backend.get_versioned(sid)
        if found is None:
            return None
        try:
            decoded = store._decoded.load(sid, found.value, store._decode_plain, store._rebuild)
        except (CorruptPayloadError, UnknownSchemaVersionError) as exc:
            _unreadable(sid, exc)
            return None
    return Read(decoded, found.token)


async def aread_session(store: AsyncSessionStore[Data], sid: str) -> Read | None:
    """:func:`read_session` through an async store."""
    with hiding(sid):
        found = await store.backend.get_versioned(sid)
        if found is None:
            return None
        try:
            return Read(store._decode(sid, found.value), found.token)
        except (CorruptPayloadError, UnknownSchemaVersionError) as exc:
            _unreadable(sid, exc)
            return None


class ServerSession(MutableMapping[str, Any]):
    """A session's data, loaded from the store on first use, with what the request changed.

    Args:
        sid: the id from the request's cookie (already checked with :func:`is_session_id`), or
            ``None`` for a request without one.
        loader: reads ``sid`` (:func:`read_session`; ``None`` if the store does not hold it).
            Called at most once, on first access.
    """

    def __init__(self, sid: str | None, loader: Callable[[str], Read | None] | None = None) -> None:
        self.sid = sid
        self._loader = loader
        self._data: Data | None = None
        self._original: Data = {}
        self.stored: Read | None = None  # what the store held, as stored: the base of a merge
        self.accessed = False
        self.cleared = False
        self.regenerate_requested = False
        if loader is None or sid is None:
            self._adopt(None)

    def _view(self, stored: Data) -> Data:
        """The app's view of stored data (a subclass may translate values)."""
        return dict(stored)

    def _adopt(self, read: Read | None) -> None:
        if read is None:
            self.sid = None  # unknown or absent id: never adopted, a new one comes on write
        self.stored = read
        self._data = {} if read is None else self._view(read.data)
        self._original = copy.deepcopy(self._data)

    @property
    def loaded(self) -> bool:
        """Whether the store was read (or the data given)."""
        return self._data is not None

    @property
    def is_new(self) -> bool:
        """Whether the store holds nothing for this session yet."""
        self._load()
        return self.sid is None

    def _load(self) -> Data:
        self.accessed = True
        if self._data is None:
            assert self._loader is not None and self.sid is not None
            self._adopt(self._loader(self.sid))
        assert self._data is not None
        return self._data

    # -- the mapping ---------------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._load()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __contains__(self, key: object) -> bool:
        return key in self._load()

    def __repr__(self) -> str:
        state = repr(self._data) if self._data is not None else "<not loaded>"
        return f"{type(self).__name__}({state})"

    def clear(self) -> None:
        """Forget every key; at the end of the request, an empty session is deleted."""
        self._load().clear()
        self.cleared = True

    def regenerate(self) -> None:
        """Move this session to a new id at the end of the request (call it on login)."""
        self._load()
        self.regenerate_requested = True

    # -- what the request did ------------------------------------------------------------------
    def changes(self) -> tuple[Data, frozenset[str]]:
        """The top-level keys set to a new value, and the keys removed, since the load."""
        if self._data is None:
            return {}, frozenset()
        return diff(self._original, self._data)


class DictSession(dict[str, Any]):
    """A session already loaded, as a real ``dict`` (for frameworks whose apps expect one, such
    as Starlette's ``request.session``, which apps hand to ``json.dumps``), with the same
    change tracking as :class:`ServerSession`.

    Args:
        sid: the id the data was loaded from, or ``None`` (none, or one the store did not hold).
        read: what :func:`aread_session` found (``None``: a new session).
    """

    def __init__(self, sid: str | None, read: Read | None) -> None:
        super().__init__(read.data if read is not None else {})
        self.sid = sid if read is not None else None
        self.stored = read
        self._original = copy.deepcopy(dict(self))
        self.loaded = True
        self.accessed = False  # set by mark_accessed (Starlette's request.session calls it)
        self.cleared = False
        self.regenerate_requested = False

    def clear(self) -> None:
        """Forget every key; at the end of the request, an empty session is deleted."""
        super().clear()
        self.cleared = True

    def regenerate(self) -> None:
        """Move this session to a new id at the end of the request (call it on login)."""
        self.regenerate_requested = True

    def mark_accessed(self) -> None:
        """The app looked at the session (sliding expiry applies, ``Vary: Cookie`` is sent)."""
        self.accessed = True

    def changes(self) -> tuple[Data, frozenset[str]]:
        """The top-level keys set to a new value, and the keys removed, since the load."""
        return diff(self._original, self)


def diff(original: Data, current: Data) -> tuple[Data, frozenset[str]]:
    """The keys of ``current`` new or different from ``original``, and the keys it lost."""
    changed = {k: v for k, v in current.items() if k not in original or original[k] != v}
    return changed, frozenset(original.keys() - current.keys())


SessionState = ServerSession | DictSession


class Action(enum.Enum):
    """What the end of a request does to the store."""

    NOTHING = "nothing"  # untouched, or new and still empty
    TOUCH = "touch"  # read, unchanged: restart the TTL (if sliding)
    WRITE = "write"  # merge the changes into the stored session (or create it)
    MOVE = "move"  # regenerate: the merged data under a new id, the old id deleted
    DELETE = "delete"  # cleared to nothing: delete, expire the cookie


@dataclass(frozen=True)
class Plan:
    """The decision for one request (see :func:`plan_commit`)."""

    action: Action
    changed: Data = field(default_factory=dict)
    removed: frozenset[str] = frozenset()
    replace: bool = False  # the session was cleared: the stored keys not in ``changed`` go

    def merge(self, existing: bool) -> Callable[[Data | None], Data | None]:
        """The ``update`` function applying this plan (see :func:`merge_changes`)."""
        return lambda current: merge_changes(
            current, self.changed, self.removed, replace=self.replace, existing=existing
        )


def plan_commit(session: SessionState, *, sliding: bool = True) -> Plan:
    """What to do with ``session`` once the app is done with it."""
    if not session.loaded:
        return Plan(Action.NOTHING)
    changed, removed = session.changes()
    touched = changed or removed or session.cleared or session.regenerate_requested
    if not touched and not session.accessed:
        return Plan(Action.NOTHING)
    if (session.cleared or removed) and not len(session):  # emptied: logout
        return Plan(Action.DELETE if session.sid is not None else Action.NOTHING)
    replace = session.cleared
    if session.regenerate_requested:
        return Plan(Action.MOVE, changed, removed, replace)
    if session.sid is None:
        return Plan(Action.WRITE, changed, removed, replace) if changed else Plan(Action.NOTHING)
    if changed or removed:
        return Plan(Action.WRITE, changed, removed, replace)
    return Plan(Action.TOUCH if sliding else Action.NOTHING)


def merge_changes(
    current: Data | None,
    changed: Data,
    removed: frozenset[str],
    *,
    replace: bool = False,
    existing: bool = True,
) -> Data | None:
    """The stored session after a request's changes: ``current`` less ``removed``, plus
    ``changed`` (only ``changed`` if ``replace``). ``None`` (write nothing) when an existing
    session is gone from the store meanwhile: a concurrent logout is not undone."""
    if current is None and existing:
        return None
    base = {} if replace or current is None else current
    merged = {k: v for k, v in base.items() if k not in removed}
    merged.update(changed)
    return merged


@dataclass(frozen=True)
class Outcome:
    """What a commit did: the id the cookie must carry now (``None``: expire the cookie, or
    leave it alone when ``action`` is NOTHING) and the action taken."""

    sid: str | None
    action: Action


def _written(plan: Plan, sid: str | None, result: Data | None) -> Outcome:
    return Outcome(sid, plan.action) if result is not None else Outcome(None, Action.DELETE)


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


class FirstTry(NamedTuple):
    """The compare-and-set of the merge onto what the request read (see :func:`_first_try`)."""

    sid: str
    payload: bytes
    token: VersionToken
    merged: Data
    stamped: Data
    plain: Any


def _first_try(
    store: SessionStore[Data] | AsyncSessionStore[Data], plan: Plan, session: SessionState
) -> FirstTry | None:
    """The payload of the merge onto what this request read, and the token to write it with:
    one compare-and-set instead of a read and a compare-and-set. ``None``: nothing was read."""
    if session.stored is None or session.sid is None:
        return None
    merged = merge_changes(
        session.stored.data, plan.changed, plan.removed, replace=plan.replace, existing=True
    )
    assert merged is not None
    stamped, payload, plain = store._prepare_plain(session.sid, merged)
    return FirstTry(session.sid, payload, session.stored.token, merged, stamped, plain)


def _remember(
    store: SessionStore[Data] | AsyncSessionStore[Data], plan: Plan, first: FirstTry
) -> None:
    """After ``first`` was written: tell the store's decoded-object cache (if it has one) what
    those bytes decode to, so the next request that reads them back skips the decode. Only
    when that is exactly what a decode would give: the merge's base came from a decode, and the
    request's changes are plain JSON types (else the cache is left alone, and the next read
    decodes)."""
    cache = getattr(store, "_decoded", None)
    if cache is not None and _plain_json(plan.changed):
        cache.put(first.sid, first.payload, first.stamped, first.plain)


#: One store call the commit needs: the method's name (``set_if`` goes to the store's backend)
#: and its arguments. The commit's decisions are a generator of these, so the sync and the
#: async integrations run the very same steps, one with calls and one with awaits.
Call = tuple[str, tuple[Any, ...]]
Steps = Generator[Call, Any, Outcome]


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
        yield "delete", (sid,)
        return Outcome(None, plan.action)
    if plan.action is Action.TOUCH:
        alive = yield "touch", (sid, ttl)
        return Outcome(sid, plan.action) if alive else Outcome(None, Action.DELETE)
    if plan.action is Action.WRITE:
        first = _first_try(store, plan, session)  # nobody wrote since our read: one round trip
        if first is not None and (
            yield "set_if", (first.sid, first.payload, first.token, store._ttl(ttl))
        ):
            _remember(store, plan, first)
            return Outcome(first.sid, plan.action)
        existing = sid is not None
        sid = sid or new_session_id()
        return _written(plan, sid, (yield "update", (sid, plan.merge(existing), ttl)))
    # MOVE: the merged data under a fresh id (created only if absent), then the old id goes
    base = session.stored.data if session.stored is not None else None
    data = merge_changes(base, plan.changed, plan.removed, replace=plan.replace, existing=False)
    new = new_session_id()
    yield "update", (new, lambda current: data, ttl)
    if sid is not None:
        yield "delete", (sid,)
    return Outcome(new, plan.action)


def _target(store: SessionStore[Data] | AsyncSessionStore[Data], name: str) -> Any:
    return getattr(store.backend if name == "set_if" else store, name)


def commit(
    store: SessionStore[Data], session: SessionState, ttl: float | None, sliding: bool = True
) -> Outcome:
    """Apply :func:`plan_commit`'s decision through a sync store."""
    steps = commit_steps(store, session, ttl, sliding)
    result: Any = None
    try:
        with hiding(session.sid):  # the encode of the first try, too
            while True:
                name, args = steps.send(result)
                with hiding(args[0] if args else None):  # a new id (regenerate), too
                    result = _target(store, name)(*args)
    except StopIteration as done:
        outcome: Outcome = done.value
        return outcome


async def acommit(
    store: AsyncSessionStore[Data], session: SessionState, ttl: float | None, sliding: bool = True
) -> Outcome:
    """Apply :func:`plan_commit`'s decision through an async store."""
    steps = commit_steps(store, session, ttl, sliding)
    result: Any = None
    try:
        with hiding(session.sid):  # the encode of the first try, too
            while True:
                name, args = steps.send(result)
                with hiding(args[0] if args else None):  # a new id (regenerate), too
                    result = await _target(store, name)(*args)
    except StopIteration as done:
        outcome: Outcome = done.value
        return outcome
