"""The stored byte format, versions 1 and 2. Stable: golden payloads in tests/golden/ must load
forever.

::

    offset  size  meaning
    0       3     magic b"\\xa7SS" (0xA7 can start neither JSON nor UTF-8 text)
    3       1     format version, 1 or 2
    4       1     number of stages n (0..8)
    5       n     stage ids in the order they were applied (1 = zstd, 2 = AES-256-GCM)
    5 + n   ...   the payload: the JSON envelope after every stage

The two versions differ only in the associated data the AES-GCM stage binds (see
:mod:`session_store.codec.encryption`): version 1 joined header, namespace and key with NUL bytes,
which is ambiguous (``("acme", "evil\\0bob")`` and ``("acme\\0evil", "bob")`` bound the same
bytes); version 2 prefixes every field with its length. Encrypted payloads are written in
version 2; payloads without encryption are still written in version 1, byte for byte what the
previous release wrote and reads. Both versions are read.

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

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "READABLE_VERSIONS",
    "Header",
    "is_legacy",
    "pack_header",
    "parse_header",
]

MAGIC = b"\xa7SS"
#: The newest format version, written for encrypted payloads (length-prefixed associated data).
FORMAT_VERSION = 2
#: The version written for payloads without encryption (identical in both versions).
PLAIN_FORMAT_VERSION = 1
READABLE_VERSIONS = frozenset({1, 2})
#: The encryption stage id (session_store.codec.stages.STAGE_AESGCM; repeated to avoid a cycle).
_STAGE_AESGCM = 2
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
    version = FORMAT_VERSION if _STAGE_AESGCM in stages else PLAIN_FORMAT_VERSION
    return MAGIC + bytes((version, len(stages), *stages))


def is_legacy(data: bytes) -> bool:
    """Whether ``data`` is headerless legacy JSON (a bare object)."""
    return data.lstrip(_WHITESPACE)[:1] == b"{"


def parse_header(data: bytes, *, key: str | None = None) -> Header:
    """Parse the header of a version-1 or version-2 payload.

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
    if version not in READABLE_VERSIONS:
        raise UnknownSchemaVersionError(
            f"byte format version {version} is not one this code reads "
            f"({', '.join(map(str, sorted(READABLE_VERSIONS)))})",
            key=key,
        )
    if count > MAX_STAGES or len(data) < 5 + count:
        raise CorruptPayloadError("truncated or invalid stage list", key=key)
    return Header(version, tuple(data[5 : 5 + count]), 5 + count)
