"""Compare-and-set, a tiered chain's ordered writes, the conditional touches and the conditional
delete on diskcache: each a read, a comparison and a write inside one ``Cache.transact()``
(SQLite ``BEGIN IMMEDIATE``), which excludes every other writer, in this process or another.

The version token is a BLAKE2b digest of the stored bytes: a rewrite of the *same* bytes keeps
the token valid, which is safe for read-modify-write (the state read is the state replaced). A
base of :class:`~session_store_diskcache.backend.DiskcacheBackend`, which provides the cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial
from typing import TYPE_CHECKING

from session_store.backend import Versioned, VersionToken
from session_store.counters import Counters
from session_store.deleterules import holds_session
from session_store.keys import Namespace, validate_key
from session_store.touchrules import HEAD_SPAN, touch_decision
from session_store.ttl import normalize_ttl
from session_store.unchecked import checked
from session_store_diskcache.cache import SessionCache

__all__ = ["VersionedWrites", "version_token"]


def version_token(value: bytes) -> bytes:
    """The compare-and-set token of a stored value: its 128-bit BLAKE2b digest."""
    return hashlib.blake2b(value, digest_size=16).digest()


class VersionedWrites:
    """``get_versioned``, ``set_if``, ``set_if_newer``, ``set_after``, ``touch_if``,
    ``touch_session`` and ``delete_session`` (see the module doc)."""

    if TYPE_CHECKING:  # provided by DiskcacheBackend
        counters: Counters
        namespace: Namespace
        _description: str
        _reads_write: bool

        def describe(self) -> str: ...
        def _expire(self, ttl: float | None) -> float | None: ...
        def _io(
            self, action: str, key: str | None = None
        ) -> AbstractContextManager[SessionCache]: ...
        def _count_read(self, found: bool) -> None: ...

    # -- compare-and-set -------------------------------------------------------------------------
    # Each public method checks its arguments, then runs its unchecked form (``_set_if`` ...);
    # for the writes, ``checked`` builds the public method from the unchecked one.
    def get_versioned(self, key: str) -> Versioned | None:
        return self._get_versioned(validate_key(key, backend=self._description))

    def _get_versioned(self, key: str) -> Versioned | None:
        stored = self.namespace.encode(key)
        with self._io("get", key) as cache:
            value: bytes | None = cache.get(stored)
        self._count_read(value is not None)
        return None if value is None else Versioned(value, version_token(value))

    def token_for(self, value: bytes) -> VersionToken | None:
        """The token of a value stored unchanged: its digest, as :meth:`get_versioned` gives."""
        return version_token(value)

    def _set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        def replace(current: bytes | None) -> bytes | None:
            if token is None:
                return value if current is None else None
            matches = current is not None and version_token(current) == token
            return value if matches else None

        return self._replace("set_if", key, ttl, replace) is not None

    set_if = checked(_set_if)

    # -- ordered writes (a tiered chain's versioned copies) ---------------------------------------
    def _set_if_newer(
        self, key: str, value: bytes, ttl: float | None, *, head: int, start: int, end: int
    ) -> bool:
        """Store ``value`` unless the current value shares its first ``head`` bytes and its
        bytes ``[start:end]`` are at least ``value``'s: one transaction, where the generic way
        (:func:`session_store.tiered.writes.write_if_newer`) takes a read and a compare-and-set.
        """

        def replace(current: bytes | None) -> bytes | None:
            return None if _at_least(current, value, head, start, end) else value

        return self._replace("set_if_newer", key, ttl, replace, end) is not None

    set_if_newer = checked(_set_if_newer)

    def _set_after(
        self,
        key: str,
        value: bytes,
        ttl: float | None,
        *,
        head: int,
        start: int,
        end: int,
        clock_end: int,
    ) -> bytes:
        """Store ``value``; if the current value shares its first ``head`` bytes and its bytes
        ``[start:end]`` are at least ``value``'s, ``value``'s bytes ``[start:clock_end]`` become
        the current ones plus one first. Returns the bytes ``[start:end]`` stored. One
        transaction (what a chain's arbiter does with a new write)."""

        def replace(current: bytes | None) -> bytes:
            if current is None or not _at_least(current, value, head, start, end):
                return value
            width = clock_end - start
            clock = (int.from_bytes(current[start:clock_end], "big") + 1) % (1 << (8 * width))
            return value[:start] + clock.to_bytes(width, "big") + value[clock_end:]

        written = self._replace("set_after", key, ttl, replace, end)
        assert written is not None  # replace always writes
        return written[start:end]

    set_after = checked(_set_after)

    # -- the conditional touch ------------------------------------------------------------------
    def _touch_if(self, key: str, head: bytes, ttl: float | None = None) -> bool:
        """Restart the expiry of ``key`` only if its value begins with ``head``: the read and
        the touch in one transaction, which excludes every other writer (a chain's touch never
        re-expires a tombstone or a newer write that landed after it read the copy)."""
        stored = self.namespace.encode(key)
        expire = self._expire(ttl)
        with self._io("touch_if", key) as cache, cache.transact():
            current: bytes | None = cache.get(stored)
            touched = current is not None and current.startswith(head)
            return touched and bool(cache.touch(stored, expire=expire))

    touch_if = checked(_touch_if)

    def touch_session(self, key: str, ttl: float | None = None, keep_own: bool = False) -> bool:
        return self._touch_session(
            validate_key(key, backend=self._description), normalize_ttl(ttl), keep_own
        )

    def _touch_session(self, key: str, ttl: float | None = None, keep_own: bool = False) -> bool:
        """Restart the expiry of the session under ``key`` only (see
        :meth:`session_store.backend.SessionBackend.touch_session`): the value judged on its
        head and touched with the TTL chosen in one transaction, which excludes every other
        writer (a retired id or a chain's tombstone keeps its own expiry). Only the head is
        read (:meth:`SessionCache.head`), unless reads write (an eviction policy that records
        accesses reads in full, as :meth:`get` does)."""
        stored = self.namespace.encode(key)
        with self._io("touch_session", key) as cache, cache.write_transaction():
            read = cache.get if self._reads_write else partial(cache.head, length=HEAD_SPAN)
            current: bytes | None = read(stored)
            if current is None:
                return False
            live, chosen = touch_decision(current[:HEAD_SPAN], ttl, keep_own)
            return live and bool(cache.touch(stored, expire=self._expire(chosen)))

    # -- the conditional delete ----------------------------------------------------------------
    def delete_session(self, key: str) -> bool:
        return self._delete_session(validate_key(key, backend=self._description))

    def _delete_session(self, key: str) -> bool:
        """Remove ``key`` only if it holds a session (see
        :meth:`session_store.backend.SessionBackend.delete_session`): the value judged on its
        head and deleted in one transaction, which excludes every other writer (a retired id or
        a chain's tombstone is left as it is, and a write landing after the judgement is never
        deleted). Only the head is read, as :meth:`_touch_session` reads it."""
        stored = self.namespace.encode(key)
        with self._io("delete_session", key) as cache, cache.write_transaction():
            read = cache.get if self._reads_write else partial(cache.head, length=HEAD_SPAN)
            current: bytes | None = read(stored)
            removed = current is not None and holds_session(current) and bool(cache.delete(stored))
        if removed:
            self.counters.add("deletes")
        return removed

    # -- the one transaction every conditional write is ------------------------------------------
    def _replace(
        self,
        action: str,
        key: str,
        ttl: float | None,
        replace: Callable[[bytes | None], bytes | None],
        head: int = 0,
    ) -> bytes | None:
        """In one transaction, read ``key``'s current value and store what ``replace`` makes of
        it (``None``: keep it); what was stored, counted as a write. ``head``: ``replace``
        looks only at the first ``head`` bytes (an ordered write's frame), so only they are
        read, with the row's place, in the one ``SELECT`` the write needs
        (:meth:`SessionCache.replace_head`), unless reads write (an eviction policy that records
        accesses reads in full, as :meth:`get` does)."""
        stored = self.namespace.encode(key)
        expire = self._expire(ttl)
        written: bytes | None
        if head and not self._reads_write:  # the row read once (SessionCache.replace_head)
            with self._io(action, key) as cache:
                written = cache.replace_head(stored, head, replace, expire)
        else:
            with self._io(action, key) as cache, cache.write_transaction():
                written = replace(cache.get(stored))
                if written is not None:
                    cache.set(stored, written, expire=expire)
        if written is not None:
            self.counters.add("writes")
        return written


def _at_least(current: bytes | None, value: bytes, head: int, start: int, end: int) -> bool:
    """Whether ``current`` shares ``value``'s first ``head`` bytes and holds bytes ``[start:end]``
    at least ``value``'s (the same test as the Redis backend's ordered-write scripts)."""
    return (
        current is not None
        and len(current) >= end
        and current[:head] == value[:head]
        and current[start:end] >= value[start:end]
    )
