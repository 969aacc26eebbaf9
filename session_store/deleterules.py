"""What a delete of a single backend's session decides, and the steps of the default
``delete_session`` (:meth:`session_store.backend.SessionBackend.delete_session`).

``SessionStore.delete`` removes a *session*: a key holding no session (absent, a chain's
tombstone read through one tier, the marker a login's id rotation leaves on the old id for a
minute, ``websession.steps.RETIRED``) is left as it is and answers ``False``, as ``load``,
``exists`` and ``touch`` call it absent. Removing the marker would undo the rotation's "this id
is gone" (through a chain, its tombstone keeps a lagging tier's old copy from coming back).
The judgement is :func:`~session_store.touchrules.touch_decision`'s, on the value's first
:data:`~session_store.touchrules.HEAD_SPAN` bytes (no marker is longer), so every backend and
Redis's script decide alike. Pure functions, low in the layers, as :mod:`session_store.touchrules`.
"""

from __future__ import annotations

from collections.abc import Generator

from session_store.touchrules import HEAD_SPAN, Step, touch_decision

__all__ = ["delete_session_steps", "holds_session"]


def holds_session(head: bytes) -> bool:
    """Whether a value whose first :data:`~session_store.touchrules.HEAD_SPAN` bytes (or all
    of it, if shorter) are ``head`` holds a session (what ``delete_session`` removes)."""
    return touch_decision(head[:HEAD_SPAN], None, False)[0]


def delete_session_steps(key: str) -> Generator[Step, object, bool]:
    """The default ``delete_session`` of a backend without one of its own, as the calls it
    makes (the sync and asyncio defaults run the same steps, as
    :func:`~session_store.touchrules.touch_session_steps`): read the value, and delete the key
    only if the value holds a session. Two steps, not one: a value written between the read
    and the delete is deleted too (a backend that can overrides it with one atomic step). A
    key found holding no session is never deleted, whatever is written after the read."""
    value = yield "get", (key,)
    if not isinstance(value, bytes) or not holds_session(value):
        return False
    return bool((yield "delete", (key,)))
