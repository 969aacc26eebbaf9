"""The session :meth:`SessionMapping.edit <session_store.mapping.SessionMapping.edit>` hands out:
its changes are recorded, not written, and replayed on a newer session when another writer
changed it during the block, each change first checking that what it saw is still there.

What a change checks (its *footprint*; docs/dataroom.md says which cases replay and which raise):

* a key set, deleted or popped (``d[k] = v``, ``del``, ``pop``, ``update``, ``setdefault``):
  the key holds what this copy held there just before (missing counts, as a value), compared
  exactly (``1``, ``1.0`` and ``True`` differ);
* ``append``, ``extend``, an insert at the front: the list is still a list (they commute);
* ``remove(x)``: ``x`` is still in the list;
* a change naming a list position (an index, ``pop()``, an insert between two items, a slice):
  the item(s) there are what this copy saw (the checks of :mod:`.tracked`);
* anything else that reads the whole container (``clear``, ``sort``, ``reverse``, ``*=``):
  the container equals what this copy saw;
* on the way to the container: every dict still there, every list item still equal at its
  index (:func:`~session_store.mapping.tracked._follow`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from session_store.errors import ConflictError
from session_store.mapping.tracked import (
    _MISSING,
    JSONObject,
    SessionDict,
    _conflict,
    _dict_del,
    _dict_set,
    _dict_update,
    _list_del_at,
    _list_insert_between,
    _list_pop_at,
    _list_set_at,
    _Node,
    plain,
)

__all__ = ["EditedSession", "footprint"]

Check = Callable[[Any], None]

#: list changes that commute with another writer's (only the list's kind is checked)
_COMMUTING = frozenset({"append", "extend", "insert"})
#: list changes that check the items at the positions they name themselves
_SELF_CHECKED: frozenset[Callable[..., Any]] = frozenset(
    {_list_insert_between, _list_pop_at, _list_set_at, _list_del_at}
)


def same(a: Any, b: Any) -> bool:
    """Whether two plain JSON values are the same value: equal, of the same types throughout
    (``1 == 1.0 == True`` are three values here), a NaN the same as a NaN."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if type(a) is list:
        return len(a) == len(b) and all(map(same, a, b))
    return bool(a == b) or (a != a and b != b)


def _kind(target: Any, kind: type) -> None:
    if type(target) is not kind:
        raise _conflict("a container this edit changed was replaced by another writer")


def footprint(node: _Node, op: Callable[..., Any], args: tuple[Any, ...]) -> Check:
    """The check the replay of ``op(node, *args)`` makes first, on the container it targets in
    the newer session, with what ``node`` holds now (before the change) as what was seen."""
    if isinstance(node, dict):
        if op is _dict_set or op is _dict_del:
            keys: tuple[Any, ...] = (args[0],)
        elif op is _dict_update:
            keys = tuple(args[0])
        else:
            keys = ()
        if keys:
            seen = {key: plain(dict.get(node, key, _MISSING)) for key in keys}

            def keys_unchanged(target: Any) -> None:
                _kind(target, dict)
                for key, value in seen.items():
                    if not same(target.get(key, _MISSING), value):
                        raise _conflict("a key this edit set or deleted was changed meanwhile")

            return keys_unchanged
    else:
        name = getattr(op, "__name__", "")
        if op in _SELF_CHECKED or name in _COMMUTING:
            return lambda target: _kind(target, list)
        if name == "remove":
            item = args[0]

            def still_there(target: Any) -> None:
                _kind(target, list)
                if item not in target:
                    raise _conflict("the list item this edit removed was removed meanwhile")

            return still_there
    whole = plain(node)

    def unchanged(target: Any) -> None:
        if not same(target, whole):
            raise _conflict("a container this edit changed as a whole was changed meanwhile")

    return unchanged


class EditedSession(SessionDict):
    """The session of one :meth:`~session_store.mapping.SessionMapping.edit` block: a real
    ``dict`` whose changes, nested ones included, are recorded with their footprints, then
    written on exit (replayed if needed); after the block it is a detached copy."""

    def __init__(self, mapping: Any, user_id: str, data: JSONObject) -> None:
        super().__init__(mapping, user_id, data)
        self._replays: list[Callable[[JSONObject], None]] = []
        self._open = True

    def _guard(self, node: _Node, op: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        return footprint(node, op, args) if self._open else None

    def _persisted(self, replay: Callable[[JSONObject], None]) -> None:
        if self._open:  # after the block: a local change, never written
            self._replays.append(replay)

    def replay_on(self, data: JSONObject) -> None:
        """Apply every recorded change to ``data`` (a newer session), in order; a
        :class:`ConflictError` when one no longer applies as it did here."""
        for replay in self._replays:
            try:
                replay(data)
            except ConflictError:
                raise
            except (KeyError, IndexError, TypeError, ValueError):  # no footprint lets one through
                raise _conflict("a change of this edit no longer applies") from None

    def close(self) -> None:
        """End the block: later changes are local only, as on a plain dict."""
        self._open = False
