"""An example session-store backend plugin: sessions in one SQLite file, with the stdlib only."""

from session_store_example.backend import SqliteBackend

__all__ = ["SqliteBackend"]
