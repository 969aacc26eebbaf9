"""``SessionCache``: a ``diskcache.Cache`` that counts its evictions and answers key-range scans.

This module is the only place that reaches past diskcache's public API, in two spots, both
checked when a cache opens (:func:`check_internals`) so that a diskcache release that changes
them fails loudly at open instead of miscounting or mis-scanning quietly:

* **Eviction counting** overrides ``Cache._cull(now, sql, cleanup, limit)``, the hook every write
  (``set``/``add``) calls inside its transaction to make room. diskcache removes, per write, at most
  ``cull_limit`` rows: first expired rows, then (when the volume is over ``size_limit``) rows chosen
  by the eviction policy. Around the original hook we read the row count diskcache keeps in its
  ``Settings`` table, and beforehand count the expired rows the hook will remove (same query, same
  ``now``, same limit). Removed minus expired is the number evicted, exactly: the write lock is
  held throughout, so no other writer can change either number. Evictions are kept per thread
  until the operation finishes (:meth:`SessionCache.take_evicted`), so a transaction that rolls
  back is not counted.
  Limits: only evictions caused by writes through *this* cache object are counted (other processes
  count their own); the explicit ``Cache.cull()`` method is not used and not counted. The same
  hook also adds the number to a row of diskcache's ``Settings`` table, inside the evicting
  transaction, so :meth:`SessionCache.stored_evictions` is every process's total since the
  directory was created (what ``session-store stats`` shows).
* **Value files replaced inside a transaction** are removed only once the outermost transaction
  has committed. diskcache removes the file of a value it replaces as soon as the ``set`` that
  replaced it returns, even when that ``set`` runs inside ``transact()``: if the transaction then
  rolls back (the process is killed before the commit, the disk fills up at a later write of a
  ``set_many``), the restored row names a file that is gone, and the session is lost. This module
  overrides ``Cache._transact(retry, filename)`` so that a nested transaction defers those
  removals to the outermost one, which performs them after its ``COMMIT`` and drops them on
  ``ROLLBACK`` (checked by ``tests/reliability/test_crash_disk.py``).
* **Ordered writes** (a chain's versioned copies, :meth:`SessionCache.replace_head`) read the
  row once and write it with ``Cache.set``'s own steps: the ``SELECT`` that finds the row also
  reads the head they compare, then diskcache's ``_row_update`` / ``_row_insert`` and ``_cull``
  run as ``set`` runs them (so its count, size, expiry and eviction stay its own), inside one
  ``BEGIN IMMEDIATE``. A value diskcache keeps in a file, on either side, takes ``set`` itself.
* **A read-only directory** (:class:`ReadOnlyCache`): a ``diskcache.Cache`` cannot open one (it
  writes its settings when it opens), so this class sets what ``Cache.__init__`` would from the
  ``Settings`` table and connects with SQLite's ``mode=ro``; its reads are ``Cache``'s, and every
  write fails as it does on a directory that turned read-only under an open cache.
* **Scans and snapshots** go through ``Cache._sql``, the connection of the calling thread (which
  diskcache reopens after a fork). A scan page is one SELECT over a key range of diskcache's
  ``Cache`` table; the unique index ``Cache_key_raw (key, raw)`` answers it directly, so a scan
  reads only the keys it returns. The public alternative, ``Cache.iterkeys()``, walks every key
  of every namespace from the start, expired ones included. A snapshot wraps several reads in
  one deferred (read) transaction: they see one state, and no write lock is taken.
"""

from __future__ import annotations

import functools
import inspect
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from urllib.parse import quote

import diskcache
from diskcache.core import DBNAME, MODE_RAW

from session_store.errors import ConfigurationError
from session_store_diskcache.disk import SafeDisk

__all__ = ["ReadOnlyCache", "SessionCache", "check_internals"]

# The same selection Cache._cull deletes from first (diskcache 5.6 core.py), counted.
_COUNT_CULLED_EXPIRED = (
    "SELECT (SELECT value FROM Settings WHERE key = 'count'),"
    " (SELECT COUNT(*) FROM (SELECT 1 FROM Cache"
    "  WHERE expire_time IS NOT NULL AND expire_time < ? LIMIT ?))"
)
_COUNT_ROWS = "SELECT value FROM Settings WHERE key = 'count'"
# Every process's evictions, kept in diskcache's Settings table beside its own counters and
# updated inside the transaction that evicts, so a rolled-back write adds nothing.
_EVICTIONS_KEY = "session_store_evictions"
_ADD_EVICTIONS = "UPDATE Settings SET value = value + ? WHERE key = ?"
_READ_EVICTIONS = "SELECT value FROM Settings WHERE key = ?"
_CREATE_EVICTIONS = "INSERT OR IGNORE INTO Settings VALUES (?, 0)"

