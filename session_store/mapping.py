"""``SessionMapping``: a drop-in for the legacy ``user_sessions`` dict, persisted in a store.

The first host app kept ``user_sessions[user_id] = {...}`` in a plain dict. With this mapping
the same code persists::

    sessions = SessionMapping(SessionStore("memory:// | diskcache:///var/lib/app/sessions"))
    sessions[uid] = {"processed_documents": [...], "drive_link": url}
    sessions[uid]["market_research"] = {...}             # persists
    sessions[uid]["processed_documents"].append(doc)     # persists too: nested changes
    data = sessions[uid]                                  # a real dict: isinstance, json.dumps
    del sessions[uid]; uid in sessions; len(sessions); list(sessions)

* Reading returns a ``dict`` (a subclass that remembers its key) with exactly the keys and
  values stored; nothing is added. Legacy bare-JSON sessions stay in their plain shape.
* **Every change persists, nested ones included.** The dicts and lists inside a session read
  here are tracked (``dict`` / ``list`` subclasses): a change to any of them (``d[k] = v``,
  ``del``, ``update``, ``pop``, ``setdefault``, ``clear``, ``append``, ``extend``, ``insert``,
  ``remove``, ``sort``, ``+=``, ...) is made on your copy, then replayed on the freshly stored
  session with the store's atomic ``update`` (compare-and-set, retried), so two processes
  changing different parts both win. A change that can no longer be applied (the dict it was
  made in was removed from the stored session by another writer) is a
  :class:`ConflictError`, never a silent loss. A container taken out of the session (popped,
  replaced) is detached, as in a plain dict: changing it changes nothing stored.
* **A deleted session stays deleted**: a request still holding ``d = sessions[uid]`` after
  ``del sessions[uid]`` gets :class:`ConflictError` from ``d[k] = v`` (nothing is written); only
  ``sessions[uid] = {...}`` (or :meth:`SessionMapping.modify`) creates a session.
* **Keys**: user ids are ``str``; an ``int`` (chat platforms use them) is accepted everywhere and
  means its decimal text: ``m[123]`` and ``m["123"]`` are the same session, ``123 in m`` agrees
  with ``m[123]``, and iteration yields ``"123"``. Other key types are an
  :class:`InvalidKeyError` (``in`` answers ``False``).
* Copies (``copy.copy``, ``copy.deepcopy``, ``dict(d)``) are plain, detached dicts.
* :meth:`SessionMapping.edit` and :meth:`SessionMapping.modify` change a whole session in one
  atomic step.
* A session stored through :class:`~session_store.dataroom.SessionManager` reads here as its
  JSON data; changes keep it in its typed schema. A session written here reads through the
  manager as its legacy shape.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, SupportsIndex

from session_store.errors import ConflictError, InvalidKeyError, SerializationError
from session_store.store import SessionStore

__all__ = ["SessionDict", "SessionMapping", "TrackedDict", "TrackedList", "WriteObserver"]

JSONObject = dict[str, Any]
#: ``observer(user_id, previous, stored)`` after every write; ``previous`` is ``None`` when the
#: write created the session, ``stored`` is ``None`` when it deleted it. Both are what the
#: store holds (a dict or a typed session).
WriteObserver = Callable[[str, Any, Any], None]

_MISSING = object()


def user_key(user_id: object) -> str:
    """The session key of a user id: a ``str`` as is, an ``int`` as its decimal text.

    Raises:
        InvalidKeyError: any other type (``bool`` included).
    """
    if type(user_id) is str:
        return user_id
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        return str(int(user_id))
    raise InvalidKeyError(f"user ids are str or int, got {type(user_id).__name__}")


def plain(value: Any) -> Any:
    """``value`` with every tracked container replaced by a plain ``dict`` / ``list`` (deep)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


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
        try:
            key = user_key(user_id)
        except InvalidKeyError:
            return False
        return self._store.exists(key)

    def __iter__(self) -> Iterator[str]:
        return self._store.keys()

    def __len__(self) -> int:
        """The number of stored sessions: a full scan of the keys, O(n)."""
        return sum(1 for _ in self._store.backend.scan())

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
        """Edit a session in place, nested parts included; written back on exit.

        Raises:
            KeyError: there is no such session.
            ConflictError: another writer changed the session meanwhile; nothing was written.
        """
        key = user_key(user_id)
        read = self._store.backend.get_versioned(key)
        if read is None:
            raise KeyError(user_id)
        current = self._store.codec.decode(key, read.value).obj
        data = copy.deepcopy(self._as_dict(current))
        yield data
        new = self._like(plain(data), current)
        payload = self._store.codec.encode(key, new)
        if not self._store.backend.set_if(key, payload, read.token, self._store.ttl):
            raise ConflictError(
                "the session changed while it was being edited; nothing was written",
                key=key,
                backend=self._store.backend.describe(),
            )
        self._observe(key, current, new)


