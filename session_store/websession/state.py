"""A request's session: the data loaded from the store on first use, and what the request
changed since (top-level keys set and removed, a clear, a regenerate)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, ItemsView, Iterator, KeysView, MutableMapping, ValuesView
from itertools import repeat
from typing import Any, NamedTuple

import orjson

from session_store.backend import VersionToken

__all__ = [
    "Data",
    "DictSession",
    "Read",
    "ServerSession",
    "SessionState",
    "diff",
    "same",
    "snapshot",
]

Data = dict[str, Any]


class Read(NamedTuple):
    """A session as read from the store: its data and the version token of that read, so the
    end of the request can write with one compare-and-set instead of reading again."""

    data: Data
    token: VersionToken


#: What an unread :class:`ServerSession` holds (never written to: every use reads first).
_UNLOADED: Data = {}


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
        self._data: Data = _UNLOADED  # this very object until the store was read
        self.loaded = False  # whether the store was read (or the data given)
        self._original: Data = {}
        self.stored: Read | None = None  # what the store held, as stored: the base of a merge
        self.accessed = False
        self._used = False  # a first use went through _load
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
        self.loaded = True
        self._original = snapshot(self._data)

    @property
    def is_new(self) -> bool:
        """Whether the store holds nothing for this session yet."""
        self._load()
        return self.sid is None

    def _load(self) -> Data:
        self.accessed = True
        if self._data is _UNLOADED:
            assert self._loader is not None and self.sid is not None
            self._adopt(self._loader(self.sid))
        self._used = True
        return self._data

    # -- the mapping ---------------------------------------------------------------------------
    # Each method reads ``_data`` itself once the session was used (``_used``: loaded, and
    # ``accessed`` set): a request makes a handful of these calls, and a ``_load`` call each
    # was a frame. (Not ``accessed`` itself: Flask sets that on its own.)
    def __getitem__(self, key: str) -> Any:
        return (self._data if self._used else self._load())[key]

    def __setitem__(self, key: str, value: Any) -> None:
        (self._data if self._used else self._load())[key] = value

    def __delitem__(self, key: str) -> None:
        del (self._data if self._used else self._load())[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._data if self._used else self._load())

    def __contains__(self, key: object) -> bool:
        return key in (self._data if self._used else self._load())

    # the dict's own methods, not MutableMapping's generic ones (a call or three fewer each)
    def get(self, key: str, default: Any = None) -> Any:
        return (self._data if self._used else self._load()).get(key, default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        return self._load().setdefault(key, default)

    def keys(self) -> KeysView[str]:
        return self._load().keys()

    def items(self) -> ItemsView[str, Any]:
        return self._load().items()

    def values(self) -> ValuesView[Any]:
        return self._load().values()

    def __repr__(self) -> str:
        state = repr(self._data) if self._data is not _UNLOADED else "<not loaded>"
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
        if self._data is _UNLOADED:
            return {}, _NONE_REMOVED
        return diff(self._original, self._data)


class DictSession(dict[str, Any]):
    """A session as a real ``dict`` (for frameworks whose apps expect one, such as Starlette's
    ``request.session``, which apps hand to ``json.dumps``), with the same change tracking as
    :class:`ServerSession`. This class is a loaded session;
    :class:`~session_store.websession.lazy.LazyDictSession` is one that reads the store on first
    use and then becomes this class.

    Args:
        sid: the id the data was loaded from, or ``None`` (none, or one the store did not hold).
        read: what :func:`aread_session` found (``None``: a new session).
    """

    sid: str | None
    stored: Read | None
    _original: Data
    loaded: bool

    def __init__(self, sid: str | None, read: Read | None) -> None:
        super().__init__()
        self.accessed = False  # set by mark_accessed (Starlette's request.session calls it)
        self.cleared = False
        self.regenerate_requested = False
        self._adopt(sid, read)

    def _adopt(self, sid: str | None, read: Read | None) -> None:
        """Take ``read`` (what the store held for ``sid``) as this session's data."""
        if read is not None:
            dict.update(self, read.data)
        self.sid = sid if read is not None else None  # an unknown id is never adopted
        self.stored = read
        self._original = snapshot(read.data) if read is not None else {}
        self.loaded = True

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


_ATOMIC = frozenset({str, int, float, bool, type(None), bytes})

#: Types whose ``==`` between two values of the same type is "the same as stored" (``float``
#: is not: ``0.0 == -0.0``, ``nan != nan``).
_EQUAL_AS_STORED = frozenset({str, int, bool, type(None), bytes})
_NONE_REMOVED: frozenset[str] = frozenset()


