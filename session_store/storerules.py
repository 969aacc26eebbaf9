"""The I/O-free rules of a session store, shared by :class:`~session_store.store.SessionStore` and
:class:`~session_store.aio.AsyncSessionStore` so that the sync and async paths cannot drift.

What lives here decides, and never waits: which schema a store holds and what it refuses, how an
object becomes bytes and back (the codec, reading a chain's version frames through), the
``last_accessed`` stamp that writes put on, the TTL a write or a touch uses, and the pause
between two attempts of a conflicted ``update``. Reads never write. The two stores add only
the calls to their backend (blocking or awaited) around these.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import attrs

from session_store.backend import VersionToken
from session_store.codec import Codec, Plain, ZstdStage
from session_store.codec.evolve import replacer
from session_store.decoded import DEFAULT_DECODED_BYTES, DecodedCache, plain_copy
from session_store.errors import ConfigurationError, ConflictError, SerializationError
from session_store.keys import storage_heads, validate_key
from session_store.ownttl import keeps_own_ttl, records
from session_store.schema.registry import SchemaInfo, get_schema, schema_for_class
from session_store.stamps import clock, frame, session_bytes, version_of
from session_store.stamps import sessions_among as live_sessions
from session_store.tiercompression import default_compression
from session_store.ttl import DEFAULT_SESSION_TTL, normalize_ttl, store_ttl

__all__ = [
    "ACCESS_FIELD",
    "LISTING_BATCH",
    "StoreRules",
    "UpdateCall",
    "backoff_pause",
    "default_compression",
    "live_sessions",
]

T = TypeVar("T")
#: A call :meth:`StoreRules._update_steps` asks its store to make (or await): a function and
#: its arguments; ``(None, result)`` at the end.
UpdateCall = tuple[Callable[..., Any] | None, Any]
B = TypeVar("B", bound="_Backend")

#: The field every write stamps (reads never write it).
ACCESS_FIELD = "last_accessed"
#: Whether a class is an attrs class, by class (:meth:`StoreRules._stamp`).
_ATTRS_CLASSES: dict[type, bool] = {}
_DICT: SchemaInfo = get_schema("dict")  # type: ignore[assignment]  # a plain dict's schema
#: ``Plain.stages`` of a kept payload that only the codec's own ``decode`` may read.
_WHOLE: tuple[str, ...] = ("(the whole payload)",)


class _Backend(Protocol):
    """What the rules read of a store's backend, sync or async."""

    def describe(self) -> str: ...
    def token_for(self, value: bytes) -> VersionToken | None: ...


