"""The decoded-object near cache: a warm ``load`` without undoing any stage, and never a shared
mutable.

:class:`SessionStore` asks its backend for the bytes as always; this cache then answers "have I
seen exactly these bytes for this key before?". If so the load skips the header, decryption,
decompression and its limits; if not, the codec decodes and the result is remembered. Coherence
is the backend's: the cache is only ever consulted with the bytes the backend (or chain) just
returned, so it can never serve anything the backend would not have (same bytes -> same
session; any other bytes -> a decode).

**Isolation.** A caller may mutate what ``load`` returned (the data-room app does); that must
never change what another ``load`` returns or what is stored. A session in which nothing can
change (a frozen, slotted attrs class holding nothing but its fields, all immutable: no
``cached_property``; see docs/performance.md) is kept and shared as it is: a hit costs a
dictionary lookup and a comparison of the bytes. After a write, the object shared is the one
structured once from the body written (:meth:`DecodedCache.put_saved`), never the caller's own:
a datetime written in UTC or a tuple written as an array reads back as any cold load of those
bytes would (same bytes -> same session). Any other
session is kept as its checked JSON body, and a hit parses a new object from it (orjson and
the generated structure functions). The body kept is the one the codec wrote on ``save`` or
found inside the payload on a miss, so it is exactly what these bytes decode to. A body this
store has just written comes with its msgpack snapshot (the strict check's bytes), so the load
after a save and an ``update``'s rebuild read that with ``unpackb`` instead of parsing the JSON;
a body read, once a copy of its own (a stage was undone), gets one from its second parse on
(:mod:`session_store.codec.snapshot`). Either way the snapshot replaces the body here on the
first hit that reads it.

**Master copies (issue 17).** On the second hit of the same bytes, the object just rebuilt is
copied once into a *master* that no caller ever holds (so it never changes), and from then on
each hit returns :func:`~session_store.codec.clone.clone` of it: a new ``dict``, ``list`` or
attrs instance for every container, every immutable leaf shared, guided by a blueprint of the
master's shape read once (no leaf is looked at again). A clone calls nothing of the class, so
only classes whose ``__init__`` does nothing but assign qualify; anything else (validators,
``__attrs_post_init__``, a user-written ``__init__``, a ``dict`` subclass, a ``set``, ...)
keeps its body and is rebuilt through the structure path on every hit, as a cold load is (see
:mod:`session_store.codec.clone`). Read once per write (load, change, save), a session never
gets a master: the blueprint is only made for bytes read a second time. A write of the very
bytes an entry holds (a session saved unchanged) keeps the entry, master and all.

**Spares (issue 17).** An ``update`` of a plain ``dict`` session leaves, with the body it
wrote, a *spare*: :func:`plain_copy` of the object written (new containers, the very ``str``
objects written shared: their UTF-8 is already made, so the next write's encode does not make
it again), which the next hit of those bytes takes and returns instead of a rebuild (one hit
only: it is then the caller's). The next ``update``'s ``fn`` so starts from a copy, not an
``unpackb`` of the snapshot and a new encoding of every non-ASCII string. Only when the body's
snapshot was made (the whole envelope passed the strict check: nothing but ``dict``, ``list``,
``tuple``, ``str``, ``int``, ``float``, ``bool`` and ``None``), so that the copy, with each
``tuple`` made a ``list``, is what the bytes decode to.

**Bounds.** At most ``max_bytes`` of estimated size (a body counts its length, nothing when it
is a view of the payload, and a snapshot its msgpack bytes; a shared object or a master twice
its JSON size, which is what CPython takes for session-shaped data; plus the payload kept to
compare) and ``max_entries`` entries, least recently used first.
``max_bytes=0`` turns the cache off.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

import zstandard

from session_store import forksafe
from session_store.codec.clone import blueprint, clone, is_immutable
from session_store.codec.codec import Plain
from session_store.codec.format import MAGIC
from session_store.codec.stages import STAGE_AESGCM, STAGE_ZSTD

__all__ = ["DEFAULT_DECODED_BYTES", "DecodedCache", "is_immutable"]

#: Default bound on the estimated size of the decoded objects kept (64 MiB: about 500 of the
#: ~60 KB data-room sessions).
DEFAULT_DECODED_BYTES: Final = 64 * 1024 * 1024
#: Default bound on entries.
DEFAULT_DECODED_ENTRIES: Final = 10_000
#: Live objects per byte of JSON (measured: a ~54 KiB session is ~115 KiB of objects).
_LIVE_PER_JSON_BYTE: Final = 2
#: JSON bytes per stored byte when the size cannot be read from the payload (encrypted zstd).
_JSON_PER_COMPRESSED_BYTE: Final = 5


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


def _kept_size(plain: Plain, data: bytes) -> int:
    """Bytes an entry keeps for ``plain`` beyond ``data``: the body (nothing when it is a view
    of ``data``, a payload stored with no stage) and the snapshot's msgpack bytes."""
    body = plain.body
    viewed = isinstance(body, memoryview) and body.obj is data
    snapshot = plain.snapshot
    packed = 0 if snapshot is None or snapshot.packed is None else len(snapshot.packed)
    return (0 if viewed else len(body)) + packed