def snapshot(data: Data) -> Data:
    """A deep copy of ``data`` to compare the request's changes against: JSON's own types
    copied directly (a session is made of them), anything else with ``copy.deepcopy``. The
    top level is one C copy, then only its containers are copied further (no call per value:
    this runs up to four times a request)."""
    copied = dict(data)
    for key, value in copied.items():
        if type(value) not in _ATOMIC:
            copied[key] = _copied(value)  # same key: the dict does not change size
    return copied


def _copied(value: Any) -> Any:
    kind = type(value)
    if kind in _ATOMIC:
        return value
    if kind is list:
        return [_copied(item) for item in value]
    if kind is dict:
        return {key: _copied(item) for key, item in value.items()}
    return copy.deepcopy(value)


def diff(original: Data, current: Data) -> tuple[Data, frozenset[str]]:
    """The keys of ``current`` new or different from ``original``, and the keys it lost.

    "Different" as stored (:func:`same`), not as ``==`` sees it: ``False`` -> ``0`` and ``1`` ->
    ``1.0`` are changes (JSON keeps ``false``/``0`` and ``1``/``1.0`` apart), and a ``nan`` left
    as it was is no change (``nan != nan``, but a read-only request must not write)."""
    changed = {}
    for key, value in current.items():  # a loop, not a comprehension: no frame per request
        if key in original:
            before = original[key]
            if before is value:  # an atomic value left alone (the snapshot shares it)
                continue
            kind = type(value)
            if kind is type(before) and kind in _EQUAL_AS_STORED:
                if before == value:
                    continue  # else changed: equal types whose ``==`` is the stored form's
            elif same(before, value):
                continue
        changed[key] = value
    removed = original.keys() - current.keys()
    return changed, frozenset(removed) if removed else _NONE_REMOVED


def same(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are the same value of the same types all the way down (what
    their stored forms would show): ``1`` and ``1.0``, ``0`` and ``False``, ``0.0`` and
    ``-0.0``, a tuple and a list differ; ``nan`` is the same as ``nan``; dict keys compare as
    ``==`` finds them (their order is no change). Values of other types (a ``datetime``, a
    ``UUID``) compare with ``==`` once their types match.

    Equal containers (the common case: a key the request left alone) are confirmed by their
    JSON encodings, which tell the numeric types apart, in C (about 3x the cost of ``==`` on a
    2 KB session, against 12x for the walk); encoded again with sorted keys if they differ (two
    equal dicts built in another key order). What orjson does not encode exactly as is (a
    ``datetime``, a ``str`` subclass, a non-``str`` key, ``bytes``) and unequal containers
    (which may hold a ``nan``) take the walk. That check runs at the top and one level down
    only: each run is linear in what it compares, so at every level of a deep value it would
    cost depth x width; bounded to two levels, ``same`` stays linear in the size of ``a``."""
    return _same(a, b, _CHECKED_LEVELS)


#: How many levels from the top :func:`same` tries the C check of equal containers on (see
#: there): the top, and the items of a changed value (the one list item a request edited).
_CHECKED_LEVELS = 2


def _same(a: Any, b: Any, checks: int) -> bool:
    """:func:`same`, with the C check of equal containers on ``checks`` more levels."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if checks and kind in _CONTAINERS and a == b:
        try:
            if orjson.dumps(a, option=_EXACT_JSON) == orjson.dumps(b, option=_EXACT_JSON):
                return True
            return bool(
                orjson.dumps(a, option=_SORTED_JSON) == orjson.dumps(b, option=_SORTED_JSON)
            )
        except TypeError:  # orjson.JSONEncodeError: a type it does not encode exactly
            pass
    return _walk(kind, a, b, checks - 1 if checks else 0)


_CONTAINERS = frozenset({list, tuple, dict})
_EXACT_JSON = (
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
_SORTED_JSON = _EXACT_JSON | orjson.OPT_SORT_KEYS  # dict keys compare as ``==``: order no change


def _walk(kind: type, a: Any, b: Any, checks: int) -> bool:
    """:func:`same` for two values of type ``kind``, one level at a time."""
    if kind is float:
        if a != a:  # nan
            return bool(b != b)
        return bool(a == b and math.copysign(1.0, a) == math.copysign(1.0, b))
    if kind is list or kind is tuple:
        return len(a) == len(b) and all(map(_same, a, b, repeat(checks, len(a))))
    if kind is dict:
        if len(a) != len(b):
            return False
        return all(key in b and _same(value, b[key], checks) for key, value in a.items())
    return bool(a == b)


SessionState = ServerSession | DictSession
