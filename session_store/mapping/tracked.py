"""The containers of a session read through :class:`~session_store.mapping.SessionMapping`:
``dict`` and ``list`` subclasses that replay every change, nested ones included, on the stored
session (see :mod:`session_store.mapping` for the rules)."""

from __future__ import annotations

import copy
import operator
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


#: Keys from the session down to a container; a step through a list carries the item this copy
#: saw there (:data:`_ANY` for a dict key), since another writer may have moved the items.
Path = tuple[tuple[Any, Any], ...]
_ANY = object()


def _wrap(value: Any, parent: _Node, key: Any) -> Any:
    """``value`` as a tracked container under ``parent`` (leaves as they are)."""
    if type(value) is dict:
        return TrackedDict(value, parent, key)
    if type(value) is list:
        return TrackedList(value, parent, key)
    return value


def _conflict(what: str) -> ConflictError:
    return ConflictError(f"{what} (another writer changed it); nothing was written")


def _follow(data: Any, path: Path) -> Any:
    """The container at ``path`` inside freshly stored ``data``; ConflictError if gone, or if a
    list on the way no longer holds, at that index, the item this copy saw there."""
    for step, seen in path:
        try:
            data = data[step]
        except (KeyError, IndexError, TypeError):
            raise _conflict(
                "the part of the session this change was made in no longer exists in the "
                "stored session"
            ) from None
        if seen is not _ANY and data != seen:
            raise _conflict("the list item this change was made in moved or changed")
    return data


def _expect(lst: list[Any], index: int, seen: Any) -> None:
    """Refuse a change at ``index`` of the stored ``lst`` unless it holds ``seen`` there."""
    if not 0 <= index < len(lst) or lst[index] != seen:
        raise _conflict("the list item at the index this change names moved or changed")


class _Node:
    """What tracked containers share: where they are, and how a change reaches storage."""

    _parent: _Node | None
    _key: Any
    _dropped = False  # set when a newer copy of the session replaced this container

    def _root(self) -> SessionDict | None:
        node: _Node | None = self
        while node is not None and not isinstance(node, SessionDict):
            node = node._parent
        return node

    def _path(self) -> Path | None:
        """Steps from the session down to this container, or ``None`` if it was detached."""
        steps: list[tuple[Any, Any]] = []
        node: _Node = self
        while not isinstance(node, SessionDict):
            parent = node._parent
            if parent is None:
                return None
            if isinstance(parent, list):
                index = next((i for i, v in enumerate(parent) if v is node), None)
                if index is None:
                    return None
                steps.append((index, plain(node)))
            else:
                assert isinstance(parent, dict)
                if dict.get(parent, node._key, _MISSING) is not node:
                    return None
                steps.append((node._key, _ANY))
            node = parent
        return tuple(reversed(steps))

    def _stale(self) -> bool:
        """Whether this container (or one above it) was dropped for another writer's copy."""
        node: _Node | None = self
        while node is not None:
            if getattr(node, "_dropped", False):
                return True
            node = node._parent
        return False

    def _change(self, op: Callable[..., Any], *args: Any) -> Any:
        """Apply ``op(container, *args)`` here, then on the stored session, atomically."""
        path = self._path()  # before the change: a list op may move this container
        args = tuple(plain(a) for a in args)
        root = self._root()
        guard = None if path is None or root is None else root._guard(self, op, args)
        result = op(self, *args)  # locally first: a bad key or value fails before any write
        if path is None or root is None:
            if self._stale():  # replaced by another writer's version: refuse, never drop
                raise _conflict("this container was replaced by a newer copy of the session")
            return result  # detached, as in a plain dict: not part of the session any more

        def replay(data: JSONObject) -> None:
            target = _follow(data, path)
            if guard is not None:  # an edit's: what this change saw is still there
                guard(target)
            op(target, *args)

        root._persisted(replay)
        return result