# -- tracked containers ------------------------------------------------------------------------
Path = tuple[Any, ...]


def _wrap(value: Any, parent: _Node, key: Any) -> Any:
    """``value`` as a tracked container under ``parent`` (leaves as they are)."""
    if type(value) is dict:
        return TrackedDict(value, parent, key)
    if type(value) is list:
        return TrackedList(value, parent, key)
    return value


def _follow(data: Any, path: Path) -> Any:
    """The container at ``path`` inside freshly stored ``data``; ConflictError if gone."""
    for step in path:
        try:
            data = data[step]
        except (KeyError, IndexError, TypeError):
            raise ConflictError(
                "the part of the session this change was made in no longer exists in the "
                "stored session (another writer removed it); nothing was written"
            ) from None
    return data


class _Node:
    """What tracked containers share: where they are, and how a change reaches storage."""

    _parent: _Node | None
    _key: Any

    def _root(self) -> SessionDict | None:
        node: _Node | None = self
        while node is not None and not isinstance(node, SessionDict):
            node = node._parent
        return node

    def _path(self) -> Path | None:
        """Keys from the session down to this container, or ``None`` if it was detached."""
        steps: list[Any] = []
        node: _Node = self
        while not isinstance(node, SessionDict):
            parent = node._parent
            if parent is None:
                return None
            if isinstance(parent, list):
                index = next((i for i, v in enumerate(parent) if v is node), None)
                if index is None:
                    return None
                steps.append(index)
            else:
                assert isinstance(parent, dict)
                if dict.get(parent, node._key, _MISSING) is not node:
                    return None
                steps.append(node._key)
            node = parent
        return tuple(reversed(steps))

    def _change(self, op: Callable[..., Any], *args: Any) -> Any:
        """Apply ``op(container, *args)`` here, then on the stored session, atomically."""
        path = self._path()  # before the change: a list op may move this container
        args = tuple(plain(a) for a in args)
        result = op(self, *args)  # locally first: a bad key or value fails before any write
        root = self._root()
        if path is None or root is None:
            return result  # detached, as in a plain dict: not part of the session any more

        def replay(data: JSONObject) -> None:
            op(_follow(data, path), *args)

        root._persisted(replay)
        return result


