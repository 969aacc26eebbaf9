"""Opening a cache directory, and what a directory that cannot be written means (mend11).

Opening writes (diskcache records its settings in the database, SQLite creates its files), so
``diskcache.Cache`` cannot open a directory this process cannot write (a read-only mount, a
directory another user owns, an immutable one), even to read. :func:`open_cache` raises then
:class:`~session_store.errors.NotWritableError`, naming the directory and the fix:

* **Alone**, the backend refuses to start.
* **In a chain** whose arbiter (its first shared tier: Redis in ``memory | redis | diskcache``)
  is another tier, the chain starts with it (:func:`session_store.registry.open_url`) and logs
  a warning; the error's ``down_tier`` is the backend, which behaves as a running process's
  disk tier does when its directory turns read-only: it **reads** the database (SQLite
  read-only, :class:`~.cache.ReadOnlyCache`) and every **write fails** with ``BackendError``,
  which the chain counts as a refusal: the arbiter takes the write (what the chain
  acknowledges, a durable tier holds, as ever) and the keys it missed are remembered. A
  database SQLite cannot read read-only (none yet; WAL mode without its ``-shm`` file) makes
  it a down tier instead (``BackendUnavailableError``: the chain's breaker skips it).
* At most every :data:`RETRY_SECONDS`, a call tries to open the directory read-write again;
  once it opens, the backend is an ordinary one and the chain brings it up to date with what
  it missed, as after any outage.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from typing import TYPE_CHECKING

from session_store.errors import (
    BackendError,
    BackendUnavailableError,
    NotWritableError,
    SessionStoreError,
)
from session_store_diskcache.cache import ReadOnlyCache, SessionCache
from session_store_diskcache.failures import translate

if TYPE_CHECKING:
    from session_store_diskcache.backend import DiskcacheBackend

__all__ = ["RETRY_SECONDS", "open_cache", "open_for", "open_later", "writable"]

#: Seconds between two attempts of a backend waiting for its directory to open it read-write.
RETRY_SECONDS = 1.0

log = logging.getLogger("session_store_diskcache.backend")

#: What the error adds: the fix, and what a chain does.
_FIX = (
    "make {directory} writable by this process's user (remount it read-write, or fix its "
    "owner and mode), or give a directory that is; in a chain whose first shared tier is "
    "another one, the chain starts without this tier and opens it once it is writable"
)


def writable(directory: str) -> bool:
    """Whether this process may write ``directory`` (or, if it does not exist yet, the nearest
    directory above it that does, where it would be created) and the database in it.
    ``os.access`` asks the kernel, so a read-only mount and an immutable file count, also for
    root, whom file modes do not stop."""
    path = directory
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    if not os.access(path, os.W_OK):
        return False
    database = os.path.join(directory, "cache.db")
    return not os.path.exists(database) or os.access(database, os.W_OK)


def open_cache(
    directory: str,
    *,
    timeout: float,
    size_limit: int,
    eviction_policy: str,
    backend: str,
    down_tier: object,
) -> SessionCache:
    """The cache of ``directory``, opened.

    Raises:
        NotWritableError: the directory cannot be written (``down_tier`` passed on: the
            backend a chain places instead, see the module doc).
        BackendError: any other failure to open (not a directory, not a database, a lock held
            past the 60 s diskcache waits at open).
    """
    try:
        return SessionCache(
            directory, timeout=timeout, size_limit=size_limit, eviction_policy=eviction_policy
        )
    except BaseException as exc:
        unwritable = not writable(directory)
        action = "opening the cache directory"
        if unwritable:
            action += " (not writable: read-only file system or permissions)"
        typed: SessionStoreError | None = translate(exc, action=action, key=None, backend=backend)
        if typed is None:
            raise
        if unwritable:
            message = f"{typed.message}; {_FIX.format(directory=directory)}"
            typed = NotWritableError(message, backend=backend, down_tier=down_tier)
        raise typed from exc


def open_for(backend: DiskcacheBackend) -> SessionCache:
    """:func:`open_cache` with ``backend``'s settings (its ``down_tier``: a chain's first call
    to it opens the database read-only, :func:`open_later`)."""
    try:
        return _read_write(backend)
    except NotWritableError:
        backend._retry_at = time.monotonic() + RETRY_SECONDS
        raise


def _read_write(backend: DiskcacheBackend) -> SessionCache:
    return open_cache(
        backend.directory,
        timeout=backend.timeout,
        size_limit=backend.size_limit,
        eviction_policy=backend.eviction_policy,
        backend=backend.describe(),
        down_tier=backend,
    )


def open_later(backend: DiskcacheBackend, action: str, key: str | None) -> SessionCache:
    """The cache for a call to ``backend`` while it waits for its directory to be writable
    (a chain's tier, see the module doc): opened read-write if it can be now (tried at most
    once every :data:`RETRY_SECONDS`), else read-only (a :class:`~.cache.ReadOnlyCache`, kept),
    else the down tier's :class:`BackendUnavailableError`. Closed: :class:`BackendError`."""
    with backend._close_lock:
        cache = backend._cache
        if not backend._waiting:
            if cache is None:
                raise BackendError(
                    f"{action} failed: the backend is closed", key=key, backend=backend.describe()
                )
            return cache
        reason = "the cache directory is not writable, nor readable read-only"
        now = time.monotonic()
        if now >= backend._retry_at:
            backend._retry_at = now + RETRY_SECONDS
            try:
                opened = _read_write(backend)
            except NotWritableError as exc:
                reason = exc.message
            else:
                backend._cache, backend._waiting = opened, False
                if cache is not None:
                    cache.close()
                log.warning("%s: the cache directory is writable: opened", backend.describe())
                return opened
        if cache is None:
            cache = backend._cache = _read_only(backend)
        if cache is None:
            raise BackendUnavailableError(
                f"{action} failed: {reason}", key=key, backend=backend.describe()
            )
        return cache


def _read_only(backend: DiskcacheBackend) -> SessionCache | None:
    """The cache of ``backend``'s directory, read-only; ``None`` if SQLite cannot read it."""
    try:
        return ReadOnlyCache(backend.directory, timeout=backend.timeout)
    except (sqlite3.Error, OSError):
        return None
