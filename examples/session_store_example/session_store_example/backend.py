"""``sqlite:///path/to/file.db``: every session in one SQLite table.

Small on purpose: it shows what a backend must do (validate keys first, keep TTL rules,
namespaces, compare-and-set, counters) with nothing but the standard library.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any, Self

from session_store import BackendURL, ConfigurationError, Namespace, Params
from session_store.backend import Scope, SessionBackend, Versioned, VersionToken, ensure_bytes
from session_store.counters import Counters
from session_store.errors import BackendError
from session_store.keys import validate_key, validate_scan_prefix
from session_store.ttl import NO_EXPIRY, effective_ttl, normalize_ttl

__all__ = ["SqliteBackend"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    expires_at REAL  -- wall-clock seconds; NULL: never
)
"""


def _digest(value: bytes) -> str:
    return hashlib.blake2b(value, digest_size=16).hexdigest()


class SqliteBackend(SessionBackend):
    """Sessions in a SQLite file (``:memory:`` for a private in-memory database).

    Args:
        path: the database file.
        prefix: namespace prefix (see :mod:`session_store.keys`).
        default_ttl: TTL of writes that give none; ``None``: no expiry.
    """

    scope = Scope.HOST

    def __init__(
        self, path: str, *, prefix: str = "session:", default_ttl: float | None = None
    ) -> None:
        self.path = path
        self.namespace = Namespace(prefix)
        self.default_ttl = normalize_ttl(default_ttl, what="default_ttl")
        self.counters = Counters()
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise BackendError(
                f"cannot open SQLite database: {exc}", backend=self.describe()
            ) from None
        self._closed = False

    @classmethod
    def from_url(cls, url: BackendURL, **overrides: Any) -> Self:
        """Build from ``sqlite:///absolute/path.db?prefix=...&default_ttl=...``."""
        if not url.path or url.path == "/":
            raise ConfigurationError("sqlite:// needs a file path", backend=url.redacted())
        params = Params(url, overrides)
        prefix = params.take_str("prefix", "session:")
        default_ttl = params.take_optional_float("default_ttl")
        params.finish()  # a typo must fail before the database file is created
        return cls(url.path, prefix=prefix, default_ttl=default_ttl)

    def describe(self) -> str:
        return f"sqlite://{self.path}?prefix={self.namespace.prefix}"

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        try:
            with self._lock:
                return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            self.counters.add("errors")
            raise BackendError(f"SQLite failed: {exc}", backend=self.describe()) from None

    def _expiry(self, ttl: float | None) -> float | None:
        ttl = effective_ttl(ttl, self.default_ttl)
        return None if ttl is None else time.time() + ttl

    def _live_row(self, stored: str) -> tuple[bytes, float | None] | None:
        rows = self._run(
            "SELECT value, expires_at FROM sessions WHERE key = ? "
            "AND (expires_at IS NULL OR expires_at > ?)",
            (stored, time.time()),
        )
        return (bytes(rows[0][0]), rows[0][1]) if rows else None

    def get(self, key: str) -> bytes | None:
        validate_key(key)
        row = self._live_row(self.namespace.encode(key))
        self.counters.add("hits" if row else "misses")
        return row[0] if row else None

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        validate_key(key)
        value = ensure_bytes(value, key=key)
        self._run(
            "INSERT OR REPLACE INTO sessions (key, value, expires_at) VALUES (?, ?, ?)",
            (self.namespace.encode(key), value, self._expiry(ttl)),
        )
        self.counters.add("writes")

    def delete(self, key: str) -> bool:
        validate_key(key)
        rows = self._run(
            "DELETE FROM sessions WHERE key = ? AND (expires_at IS NULL OR expires_at > ?) "
            "RETURNING key",
            (self.namespace.encode(key), time.time()),
        )
        self._run("DELETE FROM sessions WHERE key = ?", (self.namespace.encode(key),))
        self.counters.add("deletes")
        return bool(rows)

    def touch(self, key: str, ttl: float | None = None) -> bool:
        validate_key(key)
        rows = self._run(
            "UPDATE sessions SET expires_at = ? WHERE key = ? "
            "AND (expires_at IS NULL OR expires_at > ?) RETURNING key",
            (self._expiry(ttl), self.namespace.encode(key), time.time()),
        )
        return bool(rows)

    def ttl(self, key: str) -> float | None:
        validate_key(key)
        row = self._live_row(self.namespace.encode(key))
        if row is None:
            return None
        return NO_EXPIRY if row[1] is None else max(row[1] - time.time(), 0.001)

    def scan(self, prefix: str = "") -> Iterator[str]:
        validate_scan_prefix(prefix)
        head = self.namespace.scan_head(prefix)
        # A byte-wise comparison is literal (LIKE and GLOB would treat %, _, * and ? as
        # patterns) and, unlike text functions, does not stop at a NUL character.
        rows = self._run(
            "SELECT key FROM sessions WHERE substr(CAST(key AS BLOB), 1, ?) = CAST(? AS BLOB) "
            "AND (expires_at IS NULL OR expires_at > ?)",
            (len(head.encode()), head, time.time()),
        )
        return iter([k for (stored,) in rows if (k := self.namespace.decode(stored)) is not None])

    def get_versioned(self, key: str) -> Versioned | None:
        value = self.get(key)
        return None if value is None else Versioned(value, _digest(value))

    def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        validate_key(key)
        value = ensure_bytes(value, key=key)
        stored = self.namespace.encode(key)
        expires_at = self._expiry(ttl)
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    rows = self._db.execute(
                        "SELECT value FROM sessions WHERE key = ? "
                        "AND (expires_at IS NULL OR expires_at > ?)",
                        (stored, time.time()),
                    ).fetchall()
                    current = _digest(bytes(rows[0][0])) if rows else None
                    if current != token:
                        self._db.execute("ROLLBACK")
                        return False
                    self._db.execute(
                        "INSERT OR REPLACE INTO sessions (key, value, expires_at) VALUES (?, ?, ?)",
                        (stored, value, expires_at),
                    )
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            self.counters.add("errors")
            raise BackendError(f"SQLite failed: {exc}", key=key, backend=self.describe()) from None
        self.counters.add("writes")
        return True

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._db.close()