class TrackedDict(dict[Any, Any], _Node):
    """A dict inside a session: changes persist (see the module docstring)."""

    def __init__(self, data: dict[Any, Any], parent: _Node | None, key: Any) -> None:
        super().__init__({k: _wrap(v, self, k) for k, v in data.items()})
        self._parent = parent
        self._key = key

    def __setitem__(self, key: Any, value: Any) -> None:
        self._change(_dict_set, key, value)

    def __delitem__(self, key: Any) -> None:
        if key not in self:
            raise KeyError(key)
        self._change(_dict_del, key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._change(_dict_update, dict(*args, **kwargs))

    def pop(self, key: Any, *default: Any) -> Any:
        if key not in self:
            if default:
                return default[0]
            raise KeyError(key)
        value = dict.__getitem__(self, key)
        self._change(_dict_del, key)
        return value

    def popitem(self) -> tuple[Any, Any]:
        if not self:
            raise KeyError("popitem(): dictionary is empty")
        key = next(reversed(self))
        return key, self.pop(key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self._change(_dict_set, key, default)
        return dict.__getitem__(self, key)

    def clear(self) -> None:
        self._change(_dict_clear)

    def __ior__(self, other: Any) -> TrackedDict:  # type: ignore[misc]
        self.update(other)
        return self

    def __copy__(self) -> dict[Any, Any]:
        return dict(plain(self))

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[Any, Any]:
        return copy.deepcopy(plain(self), memo)


def _dict_set(d: dict[Any, Any], key: Any, value: Any) -> None:
    if isinstance(d, TrackedDict):
        dict.__setitem__(d, key, _wrap(value, d, key))
    else:
        d[key] = value


def _dict_del(d: dict[Any, Any], key: Any) -> None:
    dict.pop(d, key, None)


def _dict_update(d: dict[Any, Any], changes: dict[Any, Any]) -> None:
    for key, value in changes.items():
        _dict_set(d, key, value)


def _dict_clear(d: dict[Any, Any]) -> None:
    dict.clear(d)


class TrackedList(list[Any], _Node):
    """A list inside a session: changes persist (see the module docstring)."""

    def __init__(self, data: Iterable[Any], parent: _Node | None, key: Any) -> None:
        super().__init__(_wrap(v, self, None) for v in data)
        self._parent = parent
        self._key = key

    def append(self, value: Any) -> None:
        self._change(_list_op("append"), value)

    def extend(self, values: Iterable[Any]) -> None:
        self._change(_list_op("extend"), list(values))

    def insert(self, index: SupportsIndex, value: Any) -> None:
        self._change(_list_op("insert"), index, value)

    def remove(self, value: Any) -> None:
        if value not in self:
            raise ValueError("list.remove(x): x not in list")
        self._change(_list_op("remove"), value)

    def pop(self, index: SupportsIndex = -1) -> Any:
        value = list.__getitem__(self, index)  # IndexError before anything is written
        self._change(_list_op("pop"), index)
        return value

    def clear(self) -> None:
        self._change(_list_op("clear"))

    def sort(self, *, key: Callable[[Any], Any] | None = None, reverse: bool = False) -> None:
        self._change(_list_sort, key, reverse)

    def reverse(self) -> None:
        self._change(_list_op("reverse"))

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, slice):
            value = list(value)  # an iterator is read once, here
        self._change(_list_set, index, value)

    def __delitem__(self, index: Any) -> None:
        list.__getitem__(self, index)  # IndexError before anything is written
        self._change(_list_del, index)

    def __iadd__(self, values: Iterable[Any]) -> TrackedList:  # type: ignore[misc]
        self.extend(values)
        return self

    def __imul__(self, times: SupportsIndex) -> TrackedList:
        self._change(_list_mul, times)
        return self

    def __copy__(self) -> list[Any]:
        return list(plain(self))

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return copy.deepcopy(plain(self), memo)


def _rewrap(lst: list[Any]) -> None:
    """After a change to a tracked list, wrap what is new in it (held children keep
    their identity)."""
    if isinstance(lst, TrackedList):
        for i, v in enumerate(lst):
            if type(v) in (dict, list):
                list.__setitem__(lst, i, _wrap(v, lst, None))


def _list_op(name: str) -> Callable[..., Any]:
    method = getattr(list, name)

    def op(lst: list[Any], *args: Any) -> Any:
        result = method(lst, *args)
        _rewrap(lst)
        return result

    return op


def _list_sort(lst: list[Any], key: Callable[[Any], Any] | None, reverse: bool) -> None:
    list.sort(lst, key=key, reverse=reverse)


def _list_set(lst: list[Any], index: Any, value: Any) -> None:
    list.__setitem__(lst, index, value)
    _rewrap(lst)


def _list_del(lst: list[Any], index: Any) -> None:
    list.__delitem__(lst, index)


def _list_mul(lst: list[Any], times: SupportsIndex) -> None:
    lst[:] = list(lst) * int(times)
    _rewrap(lst)


class SessionDict(TrackedDict):
    """A session as a real ``dict``; every change, nested ones included, persists through its
    mapping."""

    def __init__(self, mapping: SessionMapping, user_id: str, data: JSONObject) -> None:
        super().__init__(data, None, None)
        self._mapping = mapping
        self._user_id = user_id

    def _persisted(self, replay: Callable[[JSONObject], None]) -> None:
        """Replay a change on the stored session (never re-creating a deleted one), then
        take in what others changed meanwhile, keeping the containers held by the caller."""
        stored = self._mapping.modify(self._user_id, replay, create=False)
        for key in [k for k in self if k not in stored]:
            dict.pop(self, key)
        for key, value in stored.items():
            mine = dict.get(self, key, _MISSING)
            if mine is _MISSING or plain(mine) != value:
                dict.__setitem__(self, key, _wrap(value, self, key))
