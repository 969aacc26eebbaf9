"""What a touch of a single backend's key decides, and the steps of the default touch: which
stored values hold a session, which TTL a touch gives them, and how a backend without an atomic
``touch_session`` of its own touches one
(:meth:`session_store.backend.SessionBackend.touch_session`).

A key can hold a value that is *no session*: a chain's tombstone read through one tier, an
earlier chain's tombstone stamp, the marker a login's id rotation leaves on the old id (a
chain's frame around a tombstone), all as :func:`~session_store.stamps.session_bytes` reads them.
None is longer than 50 bytes, and a frame's recorded TTL lies in its first 25, so the first
:data:`HEAD_SPAN` bytes of a value decide (:func:`touch_decision`); Redis's script reads only
those (``GETRANGE``). Pure functions over bytes, low in the layers, so that the protocol, the
base class and every backend share them (the store-level rules are :mod:`session_store.ownttl`).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from session_store.stamps import MAGIC, own_ttl, session_bytes

__all__ = [
    "HEAD_SPAN",
    "TOUCH_ATTEMPTS",
    "Step",
    "run_touch_session",
    "touch_decision",
    "touch_guard",
    "touch_session_steps",
]

#: Reads the default :func:`touch_session_steps` makes before it leaves a key that every read
#: found rewritten (each of those writes restarted its own expiry).
TOUCH_ATTEMPTS = 16

#: How many first bytes of a value decide a touch: one more than the longest marker (50 bytes,
#: a chain's frame around a tombstone), so a value this long or longer is never a marker.
HEAD_SPAN = 51

#: The values that hold no session (:func:`~session_store.stamps.session_bytes` is ``None``),
#: as (length, the bytes at given offsets): an earlier chain's 16-byte tombstone stamp, a
#: chain's tombstone frame, and a chain's frame around a tombstone (a retired id written
#: through a chain).
_MARKERS = (
    (16, ((0, b"\xa7ST\x02"),)),
    (25, ((0, MAGIC), (16, b"\x02"))),
    (50, ((0, MAGIC), (16, b"\x01"), (25, MAGIC), (41, b"\x02"))),
)


def touch_decision(head: bytes, ttl: float | None, keep_own: bool) -> tuple[bool, float | None]:
    """Whether a value whose first :data:`HEAD_SPAN` bytes (or all of it, if shorter) are
    ``head`` holds a session, and the TTL a touch of it uses: its frame's recorded TTL if
    ``keep_own`` and it records one (``math.inf``: no expiry), else ``ttl``. The same as
    judging the whole value (a marker is at most 50 bytes long; a frame's TTL is in its first
    25)."""
    if session_bytes(head) is None:
        return False, None
    if keep_own:
        own = own_ttl(head)
        if own is not None:
            return True, own
    return True, ttl


def touch_guard(value: bytes) -> bytes | None:
    """What the key's value must begin with for a conditional touch (``touch_if``) to restart
    the session ``value`` read and decided on by :func:`touch_decision`, the same way: its
    first :data:`HEAD_SPAN` bytes, whenever every value that begins with them holds a session
    with the same recorded TTL. ``None`` for a value too short to tell (a proper prefix of some
    marker's shape: never a session's payload, which begins ``\\xa7SS`` or with JSON): the
    caller then touches it by compare-and-set on its exact bytes."""
    n = len(value)
    for size, parts in _MARKERS:
        if n < size and all(value[at : at + len(b)] == b[: max(0, n - at)] for at, b in parts):
            return None
    return value[:HEAD_SPAN]


#: A step of :func:`touch_session_steps`: the backend call to make and its arguments.
Step = tuple[str, tuple[Any, ...]]


def touch_session_steps(
    key: str, ttl: float | None, keep_own: bool, has_touch_if: bool
) -> Generator[Step, Any, bool]:
    """The default ``touch_session`` of a backend without one of its own, as the calls it makes
    (each step yields ``(name, args)`` and receives the call's result; the sync and asyncio
    defaults run the same steps). Read, judge (:func:`touch_decision`), then touch by the
    backend's conditional touch only a value that begins as the one read
    (:func:`touch_guard`), or, without a conditional touch of its own or for a value too short
    to guard, by compare-and-set of the exact bytes read (as ``touch_if``'s own default).
    Read again if a write got in between; each of :data:`TOUCH_ATTEMPTS` reads finding a
    session rewritten since answers ``True`` (every write restarted its own expiry)."""
    for _ in range(TOUCH_ATTEMPTS):
        guard: bytes | None = None
        token: Any = None
        if has_touch_if:
            value = yield "get", (key,)
            if value is None:
                return False
            guard = touch_guard(value)
        if guard is None:
            read = yield "get_versioned", (key,)
            if read is None:
                return False
            value, token = read.value, read.token
        live, chosen = touch_decision(value[:HEAD_SPAN], ttl, keep_own)
        if not live:
            return False
        step = (
            ("touch_if", (key, guard, chosen))
            if guard is not None
            else ("set_if", (key, value, token, chosen))
        )
        if (yield step):
            return True
    return True


def run_touch_session(backend: Any, steps: Generator[Step, Any, bool]) -> bool:
    """Make :func:`touch_session_steps`'s calls on a sync ``backend``."""
    result: Any = None
    try:
        while True:
            name, args = steps.send(result)
            result = getattr(backend, name)(*args)
    except StopIteration as done:
        return bool(done.value)
