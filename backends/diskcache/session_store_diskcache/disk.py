"""A diskcache ``Disk`` that stores bytes under text keys and never unpickles anything.

diskcache's default ``Disk`` pickles any key or value that is not a plain ``str``/``bytes``/
number, and unpickles such rows when they are read back. Anyone who can write to the cache
directory (another program, another diskcache user) could then run code in our process through a
pickle. :class:`SafeDisk` closes both doors:

* **Writing**: keys must be ``str`` (or ``bytes``), values ``bytes``; anything else is a
  :class:`SerializationError`, so no pickle is ever produced.
* **Reading**: a row in pickle mode, a row holding text or a number, or a pickled key is a
  :class:`CorruptPayloadError`, raised without looking inside the payload.
* **Value files**: diskcache keeps values of 32 KiB and more in files named in the row. A row whose
  file name is not one diskcache generates (``ab/cd/<28 hex>.val``) is refused on read and never
  deleted, so a crafted row cannot read or delete a file outside the cache directory.
"""

from __future__ import annotations

import os
import re
import sqlite3
from typing import IO, Any

import diskcache
from diskcache.core import MODE_BINARY, MODE_PICKLE, MODE_RAW, UNKNOWN

from session_store.errors import CorruptPayloadError, SerializationError

__all__ = ["SafeDisk"]

# The names diskcache.Disk.filename() generates: two levels of directories, then 28 hex digits.
_SEP = re.escape(os.sep)
_VALUE_FILE = re.compile(rf"[0-9a-f]{{2}}{_SEP}[0-9a-f]{{2}}{_SEP}[0-9a-f]{{28}}\.val")


def _is_value_file(filename: object) -> bool:
    return isinstance(filename, str) and _VALUE_FILE.fullmatch(filename) is not None


class SafeDisk(diskcache.Disk):  # type: ignore[misc]  # diskcache ships no type hints
    """Bytes values under text keys; refuses to produce or read pickles. See the module doc."""

    def put(self, key: object) -> tuple[Any, bool]:
        """The database form of ``key``: text and bytes are stored raw, anything else refused."""
        if type(key) is str:
            return key, True
        if type(key) is bytes:
            return sqlite3.Binary(key), True
        raise SerializationError(f"diskcache keys must be str or bytes, got {type(key).__name__}")

    def get(self, key: Any, raw: bool) -> Any:
        """The Python form of a stored key; a pickled (non-raw) key is refused, not unpickled."""
        if not raw:
            raise CorruptPayloadError("the cache holds a pickled key; refusing to unpickle it")
        return bytes(key) if isinstance(key, memoryview) else key

    def store(self, value: object, read: bool, key: object = UNKNOWN) -> tuple[Any, ...]:
        """The database columns for ``value``, which must be ``bytes`` (never a pickle)."""
        if read or type(value) is not bytes:
            shown = "a file object" if read else type(value).__name__
            raise SerializationError(f"the diskcache backend stores bytes only, got {shown}")
        return super().store(value, False, key=key)  # type: ignore[no-any-return]

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> bytes | IO[bytes]:
        """The bytes of a row (or, with ``read``, a binary file open on them).

        Raises:
            CorruptPayloadError: the row is a pickle, text, a number, or names a file diskcache
                would never create. Nothing in it is decoded or executed.
        """
        if mode == MODE_RAW:
            if isinstance(value, bytes):
                return value
            raise CorruptPayloadError(
                f"the cache row holds {type(value).__name__}, not bytes "
                "(written by another program?)"
            )
        if mode == MODE_BINARY:
            if not _is_value_file(filename):
                raise CorruptPayloadError("the cache row names a value file outside the cache")
            return super().fetch(mode, filename, value, read)  # type: ignore[no-any-return]
        if mode == MODE_PICKLE:
            raise CorruptPayloadError(
                "the cache row holds a pickle (written by another diskcache user); "
                "refusing to unpickle it"
            )
        raise CorruptPayloadError(f"the cache row has storage mode {mode!r}, not bytes")

    def remove(self, file_path: object) -> None:
        """Delete a value file, but only one whose name diskcache generates."""
        if _is_value_file(file_path):
            super().remove(file_path)
