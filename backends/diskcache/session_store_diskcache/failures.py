"""Turn what SQLite, the file system and diskcache raise into session-store's typed errors.

* another writer held the lock past the timeout (``diskcache.Timeout``, ``SQLITE_BUSY``,
  ``SQLITE_LOCKED``): :class:`BackendUnavailableError`, which a tiered store skips and retries;
* anything else SQLite or the OS reports (a read-only directory, a full disk, a corrupt database
  file, a directory that cannot be created): :class:`BackendError`;
* a session-store error raised inside diskcache (a :class:`CorruptPayloadError` from the disk
  layer): the same error, with the key and backend filled in.

The SQLite message (``attempt to write a readonly database``, ``database or disk is full``) is
kept in the text: it names the cause and holds no session data.
"""

from __future__ import annotations

import sqlite3

import diskcache

from session_store.errors import BackendError, BackendUnavailableError, SessionStoreError

__all__ = ["translate"]

_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


def translate(
    exc: BaseException, *, action: str, key: str | None, backend: str
) -> SessionStoreError | None:
    """The typed error for ``exc`` raised while doing ``action``; ``None`` if it is not a
    storage failure (a programming error, ``KeyboardInterrupt``) and should propagate as is."""
    if isinstance(exc, SessionStoreError):
        if exc.key is not None and exc.backend is not None:
            return exc
        return type(exc)(
            exc.message,
            key=exc.key if exc.key is not None else key,
            backend=exc.backend if exc.backend is not None else backend,
        )
    if isinstance(exc, diskcache.Timeout):
        return BackendUnavailableError(
            f"{action} failed: another writer held the database lock past the timeout",
            key=key,
            backend=backend,
        )
    if isinstance(exc, sqlite3.Error):
        if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return BackendUnavailableError(
                f"{action} failed: the database is locked ({exc})", key=key, backend=backend
            )
        return BackendError(f"{action} failed: SQLite: {exc}", key=key, backend=backend)
    if isinstance(exc, OSError):
        return BackendError(f"{action} failed: {exc}", key=key, backend=backend)
    return None
