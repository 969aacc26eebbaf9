"""The codec: schema object -> JSON envelope -> bytes -> stages, and back with migrations.

Save: the converter unstructures the object; the envelope ``{schema, version, data}`` is written
as strict JSON (:mod:`session_store.codec.jsonsafe`); compression and encryption stages run in
order; the header (:mod:`session_store.codec.format`) names the stages applied.

Load: the header says what to undo; the envelope names the schema and version; migrations
run oldest first up to the current version; the converter structures the data. Legacy bytes
(a bare JSON object) load as version 0 of ``legacy_schema``. Every failure is typed:
:class:`CorruptPayloadError` for bytes that do not decode, :class:`UnknownSchemaVersionError`
for a schema, version, stage or format this code does not know, :class:`SerializationError`
for an object that cannot be stored. The codec does no I/O, so sync and async stores share it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import attrs
from cattrs.preconf.orjson import OrjsonConverter

from session_store.codec import jsonsafe, legacyjson
from session_store.codec.converter import make_session_converter, reports_unchecked
from session_store.codec.encryption import AesGcmStage
from session_store.codec.format import (
    FORMAT_VERSION,
    UNBOUND_FORMAT_VERSION,
    is_legacy,
    parse_header,
)
from session_store.codec.pipeline import Pipeline, stage_name
from session_store.codec.snapshot import Snapshot, parse
from session_store.codec.stages import StageContext, ZstdStage
from session_store.codec.unstructure import unstructure_collecting
from session_store.errors import (
    ConfigurationError,
    CorruptPayloadError,
    SerializationError,
    SessionStoreError,
    UnknownSchemaVersionError,
)
from session_store.schema.registry import SchemaInfo, get_schema, schema_for_class

__all__ = ["Codec", "Decoded", "PayloadInfo", "Plain", "Snapshot"]


class Decoded(NamedTuple):
    """A loaded object with what it was stored as."""

    obj: Any
    schema: str
    stored_version: int
    stages: tuple[str, ...]


class Plain(NamedTuple):
    """A payload with its stages undone: the JSON body, whether it is headerless legacy JSON,
    and the names of the stages it was stored with.

    When no stage ran, ``body`` is a read-only view into the payload itself rather than a copy
    (what the decoded near cache keeps then costs no memory beyond the payload it compares).
    ``snapshot``, when the codec made this body, is where later parses of it are kept (a save
    fills it at once: :class:`Snapshot`); once it holds them, ``body`` may be empty."""

    legacy: bool
    body: bytes | memoryview
    stages: tuple[str, ...]
    snapshot: Snapshot | None = None


class PayloadInfo(NamedTuple):
    """What the header tells without decoding (no key needed)."""

    legacy: bool
    format_version: int
    stages: tuple[str, ...]
    size: int


class Codec:
    """Turns session objects into bytes and back.

    Args:
        converter: the cattrs converter (default: :func:`make_session_converter`).
        compression: a :class:`ZstdStage`, ``None`` to store uncompressed (default: zstd
            above 1 KiB).
        encryption: an :class:`AesGcmStage`, or ``None`` (default: from ``SESSION_STORE_KEYS``
            when set).
        namespace: bound into encryption, so a payload copied to another store fails.
            A store also binds its backend's key prefix (:meth:`bound_to`).
        legacy_schema: the schema headerless legacy JSON loads as (version 0).
        write_versions: ``{schema name: version}`` to keep writing an older version during a
            rolling deploy; the schema's ``downgrades`` produce it.
        allow_plaintext: with encryption configured, also read payloads that are not encrypted
            (legacy JSON, or a header without the aes-gcm stage), as ``session-store migrate``
            does to encrypt them. Off by default: an encrypted store refuses plaintext, which
            anyone able to write to the backend could have forged.
    """

    #: Whether the bytes are meant for readers outside session-store (the plan's JSON during
    #: a rolling deploy): a store then writes them exactly as encoded, never framed for speed.
    foreign_readers: ClassVar[bool] = False

    def __init__(
        self,
        *,
        converter: OrjsonConverter | None = None,
        compression: ZstdStage | bool | None = True,
        encryption: AesGcmStage | bool | None = True,
        namespace: str = "",
        legacy_schema: str = "dataroom",
        write_versions: Mapping[str, int] | None = None,
        allow_plaintext: bool = False,
    ) -> None:
        self.converter = converter or make_session_converter()
        self.compression = ZstdStage() if compression is True else compression or None
        self.encryption = AesGcmStage.from_env() if encryption is True else encryption or None
        self.namespace = namespace
        self.legacy_schema = legacy_schema
        self.write_versions = dict(write_versions or {})
        self.allow_plaintext = allow_plaintext
        #: the heads of the backend's stored keys bound into encryption (see bound_to)
        self.storage: tuple[str, ...] = ()
        self._write_storage: tuple[str, ...] = ()
        for name, version in self.write_versions.items():
            info = _require_schema(name)
            if not 0 < version <= info.version or any(
                v not in info.downgrades for v in range(version + 1, info.version + 1)
            ):
                raise ConfigurationError(
                    f"cannot write schema {name!r} at version {version}: no downgrade path "
                    f"from {info.version}"
                )
        self.pipeline = Pipeline([s for s in (self.compression, self.encryption) if s is not None])

    def bound_to(self, heads: tuple[str, ...]) -> Codec:
        """This codec, bound to the heads of a backend's stored keys (its key prefix and
        separator, :func:`session_store.keys.storage_heads`): a copy, this one unchanged.

        What it encrypts binds the head as well (byte format 3), so a ciphertext copied to
        another key prefix of the same database does not open there; that needs exactly one
        head (a single backend, or a chain whose shared tiers have the same prefix). With
        several (a chain whose tiers differ) it writes format 2, bound to no prefix, which every
        tier read alone opens, and reads format 3 bound to any of them. Formats 1 and 2 are
        read whatever the heads. A store binds its codec to its backend when it opens, and
        writes what it frames for a chain with :meth:`for_frames` (format 2)."""
        bound = copy.copy(self)
        bound.storage = tuple(heads)
        bound._write_storage = bound.storage if len(set(bound.storage)) == 1 else ()
        return bound

    @property
    def encrypted_format(self) -> int:
        """The byte format this codec writes encrypted payloads in: 3 bound to one key prefix,
        else 2."""
        return FORMAT_VERSION if self._write_storage else UNBOUND_FORMAT_VERSION

    def for_frames(self) -> Codec:
        """This codec as it encrypts what a store over one backend writes inside a chain's
        version frame: bound to no key prefix (format 2), since a chain takes a framed copy as
        newer and copies it to tiers whose prefixes may differ. ``self`` if it writes 2 anyway."""
        if not self._write_storage:
            return self
        unbound = copy.copy(self)
        unbound._write_storage = ()
        return unbound

    def __repr__(self) -> str:
        return (
            f"Codec(compression={self.compression!r}, encryption={self.encryption!r}, "
            f"legacy_schema={self.legacy_schema!r}"
            + (", allow_plaintext=True)" if self.allow_plaintext else ")")
        )

    # -- save ----------------------------------------------------------------------------------
    def schema_of(self, obj: Any) -> SchemaInfo:
        """The registered schema of ``obj`` (``dict`` objects use the ``dict`` schema)."""
        if type(obj) is dict:
            return _require_schema("dict")
        if not attrs.has(type(obj)):
            raise SerializationError(
                f"{type(obj).__qualname__} is neither a registered attrs schema class nor a dict"
            )
        try:
            return schema_for_class(type(obj))
        except ConfigurationError as exc:
            raise SerializationError(exc.message) from None

    def to_data(self, obj: Any, *, key: str | None = None) -> dict[str, Any]:
        """``obj`` as JSON-native data (what the envelope's ``data`` holds)."""
        if type(obj) is dict:
            return obj
        return self._unstructured((obj, None), key=key)

    def _unstructured(self, obj_hook: tuple[Any, Any], *, key: str | None) -> dict[str, Any]:
        """:meth:`to_data` of a typed ``obj`` through its unstructure ``hook`` (what
        ``converter.unstructure(obj)`` dispatches to: looked up here if ``None``; a save passes
        the one it found, so it looks it up once)."""
        obj, hook = obj_hook
        try:
            if hook is None:
                hook = self.converter.get_unstructure_hook(obj.__class__)
            data = hook(obj)
        except SessionStoreError as exc:
            exc.key = exc.key or key
            raise
        except Exception as exc:
            raise SerializationError(
                f"cannot unstructure {type(obj).__qualname__}: {type(exc).__name__}: {exc}",
                key=key,
            ) from None
        if not isinstance(data, dict):
            raise SerializationError("a session must unstructure to a JSON object", key=key)
        return data

    def encode(self, key: str, obj: Any) -> bytes:
        """Bytes for ``obj`` stored under ``key``."""
        return self._encode_plain(key, obj)[0]

    def encode_plain(self, key: str, obj: Any) -> tuple[bytes, Plain]:
        """Bytes for ``obj`` stored under ``key``, and the checked JSON body inside them (what
        :meth:`from_plain` reads back without undoing any stage: the decoded near cache keeps
        it, see :mod:`session_store.decoded`). A subclass that overrides :meth:`encode` (the
        rolling-deploy ``PlanJsonCodec``) keeps writing its own bytes: the body is then read
        back out of them."""
        if type(self).encode is not Codec.encode:
            payload = self.encode(key, obj)
            return payload, self.unwrap(key, payload)
        return self._encode_plain(key, obj)

    def _encode_plain(self, key: str, obj: Any) -> tuple[bytes, Plain]:
        info = self.schema_of(obj)
        if type(obj) is dict:  # walked whole below
            data, unchecked, reports = obj, None, False
        elif type(self).to_data is Codec.to_data:  # the hook found once, for both uses below
            hook = self.converter.get_unstructure_hook(type(obj))
            data, unchecked = unstructure_collecting(self._unstructured, (obj, hook), key)
            reports = reports_unchecked(hook)
        else:
            data, unchecked = unstructure_collecting(self.to_data, obj, key)
            reports = reports_unchecked(self.converter.get_unstructure_hook(type(obj)))
        version = self.write_versions.get(info.name, info.version)
        for v in range(info.version, version, -1):
            data = info.downgrades[v](data, key)
        # A typed session's leaves were checked by their declared types while unstructuring:
        # only the parts collected are walked. A dict session, or data a downgrade rewrote,
        # is walked whole.
        typed = reports and version == info.version
        # the check's msgpack of a whole envelope: the snapshot a load reads, not the JSON
        body, packed = jsonsafe.dumps_packed(
            {"schema": info.name, "version": version, "data": data},
            key=key,
            unchecked=unchecked if typed else None,
        )
        payload = self.pipeline.encode(body, self.namespace, key, self._write_storage)
        count = payload[4]  # the header pack_header wrote: magic, version, count, stage ids
        if not count:  # header + body: the body is a view of the payload, not a second copy
            view = memoryview(payload)[len(payload) - len(body) :]
            return payload, Plain(False, view, (), None if packed is None else Snapshot(packed))
        return payload, Plain(
            False, body, tuple(map(stage_name, payload[5 : 5 + count])), Snapshot(packed)
        )

    # -- load ----------------------------------------------------------------------------------
    def inspect(self, data: bytes, *, key: str | None = None) -> PayloadInfo:
        """The header of a payload, readable without any key."""
        if is_legacy(data):
            return PayloadInfo(True, 0, (), len(data))
        header = parse_header(data, key=key)
        names = tuple(map(stage_name, header.stages))
        return PayloadInfo(False, header.format_version, names, len(data))

    def decode(self, key: str, data: bytes, *, as_schema: SchemaInfo | None = None) -> Decoded:
        """The object stored as ``data`` under ``key``, migrated to the current version.

        Args:
            as_schema: the schema the caller wants. A plain ``dict`` session loads into a typed
                schema as that schema's legacy data (version 0); a typed session loads into
                the ``dict`` schema as its JSON data.
        """
        return self.from_plain(key, self.unwrap(key, data), as_schema=as_schema)

    def unwrap(self, key: str, data: bytes) -> Plain:
        """The JSON body inside ``data``: the header read, every stage undone (decryption
        bound to ``key`` and the namespace, decompression within its limits), and plaintext
        refused by an encrypted store. Nothing is parsed yet."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise CorruptPayloadError(f"payload must be bytes, got {type(data).__name__}", key=key)
        data = bytes(data)
        if is_legacy(data):
            self._refuse_plaintext(key, "legacy JSON (no header)")
            return Plain(True, data, ())
        header = parse_header(data, key=key)
        self.pipeline.check(header.stages, key)
        if not self.pipeline.is_encrypted(header.stages):
            self._refuse_plaintext(key, "a payload without the aes-gcm stage")
        if not header.stages:  # nothing to undo: a view of the body, not a copy
            return Plain(False, memoryview(data)[header.payload_offset :], ())
        ctx = StageContext(self.namespace, key, data[: header.payload_offset], self.storage)
        body = self.pipeline.decode(header.stages, data[header.payload_offset :], ctx)
        return Plain(False, body, tuple(map(stage_name, header.stages)), Snapshot())

    def from_plain(self, key: str, plain: Plain, *, as_schema: SchemaInfo | None = None) -> Decoded:
        """The object a body from :meth:`unwrap` or :meth:`encode_plain` holds: parsed,
        migrated to the current version, structured (see :meth:`decode`)."""
        if plain.legacy:
            info = _require_schema(self.legacy_schema)
            raw = parse(plain.body, plain.snapshot, key, legacyjson.loads_legacy)
            if not isinstance(raw, dict):
                raise CorruptPayloadError("legacy payload is not a JSON object", key=key)
            stored_name, version, body = info.name, 0, raw
        else:
            envelope = parse(plain.body, plain.snapshot, key, jsonsafe.loads)
            stored_name, version, body = _open_envelope(envelope, key)
        stage_names = plain.stages
        info = _require_schema(stored_name, key=key, unknown=UnknownSchemaVersionError)
        target = as_schema or info
        if target.name != info.name:
            if target.cls is dict:  # a typed session wanted as a plain dict
                obj = self._structure(info, self._migrate(info, version, body, key), key)
                return Decoded(self.to_data(obj, key=key), info.name, version, stage_names)
            if info.cls is dict:  # a plain dict adopted by a typed schema as its legacy shape
                info, version = target, 0
            else:
                raise UnknownSchemaVersionError(
                    f"session is stored as schema {info.name!r}, not {target.name!r}", key=key
                )
        body = self._migrate(info, version, body, key)
        return Decoded(self._structure(info, body, key), info.name, version, stage_names)

    def _refuse_plaintext(self, key: str, kind: str) -> None:
        """An encrypted store reads only encrypted payloads, unless ``allow_plaintext``."""
        if self.encryption is None or self.allow_plaintext:
            return
        raise CorruptPayloadError(
            f"this store is encrypted and refuses plaintext ({kind}); pass "
            "Codec(allow_plaintext=True) to read it (`session-store migrate --encrypt-plaintext` "
            "encrypts it, once, when switching a store to encryption)",
            key=key,
        )

    def _migrate(self, info: SchemaInfo, version: int, data: Any, key: str) -> Any:
        if version > info.version:
            raise UnknownSchemaVersionError(
                f"schema {info.name!r} version {version} is newer than this code "
                f"({info.version}); upgrade session-store or the schema's package",
                key=key,
            )
        if version < info.oldest:
            raise UnknownSchemaVersionError(
                f"schema {info.name!r} version {version} is older than any migration "
                f"(oldest readable: {info.oldest})",
                key=key,
            )
        for v in range(version, info.version):
            try:
                data = info.migrations[v](data, key)
            except SessionStoreError:
                raise
            except Exception as exc:
                raise CorruptPayloadError(
                    f"migration of schema {info.name!r} from v{v} to v{v + 1} failed: "
                    f"{type(exc).__name__}: {exc}",
                    key=key,
                ) from None
        return data

    def _structure(self, info: SchemaInfo, data: Any, key: str) -> Any:
        if info.cls is dict:
            if not isinstance(data, dict):
                raise CorruptPayloadError("a dict session must hold a JSON object", key=key)
            return data
        try:
            return self.converter.structure(data, info.cls)
        except Exception as exc:
            raise CorruptPayloadError(
                f"data does not fit schema {info.name!r}: {type(exc).__name__}: {exc}", key=key
            ) from None


def _require_schema(
    name: str, *, key: str | None = None, unknown: type[SessionStoreError] = ConfigurationError
) -> SchemaInfo:
    info = get_schema(name)
    if info is None:
        raise unknown(f"no schema named {name!r} is registered", key=key)
    return info


def _open_envelope(envelope: Any, key: str) -> tuple[str, int, Any]:
    if (
        not isinstance(envelope, dict)
        or not isinstance(envelope.get("schema"), str)
        or type(envelope.get("version")) is not int
        or "data" not in envelope
    ):
        raise CorruptPayloadError("payload is not a {schema, version, data} envelope", key=key)
    return envelope["schema"], envelope["version"], envelope["data"]