def _spare_cost(entry: _Entry) -> int:
    """What an entry's spare, if it holds one, counts in the bound."""
    return 0 if entry.spare is None else entry.spare[1]


# -- the cache ----------------------------------------------------------------------------------
#: What a hit rebuilds a mutable session from: the checked JSON body (no stage left to undo).
Rebuild = Callable[[str, Plain], Any]
#: What a miss runs: the full decode, returning the object and the body it was parsed from.
Decode = Callable[[str, bytes], tuple[Any, Plain]]


#: What an entry keeps: the body to rebuild from, the shared object, or a master to clone.
_BODY, _SHARED, _MASTER = 0, 1, 2
#: Hits of one entry rebuilt from its body before a master copy is made for it (the second
#: hit): a session read once after each write (a web request's load, change, save) never pays
#: for the master's blueprint (a walk of every leaf, once).
HITS_BEFORE_MASTER: Final = 2
#: ``Entry.hits`` once a blueprint was refused (or would not fit): the body is kept for good.
_NO_MASTER: Final = -(2**62)
#: What :func:`plain_copy` copies (anything else in a checked body is an immutable leaf).
_CONTAINERS: Final = (dict, list, tuple)


def plain_copy(value: Any) -> Any:
    """A copy of the ``dict`` or ``list`` ``value`` of plain JSON types sharing no container
    with it, each ``tuple`` made a ``list`` (as its bytes decode), every leaf shared."""
    if type(value) is dict:
        copy = value.copy()
        for key, item in copy.items():  # (replacing a value keeps the dict's size)
            if type(item) in _CONTAINERS:
                copy[key] = plain_copy(item)
        return copy
    items = list(value)
    for at, item in enumerate(items):
        if type(item) in _CONTAINERS:
            items[at] = plain_copy(item)
    return items


class _Entry:
    """One key's entry: the bytes it is valid for, what it keeps, and its estimated cost."""

    __slots__ = ("cost", "data", "hits", "kept", "kind", "spare")

    def __init__(self, data: bytes, kept: Any, kind: int, cost: int) -> None:
        self.data = data
        self.kept = kept
        self.kind = kind
        self.cost = cost
        self.hits = 0
        #: (a copy of the object written, for the next hit alone; its estimated cost)
        self.spare: tuple[Any, int] | None = None


