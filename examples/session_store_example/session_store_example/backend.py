"""``sqlite:///path/to/file.db``: every session in one SQLite table.

Small on purpose: the worked example of CONTRIBUTING.md. :class:`~session_store.plugin.BackendBase`
checks keys, values and TTLs, applies the namespace, counts, times and translates errors; this
module only says how SQLite stores, finds and expires a row. Every statement is one atomic
SQLite statement, so several processes can share the file. A row is live while ``now()`` is below
its ``expires_at`` (wall-clock seconds, +infinity for never).
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any, Self

from session_store.plugin import (
    BackendBase,
    BackendURL,
    ConfigurationError,
    Params,
    Scope,
    VersionToken,
    value_token,
)

__all__ = ["SqliteBackend"]

_SCHEMA = "CREATE TABLE IF NOT EXISTS sessions (key TEXT PRIMARY KEY, value BLOB, expires_at REAL)"


class SqliteBackend(BackendBase):
    """Sessions in a SQLite file (``:memory:`` for a private in-memory database).

    Args:
        path: the database file.
        prefix: namespace prefix (see :mod:`session_store.keys`).
        default_ttl: TTL of writes that give none; ``None``: no expiry.
    """

    scope = Scope.HOST  # other processes on this host may open the same file
    backend_errors = (sqlite3.Error,)  # what BackendBase turns into BackendError

    def __init__(self, path: str, *, prefix: str = "session:", default_ttl: float | None = None):
        super().__init__(prefix=prefix, default_ttl=default_ttl)
        self.path = path
        self._lock = threading.Lock()  # one connection, shared by this process's threads
        with self._translating("open"):
            # wait up to 30 s for another process's lock (the default 5 s is short on a busy host)
            self._db = sqlite3.connect(path, 30, check_same_thread=False, isolation_level=None)
            self._db.create_function("now", 0, time.time)
            self._db.create_function("token", 1, value_token, deterministic=True)
            self._db.execute(_SCHEMA)

    @classmethod
    def from_url(cls, url: BackendURL, **overrides: Any) -> Self:
        """Build from ``sqlite:///absolute/path.db?prefix=...&default_ttl=...``."""
        if url.path in ("", "/"):
            raise ConfigurationError("use sqlite:///abs/path.db", backend=url.redacted())
        params = Params(url, overrides)
        prefix = params.take_str("prefix", "session:")
        default_ttl = params.take_optional_float("default_ttl")
        params.finish()  # a typo must fail before the database file is created
        return cls(url.path, prefix=prefix, default_ttl=default_ttl)

    def describe(self) -> str:
        return f"sqlite://{self.path}?prefix={self.namespace.prefix}"

    def _run(self, sql: str, *args: Any) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _at(self, ttl: float | None) -> float:
        return math.inf if ttl is None else time.time() + ttl

    def _get(self, skey: str) -> bytes | None:
        rows = self._run("SELECT value FROM sessions WHERE key = ? AND expires_at > now()", skey)
        return bytes(rows[0][0]) if rows else None

    def _ttl(self, skey: str) -> float | None:
        sql = "SELECT expires_at - now() FROM sessions WHERE key = ? AND expires_at > now()"
        return max(rows[0][0], 0.001) if (rows := self._run(sql, skey)) else None

    def _set(self, skey: str, value: bytes, ttl: float | None) -> None:
        self._run("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?)", skey, value, self._at(ttl))

    def _delete(self, skey: str) -> bool:
        sql = "DELETE FROM sessions WHERE key = ? RETURNING expires_at > now()"
        return any(live for (live,) in self._run(sql, skey))

    def _touch(self, skey: str, ttl: float | None) -> bool:
        sql = "UPDATE sessions SET expires_at = ? WHERE key = ? AND expires_at > now() RETURNING 1"
        return bool(self._run(sql, self._at(ttl), skey))

    def _scan(self, head: str) -> Iterator[str]:
        """Compared byte-wise, which is literal: LIKE and GLOB would treat %, _, * and ? as
        patterns."""
        sql = "SELECT key FROM sessions WHERE substr(CAST(key AS BLOB), 1, ?) = CAST(? AS BLOB)"
        sql += " AND expires_at > now()"
        return (key for (key,) in self._run(sql, len(head.encode()), head))

    def _set_if(
        self, skey: str, value: bytes, token: VersionToken | None, ttl: float | None
    ) -> bool:
        """One statement each, so atomic, also against other processes sharing the file."""
        if token is None:  # insert, or replace an expired row
            sql = "INSERT INTO sessions VALUES (?1, ?2, ?3) ON CONFLICT (key) DO UPDATE"
            sql += " SET value = ?2, expires_at = ?3 WHERE expires_at <= now() RETURNING 1"
            return bool(self._run(sql, skey, value, self._at(ttl)))
        sql = "UPDATE sessions SET value = ?, expires_at = ? WHERE key = ? AND expires_at > now()"
        sql += " AND token(value) = ? RETURNING 1"
        return bool(self._run(sql, value, self._at(ttl), skey, token))

    def _close(self) -> None:
        self._db.close()
