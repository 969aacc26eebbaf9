"""``SessionMapping``: a drop-in for the legacy ``user_sessions`` dict, persisted in a store.

The first host app kept ``user_sessions[user_id] = {...}`` in a plain dict. With this mapping
the same code persists::

    sessions = SessionMapping(SessionStore("memory:// | diskcache:///var/lib/app/sessions"))
    sessions[uid] = {"processed_documents": [...], "drive_link": url}
    sessions[uid]["market_research"] = {...}      # persists: top-level item assignment
    data = sessions[uid]                           # a real dict: isinstance(data, dict), json.dumps
    del sessions[uid]; uid in sessions; len(sessions); list(sessions)

* Reading returns a ``dict`` (a subclass that remembers its key) with exactly the keys and
  values stored; nothing is added. Legacy bare-JSON sessions stay in their plain shape.
* Top-level changes on that dict (``d[k] = v``, ``del d[k]``, ``d.update(...)``, ``pop``,
  ``setdefault``, ``clear``) are applied to the stored session atomically (compare-and-set on
  the fresh stored copy, so two processes changing different keys both win).
* **Nested in-place mutation does not persist** (``d["docs"].append(x)`` changes only your
  copy): use ``with sessions.edit(uid) as d: d["docs"].append(x)``, which writes the whole
  session back on exit if nobody else changed it meanwhile (else :class:`ConflictError` and
  nothing is written), or ``sessions.modify(uid, fn)``, which retries ``fn`` on conflicts.
* A session stored through :class:`~session_store.dataroom.SessionManager` reads here as its
  JSON data; changes keep it in its typed schema. A session written here reads through the
  manager as its legacy shape.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from session_store.errors import ConflictError, SerializationError
from session_store.store import SessionStore

__all__ = ["SessionDict", "SessionMapping"]

JSONObject = dict[str, Any]


class SessionMapping(MutableMapping[str, JSONObject]):
    """A ``MutableMapping`` of user id to session dict, backed by a :class:`SessionStore`.

    Args:
        store: where sessions live; its backend, TTL and codec settings are used (a plain-dict
            legacy payload loads as a dict here, whatever the store's ``legacy_schema``).
    """

    def __init__(self, store: SessionStore[Any]) -> None:
        codec = copy.copy(store.codec)
        codec.legacy_schema = "dict"
        self._store: SessionStore[Any] = SessionStore(
            store.backend,
            None,
            ttl=store.ttl,
            codec=codec,
            access_interval=None,
            update_timeout=store.update_timeout,
        )

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

    # -- MutableMapping ------------------------------------------------------------------------
    def __getitem__(self, user_id: str) -> SessionDict:
        obj = self._store.load(user_id)
        if obj is None:
            raise KeyError(user_id)
        return SessionDict(self, user_id, self._as_dict(obj))

    def __setitem__(self, user_id: str, session: JSONObject) -> None:
        if not isinstance(session, dict):
            raise SerializationError(
                f"a session must be a dict (JSON object), got {type(session).__name__}",
                key=user_id,
            )
        self._store.save(user_id, dict(session))

    def __delitem__(self, user_id: str) -> None:
        if not self._store.delete(user_id):
            raise KeyError(user_id)

    def __contains__(self, user_id: object) -> bool:
        return isinstance(user_id, str) and self._store.exists(user_id)

    def __iter__(self) -> Iterator[str]:
        return self._store.keys()

    def __len__(self) -> int:
        """The number of stored sessions: a full scan of the keys, O(n)."""
        return sum(1 for _ in self._store.backend.scan())

    def __repr__(self) -> str:
        return f"SessionMapping({self._store.backend.describe()})"

    # -- atomic changes ------------------------------------------------------------------------
    def modify(self, user_id: str, fn: Callable[[JSONObject], None]) -> JSONObject:
        """Apply ``fn`` (which mutates the dict it gets, nested parts included) atomically.

        ``fn`` may run more than once on conflicts. A missing session starts as ``{}``.
        """

        def apply(current: Any) -> Any:
            data = copy.deepcopy(self._as_dict(current)) if current is not None else {}
            fn(data)
            return self._like(data, current)

        return self._as_dict(self._store.update(user_id, apply))

    @contextmanager
    def edit(self, user_id: str) -> Iterator[JSONObject]:
        """Edit a session in place, nested parts included; written back on exit.

        Raises:
            KeyError: there is no such session.
            ConflictError: another writer changed the session meanwhile; nothing was written.
        """
        read = self._store.backend.get_versioned(user_id)
        if read is None:
            raise KeyError(user_id)
        current = self._store.codec.decode(user_id, read.value).obj
        data = copy.deepcopy(self._as_dict(current))
        yield data
        payload = self._store.codec.encode(user_id, self._like(data, current))
        if not self._store.backend.set_if(user_id, payload, read.token, self._store.ttl):
            raise ConflictError(
                "the session changed while it was being edited; nothing was written",
                key=user_id,
                backend=self._store.backend.describe(),
            )


class SessionDict(dict[str, Any]):
    """A session as a real ``dict``; top-level changes persist through its mapping."""

    __slots__ = ("_mapping", "_user_id")

    def __init__(self, mapping: SessionMapping, user_id: str, data: JSONObject) -> None:
        super().__init__(data)
        self._mapping = mapping
        self._user_id = user_id

    def _persist(self, op: Callable[[JSONObject], Any]) -> Any:
        result = op(self)  # locally first: a bad key or value fails before anything is written
        stored = self._mapping.modify(self._user_id, op)
        super().clear()
        super().update(stored)
        return result

    def __setitem__(self, key: str, value: Any) -> None:
        self._persist(lambda d: dict.__setitem__(d, key, value))

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._persist(lambda d: dict.pop(d, key, None))

    def update(self, *args: Any, **kwargs: Any) -> None:
        changes = dict(*args, **kwargs)
        self._persist(lambda d: dict.update(d, changes))

    def pop(self, key: str, *default: Any) -> Any:
        if key not in self:
            if default:
                return default[0]
            raise KeyError(key)
        value = dict.__getitem__(self, key)
        self._persist(lambda d: dict.pop(d, key, None))
        return value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key in self:
            return dict.__getitem__(self, key)
        self._persist(lambda d: dict.setdefault(d, key, default))
        return dict.__getitem__(self, key)

    def popitem(self) -> tuple[str, Any]:
        if not self:
            raise KeyError("popitem(): session is empty")
        key = next(reversed(self))
        return key, self.pop(key)

    def clear(self) -> None:
        self._persist(dict.clear)

    def __ior__(self, other: Any) -> SessionDict:  # type: ignore[override,misc]
        self.update(other)
        return self

    def __copy__(self) -> JSONObject:
        return dict(self)  # a copy is a plain, detached dict

    def __deepcopy__(self, memo: dict[int, Any]) -> JSONObject:
        return copy.deepcopy(dict(self), memo)