# The mode and first bytes of a live text key's row (a conditional touch judges only a head).
_HEAD = (
    "SELECT mode, substr(value, 1, ?) FROM Cache"
    " WHERE key = ? AND raw = 1 AND (expire_time IS NULL OR expire_time > ?)"
)
# A text key's row as an ordered write needs it: what ``Cache.set`` selects (rowid, filename)
# and what the write compares (mode, the value's first bytes, whether it is live).
_ROW_HEAD = (
    "SELECT rowid, filename, mode, substr(value, 1, ?), expire_time FROM Cache"
    " WHERE key = ? AND raw = 1"
)

# Live text keys in [low, high), after the last key of the previous page, in key order.
_SCAN_PAGE = (
    "SELECT key FROM Cache"
    " WHERE key >= ? AND key < ? AND key > ? AND raw = 1"
    " AND (expire_time IS NULL OR expire_time > ?)"
    " ORDER BY key LIMIT ?"
)

_CULL_PARAMETERS = ("self", "now", "sql", "cleanup", "limit")
_TRANSACT_PARAMETERS = ("self", "retry", "filename")
_ROW_UPDATE_PARAMETERS = ("self", "rowid", "now", "columns")
_ROW_INSERT_PARAMETERS = ("self", "key", "raw", "now", "columns")
_REQUIRED_COLUMNS = frozenset({"key", "raw", "expire_time", "mode", "filename", "value"})


@functools.cache
def _hook_problem() -> str | None:
    cull = getattr(diskcache.Cache, "_cull", None)
    if cull is None or tuple(inspect.signature(cull).parameters) != _CULL_PARAMETERS:
        return "Cache._cull(now, sql, cleanup, limit) is gone or changed"
    if not isinstance(getattr(diskcache.Cache, "_sql", None), property):
        return "Cache._sql is gone"
    transact = getattr(diskcache.Cache, "_transact", None)
    if transact is None or tuple(inspect.signature(transact).parameters) != _TRANSACT_PARAMETERS:
        return "Cache._transact(retry, filename) is gone or changed"
    for name, parameters in (
        ("_row_update", _ROW_UPDATE_PARAMETERS),
        ("_row_insert", _ROW_INSERT_PARAMETERS),
    ):
        method = getattr(diskcache.Cache, name, None)
        if method is None or tuple(inspect.signature(method).parameters) != parameters:
            return f"Cache.{name}({', '.join(parameters[1:])}) is gone or changed"
    return None


def check_internals(cache: SessionCache | None = None) -> None:
    """Verify the diskcache internals this module relies on (see the module doc).

    Args:
        cache: an open cache whose table layout to check too.

    Raises:
        ConfigurationError: the installed diskcache changed them; naming the version to install.
    """
    problem = _hook_problem()
    if problem is None and cache is not None:
        columns = {row[1] for row in cache._sql("PRAGMA table_info(Cache)").fetchall()}
        missing = _REQUIRED_COLUMNS - columns
        if missing:
            problem = f"the Cache table lacks {', '.join(sorted(missing))}"
    if problem is not None:
        raise ConfigurationError(
            f"diskcache {diskcache.__version__} is not supported by session-store-diskcache: "
            f"{problem}; install diskcache 5.6.x"
        )