class StoreRules(Generic[T, B]):
    """Schema, codec, stamping and TTL rules of a store, and its construction; no backend
    calls. The arguments are the stores' own, documented on
    :class:`~session_store.store.SessionStore`; a store brings how a URL opens its backend
    (:meth:`_open`).
    """

    #: The store's name in its ``repr``.
    _KIND: ClassVar[str]

    schema: type[T] | None
    codec: Codec
    ttl: float
    access_interval: float | None
    touch_on_load: bool
    update_timeout: float
    _info: SchemaInfo | None
    _decoded: DecodedCache  # each store's near cache of decoded sessions

    def __init__(
        self,
        backend: B | str,
        schema: type[T] | None = None,
        *,
        ttl: float | None = DEFAULT_SESSION_TTL,
        codec: Codec | None = None,
        legacy_schema: str | None = None,
        namespace: str = "",
        access_interval: float | None = None,
        touch_on_load: bool = False,
        update_timeout: float = 10.0,
        decoded_cache_bytes: int = DEFAULT_DECODED_BYTES,
        compression: ZstdStage | bool | None = None,
    ) -> None:
        if codec is not None and compression is not None:
            raise ConfigurationError(
                "pass compression= or codec=, not both: a codec is used as it is "
                "(Codec(compression=...) sets its own)"
            )
        self._owns_backend = isinstance(backend, str)
        self.backend: B = self._open(backend) if isinstance(backend, str) else backend
        self.schema = schema
        self._info = None
        if schema is not None:
            self._info = get_schema("dict") if schema is dict else schema_for_class(schema)
        self.ttl = store_ttl(ttl)
        if legacy_schema is None:
            legacy_schema = "dict" if schema is dict else "dataroom"
        if compression is None:
            compression = default_compression(
                self._compression_tier(), near_cache=decoded_cache_bytes > 0
            )
        elif compression is False:  # never written, still read: what other stores wrote
            compression = ZstdStage.read_only()
        chosen = codec or Codec(
            legacy_schema=legacy_schema, namespace=namespace, compression=compression
        )
        heads = storage_heads(self.backend)  # encryption binds the backend's key prefix too
        self.codec = chosen.bound_to(heads) if heads and not chosen.storage else chosen
        self.access_interval = access_interval  # accepted for older callers; reads never write
        self.touch_on_load = touch_on_load
        self.update_timeout = update_timeout
        self._decoded = DecodedCache(decoded_cache_bytes)  # see session_store.decoded
        self._frames_of: Codec | None = None  # the codec _frames_codec was made from
        self._frames_codec = self.codec
        self._plan_of: object = None  # the backend _versions and _token_for are of
        self._versions = False
        self._token_for: Callable[[bytes], VersionToken | None] = _no_token

    def _open(self, url: str) -> B:
        """The backend a URL names (the store then owns it: closing the store closes it)."""
        raise NotImplementedError

    def _compression_tier(self) -> object:
        """What :func:`default_compression` decides by: the backend."""
        return self.backend

    def __repr__(self) -> str:
        name = self.schema.__qualname__ if self.schema else "any"
        return f"{self._KIND}[{name}]({self.backend.describe()})"

    # -- objects <-> bytes ---------------------------------------------------------------------
    def _decode(self, key: str, data: bytes) -> T:
        obj: T = self.codec.decode(key, data, as_schema=self._info).obj
        return obj

    def _decode_plain(self, key: str, data: bytes) -> tuple[T, Plain]:
        """:meth:`_decode`, with what the near cache keeps to rebuild the object: the JSON body
        it was parsed from, or (a codec whose ``decode`` is its own) the payload itself."""
        if not self._codec_splits():
            return self._decode(key, data), Plain(False, data, _WHOLE)
        plain = self.codec.unwrap(key, data)
        return self._rebuild(key, plain), plain

    def _rebuild(self, key: str, plain: Plain) -> T:
        """The session a kept body holds (no stage left to undo), or a kept payload decodes to."""
        if plain.stages is _WHOLE:
            return self._decode(key, bytes(plain.body))  # the payload (bytes: not copied)
        obj: T = self.codec.from_plain(key, plain, as_schema=self._info).obj
        return obj

    def _codec_splits(self) -> bool:
        """Whether the codec decodes through ``unwrap`` + ``from_plain`` (it does unless a
        subclass replaced ``decode``, whose result a rebuild from the body might not match)."""
        return type(self.codec).decode is Codec.decode

    def _decode_stored(self, key: str, data: bytes | None) -> T | None:
        """The session in bytes a backend returned: ``None`` for absent or a chain's tombstone
        (read through one tier), else the decoded payload inside the chain's version frame."""
        if data is None:
            return None
        payload = session_bytes(data)
        return None if payload is None else self._decode(key, payload)

    def _cached_decode(self, key: str, data: bytes | None) -> T | None:
        """The session in bytes the backend returned (``None``: absent, or a tombstone) through
        the near cache (:mod:`session_store.decoded`): a mutable session is always an object of
        the caller's own. Keyed by the bytes as stored, frame and all, so that an ``update``
        can compare-and-set against them without reading (:meth:`_known_write`)."""
        if data is None:
            return None
        payload = session_bytes(data)
        if payload is None:
            return None
        decode = self._decode_plain if payload is data else self._decode_framed
        obj: T = self._decoded.load(key, data, decode, self._rebuild)
        return obj

    def _decode_framed(self, key: str, data: bytes) -> tuple[T, Plain]:
        """:meth:`_decode_plain` of the payload inside a frame (own TTL, or chain version)."""
        payload = session_bytes(data)
        assert payload is not None  # a tombstone is never decoded (see _cached_decode)
        return self._decode_plain(key, payload)

    def _update_plan(self, ttl: float | None) -> tuple[float | None, bool, bool]:
        """(write TTL, framed?, :func:`checks_versions`) of an update; asked once per backend."""
        write_ttl = self._ttl(ttl)
        backend = self.backend
        if self._plan_of is not backend:
            self._versions = checks_versions(backend)
            self._token_for = backend.token_for
            self._plan_of = backend
        versions = self._versions
        framed = not self.codec.foreign_readers and (versions or self._records(write_ttl))
        return write_ttl, framed, versions

    def _known_write(
        self, key: str, fn: Callable[[T | None], T | None], plan: tuple[float | None, bool, bool]
    ) -> tuple[bytes, VersionToken, T, Plain] | None:
        """An ``update``'s first try (one round trip when nobody else wrote meanwhile): the
        payload of ``fn`` of what this store last wrote or read for ``key``, the token of those
        bytes, what is stored then and its body; ``None`` when it cannot be tried, or ``fn``
        writes nothing or fails on what may be an old copy (``update`` then reads and runs ``fn``
        again: nothing is decided, returned or raised from an old copy)."""
        known = self._decoded.payload(key)
        if known is None:
            return None
        token = self._token_for(known)
        if token is None:
            return None
        write_ttl, framed, versions = plan
        try:
            new = fn(self._cached_decode(key, known))
            if new is None:
                return None  # what is stored is returned only once it has been read
            self._check_schema(key, new)
            stamped = self._stamp(new)
            payload, plain = self._encode_plain(key, stamped, framed)
        except Exception:  # decided on a copy that may be old: read, and run fn again
            return None
        return self._update_payload(payload, write_ttl, known, versions), token, stamped, plain

    def _update_steps(
        self,
        key: str,
        fn: Callable[[T | None], T | None],
        plan: tuple[float | None, bool, bool],
        calls: Any,
        pause: Callable[[int, float], Any],
    ) -> Generator[UpdateCall, Any, None]:
        """``update`` after its first try (:meth:`_known_write`) could not be made or lost, for
        both stores: yields each call (``calls.get_versioned``, ``calls.set_if``, ``pause``:
        :func:`backoff_pause`) with its arguments, which the sync store makes and the async
        store awaits, and receives their result; last ``(None, what update returns)`` (no
        ``StopIteration``). Read, ``fn``, compare-and-set until one wins or the timeout."""
        write_ttl, framed, versions = plan
        deadline = time.monotonic() + self.update_timeout
        attempt = 0
        while True:
            read = yield calls.get_versioned, (key,)
            # through the near cache: an update of what this store just wrote or read undoes no
            # stage, and ``fn`` still gets an object nobody else holds (issue 17)
            current = None if read is None else self._cached_decode(key, read.value)
            new = fn(current)
            if new is None:  # what is stored, not what fn may have changed in its copy
                yield None, None if read is None else self._cached_decode(key, read.value)
                return
            self._check_schema(key, new)
            stamped = self._stamp(new)
            payload, plain = self._encode_plain(key, stamped, framed)
            replaced = None if read is None else read.value
            payload = self._update_payload(payload, write_ttl, replaced, versions)
            token = None if read is None else read.token
            if (yield calls.set_if, (key, payload, token, write_ttl)):
                self._put_updated(key, payload, stamped, plain)
                yield None, stamped
                return
            attempt += 1
            if time.monotonic() >= deadline:
                raise self._conflict(key, attempt, self.backend.describe())
            yield pause, (attempt, deadline)

    def _put_updated(self, key: str, payload: bytes, stamped: T, plain: Plain) -> None:
        """``put_saved`` after an ``update``, with a spare (:mod:`session_store.decoded`) if a copy
        is what the bytes decode to: a ``dict`` read as one, all strictly packed, no downgrade."""
        packed = plain.snapshot is not None and plain.snapshot.packed is not None
        exact = packed and type(stamped) is dict and (self._info or _DICT).cls is dict
        exact = exact and self.codec.write_versions.get("dict", _DICT.version) == _DICT.version
        spare = plain_copy if exact else None
        self._decoded.put_saved(key, payload, stamped, plain, self._rebuild, spare)

    def _check_schema(self, key: str, obj: T) -> None:
        """Refuse an object of another schema than the store's (a dict store is for dicts)."""
        info = self._info
        if info is None or type(obj) is info.cls:  # the store's own class: its own schema
            return
        if self.codec.schema_of(obj).name != info.name:
            raise SerializationError(
                f"this store holds {info.name!r} sessions, got {type(obj).__qualname__}",
                key=key,
            )

    def _stamp(self, obj: T) -> T:
        """A copy of ``obj`` with ``last_accessed`` now (``attrs.evolve``, or its generated
        equivalent: :func:`~session_store.codec.evolve.replacer`); other objects as they are."""
        kind: type = type(obj)
        is_attrs = _ATTRS_CLASSES.get(kind)
        if is_attrs is None:  # attrs.has() once per class: two calls on every write otherwise
            if len(_ATTRS_CLASSES) > 256:  # (a few session classes; classes made on the fly)
                _ATTRS_CLASSES.clear()
            is_attrs = _ATTRS_CLASSES[kind] = attrs.has(kind)
        if is_attrs and hasattr(obj, ACCESS_FIELD):
            stamped: T = replacer(kind, ACCESS_FIELD)(obj, datetime.now(UTC))
            return stamped
        return obj

    def _prepare_plain(self, key: str, obj: T, framed: bool = False) -> tuple[T, bytes, Plain]:
        """Check ``key`` and ``obj``, stamp it, encode it: what a write stores, before any I/O,
        with the checked JSON body inside the payload (for the near cache)."""
        validate_key(key)
        self._check_schema(key, obj)
        stamped = self._stamp(obj)
        payload, plain = self._encode_plain(key, stamped, framed)
        return stamped, payload, plain

    def _encode_plain(self, key: str, stamped: T, framed: bool = False) -> tuple[bytes, Plain]:
        """The payload for an already stamped object, and what the near cache keeps for it;
        ``framed`` (stored in a chain's frame, which a chain copies to tiers of other prefixes):
        encrypted bound to no key prefix (:meth:`Codec.for_frames`, made once per codec)."""
        codec = self.codec
        if framed:
            if self._frames_of is not codec:
                self._frames_of, self._frames_codec = codec, codec.for_frames()
            codec = self._frames_codec
        payload, plain = codec.encode_plain(key, stamped)
        return payload, plain if self._codec_splits() else Plain(False, payload, _WHOLE)

    def _ttl(self, ttl: float | None) -> float | None:
        return normalize_ttl(ttl) if ttl is not None else self.ttl

    def _records(self, write_ttl: float | None) -> bool:
        """Whether a write with ``write_ttl`` (from :meth:`_ttl`) is stored framed with it
        (:func:`session_store.ownttl.records`); never for a codec whose bytes other programs read
        (``Codec.foreign_readers``: its TTL sets the expiry, ``touch`` slides by the store's)."""
        if write_ttl == self.ttl or self.codec.foreign_readers:  # decided without a call
            return False
        return records(write_ttl, self.ttl, self.backend)

    def _recorded(self, payload: bytes, write_ttl: float | None) -> bytes:
        """What a write with ``write_ttl`` stores for ``payload``: framed if :meth:`_records`."""
        return frame(payload, clock.now(), write_ttl) if self._records(write_ttl) else payload

    def _prepare_recorded(self, key: str, obj: T, ttl: float | None) -> tuple[T, bytes, Plain]:
        """:meth:`_prepare_plain` and :meth:`_recorded` of a write with ``ttl`` (from
        :meth:`_ttl`), the payload encoded for the frame it is stored in (:meth:`_encode_plain`)."""
        framed = self._records(ttl)
        stamped, payload, plain = self._prepare_plain(key, obj, framed)
        return stamped, frame(payload, clock.now(), ttl) if framed else payload, plain

    def _update_payload(
        self, payload: bytes, write_ttl: float | None, replaced: bytes | None, versions: bool
    ) -> bytes:
        """What an ``update`` replacing ``replaced`` stores for ``payload``: if ``versions``
        (:func:`checks_versions`), framed with a newer version (and the TTL if not the store's):
        the next ``update`` compares a few bytes; else :meth:`_recorded`."""
        if self.codec.foreign_readers or not versions:
            return self._recorded(payload, write_ttl)
        if replaced is not None:
            clock.observe(version_of(replaced))  # a write after a read is newer (stamps)
        return frame(payload, clock.now(), None if write_ttl == self.ttl else write_ttl)

    # -- update --------------------------------------------------------------------------------
    def _conflict(self, key: str, attempt: int, backend: str) -> ConflictError:
        return ConflictError(
            f"update lost {attempt} races in {self.update_timeout:g} s; nothing written",
            key=key,
            backend=backend,
        )


def checks_versions(backend: object) -> bool:
    """Whether ``backend``'s compare-and-set of a framed value (:mod:`session_store.stamps`)
    checks the frame's version and not the payload (``checks_versions`` set: Redis, whose
    script then compares a few dozen bytes instead of the whole session), also as the sync
    backend an async wrapper runs; never a chain, which frames its writes itself."""
    inner = getattr(backend, "sync", None)
    return bool(
        getattr(backend, "checks_versions", False) or getattr(inner, "checks_versions", False)
    ) and not keeps_own_ttl(backend)


def _no_token(value: bytes) -> VersionToken | None:  # (_token_for before the first update)
    return None


def backoff_pause(attempt: int, deadline: float) -> float:
    """Seconds to wait before attempt ``attempt + 1``: exponential backoff with full jitter,
    never past the ``time.monotonic()`` deadline."""
    cap = min(0.001 * 2 ** min(attempt, 10), 0.25)
    pause = random.uniform(0, cap)
    return max(0.0, min(pause, deadline - time.monotonic()))


#: Keys a store's listing reads per ``get_many`` to leave out the keys holding no session.
LISTING_BATCH = 100
