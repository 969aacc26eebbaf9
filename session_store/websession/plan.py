"""What the end of a request does to the store: the decision (:func:`plan_commit`) and the merge
of the request's changes into what is stored (:func:`merge_changes`). No I/O."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import NamedTuple

from session_store.websession.state import Data, SessionState

__all__ = ["Action", "Outcome", "Plan", "merge_changes", "plan_commit"]


class Action(enum.Enum):
    """What the end of a request does to the store."""

    NOTHING = "nothing"  # untouched, or new and still empty
    TOUCH = "touch"  # read, unchanged: restart the TTL (if sliding)
    WRITE = "write"  # merge the changes into the stored session (or create it)
    MOVE = "move"  # regenerate: the merged data under a new id, the old id deleted
    DELETE = "delete"  # cleared to nothing: delete, expire the cookie
    GONE = "gone"  # deleted meanwhile by another request (a logout, a login's move): nothing
    # written, and the cookie left alone (it may already carry that other request's new id)


class Plan(NamedTuple):
    """The decision for one request (see :func:`plan_commit`). A tuple: made once a request,
    at C speed (a frozen dataclass costs a frame and a ``__setattr__`` per field)."""

    action: Action
    changed: Data = {}  # noqa: RUF012  # never changed: merges copy from it
    removed: frozenset[str] = frozenset()
    replace: bool = False  # the session was cleared: the stored keys not in ``changed`` go

    def merge(self, existing: bool) -> Callable[[Data | None], Data | None]:
        """The ``update`` function applying this plan (see :func:`merge_changes`)."""
        return lambda current: merge_changes(
            current, self.changed, self.removed, replace=self.replace, existing=existing
        )


_NOTHING = Plan(Action.NOTHING)


def plan_commit(session: SessionState, *, sliding: bool = True) -> Plan:
    """What to do with ``session`` once the app is done with it."""
    if not session.loaded:
        return _NOTHING
    changed, removed = session.changes()
    touched = changed or removed or session.cleared or session.regenerate_requested
    if not touched and not session.accessed:
        return _NOTHING
    replace = session.cleared
    if (replace or removed) and not len(session):  # emptied: deleted (by clear(): a logout)
        if session.sid is None:
            return _NOTHING
        return Plan(Action.DELETE, changed, removed, replace)  # the removals, if overtaken
    if session.regenerate_requested:
        return Plan(Action.MOVE, changed, removed, replace)
    if session.sid is None:
        return Plan(Action.WRITE, changed, removed, replace) if changed else _NOTHING
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
    merged = {} if replace or current is None else dict(current)
    for key in removed:
        merged.pop(key, None)
    merged.update(changed)
    return merged


class Outcome(NamedTuple):
    """What a commit did: the id the cookie must carry now (``None``: expire the cookie, or
    leave it alone when ``action`` is NOTHING or GONE) and the action taken."""

    sid: str | None
    action: Action