class DecodedCache:
    """Decoded sessions keyed by session key, valid for exactly the bytes they came from.

    An entry holds the payload it is valid for, and one of: the decoded object itself (when
    nothing in it can change: shared by every hit); the payload's JSON body with every stage
    already undone (decrypted, decompressed, within its limits), from which a hit parses a
    new object of its own; or, once a mutable session has been hit twice, a master copy that
    no caller ever holds, of which each hit gets a copy of its own
    (:func:`~session_store.codec.clone.clone`: new containers, shared immutable leaves).

    Args:
        max_bytes: bound on the estimated size of what is kept; 0 turns the cache off.
        max_entries: bound on entries.
    """

    def __init__(
        self, max_bytes: int = DEFAULT_DECODED_BYTES, max_entries: int = DEFAULT_DECODED_ENTRIES
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        #: Hits of one entry before its master copy is made (a benchmark sets it out of reach
        #: to measure the rebuild from the body alone).
        self.hits_before_master = HITS_BEFORE_MASTER
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        forksafe.register(self)

    def _reset_locks(self) -> None:
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        """Estimated bytes of what is held."""
        return self._bytes

    @property
    def entry_count(self) -> int:
        """Entries held."""
        return len(self._entries)

    def load(self, key: str, data: bytes, decode: Decode, rebuild: Rebuild) -> Any:
        """The object ``data`` decodes to for ``key``: if these very bytes were decoded (or
        saved) before, the shared immutable object, a copy of the master, or ``rebuild`` of
        the kept body, without undoing any stage; else ``decode(key, data)``, remembered.
        Either way, the caller gets an object no other caller holds (or one that cannot be
        changed)."""
        if self.max_bytes <= 0:
            return decode(key, data)[0]
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (entry.data is data or entry.data == data):
                self._entries.move_to_end(key)
                self.hits += 1
                spare = entry.spare
                if spare is not None:  # taken: the caller's from now on
                    entry.spare = None
                    self._bytes -= spare[1]
                    entry.cost -= spare[1]
                    return spare[0]
                entry.hits += 1
                kept, kind, hits = entry.kept, entry.kind, entry.hits
            else:
                self.misses += 1
                kept = None
        if kept is not None:
            if kind == _SHARED:
                return kept
            if kind == _MASTER:
                return clone(*kept)
            obj = rebuild(key, kept)
            if hits >= self.hits_before_master:
                self._make_master(key, kept, obj)
            elif (
                kept.body
                and kept.snapshot is not None
                and kept.snapshot.packed is not None
                and not isinstance(kept.body, memoryview)  # a view of the payload: keep it
            ):
                self._drop_body(key, kept)
            return obj
        obj, plain = decode(key, data)
        self.put(key, data, obj, plain)
        return obj

    def _make_master(self, key: str, kept: Plain, obj: Any) -> None:
        """Keep a copy of ``obj`` (just rebuilt from ``kept``, not yet returned) as the
        entry's master, in place of the body, when :func:`blueprint` can copy it and it fits;
        else keep the body for good (no blueprint tried again)."""
        plan = blueprint(obj)
        master = None if plan is None else clone(obj, plan)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.kept is not kept:
                return  # written or dropped meanwhile
            cost = len(entry.data) + estimated_size(entry.data) + _spare_cost(entry)
            if master is None or cost > self.max_bytes:
                entry.hits = _NO_MASTER
                return
            self._bytes += cost - entry.cost
            entry.kept, entry.kind, entry.cost = (master, plan), _MASTER, cost
            self._evict()

    def _evict(self) -> None:
        """Drop least recently used entries until the bounds hold (the lock is held)."""
        while self._bytes > self.max_bytes or len(self._entries) > self.max_entries:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= dropped.cost

    def put(
        self, key: str, data: bytes, obj: Any, plain: Plain, *, _shared: bool | None = None
    ) -> None:
        """Remember that ``data`` decodes to ``obj`` through the JSON body ``plain``. ``obj`` is
        kept only if nothing in it can change (so the caller may go on changing ``obj``). It
        must be what ``data`` decodes to: after a write, call :meth:`put_saved` instead."""
        if self.max_bytes <= 0:
            return
        shared = is_immutable(obj) if _shared is None else _shared
        kept: Any = obj
        # the bytes kept to compare, and the objects (estimated) or what a rebuild reads
        cost = len(data) + (estimated_size(data) if shared else 0)
        if not shared:  # kept as it is: websession.memo knows the body by this very object
            kept = plain
            cost += _kept_size(plain, data)
        if cost > self.max_bytes:
            self.discard(key)
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.cost
            self._entries[key] = _Entry(data, kept, _SHARED if shared else _BODY, cost)
            self._bytes += cost
            self._evict()

    def _drop_body(self, key: str, kept: Plain) -> None:
        """The body ``kept`` was parsed from now has its snapshot (see
        :class:`~session_store.codec.Snapshot`), which later rebuilds read: keep that alone,
        and count it in place of the body."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.kept is kept:
                entry.kept = lean = kept._replace(body=b"")
                cost = len(entry.data) + _kept_size(lean, entry.data) + _spare_cost(entry)
                self._bytes += cost - entry.cost
                entry.cost = cost
                self._evict()

    def payload(self, key: str) -> bytes | None:
        """The bytes the entry for ``key`` is valid for (what this store last read or wrote for
        it), or ``None`` if none is kept; nothing says they are still what is stored."""
        with self._lock:
            entry = self._entries.get(key)
        return None if entry is None else entry.data

    def put_saved(
        self,
        key: str,
        data: bytes,
        obj: Any,
        plain: Plain,
        rebuild: Rebuild,
        spare: Callable[[Any], Any] | None = None,
    ) -> None:
        """Remember what ``data``, just written from ``obj`` (by ``save`` or ``update``),
        decodes to. A mutable ``obj`` is kept as ``plain`` anyway. One that could be shared is
        not, since it may differ from what its bytes decode to (a datetime written in UTC, a
        tuple written as a JSON array): the shared object is ``rebuild(key, plain)``, structured
        once from the checked body, so a warm load returns what a cold load of the same bytes
        returns. Bytes equal to the entry's keep the entry (:meth:`_same_bytes`). Both stores
        call this (:class:`~session_store.store.SessionStore` and ``AsyncSessionStore``) after
        a successful write. ``spare``: what makes the entry's spare of a mutable ``obj`` (see
        the module doc; the caller has checked that it is exact for these bytes)."""
        if self.max_bytes <= 0 or self._same_bytes(key, data):
            return
        shared = is_immutable(obj)
        if shared:
            try:
                obj = rebuild(key, plain)
            except Exception:  # the write succeeded; the cache just does not learn it
                self.discard(key)
                return
        self.put(key, data, obj, plain, _shared=shared)
        if spare is not None and not shared:
            copy = spare(obj)  # before the caller gets obj back: nobody can have changed it
            cost = estimated_size(data)
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and entry.data is data and entry.spare is None:
                    entry.spare = (copy, cost)
                    entry.cost += cost
                    self._bytes += cost
                    self._evict()

    def _same_bytes(self, key: str, data: bytes) -> bool:
        """Whether the entry for ``key`` is valid for exactly ``data`` (a session saved
        unchanged): then it is kept as it is, its hits and master included, so the loads after
        the write go on as warm hits (a copy of the master) instead of starting over from the
        body. Compared outside the lock (a 600 KB payload: tens of µs)."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or len(entry.data) != len(data) or entry.data != data:
            return False
        with self._lock:
            if self._entries.get(key) is not entry:
                return False  # written or dropped meanwhile: put it as any write
            self._entries.move_to_end(key)
        return True

    def discard(self, key: str) -> None:
        """Forget ``key`` (after a delete: nothing would serve it, but it frees the memory)."""
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.cost

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
