"""The decoded-object near cache: a warm ``load`` without a decode, and never a shared mutable.

:class:`SessionStore` asks its backend for the bytes as always; this cache then answers "have I
decoded exactly these bytes for this key before?". If so it returns that object without running
the codec; if not, the codec decodes and the result is remembered. Coherence is the backend's:
the cache is only ever consulted with the bytes the backend (or chain) just returned, so it can
never serve anything the backend would not have (same bytes -> same object; any other bytes ->
a decode).

**Isolation.** A caller may mutate what ``load`` returned (the data-room app does); that must
never change what another ``load`` returns or what is stored. The cache keeps a private
*snapshot* that it never hands out, and each hit returns a copy of it in which only what is
mutable is copied: containers and non-frozen objects are copied, strings, numbers, datetimes,
enums and tuples of them are shared. A snapshot that holds nothing mutable (a frozen attrs
class whose fields are all immutable: see docs/performance.md) is shared as it is, with no
copy at all; whether a snapshot is shareable is decided once, when it is stored.

**Bounds.** At most ``max_bytes`` of estimated size (the live objects, taken as twice the JSON
size, which is what CPython takes for session-shaped data, plus the payload kept to compare)
and ``max_entries`` entries, least recently used first. ``max_bytes=0`` turns the cache off.
"""

from __future__ import annotations

import enum
import keyword
import threading
import typing
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final

import attrs
import zstandard

from session_store import forksafe
from session_store.codec.format import MAGIC
from session_store.codec.stages import STAGE_AESGCM, STAGE_ZSTD

__all__ = ["DEFAULT_DECODED_BYTES", "DecodedCache", "snapshot_copy"]

#: Default bound on the estimated size of the decoded objects kept (64 MiB: about 500 of the
#: ~60 KB data-room sessions).
DEFAULT_DECODED_BYTES: Final = 64 * 1024 * 1024
#: Default bound on entries.
DEFAULT_DECODED_ENTRIES: Final = 10_000
#: Live objects per byte of JSON (measured: a ~54 KiB session is ~115 KiB of objects).
_LIVE_PER_JSON_BYTE: Final = 2
#: JSON bytes per stored byte when the size cannot be read from the payload (encrypted zstd).
_JSON_PER_COMPRESSED_BYTE: Final = 5

_IMMUTABLE: Final = frozenset(
    {str, int, float, bool, type(None), bytes, datetime, date, time, timedelta, Decimal, uuid.UUID}
)