class SessionCache(diskcache.Cache):  # type: ignore[misc]  # diskcache ships no type hints
    """A ``diskcache.Cache`` over :class:`SafeDisk` that counts evictions and scans key ranges.

    Args:
        directory: the cache directory (created if missing).
        timeout: SQLite busy timeout in seconds.
        size_limit: bytes before the eviction policy removes entries.
        eviction_policy: a diskcache eviction policy name.

    The settings are written into the directory's ``Settings`` table, as diskcache does for any
    setting passed explicitly. ``statistics`` is switched off (it turns every read into a write
    transaction) and ``cull_limit`` set to diskcache's default of 10, whatever an earlier user of
    the directory stored.
    """

    def __init__(
        self, directory: str, *, timeout: float, size_limit: int, eviction_policy: str
    ) -> None:
        check_internals()
        self._session_store_evicted = threading.local()
        self._session_store_removals = threading.local()
        super().__init__(
            directory,
            timeout=timeout,
            disk=SafeDisk,
            size_limit=size_limit,
            eviction_policy=eviction_policy,
            cull_limit=10,
            statistics=0,
        )
        check_internals(self)
        self._sql(_CREATE_EVICTIONS, (_EVICTIONS_KEY,))

    # -- eviction counting ----------------------------------------------------------------------
    def _cull(
        self,
        now: float,
        sql: Callable[..., Any],
        cleanup: Callable[[str | None], None],
        limit: int | None = None,
    ) -> None:
        """diskcache's cull, with the policy evictions it makes counted (see the module doc)."""
        cull_limit = self.cull_limit if limit is None else limit
        ((before, expired),) = sql(_COUNT_CULLED_EXPIRED, (now, cull_limit)).fetchall()
        super()._cull(now, sql, cleanup, limit)
        ((after,),) = sql(_COUNT_ROWS).fetchall()
        evicted = before - after - expired
        if evicted > 0:
            sql(_ADD_EVICTIONS, (evicted, _EVICTIONS_KEY))
            local = self._session_store_evicted
            local.count = getattr(local, "count", 0) + evicted

    def stored_evictions(self) -> int:
        """Entries evicted from this directory by every process since it was created."""
        rows = self._sql(_READ_EVICTIONS, (_EVICTIONS_KEY,)).fetchall()
        return int(rows[0][0]) if rows else 0

    def take_evicted(self) -> int:
        """Entries evicted by this thread's writes since the last call; resets the tally.

        Call after every operation: on success to count, on failure to drop (rolled back).
        """
        local = self._session_store_evicted
        count: int = getattr(local, "count", 0)
        local.count = 0
        return count

    # -- transactions ---------------------------------------------------------------------------
    @contextmanager
    def _transact(
        self, retry: bool = False, filename: str | None = None
    ) -> Iterator[tuple[Callable[..., Any], Callable[[str | None], None]]]:
        """diskcache's transaction, but a nested one defers removing replaced value files until
        the outermost transaction commits, and forgets them if it rolls back (see the module
        doc): a rolled-back row must still find its file."""
        local = self._session_store_removals
        pending: list[str | None] | None = getattr(local, "pending", None)
        if pending is not None and self._txn_id == threading.get_ident():
            yield self._sql, pending.append  # nested: removed after the outermost COMMIT
            return
        local.pending = pending = []
        try:
            with super()._transact(retry, filename) as (sql, cleanup):
                yield sql, cleanup
        finally:
            local.pending = None
        for name in pending:  # committed: the replaced files are no longer named by any row
            if name is not None:
                self._disk.remove(name)

    def write_transaction(self) -> AbstractContextManager[Any]:
        """``transact()`` without its wrapper: one ``BEGIN IMMEDIATE`` ... ``COMMIT`` (or the
        enclosing one), the replaced files removed after the outermost commit."""
        return self._transact()

    # -- reads ----------------------------------------------------------------------------------
    def head(self, key: str, length: int) -> bytes | None:
        """The first ``length`` bytes of ``key``'s live value (``None``: none), inside the
        caller's transaction: one SELECT, the value not copied whole (what the backend's
        ``touch_session`` judges). A row this cannot answer for exactly as :meth:`get` would
        (held in a file, or not bytes: refused by :class:`SafeDisk`) is read with :meth:`get`,
        which reads or refuses it as always."""
        rows = self._sql(_HEAD, (length, key, time.time())).fetchall()
        if not rows:
            return None
        ((mode, head),) = rows
        if mode == MODE_RAW and type(head) is bytes:
            return head
        value: bytes | None = self.get(key)
        return value

    def replace_head(
        self,
        key: str,
        length: int,
        replace: Callable[[bytes | None], bytes | None],
        expire: float | None,
    ) -> bytes | None:
        """In one write transaction: hand ``replace`` the first ``length`` bytes of ``key``'s
        live value (``None``: none) and store what it returns (``None``: nothing) with
        ``expire`` seconds to live, as ``set(key, value, expire=expire)`` would; what was
        stored.

        The row is read once: the ``SELECT`` that gives the head also gives what ``set``
        would select again (the row id and its file), and the row is written with diskcache's
        own ``_row_update`` / ``_row_insert`` and ``_cull``, in ``set``'s order, so the cache's
        count, size, expiry and evictions are kept as ``set`` keeps them. A row whose head this
        cannot answer for exactly as ``get`` would (a value held in a file, or not bytes) is
        read with ``get``, which reads or refuses it as always, and a new value ``set`` would
        put in a file is written by ``set``; both in the same transaction.
        """
        disk = self._disk
        with self._transact() as (sql, cleanup):
            now = time.time()
            rows = sql(_ROW_HEAD, (length, key)).fetchall()
            row: tuple[Any, ...] | None = None
            current: bytes | None = None
            if rows:
                ((rowid, filename, mode, head, expire_time),) = rows
                if mode == MODE_RAW and type(head) is bytes:
                    row = rowid, filename
                    if expire_time is None or expire_time > now:
                        current = head
                else:  # a file or a refused row: read as get reads it (or refuses it)
                    current = self.get(key)
            written = replace(current)
            if written is None:
                return None
            if (rows and row is None) or len(written) >= disk.min_file_size:
                self.set(key, written, expire=expire)  # (nested: this transaction)
                return written
            expire_time = None if expire is None else now + expire
            size, stored_mode, stored_file, value = disk.store(written, False, key=key)
            columns = (expire_time, None, size, stored_mode, stored_file, value)
            if row is not None:
                cleanup(row[1])
                self._row_update(row[0], now, columns)
            else:
                self._row_insert(key, True, now, columns)
            self._cull(now, sql, cleanup)
        return written

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Run the reads inside in one read transaction: one consistent state, no write lock.

        Only for reads that write nothing: with an eviction policy that updates rows on read
        (``least-recently-used``), use ``transact()`` instead.
        """
        sql = self._sql
        sql("BEGIN")
        try:
            yield
        finally:
            sql("COMMIT")  # a read transaction has nothing to roll back

    # -- scans -----------------------------------------------------------------------------------
    def live_keys_between(
        self, low: str, high: str, *, after: str, now: float, limit: int
    ) -> list[str]:
        """Up to ``limit`` unexpired text keys ``k`` with ``low <= k < high`` and ``k > after``,
        in key order: one page of a keyset-paginated scan (pass the last key as ``after``)."""
        rows = self._sql(_SCAN_PAGE, (low, high, after, now, limit)).fetchall()
        return [key for (key,) in rows]


class ReadOnlyCache(SessionCache):
    """A :class:`SessionCache` of a directory this process cannot write: it reads, and every
    write fails (``attempt to write a readonly database``, or the file system's error for a
    value file), as on a directory that turned read-only under an open cache.

    A database in WAL mode whose ``-shm`` file is gone (its last writer closed it) and cannot be
    made is read as immutable, if it has no ``-wal`` file either: the file then holds every
    commit, and no one can write it while the directory is read-only. (Once it is writable, the
    backend opens it read-write within a second of a call: :mod:`~.opening`.)

    Raises:
        sqlite3.Error: no database there, or SQLite cannot read it read-only (a ``-wal`` file
            without its ``-shm``).
    """

    def __init__(self, directory: str, *, timeout: float) -> None:
        check_internals()
        self._session_store_evicted = threading.local()
        self._session_store_removals = threading.local()
        self._directory = directory
        self._timeout = timeout
        self._local = threading.local()
        self._txn_id = None
        self._immutable = False
        try:
            settings = dict(self._sql("SELECT key, value FROM Settings").fetchall())
        except sqlite3.OperationalError:
            # WAL mode without a -shm file, which a read-only directory cannot get: with no -wal
            # either, the database file holds every commit, and nothing can write it meanwhile
            if os.path.exists(os.path.join(directory, DBNAME + "-wal")):
                raise
            self.close()
            self._immutable = True
            settings = dict(self._sql("SELECT key, value FROM Settings").fetchall())
        for key, value in settings.items():  # what Cache.__init__ sets, as it stored them
            setattr(self, key, value)
        disk = {key[5:]: value for key, value in settings.items() if key.startswith("disk_")}
        self._disk = SafeDisk(directory, **disk)
        ((self._page_size,),) = self._sql("PRAGMA page_size").fetchall()
        check_internals(self)

    @property
    def _con(self) -> sqlite3.Connection:
        # Cache._con's, connecting read-only and setting no pragma (they are for writers)
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            self.close()
            local.pid = os.getpid()
        con: sqlite3.Connection | None = getattr(local, "con", None)
        if con is None:
            path = os.path.join(self._directory, DBNAME)
            if not os.path.exists(path):
                raise sqlite3.OperationalError(f"no database at {path}")
            uri = f"file:{quote(path)}?mode=ro" + ("&immutable=1" if self._immutable else "")
            con = local.con = sqlite3.connect(
                uri, uri=True, timeout=self._timeout, isolation_level=None
            )
        return con
