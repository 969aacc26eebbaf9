"""The stored byte format, versions 1, 2 and 3. Stable: golden payloads in tests/golden/ must load
forever.

::

    offset  size  meaning
    0       3     magic b"\\xa7SS" (0xA7 can start neither JSON nor UTF-8 text)
    3       1     format version, 1, 2 or 3
    4       1     number of stages n (0..8)
    5       n     stage ids in the order they were applied (1 = zstd, 2 = AES-256-GCM)
    5 + n   ...   the payload: the JSON envelope after every stage

The versions differ only in the associated data the AES-GCM stage binds (see
:mod:`session_store.codec.encryption`): version 1 joined header, namespace and key with NUL bytes,
which is ambiguous (``("acme", "evil\\0bob")`` and ``("acme\\0evil", "bob")`` bound the same
bytes); version 2 prefixes every field with its length; version 3 also binds the head of the
backend's stored keys (its key prefix and separator), so a ciphertext copied to another prefix
of the same database does not open. Encrypted payloads are written in version 3 by a codec
bound to one head (every store over a backend with a key prefix), else in version 2; payloads
without encryption are still written in version 1, byte for byte what the previous release
wrote and reads. Every version is read.

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
    "UNBOUND_FORMAT_VERSION",
    "Header",
    "is_current_encryption",
    "is_legacy",
    "pack_header",
    "parse_header",
]

MAGIC = b"\xa7SS"
#: The newest format version: encrypted payloads bound to the backend's key prefix as well.
FORMAT_VERSION = 3
#: Encrypted payloads bound to no key prefix (length-prefixed associated data).
UNBOUND_FORMAT_VERSION = 2
#: The version written for payloads without encryption (identical in every version).
PLAIN_FORMAT_VERSION = 1
READABLE_VERSIONS = frozenset({1, 2, 3})


def is_current_encryption(version: int, written: int, *, framed: bool = False) -> bool:
    """Whether an encrypted payload of byte format ``version`` is current for a codec writing
    format ``written`` (``Codec.encrypted_format``), as ``session-store migrate`` and
    ``inspect`` judge it. Format 1 never is. A codec bound to one key prefix writes 3, and format
    2 is current too in a chain's frame in one tier read alone (``framed``): a store writes
    framed values in 2 (``Codec.for_frames``), which a chain may copy to tiers of other
    prefixes; rewriting them in 3 would loop. A codec bound to none, or to several (a chain
    whose tiers' prefixes differ, where a format-3 copy opens only in the tier whose prefix it
    binds), writes 2: only 2 is current."""
    return version == written or (framed and version == UNBOUND_FORMAT_VERSION)


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


def pack_header(stages: tuple[int, ...], *, bound: bool = False) -> bytes:
    """The header for a payload that went through ``stages`` in that order; ``bound``: its
    encryption binds the backend's key prefix (version 3)."""
    if _STAGE_AESGCM not in stages:
        version = PLAIN_FORMAT_VERSION
    else:
        version = FORMAT_VERSION if bound else UNBOUND_FORMAT_VERSION
    return MAGIC + bytes((version, len(stages), *stages))


def is_legacy(data: bytes) -> bool:
    """Whether ``data`` is headerless legacy JSON (a bare object)."""
    return data.lstrip(_WHITESPACE)[:1] == b"{"


def parse_header(data: bytes, *, key: str | None = None) -> Header:
    """Parse the header of a payload of any readable version.

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
