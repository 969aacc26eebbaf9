"""Session ids: how they are made, which cookie values are looked up at all, and how an id is
shown in errors and logs (never itself: a session id is a login credential)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import secrets
from collections.abc import Iterator
from typing import TypeGuard

from session_store.errors import SessionStoreError

__all__ = [
    "SESSION_ID_BYTES",
    "hide",
    "hiding",
    "is_session_id",
    "new_session_id",
    "shown_id",
    "unreadable",
]

log = logging.getLogger("session_store.web")


def unreadable(sid: str, exc: SessionStoreError) -> None:
    """A stored session that cannot be decoded is treated as no session (the user gets a new
    id, as Django's own backends do with corrupt data), logged, and left as it is for
    inspection (``session-store inspect``): a permanent error page helps nobody."""
    log.warning("session %s cannot be read, a new one is started: %s", shown_id(sid), exc.message)


def shown_id(sid: str) -> str:
    """How a session id appears in errors and logs: a short digest, never the id itself (a
    session id is a bearer credential: whoever reads it from a log can log in as its user)."""
    return "sid-sha256:" + hashlib.sha256(sid.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@contextlib.contextmanager
def hiding(sid: str | None) -> Iterator[None]:
    """Run a store call about session ``sid``; an error it raises (and any error it was raised
    from) shows :func:`shown_id` instead of the id."""
    try:
        yield
    except SessionStoreError as exc:
        hide(exc, sid)
        raise


def hide(exc: SessionStoreError, sid: str | None) -> None:
    """Make ``exc`` (and any error it was raised from) show :func:`shown_id` instead of ``sid``
    (for hot paths, where a ``try`` costs nothing and a context manager does)."""
    if sid is not None:
        seen: set[int] = set()
        error: BaseException | None = exc
        while error is not None and id(error) not in seen:
            seen.add(id(error))
            if isinstance(error, SessionStoreError) and error.key == sid:
                error.key = shown_id(sid)
            error = error.__cause__ or error.__context__


#: Random bytes in a session id (256 bits).
SESSION_ID_BYTES = 32
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")


def new_session_id() -> str:
    """A fresh session id: 256 bits from the OS's CSPRNG, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def is_session_id(value: object) -> TypeGuard[str]:
    """Whether a cookie value has the shape of an id we issue (anything else is not looked up)."""
    return isinstance(value, str) and _SESSION_ID.fullmatch(value) is not None