# -- copies of what is mutable ----------------------------------------------------------------
def snapshot_copy(value: Any) -> Any:
    """A copy of ``value`` that shares every immutable part and copies every mutable one.

    JSON containers are copied level by level; attrs instances get a new instance with their
    fields copied the same way (through a generated function per class, without running
    ``__init__``); enum members, strings, numbers and datetimes are shared.
    """
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    if kind is dict:
        return {k: v if type(v) in _IMMUTABLE else snapshot_copy(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _IMMUTABLE else snapshot_copy(v) for v in value]
    copier = _COPIERS.get(kind)
    if copier is None:
        copier = _copier_for(kind)
    return copier(value)


def is_immutable(value: Any) -> bool:
    """Whether nothing reachable from ``value`` can be changed in place (then it may be shared)."""
    kind = type(value)
    if kind in _IMMUTABLE or isinstance(value, enum.Enum):
        return True
    if kind is tuple or kind is frozenset:
        return all(map(is_immutable, value))
    if attrs.has(kind) and _is_frozen(kind):
        return all(is_immutable(getattr(value, a.name)) for a in attrs.fields(kind))
    return False


def _is_frozen(cls: type) -> bool:
    """Whether instances of the attrs class ``cls`` refuse attribute assignment."""
    return getattr(cls.__setattr__, "__name__", "") == "_frozen_setattrs"


_COPIERS: dict[type, Callable[[Any], Any]] = {}


def _share(value: Any) -> Any:
    return value


def _copy_tuple(value: tuple[Any, ...]) -> tuple[Any, ...]:
    return value if is_immutable(value) else tuple(map(snapshot_copy, value))


def _copy_set(value: set[Any]) -> set[Any]:
    return set(value)  # set members are hashable, hence (for JSON-shaped data) immutable


def _copier_for(kind: type) -> Callable[[Any], Any]:
    """Build (once per type) the copy function for ``kind``."""
    copier: Callable[[Any], Any]
    if issubclass(kind, enum.Enum) or kind is frozenset:
        copier = _share
    elif kind is tuple:
        copier = _copy_tuple
    elif kind is set:
        copier = _copy_set
    elif attrs.has(kind) and "__slots__" in kind.__dict__:
        copier = _attrs_copier(kind)
    else:
        import copy

        copier = copy.deepcopy  # anything else a schema hook produced: the general, slow way
    _COPIERS[kind] = copier
    return copier


def _attrs_copier(cls: type) -> Callable[[Any], Any]:
    """A generated function: a new instance (no ``__init__``), each field copied as its
    declared type says (containers of known shapes inline, without a dispatch per item); a
    value that does not have its declared shape (a misfit kept from stored data) goes through
    :func:`snapshot_copy`."""
    names = [a.name for a in attrs.fields(cls)]
    if not all(name.isidentifier() and not keyword.iskeyword(name) for name in names):
        import copy

        return copy.deepcopy
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # unresolvable annotations: copy by the runtime types alone
        hints = {}
    namespace: dict[str, Any] = {
        "_cls": cls,
        "_new": object.__new__,
        "_set": object.__setattr__,
        "_imm": _IMMUTABLE,
        "_copy": snapshot_copy,
    }
    # no frozen fields, no on_setattr hooks: plain assignment
    plain = getattr(cls, "__setattr__", None) is object.__setattr__
    lines = ["def copy_instance(o):", "    n = _new(_cls)"]
    for index, name in enumerate(names):
        lines.append(f"    v = o.{name}")
        expr = _copy_expression(hints.get(name, Any), index, namespace)
        if plain:
            lines.append(f"    n.{name} = {expr}")
        else:
            lines.append(f"    _set(n, {name!r}, {expr})")
    lines.append("    return n")
    source = "\n".join(lines)
    # Only checked identifiers and repr()s of them in the source; values come from namespace.
    exec(compile(source, f"<session_store copy {cls.__qualname__}>", "exec"), namespace)  # noqa: S102
    copier: Callable[[Any], Any] = namespace["copy_instance"]
    return copier


def _copy_expression(declared: Any, index: int, namespace: dict[str, Any]) -> str:
    """Source copying the field value ``v`` of declared type ``declared``."""
    fallback = "v if type(v) in _imm else _copy(v)"
    origin, args = typing.get_origin(declared), typing.get_args(declared)
    if isinstance(declared, type) and issubclass(declared, enum.Enum):
        namespace[f"_e{index}"] = declared
        return f"v if type(v) is _e{index} else ({fallback})"
    item = args[-1] if args else Any
    if (origin is dict and args and args[0] is str) or origin is list:
        loop = "for k, x in v.items()" if origin is dict else "for x in v"
        head = "{k: " if origin is dict else "["
        tail = "}" if origin is dict else "]"
        kind = "dict" if origin is dict else "list"
        if attrs.has(item) and "__slots__" in item.__dict__:
            namespace[f"_t{index}"] = item
            namespace[f"_c{index}"] = _COPIERS.get(item) or _copier_for(item)
            each = f"_c{index}(x) if type(x) is _t{index} else _copy(x)"
        else:
            each = "x if type(x) in _imm else _copy(x)"
        return f"{head}{each} {loop}{tail} if type(v) is {kind} else _copy(v)"
    return fallback


# -- sizes --------------------------------------------------------------------------------------
def estimated_size(data: bytes) -> int:
    """Estimated bytes of the live objects ``data`` decodes to, read from the payload's header
    (the zstd frame records its content size) without decoding it."""
    json_size = len(data)
    if data[:3] == MAGIC and len(data) >= 5:
        offset = 5 + data[4]
        stages = data[5:offset]
        json_size = len(data) - offset
        if STAGE_ZSTD in stages:
            size = -1
            if STAGE_AESGCM not in stages:
                try:
                    size = zstandard.frame_content_size(data[offset:])
                except zstandard.ZstdError:
                    size = -1
            json_size = size if size > 0 else len(data) * _JSON_PER_COMPRESSED_BYTE
    return json_size * _LIVE_PER_JSON_BYTE


# -- the cache ----------------------------------------------------------------------------------
class DecodedCache:
    """Decoded sessions keyed by session key, valid for exactly the bytes they came from.

    Args:
        max_bytes: bound on the estimated size of the objects kept; 0 turns the cache off.
        max_entries: bound on entries.
    """

    def __init__(
        self, max_bytes: int = DEFAULT_DECODED_BYTES, max_entries: int = DEFAULT_DECODED_ENTRIES
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        # key -> (payload, snapshot, shareable, cost)
        self._entries: OrderedDict[str, tuple[bytes, Any, bool, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        forksafe.register(self)

    def _reset_locks(self) -> None:
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        """Estimated bytes of the objects held."""
        return self._bytes

    @property
    def entry_count(self) -> int:
        """Entries held."""
        return len(self._entries)

    def load(self, key: str, data: bytes, decode: Callable[[str, bytes], Any]) -> Any:
        """The object ``data`` decodes to for ``key``: from the cache if these very bytes were
        decoded (or saved) before, else ``decode(key, data)``, remembered. Either way, the
        caller gets an object no other caller holds (or one that cannot be changed)."""
        if self.max_bytes <= 0:
            return decode(key, data)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (entry[0] is data or entry[0] == data):
                self._entries.move_to_end(key)
                self.hits += 1
                snapshot, shareable = entry[1], entry[2]
            else:
                self.misses += 1
                snapshot = None
        if snapshot is not None:
            return snapshot if shareable else snapshot_copy(snapshot)
        obj = decode(key, data)
        self.put(key, data, obj)
        return obj

    def put(self, key: str, data: bytes, obj: Any) -> None:
        """Remember that ``data`` decodes to ``obj`` (a private copy of it is kept, so the
        caller may go on changing ``obj``)."""
        if self.max_bytes <= 0:
            return
        cost = estimated_size(data) + len(data)  # the objects, and the bytes kept to compare
        if cost > self.max_bytes:
            self.discard(key)
            return
        shareable = is_immutable(obj)
        snapshot = obj if shareable else snapshot_copy(obj)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[3]
            self._entries[key] = (data, snapshot, shareable, cost)
            self._bytes += cost
            while self._bytes > self.max_bytes or len(self._entries) > self.max_entries:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped[3]

    def discard(self, key: str) -> None:
        """Forget ``key`` (after a delete: nothing would serve it, but it frees the memory)."""
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[3]

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __repr__(self) -> str:
        return (
            f"DecodedCache(entries={len(self._entries)}, size_bytes={self._bytes}, "
            f"max_bytes={self.max_bytes})"
        )
