"""Django sessions on session-store: ``SESSION_ENGINE = "session_store.django"``.

    # settings.py
    SESSION_ENGINE = "session_store.django"
    SESSION_STORE_URL = "redis://127.0.0.1:6379/0?prefix=myapp:"
    SESSION_COOKIE_AGE = 1209600          # the server-side TTL of every session, as for Django

A full :class:`~django.contrib.sessions.backends.base.SessionBase` engine: ``exists``,
``create``, ``save``, ``delete``, ``load``, ``clear_expired`` (a no-op: every backend expires
sessions itself), and through Django's base class ``cycle_key`` (on login, by
``django.contrib.auth.login``) and ``flush`` (on logout: deleted server-side). The async methods
(``aload``, ``asave``, ...) are Django's defaults, which run these in a thread; ``acycle_key``
runs this engine's ``cycle_key`` in a thread.

What session-store adds to Django's own engines:

* Ids are 256 random bits (Django's are 32 base-36 characters, about 165 bits).
* ``save`` writes only the top-level keys the request changed, merged into the stored session
  with compare-and-set: two concurrent requests changing different keys both keep their change
  (Django's cache and database engines write the whole session; the later request wins).
* With ``SESSION_SAVE_EVERY_REQUEST = True``, a request that changed nothing restarts the TTL
  with ``touch`` instead of rewriting the payload (sliding expiry).
* A session deleted meanwhile (logged out elsewhere) is not resurrected: ``save`` raises
  Django's ``UpdateError``, which its middleware turns into ``SessionInterrupted``.

Settings: ``SESSION_STORE_URL`` (default: the ``SESSION_STORE_URL`` environment variable, else
``memory://``, one process only), ``SESSION_COOKIE_AGE`` / ``set_expiry`` for the TTL, and
Django's cookie settings for the cookie (``SESSION_COOKIE_SAMESITE`` is ``"Lax"`` by default
in Django). Values are stored as ``SESSION_SERIALIZER`` gives them back, as Django's
database and file engines store them (JSON by default: ``{42: 2}`` loads as ``{"42": 2}``, a
tuple as a list); what it cannot encode (a ``datetime``) or JSON cannot hold (NaN) is a
``SerializationError``.
"""

from __future__ import annotations

import copy
import threading
from typing import Any, NamedTuple

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError

from session_store.backend import Versioned, VersionToken
from session_store.errors import CorruptPayloadError, InvalidKeyError, UnknownSchemaVersionError
from session_store.store import SessionStore as _Store
from session_store.websession import (
    Read,
    diff,
    hiding,
    is_session_id,
    merge_changes,
    new_session_id,
    read_session,
    store_url,
    web_codec,
)
from session_store.websession.steps import MOVE_ATTEMPTS, RETIRED, RETIRED_TTL

__all__ = ["SessionStore", "get_store"]

Data = dict[str, Any]

_stores: dict[str, _Store[Data]] = {}
_stores_lock = threading.Lock()


def get_store() -> _Store[Data]:
    """The process's store for ``settings.SESSION_STORE_URL`` (opened once per URL), with
    ``SESSION_COOKIE_AGE`` as its TTL: a commit writing with that age then stores the session
    as it is, without the frame that records a TTL other than the store's
    (:mod:`session_store.ownttl`)."""
    url = store_url(getattr(settings, "SESSION_STORE_URL", None))
    with _stores_lock:
        store = _stores.get(url)
        if store is None:
            age = max(1.0, float(settings.SESSION_COOKIE_AGE))
            store = _stores[url] = _Store(url, dict, codec=web_codec(), ttl=age)
        return store


class _Move(NamedTuple):
    """A :meth:`SessionStore.cycle_key` under way: the old id, the token of the read copied
    to the new id, and the request's own changes (copied again if the old id changes)."""

    key: str
    token: VersionToken
    changed: Data
    removed: frozenset[str]


