"""``diskcache:///path``: sessions in SQLite on local disk, shared by every process on the host.

The backend maps the session-store protocol onto a :class:`~session_store_diskcache.cache.
SessionCache` (a ``diskcache.Cache``) and adds what diskcache does not give:

* **Keys** are validated before any I/O and stored under a :class:`~session_store.keys.Namespace`,
  so stores with overlapping prefixes (``session:`` and ``session:admin:``) on one directory never
  see each other's keys.
* **Values** are bytes only; the disk layer (:mod:`~session_store_diskcache.disk`) never pickles
  and never unpickles.
* **TTL** is diskcache's own expiry (``expire=``), following :mod:`session_store.ttl`.
* **Compare-and-set** and a chain's ordered writes read, compare and write in one transaction
  that excludes every other writer; the token is a digest of the stored bytes (see
  :mod:`~session_store_diskcache.versioned`).
* **scan** is a key-range query on diskcache's index, paged by key (see
  :mod:`~session_store_diskcache.cache` and :mod:`~session_store_diskcache.keyrange`). Keys
  present for the whole scan are listed once; keys written or deleted during it may or may not be.
* **Bulk operations** run in one transaction each. ``set_many`` and ``delete_many``: one lock,
  one commit, all or nothing. ``get_many``: one read transaction (a consistent snapshot that
  takes no write lock, so it never waits for writers in SQLite's WAL mode), or a write
  transaction when the eviction policy makes reads write (``least-recently-used``,
  ``least-frequently-used``). Measured on 100 keys, one transaction is about 40 % faster than
  100 separate reads.
* **Evictions**: past ``size_limit``, diskcache removes entries to make room. Every entry removed
  by this backend's writes is counted in ``counters`` as ``evictions`` (expired entries removed
  along the way are not evictions and are not counted).
* **Failures** become :class:`~session_store.errors.BackendUnavailableError` (the database stayed
  locked past ``timeout``) or :class:`~session_store.errors.BackendError` (read-only directory,
  full disk, corrupt database), with the key and :meth:`DiskcacheBackend.describe`.

Opening a directory waits up to 60 s if another process holds the database lock at that moment:
diskcache retries its set-up statements for that long regardless of ``timeout``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from typing import Any, Self
from urllib.parse import quote, urlencode

from diskcache.core import EVICTION_POLICY

from session_store.backend import Scope, SessionBackend, ensure_bytes
from session_store.counters import Counters
from session_store.errors import ConfigurationError, CorruptPayloadError
from session_store.keys import Namespace, validate_key, validate_scan_prefix
from session_store.ttl import NO_EXPIRY, normalize_ttl
from session_store.unchecked import TrustedCalls, checked, unchecked_calls
from session_store.urls import BackendURL, Params
from session_store_diskcache.cache import SessionCache
from session_store_diskcache.failures import translate
from session_store_diskcache.keyrange import upper_bound
from session_store_diskcache.opening import open_for, open_later
from session_store_diskcache.settings import (
    DEFAULT_EVICTION_POLICY,
    DEFAULT_PREFIX,
    DEFAULT_SIZE_LIMIT,
    DEFAULT_TIMEOUT,
    TILDE_HINT,
    check_directory,
    check_eviction_policy,
    check_size_limit,
    check_timeout,
)
from session_store_diskcache.versioned import VersionedWrites, version_token

__all__ = ["SCAN_PAGE_SIZE", "DiskcacheBackend", "version_token"]

#: Keys read per query while scanning; memory use of a scan is bounded by one page.
SCAN_PAGE_SIZE = 1000


class DiskcacheBackend(VersionedWrites, SessionBackend):
    """Sessions in a diskcache directory: process-safe, host-wide. See the module doc.

    Args:
        directory: the cache directory, created if missing. Give the store a directory of its
            own: diskcache writes the settings below into it.
        prefix: namespace of this store's keys (see :mod:`session_store.keys`).
        default_ttl: seconds a write lives when it gives no TTL; ``None``: no expiry.
        size_limit: bytes on disk (SQLite file plus value files) before entries are evicted;
            default 4 GiB. Below about 100 kB the empty database alone fills it.
        eviction_policy: which entries go first past ``size_limit``; ``"none"`` never evicts.
        timeout: seconds a call waits for another writer's lock before
            :class:`~session_store.errors.BackendUnavailableError`.

    Raises:
        ConfigurationError: a bad argument (before any I/O).
        NotWritableError: the directory cannot be written (read-only file system, permissions):
            a :class:`BackendError` naming it and the fix; a chain whose arbiter is another
            tier starts without this one (:mod:`~session_store_diskcache.opening`).
        BackendError: the directory cannot be created or the database cannot be opened
            (not a directory, not a database).
    """

    scope = Scope.HOST

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        prefix: str = DEFAULT_PREFIX,
        default_ttl: float | None = None,
        size_limit: int = DEFAULT_SIZE_LIMIT,
        eviction_policy: str = DEFAULT_EVICTION_POLICY,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.directory = check_directory(directory)
        self.namespace = Namespace(prefix)
        self.default_ttl = normalize_ttl(default_ttl, what="default_ttl")
        self.size_limit = check_size_limit(size_limit)
        self.eviction_policy = check_eviction_policy(eviction_policy)
        self.timeout = check_timeout(timeout)
        self.counters = Counters()
        self._reads_write = EVICTION_POLICY[self.eviction_policy]["get"] is not None
        self._description = self._url()
        self._close_lock = threading.Lock()
        self._cache: SessionCache | None = None
        self._waiting, self._retry_at = True, 0.0  # until opened read-write (see .opening)
        self._cache = open_for(self)
        self._waiting = False

    @classmethod
    def from_url(cls, url: BackendURL, **overrides: Any) -> Self:
        """Build from ``diskcache:///absolute/path?prefix=...&default_ttl=...&size_limit=...``
        (also ``eviction_policy`` and ``timeout``); keyword ``overrides`` win over the URL.

        Raises:
            ConfigurationError: a host in the URL, no path, an unknown or malformed parameter;
                all checked before the directory is touched.
        """
        if url.netloc:
            raise ConfigurationError(
                "diskcache URLs take no host: write diskcache:///absolute/path (three slashes)"
                + (TILDE_HINT if url.netloc.startswith("~") else ""),
                backend=url.redacted(),
            )
        if url.path in ("", "/"):
            raise ConfigurationError(
                "diskcache:// needs a directory, as in diskcache:///var/lib/app/sessions",
                backend=url.redacted(),
            )
        params = Params(url, overrides)
        settings: dict[str, Any] = {
            "prefix": params.take_str("prefix", DEFAULT_PREFIX),
            "default_ttl": params.take_optional_float("default_ttl"),
            "size_limit": params.take_int("size_limit", DEFAULT_SIZE_LIMIT),
            "eviction_policy": params.take_str("eviction_policy", DEFAULT_EVICTION_POLICY),
            "timeout": params.take_float("timeout", DEFAULT_TIMEOUT),
        }
        params.finish()  # before the constructor: a typo must not create a directory
        return cls(url.path, **settings)

    def describe(self) -> str:
        """The URL that reopens this store (it holds no secret)."""
        return self._description

    def _url(self) -> str:
        query: dict[str, object] = {"prefix": self.namespace.prefix, "size_limit": self.size_limit}
        if self.default_ttl is not None:
            query["default_ttl"] = self.default_ttl
        if self.eviction_policy != DEFAULT_EVICTION_POLICY:
            query["eviction_policy"] = self.eviction_policy
        if self.timeout != DEFAULT_TIMEOUT:
            query["timeout"] = self.timeout
        return f"diskcache://{quote(self.directory)}?{urlencode(query, quote_via=quote, safe=':')}"

    # -- plumbing ---------------------------------------------------------------------------------
    def _stored(self, key: str) -> str:
        return self.namespace.encode(validate_key(key, backend=self._description))

    def _expire(self, ttl: float | None) -> float | None:
        """The ``expire=`` of a ``ttl`` that passed :func:`~session_store.ttl.normalize_ttl`."""
        chosen = self.default_ttl if ttl is None else ttl
        return None if chosen is None or chosen == NO_EXPIRY else chosen

    @cached_property
    def trusted_calls(self) -> TrustedCalls:
        """The operations on one key without the argument checks, for a composite that made
        them (see :func:`session_store.backend_base.trusted`); listing and bulk operations are
        the public ones."""
        return unchecked_calls(
            self,
            DiskcacheBackend,
            get=self._get,
            get_with_ttl=self._get_with_ttl,
            set=self._set,
            delete=self._delete,
            touch=self._touch,
            ttl=self._ttl,
            get_versioned=self._get_versioned,
            set_if=self._set_if,
            set_if_newer=self._set_if_newer,
            set_after=self._set_after,
            touch_if=self._touch_if,
        )

    @contextmanager
    def _io(self, action: str, key: str | None = None) -> Iterator[SessionCache]:
        """The open cache for one operation; typed errors out, evictions counted on success."""
        cache = self._cache
        if cache is None or self._waiting:
            cache = open_later(self, action, key)
        try:
            yield cache
        except BaseException as exc:
            cache.take_evicted()  # the transaction rolled back: nothing it evicted is gone
            typed = translate(exc, action=action, key=key, backend=self.describe())
            if typed is None:
                raise
            self.counters.add("errors")
            if typed is exc:
                raise
            raise typed from exc
        evicted = cache.take_evicted()
        if evicted:
            self.counters.add("evictions", evicted)

    def stored_evictions(self) -> int:
        """Entries evicted from this directory past ``size_limit`` by every process, since it
        was created (``counters`` holds this process's share); ``session-store stats`` shows it."""
        with self._io("stored_evictions") as cache:
            return cache.stored_evictions()

    def _count_read(self, found: bool) -> None:
        self.counters.add("hits" if found else "misses")

    # -- single keys -----------------------------------------------------------------------------
    # Each public method checks its arguments, then runs its unchecked form (``_get`` ...).
    def get(self, key: str) -> bytes | None:
        return self._get(validate_key(key, backend=self._description))

    def _get(self, key: str) -> bytes | None:
        stored = self.namespace.encode(key)
        with self._io("get", key) as cache:
            value: bytes | None = cache.get(stored)
        self._count_read(value is not None)
        return value

    def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        return self._get_with_ttl(validate_key(key, backend=self._description))

    def _get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        stored = self.namespace.encode(key)
        with self._io("get", key) as cache:
            value, expire_time = cache.get(stored, expire_time=True)
        remaining = _remaining(expire_time)
        if value is None or remaining is None:
            self._count_read(False)
            return None
        self._count_read(True)
        return value, remaining

    def _set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        stored = self.namespace.encode(key)
        expire = self._expire(ttl)
        with self._io("set", key) as cache:
            cache.set(stored, value, expire=expire)
        self.counters.add("writes")

    set = checked(_set)

    def delete(self, key: str) -> bool:
        return self._delete(validate_key(key, backend=self._description))

    def _delete(self, key: str) -> bool:
        stored = self.namespace.encode(key)
        with self._io("delete", key) as cache:
            removed = bool(cache.delete(stored))
        if removed:
            self.counters.add("deletes")
        return removed

    def touch(self, key: str, ttl: float | None = None) -> bool:
        return self._touch(validate_key(key, backend=self._description), normalize_ttl(ttl))

    def _touch(self, key: str, ttl: float | None = None) -> bool:
        stored = self.namespace.encode(key)
        expire = self._expire(ttl)
        with self._io("touch", key) as cache:
            return bool(cache.touch(stored, expire=expire))

    def ttl(self, key: str) -> float | None:
        return self._ttl(validate_key(key, backend=self._description))

    def _ttl(self, key: str) -> float | None:
        stored = self.namespace.encode(key)
        with self._io("ttl", key) as cache:
            # read=True: a value kept in its own file comes back as an open file, not read.
            value, expire_time = cache.get(stored, read=True, expire_time=True)
            if value is not None and not isinstance(value, bytes):
                value.close()
        return None if value is None else _remaining(expire_time)

    def scan(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix`` (literal), lazily, one page of keys per query."""
        validate_scan_prefix(prefix, backend=self.describe())
        head = self.namespace.scan_head(prefix)
        return self._scan_pages(head, upper_bound(head))

    def _scan_pages(self, low: str, high: str) -> Iterator[str]:
        after = ""  # every stored key is non-empty, so greater than this
        while True:
            with self._io("scan") as cache:
                page = cache.live_keys_between(
                    low, high, after=after, now=time.time(), limit=SCAN_PAGE_SIZE
                )
            for stored in page:
                key = self.namespace.decode(stored)
                if key is not None:
                    yield key
            if len(page) < SCAN_PAGE_SIZE:
                return
            after = page[-1]

    # -- bulk ------------------------------------------------------------------------------------
    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = {key: self._stored(key) for key in keys}  # all validated before any I/O
        found: dict[str, bytes] = {}
        if not wanted:
            return found
        with (
            self._io("get_many") as cache,
            cache.transact() if self._reads_write else cache.snapshot(),
        ):
            for key, stored in wanted.items():
                try:
                    value = cache.get(stored)
                except CorruptPayloadError as exc:  # name the key whose row is bad
                    raise CorruptPayloadError(exc.message, key=key) from exc
                if value is not None:
                    found[key] = value
        self.counters.add("hits", len(found))
        self.counters.add("misses", len(wanted) - len(found))
        return found

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        describe = self.describe()
        checked = [
            (self._stored(key), ensure_bytes(value, key=key, backend=describe))
            for key, value in items.items()
        ]
        expire = self._expire(normalize_ttl(ttl))
        if not checked:
            return
        with self._io("set_many") as cache, cache.transact():
            for stored, value in checked:
                cache.set(stored, value, expire=expire)
        self.counters.add("writes", len(checked))

    def delete_many(self, keys: Iterable[str]) -> int:
        stored_keys = list(dict.fromkeys(self._stored(key) for key in keys))
        if not stored_keys:
            return 0
        with self._io("delete_many") as cache, cache.transact():
            removed = sum(1 for stored in stored_keys if cache.delete(stored))
        if removed:
            self.counters.add("deletes", removed)
        return removed

    # -- life cycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Close this thread's connection and let go of the cache; later calls raise
        :class:`BackendError`. Connections other threads opened close when the cache object is
        collected (diskcache keeps one per thread). Idempotent."""
        with self._close_lock:
            cache, self._cache, self._waiting = self._cache, None, False
        if cache is not None:
            cache.close()


def _remaining(expire_time: float | None) -> float | None:
    """Seconds left before a diskcache ``expire_time``; ``math.inf`` for none, ``None`` if past."""
    if expire_time is None:
        return NO_EXPIRY
    remaining = expire_time - time.time()
    return remaining if remaining > 0 else None
