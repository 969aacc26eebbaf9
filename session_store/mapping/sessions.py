"""``SessionMapping``: user id to session dict, every read and write going through a store."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from session_store.errors import ConflictError, InvalidKeyError, SerializationError
from session_store.keys import SEPARATOR
from session_store.mapping.editing import EditedSession
from session_store.mapping.tracked import JSONObject, SessionDict, plain
from session_store.store import SessionStore

__all__ = ["SessionMapping", "WriteObserver", "user_key"]

#: ``observer(user_id, previous, stored)`` after every write; ``previous`` is ``None`` when the
#: write created the session, ``stored`` is ``None`` when it deleted it. Both are what the
#: store holds (a dict or a typed session).
WriteObserver = Callable[[str, Any, Any], None]


def user_key(user_id: object) -> str:
    """The session key of a user id: a ``str`` as is, an ``int`` as its decimal text.

    Raises:
        InvalidKeyError: any other type (``bool`` included), or a ``str`` holding U+001F, the
            separator of the default key layout: in the data-room plan's layout
            (``session`` + ``:``) user id ``"\x1fU2"`` is stored as ``session:\x1fU2``, the
            session ``U2`` of a default ``session:`` store in the same database.
    """
    if type(user_id) is str:
        if SEPARATOR in user_id:
            raise InvalidKeyError(
                "user ids may not hold U+001F (the key layout's separator: such an id would "
                "be another store's session)",
                key=user_id,
            )
        return user_id
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        try:
            return str(int(user_id))
        except ValueError:  # more digits than int -> str converts (4300): far past a key's
            raise InvalidKeyError("user ids are at most 1024 digits") from None
    raise InvalidKeyError(f"user ids are str or int, got {type(user_id).__name__}")


class SessionMapping(MutableMapping[Any, JSONObject]):
    """A ``MutableMapping`` of user id to session dict, backed by a :class:`SessionStore`.

    Args:
        store: where sessions live; its backend, TTL and codec settings are used (a plain-dict
            legacy payload loads as a dict here, whatever the store's ``legacy_schema``).
        observer: called after every write with ``(user_id, previous, stored)``; ``previous``
            is ``None`` when the write created the session, ``stored`` is ``None`` when it
            deleted it (the data-room manager counts its metrics this way).
    """

    def __init__(self, store: SessionStore[Any], *, observer: WriteObserver | None = None) -> None:
        codec = copy.copy(store.codec)
        codec.legacy_schema = "dict"
        self._store: SessionStore[Any] = SessionStore(
            store.backend,
            None,
            ttl=store.ttl,
            codec=codec,
            update_timeout=store.update_timeout,
        )
        self._observer = observer

    @property
    def store(self) -> SessionStore[Any]:
        """The store this mapping reads and writes (schema-agnostic, legacy JSON as dicts)."""
        return self._store

    # -- conversions ---------------------------------------------------------------------------
    def _as_dict(self, obj: Any) -> JSONObject:
        return obj if type(obj) is dict else self._store.codec.to_data(obj)

    def _like(self, data: JSONObject, current: Any) -> Any:
        """``data`` in the schema ``current`` was stored in (typed sessions stay typed)."""
        if current is None or type(current) is dict:
            return data
        return self._store.codec.converter.structure(data, type(current))

    def _observe(self, user_id: str, previous: Any, stored: Any) -> None:
        if self._observer is not None:
            self._observer(user_id, previous, stored)

    # -- MutableMapping ------------------------------------------------------------------------
    def __getitem__(self, user_id: object) -> SessionDict:
        key = user_key(user_id)
        obj = self._store.load(key)
        if obj is None:
            raise KeyError(user_id)
        return SessionDict(self, key, self._as_dict(obj))

    def __setitem__(self, user_id: object, session: JSONObject) -> None:
        key = user_key(user_id)
        if not isinstance(session, dict):
            raise SerializationError(
                f"a session must be a dict (JSON object), got {type(session).__name__}",
                key=key,
            )
        data = plain(session)
        if self._observer is None:
            self._store.save(key, data)
            return
        previous: Any = None

        def replace(current: Any) -> Any:
            nonlocal previous
            previous = current  # the last call is the attempt that was written
            return data

        stored = self._store.update(key, replace)
        self._observe(key, previous, stored)

    def __delitem__(self, user_id: object) -> None:
        key = user_key(user_id)
        if not self._store.delete(key):
            raise KeyError(user_id)
        self._observe(key, None, None)

    def __contains__(self, user_id: object) -> bool:
        try:  # a key no session can have (a bad type, too long, ...): not in the mapping
            return self._store.exists(user_key(user_id))
        except InvalidKeyError:
            return False

    def __iter__(self) -> Iterator[str]:
        return self._store.keys()

    def __len__(self) -> int:
        """The number of stored sessions, as iteration lists them: a full scan, O(n)."""
        return sum(1 for _ in iter(self))

    def __repr__(self) -> str:
        return f"SessionMapping({self._store.backend.describe()})"

    # -- atomic changes ------------------------------------------------------------------------
    def modify(
        self, user_id: object, fn: Callable[[JSONObject], None], *, create: bool = True
    ) -> JSONObject:
        """Apply ``fn`` (which mutates the dict it gets, nested parts included) atomically.

        ``fn`` may run more than once on conflicts. A missing session starts as ``{}``; with
        ``create=False`` it is a :class:`ConflictError` instead (nothing is written).
        """
        key = user_key(user_id)
        previous: Any = None

        def apply(current: Any) -> Any:
            nonlocal previous
            previous = current
            if current is None and not create:
                raise ConflictError(
                    "the session was deleted; a change to it does not re-create it "
                    "(nothing was written)",
                    key=key,
                    backend=self._store.backend.describe(),
                )
            data = copy.deepcopy(self._as_dict(current)) if current is not None else {}
            fn(data)
            return self._like(data, current)

        stored = self._store.update(key, apply)
        self._observe(key, previous, stored)
        return self._as_dict(stored)

    @contextmanager
    def edit(self, user_id: object) -> Iterator[JSONObject]:
        """Edit a session in place, nested parts included; written back atomically on exit.

        The block's changes are recorded. If no one else wrote the session meanwhile, it is
        written as edited (one compare-and-set on the version read); otherwise each change is
        replayed on the newer session, as :meth:`modify` runs ``fn`` (compare-and-set, retried
        until the store's ``update_timeout``), after checking that what it changed is as this
        edit saw it (docs/dataroom.md lists the cases). An exception in the block writes
        nothing.

        Raises:
            KeyError: there is no such session.
            ConflictError: another writer changed what this edit changed (the same key, a
                container changed as a whole, a list item moved), or deleted the session;
                nothing of this edit was written.
        """
        key = user_key(user_id)
        read = self._store.backend.get_versioned(key)
        # through the chain's frame, a retired id or tombstone absent: as every read does
        current = None if read is None else self._store._decode_stored(key, read.value)
        if read is None or current is None:
            raise KeyError(user_id)
        session = EditedSession(self, key, self._as_dict(current))
        try:
            yield session
        finally:
            session.close()
        new = self._like(plain(session), current)
        payload = self._store.codec.encode(key, new)
        if self._store.backend.set_if(key, payload, read.token, self._store.ttl):
            self._observe(key, current, new)
            return
        try:  # changed meanwhile: replay this edit's changes on the newer session
            self.modify(key, session.replay_on, create=False)
        except ConflictError as exc:
            raise ConflictError(  # the edit's key and backend, whichever step refused
                exc.message,
                key=key,
                backend=self._store.backend.describe(),
            ) from None