class SessionStore(SessionBase):  # type: ignore[misc]  # Django ships no type hints
    """The engine Django instantiates per request (``request.session``)."""

    _session_key: str | None

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._store = get_store()
        self._loaded_data: Data | None = None  # what load() read: the base of the merge
        self._read: Read | None = None  # that read as stored, with its version token
        self._read_key: str | None = None
        self._moving: _Move | None = None  # a cycle_key's old id, retired by delete()

    # -- ids -----------------------------------------------------------------------------------
    def _get_new_session_key(self) -> str:
        return new_session_id()

    # -- SessionBase's contract ----------------------------------------------------------------
    def load(self) -> Data:
        key = self.session_key
        read = None
        if is_session_id(key):  # not an id we issue (another key in a shared store): no lookup
            try:
                read = read_session(self._store, key)  # the data and its version token
            except InvalidKeyError:  # a hostile cookie (too long, lone surrogates): not ours
                read = None
        self._read, self._read_key = read, key
        if read is None:
            self._session_key = None  # never adopt an unknown id (no fixation)
            self._loaded_data = None
            return {}
        self._loaded_data = copy.deepcopy(read.data)
        return dict(read.data)

    def exists(self, session_key: str | None) -> bool:
        if not is_session_id(session_key):  # only ids this engine issues are its sessions
            return False
        try:
            with hiding(session_key):
                return self._store.exists(session_key)
        except InvalidKeyError:
            return False

    def create(self) -> None:
        while True:
            self._session_key = self._get_new_session_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue  # an id collision: 2**-256, but the contract says so
            self.modified = True
            return

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        key = self.session_key
        with hiding(key):  # an error shows a digest of the id, never the id (a credential)
            return self._save(key, must_create)

    def _save(self, key: str, must_create: bool) -> None:
        data = self._get_session(no_load=must_create)
        age = self.get_expiry_age()
        if age <= 0:  # an expiry in the past: the session is over
            self._store.delete(key)
            return None
        ttl = float(age)
        if must_create:
            created = self._as_stored(dict(data))
            clash = False

            def create_only(current: Data | None) -> Data | None:
                nonlocal clash
                clash = current is not None
                return None if clash else created

            self._store.update(key, create_only, ttl)
            if clash:
                raise CreateError
            self._read = None
            self._loaded_data = copy.deepcopy(created)
            return None
        base = self._loaded_data if self._loaded_data is not None else {}
        changed, removed = diff(base, data)
        if changed:
            changed = self._as_stored(changed)
        if not changed and not removed:  # sliding expiry, no payload rewrite
            # a chain's touch is False also when a concurrent request replaced the version it
            # read (that write set its own expiry): only a session gone since is an UpdateError
            if not self._store.touch(key, ttl) and not self._store.exists(key):
                raise UpdateError
            return None
        if self._read is not None and self._read_key == key:  # one compare-and-set, no re-read
            first = merge_changes(self._read.data, changed, removed, existing=True)
            assert first is not None
            # its own TTL kept, the payload encoded for the frame that records it
            payload = self._store._prepare_recorded(key, first, self._store._ttl(ttl))[1]
            if self._store.backend.set_if(key, payload, self._read.token, ttl):
                self._read = None
                self._loaded_data = copy.deepcopy(data)
                return None
        merged = self._store.update(
            key,
            lambda current: merge_changes(current, changed, removed, existing=True),
            ttl,
        )
        if merged is None:  # deleted meanwhile (logged out elsewhere): do not resurrect it
            raise UpdateError
        self._read = None
        self._loaded_data = copy.deepcopy(data)
        return None

    def _as_stored(self, values: Data) -> Data:
        """``values`` as Django's own engines load them back: through ``SESSION_SERIALIZER``
        (JSON by default: an int dict key comes back as text, a tuple as a list), so a view
        written for them (``session["cart"] = {product.id: 2}``) works here too. What the
        serializer refuses is left as it is, for the codec to refuse with its typed error."""
        serializer = self.serializer()
        try:
            stored: Data = serializer.loads(serializer.dumps(values))
        except (TypeError, ValueError):
            return values
        return stored

    def cycle_key(self) -> None:
        """Django's ``cycle_key`` (``django.contrib.auth.login`` calls it): the session moves to
        a new id and the old one is retired. What moves is what the old id holds *now*, merged
        with this request's own changes, so a change another request committed since this one
        loaded the session is not lost (Django's own engines move the request's copy). If the
        old id is gone meanwhile (a logout elsewhere deleted it), only this request's own
        changes move: what it read before the logout is not written back, as for the other
        integrations' MOVE. If it no longer decodes, the request's own copy moves.

        The old id is retired when Django's ``cycle_key`` deletes it (:meth:`delete`): by
        compare-and-set against the read that was copied, so a ``save`` another request
        commits to it meanwhile is copied again, or, once retired, refused (``UpdateError``)."""
        key = self.session_key
        data = self._session  # loaded if it was not
        self._moving = None
        if key is not None and self._loaded_data is not None:
            changed, removed = diff(self._loaded_data, data)
            with hiding(key):
                found = self._store.backend.get_versioned(key)
            self._copy_onto(data, key, found, changed, removed)
            if found is not None:
                self._moving = _Move(key, found.token, changed, removed)
        try:
            super().cycle_key()
        finally:
            self._moving = None

    async def acycle_key(self) -> None:
        """:meth:`cycle_key` in a thread (``django.contrib.auth.alogin`` calls this; Django's
        default would skip the merge and the retire of :meth:`cycle_key`)."""
        await sync_to_async(self.cycle_key)()

    def _copy_onto(
        self, data: Data, key: str, found: Versioned | None, changed: Data, removed: frozenset[str]
    ) -> None:
        """Make ``data`` what the old id ``key`` holds (``found``, as read) with this request's
        changes; only the changes if it is gone; the request's own copy if it is unreadable."""
        base = self._loaded_data
        if found is None:
            base = None
        else:
            try:
                with hiding(key):
                    base = self._store._decode_stored(key, found.value)
            except (CorruptPayloadError, UnknownSchemaVersionError):
                pass  # unreadable now: the request's own copy moves
        merged = merge_changes(base, changed, removed, existing=False)
        assert merged is not None
        data.clear()
        data.update(merged)

    def _retire(self, move: _Move) -> None:
        """Retire the old id of a :meth:`cycle_key` (already copied to the new id): replace it,
        by compare-and-set against the read copied last, with a value every reader takes for a
        deleted session, then delete it. If another request committed to it since that read,
        copy it to the new id again first (the backends have no conditional delete)."""
        key, token = move.key, move.token
        store = self._store
        for _ in range(MOVE_ATTEMPTS):
            if store.backend.set_if(key, RETIRED, token, store._ttl(RETIRED_TTL)):
                break
            found = store.backend.get_versioned(key)
            data = self._session
            self._copy_onto(data, key, found, move.changed, move.removed)
            new = self.session_key
            assert new is not None
            with hiding(new):
                store.save(new, self._as_stored(dict(data)), float(self.get_expiry_age()))
            self._read = None
            self._loaded_data = copy.deepcopy(data)
            if found is None:
                return  # gone (a logout): no request can write it back
            token = found.token
        store._discard(key)  # the marker written above (store.delete would leave it)

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        if not is_session_id(session_key):  # never another key of a shared store
            return
        move = self._moving
        try:
            with hiding(session_key):
                if move is not None and move.key == session_key:
                    self._moving = None
                    return self._retire(move)
                self._store.delete(session_key)
        except InvalidKeyError:
            return

    @classmethod
    def clear_expired(cls) -> None:
        """Nothing to do: every session-store backend expires sessions itself (TTL)."""