class TrackedDict(dict[Any, Any], _Node):
    """A dict inside a session: changes persist (see the module docstring)."""

    def __init__(self, data: dict[Any, Any], parent: _Node | None, key: Any) -> None:
        super().__init__({k: _wrap(v, self, k) for k, v in data.items()})
        self._parent = parent
        self._key = key

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, _Node) and dict.get(self, key) is value:
            return  # `d[k] += [x]` stores back the list it extended: no change
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
        self._change(dict.clear)

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
        size = len(self)
        at = operator.index(index)
        at = max(at + size, 0) if at < 0 else min(at, size)  # where list.insert puts it
        if at == 0:
            self._change(_list_op("insert"), 0, value)  # the front of the fresh list
        elif at == size:
            self._change(_list_op("append"), value)  # its end
        else:  # between two items: they must still be there
            self._change(_list_insert_between, at, plain(self[at - 1]), plain(self[at]), value)

    def remove(self, value: Any) -> None:
        if value not in self:
            raise ValueError("list.remove(x): x not in list")
        self._change(_list_op("remove"), value)

    def pop(self, index: SupportsIndex = -1) -> Any:
        value = list.__getitem__(self, index)  # IndexError before anything is written
        self._change(_list_pop_at, _position(index, len(self)), plain(value))
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
            self._change(_list_set_at, index, plain(self), value)
        else:
            seen = plain(list.__getitem__(self, index))  # IndexError before any write
            self._change(_list_set_at, _position(index, len(self)), seen, value)

    def __delitem__(self, index: Any) -> None:
        if isinstance(index, slice):
            self._change(_list_del_at, index, plain(self))
        else:
            seen = plain(list.__getitem__(self, index))  # IndexError before any write
            self._change(_list_del_at, _position(index, len(self)), seen)

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

    op.__name__ = name  # what an edit's guard knows it by
    return op


def _list_sort(lst: list[Any], key: Callable[[Any], Any] | None, reverse: bool) -> None:
    list.sort(lst, key=key, reverse=reverse)


def _position(index: SupportsIndex, size: int) -> int:
    """``index`` of a list of ``size`` items, counted from the front (the fresh list may be
    longer: ``-1`` must still mean the item this copy saw last)."""
    at = operator.index(index)
    return at + size if at < 0 else at


def _check(lst: list[Any], index: int | slice, seen: Any) -> None:
    """A change at ``index`` needs the item seen there; at a slice, the whole list seen."""
    if isinstance(index, slice):
        if lst != seen:
            raise _conflict("the list this change names a slice of changed")
    else:
        _expect(lst, index, seen)


def _list_insert_between(lst: list[Any], at: int, before: Any, after: Any, value: Any) -> None:
    _expect(lst, at - 1, before)
    _expect(lst, at, after)
    list.insert(lst, at, value)
    _rewrap(lst)


def _list_pop_at(lst: list[Any], at: int, seen: Any) -> Any:
    _expect(lst, at, seen)
    return list.pop(lst, at)


def _list_set_at(lst: list[Any], index: int | slice, seen: Any, value: Any) -> None:
    _check(lst, index, seen)
    list.__setitem__(lst, index, value)
    _rewrap(lst)


def _list_del_at(lst: list[Any], index: int | slice, seen: Any) -> None:
    _check(lst, index, seen)
    list.__delitem__(lst, index)


def _list_mul(lst: list[Any], times: SupportsIndex) -> None:
    lst[:] = list(lst) * int(times)
    _rewrap(lst)


class SessionDict(TrackedDict):
    """A session as a real ``dict``; every change, nested ones included, persists."""

    def __init__(self, mapping: SessionMapping, user_id: str, data: JSONObject) -> None:
        super().__init__(data, None, None)
        self._mapping = mapping
        self._user_id = user_id

    def _persisted(self, replay: Callable[[JSONObject], None]) -> None:
        """Replay a change on the stored session (never re-creating a deleted one), then
        take in what others changed meanwhile (:func:`_refresh`)."""
        _refresh(self, self._mapping.modify(self._user_id, replay, create=False))

    def _guard(self, node: _Node, op: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        return None  # what a replay checks first: an edit's (mapping/editing.py), not here


def _refresh(mine: TrackedDict, stored: dict[Any, Any]) -> None:
    """Make ``mine`` hold ``stored``, in place: a held container keeps persisting while it
    stands for the same part (a dict under its key, a list item left equal at its index); one
    that no longer does is dropped: a change through it is a :class:`ConflictError`."""
    for key in [k for k in mine if k not in stored]:
        _drop(dict.pop(mine, key))
    for key, value in stored.items():
        held = dict.get(mine, key, _MISSING)
        if isinstance(held, TrackedDict) and type(value) is dict:
            _refresh(held, value)
        elif isinstance(held, TrackedList) and type(value) is list:
            if held != value:
                items = [
                    old if i < len(held) and old == value[i] else _wrap(value[i], held, None)
                    for i, old in enumerate(list(held)[: len(value)])
                ] + [_wrap(v, held, None) for v in value[len(held) :]]
                kept = {id(item) for item in items}
                for old in list(held):
                    if id(old) not in kept:
                        _drop(old)
                list.__setitem__(held, slice(None), items)
        elif held is _MISSING or held != value or type(held) is not type(value):
            _drop(held)
            dict.__setitem__(mine, key, _wrap(value, mine, key))


def _drop(value: Any) -> None:
    if isinstance(value, _Node):
        value._dropped = True
