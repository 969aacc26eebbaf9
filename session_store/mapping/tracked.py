"""The containers of a session read through :class:`~session_store.mapping.SessionMapping`:
``dict`` and ``list`` subclasses that replay every change, nested ones included, on the stored
session (see :mod:`session_store.mapping` for the rules)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, SupportsIndex

from session_store.errors import ConflictError

if TYPE_CHECKING:
    from session_store.mapping.sessions import SessionMapping

__all__ = ["JSONObject", "SessionDict", "TrackedDict", "TrackedList", "plain"]

JSONObject = dict[str, Any]

_MISSING = object()


def plain(value: Any) -> Any:
    """``value`` with every tracked container replaced by a plain ``dict`` / ``list`` (deep)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


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
