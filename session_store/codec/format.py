"""The stored byte format, version 1. Stable: golden payloads in tests/golden/ must load forever.

::

    offset  size  meaning
    0       3     magic b"\\xa7SS" (0xA7 can start neither JSON nor UTF-8 text)
    3       1     format version, 1
    4       1     number of stages n (0..8)
    5       n     stage ids in the order they were applied (1 = zstd, 2 = AES-256-GCM)
    5 + n   ...   the payload: the JSON envelope after every stage

The header is readable without any key: ``session-store inspect`` shows the stages of an
encrypted payload it cannot open. The JSON envelope is ``{"schema": name, "version": n,
"data": ...}``.

**Legacy data** has no header: a bare JSON object (``{...}``, leading whitespace allowed), as the
first host app's ``json.dumps`` wrote it. It is recognised by its first byte and loads as
version 0 of the store's legacy schema.
"""

from __future__ import annotations

from typing import NamedTuple

from session_store.errors import CorruptPayloadError, UnknownSchemaVersionError

__all__ = ["FORMAT_VERSION", "MAGIC", "Header", "is_legacy", "pack_header", "parse_header"]

MAGIC = b"\xa7SS"
FORMAT_VERSION = 1
MAX_STAGES = 8
_WHITESPACE = b" \t\r\n"


class Header(NamedTuple):
    """A parsed header: the format version, the stage ids applied, and where the payload starts."""

    format_version: int
    stages: tuple[int, ...]
    payload_offset: int

    @property
    def raw_length(self) -> int:
        """Length of the header in bytes (it is also bound into encryption as associated data)."""
        return self.payload_offset


def pack_header(stages: tuple[int, ...]) -> bytes:
    """The header for a payload that went through ``stages`` in that order."""
    return MAGIC + bytes((FORMAT_VERSION, len(stages), *stages))


def is_legacy(data: bytes) -> bool:
    """Whether ``data`` is headerless legacy JSON (a bare object)."""
    return data.lstrip(_WHITESPACE)[:1] == b"{"


def parse_header(data: bytes, *, key: str | None = None) -> Header:
    """Parse the header of a version-1 payload.

    Raises:
        CorruptPayloadError: no magic, a truncated header, too many stages.
        UnknownSchemaVersionError: a format version newer than this code.
    """
    if data[:3] != MAGIC:
        raise CorruptPayloadError(
            "not a session-store payload (no header, and not a legacy JSON object)", key=key
        )
    if len(data) < 5:
        raise CorruptPayloadError("truncated header", key=key)
    version, count = data[3], data[4]
    if version != FORMAT_VERSION:
        raise UnknownSchemaVersionError(
            f"byte format version {version} is newer than this code reads ({FORMAT_VERSION})",
            key=key,
        )
    if count > MAX_STAGES or len(data) < 5 + count:
        raise CorruptPayloadError("truncated or invalid stage list", key=key)
    return Header(version, tuple(data[5 : 5 + count]), 5 + count)
