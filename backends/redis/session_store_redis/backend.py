"""The standalone Redis backend: ``redis://`` and ``rediss://``, one server's database shared by
processes and hosts (and, through :mod:`session_store_redis.sentinel`, a Sentinel-managed
primary).

Everything that works one key at a time is :class:`~session_store_redis.base.RedisBackendBase`'s
(namespace, TTLs, retries, errors, ``WAIT``, compare-and-set); this module adds what one server
does its own way:

* **Bulk operations are one round trip**: ``get_many`` is one ``MGET``, ``set_many`` one pipeline,
  ``delete_many`` one ``UNLINK``.
* **Listing** is ``SCAN MATCH <literal prefix, glob-escaped>* COUNT 1000``, never ``KEYS``; every
  key found is decoded and checked against the prefix again.
* **What a chain's near cache uses**: the invalidation stream of
  :mod:`session_store_redis.invalidation`, and the ordered writes
  (:mod:`session_store_redis.ordered_writes`).
* **Processes and threads**: redis-py's connection pool notices ``os.fork`` (it compares process
  ids) and opens new connections in the child, so a worker forked by ``gunicorn --preload`` never
  writes to its parent's sockets. The pool is thread-safe and blocking: one backend serves many
  threads, each command on a connection of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Self

import redis
from redis.exceptions import NoScriptError

from session_store.backend import Versioned
from session_store.errors import ConfigurationError
from session_store.keys import SEPARATOR, validate_key, validate_scan_prefix
from session_store.tiered.near import InvalidationListener
from session_store.urls import BackendURL, parse_url
from session_store_redis.base import RedisBackendBase
from session_store_redis.bulk import SyncBulk
from session_store_redis.client import build_client, describe_client, secrets_of
from session_store_redis.commands import (
    SCAN_COUNT,
    BulkPacker,
    Command,
    direct_get,
    found_values,
    packed_mget,
    run_with_wait,
    seconds_left,
    set_command,
)
from session_store_redis.conditional_touch import TOUCH_SESSION_SCRIPT, TOUCH_SESSION_SHA
from session_store_redis.config import DEFAULT_PREFIX, backend_options, parse_config
from session_store_redis.invalidation import InvalidationStream
from session_store_redis.lean_script import run_by_sha
from session_store_redis.leanconn import LeanRedis
from session_store_redis.ordered_scripts import SET_AFTER_SCRIPT, SET_IF_NEWER_SCRIPT
from session_store_redis.ordered_writes import StagedOrderedWrites
from session_store_redis.patterns import prefix_pattern
from session_store_redis.scripts import CAS_SCRIPT, CAS_SHA, cas_args, version_token
from session_store_redis.staged import (
    STAGED_CAS_SCRIPT,
    STAGED_CAS_SHA,
    can_stage,
    staged_cas_args,
    staged_write,
    staging_key,
)

__all__ = ["SCAN_COUNT", "Command", "RedisBackend", "RedisBackendBase", "run_with_wait"]

log = logging.getLogger(__name__)

# The names these had when they lived here (kept importable).
_set_command = set_command
_seconds_left = seconds_left


class RedisBackend(StagedOrderedWrites, SyncBulk[redis.Redis]):
    """Sessions in Redis. Usually opened from a URL (see :mod:`session_store_redis.client`)::

        open_backend("redis://:secret@cache.internal:6379/0?prefix=app:&default_ttl=86400")

    Args:
        client: a ready ``redis.Redis`` (built with ``decode_responses=False``), for set-ups a URL
            cannot express. Its own timeouts and retry policy apply too; note that redis-py's
            default retry policy would also retry a compare-and-set after a lost reply.
        prefix: the key namespace; may not contain its separator.
        separator: what ends the prefix in a stored key (default ``"\\x1f"``).
        default_ttl: seconds a write without a TTL lives; ``None``: no expiry.
        retries: how often an operation that may run twice is retried after a failed
            connection (see :func:`session_store_redis.client.retryable`); ``from_url`` passes
            the URL's ``retries`` (default 2), a client of your own gets none on top of its own.
        owns_client: ``close`` disconnects the client's pool. ``from_url`` sets it; a client you
            pass in stays yours to close unless you say otherwise.
        wait_replicas: writes return once this many replicas acknowledged them (``WAIT``).
        wait_timeout: seconds ``WAIT`` may block.
        description: what :meth:`describe` returns (redacted); ``None``: built from the client.

    Raises:
        ConfigurationError: not a ``redis.Redis``, one that decodes responses, a bad prefix or TTL.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        default_ttl: float | None = None,
        retries: int = 0,
        owns_client: bool = False,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
        separator: str = SEPARATOR,
        description: str | None = None,
    ) -> None:
        if not isinstance(client, redis.Redis):
            raise ConfigurationError(f"client must be a redis.Redis, got {type(client).__name__}")
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ConfigurationError(
                "the redis client must return bytes: build it with decode_responses=False"
            )
        super().__init__(
            client,
            prefix=prefix,
            default_ttl=default_ttl,
            retries=retries,
            owns_client=owns_client,
            description=description or describe_client(client, prefix),
            wait_replicas=wait_replicas,
            wait_timeout=wait_timeout,
            separator=separator,
        )
        self._cas = client.register_script(CAS_SCRIPT)
        self._set_if_newer_script = client.register_script(SET_IF_NEWER_SCRIPT)
        self._set_after_script = client.register_script(SET_AFTER_SCRIPT)
        self._staging = staging_key(self._head)  # the staged writes' keys' base name (staged.py)
        self._stage = True  # until the server's ACL refuses a staged write's commands
        # the web request's GET and staged compare-and-set, when it reproduces the client
        self._lean = LeanRedis.of(client)
        self._packer = BulkPacker(self._namespace)  # get_many's and delete_many's commands

    @classmethod
    def from_url(cls, url: BackendURL | str, **overrides: Any) -> Self:
        """Build from ``redis://...`` or ``rediss://...``; keyword arguments beat URL parameters.

        No I/O happens here: a server that is down shows up on the first operation.

        Raises:
            ConfigurationError: a bad or unknown parameter (named in the message).
        """
        parsed = parse_url(url) if isinstance(url, str) else url
        config = parse_config(parsed, overrides)
        client = build_client(config)
        try:
            return cls(
                client,
                owns_client=True,
                separator=config.separator,
                description=config.describe(),
                **backend_options(config),
            )
        except BaseException:
            client.connection_pool.disconnect()
            raise

    @property
    def client(self) -> redis.Redis:
        """The redis-py client (for commands this protocol does not have)."""
        return self._client

    # -- what a chain's near cache uses (see session_store_redis.invalidation) -----------------
    def invalidations(self, prefix: str, listener: InvalidationListener) -> InvalidationStream:
        """Start a stream telling ``listener`` about every change of a key under ``prefix``."""
        return InvalidationStream(self._client, self._namespace, prefix, listener).start()

    def _unchecked(self) -> tuple[type, dict[str, Callable[..., Any]]]:
        extra: dict[str, Callable[..., Any]] = {
            "set_if_newer": self._set_if_newer,
            "set_after": self._set_after,
        }
        cls = type(self)
        if cls.set_after is RedisBackend.set_after and cls._set_after is RedisBackend._set_after:
            # a chain's save in one call (session_store.tiered.writes.bound), unless a subclass
            # changed set_after (then the chain goes through it)
            extra["write_after"] = self._write_after
        return RedisBackend, {**super()._unchecked()[1], **extra}

    # -- hooks ---------------------------------------------------------------------------------
    def _get(self, key: str) -> bytes | None:
        # base's, the first attempt sent by the lean client (leanconn) or commands.direct_get,
        # a failed one retried through redis-py as base's is: a store's load
        value = self._read("get", key)
        self._count("misses" if value is None else "hits")
        return value

    def _get_versioned(self, key: str) -> Versioned | None:
        value = self._read("get_versioned", key)
        self._count("misses" if value is None else "hits")
        return None if value is None else Versioned(value, version_token(value))

    def _read(self, what: str, key: str) -> bytes | None:
        stored = self._namespace.encode(key)
        lean = self._lean
        try:
            value = lean.get(stored) if lean is not None else direct_get(self._client, stored)
            failure: BaseException | None = None
        except self._FAILURES as exc:
            failure = exc
        if failure is not None:
            value = self._retry(failure, what, key, self._client.get, stored)
        return value

    def _set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        # base's, the first attempt sent by the lean client, a failed one retried (a SET may
        # run twice) through redis-py as base's is: a store's save
        lean = self._lean
        if lean is None or self.wait_replicas:
            super()._set(key, value, ttl)
            return
        px = self._default_px if ttl is None else self._px(ttl)
        stored = self._namespace.encode(key)
        try:
            lean.set(stored, value, px)
            failure: BaseException | None = None
        except self._FAILURES as exc:
            failure = exc
        if failure is not None:
            self._retry(failure, "set", key, self._client.set, stored, value, px=px)
        self._count("writes")

    def _touch(self, key: str, ttl: float | None = None) -> bool:
        # base's, with PEXPIRE sent by the lean client: a read-only web request's sliding expiry
        lean, px = self._lean, self._px(ttl)
        if lean is None or px is None or self.wait_replicas:
            return super()._touch(key, ttl)
        return bool(self._call("touch", key, lean.call, "PEXPIRE", self._namespace.encode(key), px))

    def _run_touch_session(self, stored: str, args: tuple[int, int]) -> Any:
        # base's, with the script sent by the lean client: every store's sliding expiry (a
        # read-only web request's touch, touch_on_load) over a single Redis
        lean = self._lean
        if lean is None:
            return super()._run_touch_session(stored, args)
        return run_by_sha(lean, TOUCH_SESSION_SHA, TOUCH_SESSION_SCRIPT, stored, args)

    def _secrets(self) -> tuple[str | None, ...]:
        return secrets_of(self._client)

    def _run_cas(self, stored: str, token: object, value: bytes, px: int | None) -> Any:
        # EVALSHA directly, not through redis-py's Script (which imports and copies on every
        # call); loaded again if the server does not know it (flushed, restarted), as Script does
        client = self._client
        lean: Any = self._lean  # (staged_write asks of it what it asks of a redis.Redis)
        if self._stage and can_stage(client, value, (), px):  # large, expiring: not via Lua
            run = STAGED_CAS_SCRIPT, STAGED_CAS_SHA, stored, self._staging, value, px
            written = self._settled(staged_write(lean or client, *run, staged_cas_args(token)))
            if written is not None:  # (the script answers 0 or 1; None: not staged after all)
                return written
        if lean is not None:  # a small one: one EVALSHA on the lean client
            return run_by_sha(lean, CAS_SHA, CAS_SCRIPT, stored, cas_args(token, value, px))
        try:
            return client.evalsha(CAS_SHA, 1, stored, *cas_args(token, value, px))
        except NoScriptError:
            pass
        client.script_load(CAS_SCRIPT)
        return client.evalsha(CAS_SHA, 1, stored, *cas_args(token, value, px))

    def _acked(self, commands: Sequence[Command]) -> tuple[list[Any], int]:
        return run_with_wait(self._client, commands, self.wait_replicas, self._wait_ms)

    # -- listing -------------------------------------------------------------------------------
    def scan(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix``, a page of ``SCAN`` at a time, each key once.

        The prefix is checked at once; the server is reached while iterating, so an outage shows
        up as an error from ``next()``. Keys written during the scan may or may not be listed.
        """
        validate_scan_prefix(prefix, backend=self._description)
        return self._scan(prefix_pattern(self._namespace.scan_head(prefix)), prefix)

    def _scan(self, pattern: str, prefix: str) -> Iterator[str]:
        seen: set[str] = set()  # SCAN may return a key more than once
        cursor = 0
        while True:
            cursor, batch = self._call(
                "scan", None, self._client.scan, cursor, match=pattern, count=SCAN_COUNT
            )
            yield from self._keys_of(batch, prefix, seen)
            if int(cursor) == 0:
                return

    # -- bulk (get_many and set_many: see session_store_redis.bulk) -------------------------
    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        # bulk's, with a batch of plain keys packed in one pass (commands.BulkPacker) and sent
        # by the lean client; any other batch (or client) is bulk's, key by key
        wanted = list(keys)
        lean = self._lean
        packed = None if lean is None else self._packer.command(b"MGET", wanted)
        if packed is None or lean is None:
            return super().get_many(wanted)
        values: list[bytes | None] = self._call("get_many", None, lean._run, packed)
        found, missed = found_values(wanted, values)
        self._count_read(len(wanted) - missed, missed)
        return found

    def _get_values(self, stored: list[str]) -> Sequence[bytes | None]:
        # one MGET, on the lean client where it serves GET (leanconn): as cheap a path as get's
        lean = self._lean
        if lean is not None:
            values: Sequence[bytes | None] = lean._run(packed_mget(stored))
            return values
        return self._client.mget(stored)  # type: ignore[return-value]

    def delete_many(self, keys: Iterable[str]) -> int:
        # one UNLINK: a batch of plain keys packed in one pass and sent by the lean client, as
        # get_many's MGET; any other batch checked and encoded key by key, before any I/O
        wanted = list(keys)
        lean = None if self.wait_replicas else self._lean
        packed = None if lean is None else self._packer.command(b"UNLINK", wanted)
        if packed is not None and lean is not None:
            removed = self._call("delete_many", None, lean._run, packed)
        else:
            for key in wanted:
                validate_key(key)
            if not wanted:
                return 0
            stored = [self._namespace.encode(k) for k in wanted]
            if self.wait_replicas:
                command = (stored[0], ("UNLINK", *stored))
                removed = self._write_acked("delete_many", None, [command])[0]
            else:
                removed = self._call("delete_many", None, self._client.unlink, *stored)
        if removed:
            self.counters.add("deletes", int(removed))
        return int(removed)

    # -- life cycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Disconnect the pool if this backend built it (or was told it owns the client).
        Every call does: a use after ``close`` reopens a connection, as redis-py does, and
        the next ``close`` releases it (it was a one-shot: such a connection stayed open)."""
        with self._close_lock:
            self._closed = True
        if self._lean is not None:  # always this backend's own
            self._lean.close()
        if self._owns_client:
            self._client.close()
            self._client.connection_pool.disconnect()
