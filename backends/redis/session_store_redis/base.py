"""What every sync Redis backend shares: sessions in a Redis database shared by processes and
hosts, one key at a time.

* **Keys** live under a namespace prefix (default ``session:``) encoded by
  :class:`session_store.keys.Namespace`: key ``k`` is stored as ``"session:\\x1fk"``, so stores
  whose prefixes overlap (``session:`` and ``session:admin:``) never see each other's keys.
* **Expiry** is Redis's own: ``SET ... PX``, ``PEXPIRE``, ``PTTL``, in whole milliseconds.
* ``get_with_ttl`` is one ``MULTI GET PTTL EXEC`` (the value and the TTL of one instant), one
  script where the ACL refuses ``MULTI`` (:mod:`~session_store_redis.one_instant`).
* **Compare-and-set** is a Lua script (one round trip, atomic; :mod:`~.scripts` says why).
* **Errors** from redis-py become typed errors (see :mod:`session_store_redis.errors`): a refused
  connection or a timeout is :class:`~session_store.errors.BackendUnavailableError`. They carry
  the key and the redacted backend description, never the password, and no ``__cause__`` or
  ``__context__``.
* **Acknowledged writes**: with ``wait_replicas=N`` every write (``set``, ``set_many``,
  ``set_if``, ``delete``, ``delete_many``, ``touch``) is followed by ``WAIT N timeout`` on the same
  connection, in the same round trip, and returns only once N replicas have it; fewer in time is
  :class:`~session_store.errors.BackendUnavailableError` (the write reached the primary and may
  be lost in a failover). See ``docs/scale-out.md``.

:class:`RedisBackendBase` holds everything that works one key at a time, the same on a single
server, a Sentinel-managed primary and Redis Cluster; :mod:`session_store_redis.backend` adds the
standalone bulk operations and listing, :mod:`session_store_redis.cluster` the Cluster ones.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, MutableSet, Sequence
from functools import cached_property
from typing import Any, ClassVar, Generic, TypeVar, cast

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisError

from session_store import forksafe
from session_store.backend import Scope, SessionBackend, Versioned, VersionToken, ensure_bytes
from session_store.counters import COUNTER_NAMES, Counters
from session_store.errors import ConfigurationError
from session_store.keys import SEPARATOR, Namespace, validate_key
from session_store.ttl import NO_EXPIRY, normalize_ttl, ttl_to_ms
from session_store.unchecked import TrustedCalls, checked, unchecked_calls
from session_store_redis.calls import RedisCalls
from session_store_redis.client import make_backoff, retryable
from session_store_redis.commands import Command, seconds_left, session_keys, set_command
from session_store_redis.conditional_delete import ConditionalDelete
from session_store_redis.conditional_touch import ConditionalTouch
from session_store_redis.one_instant import OneInstant
from session_store_redis.scripts import CAS_SHA, cas_args, is_token, version_token

__all__ = ["ClientT", "RedisBackendBase"]

#: Milliseconds by normalized TTL, made on first use (:meth:`RedisBackendBase._px`).
_PX: dict[float | None, int] = {}

log = logging.getLogger(__name__)

#: The client a backend talks through: one server (or a Sentinel-managed primary), or a cluster.
ClientT = TypeVar("ClientT", redis.Redis, RedisCluster)


class RedisBackendBase(
    OneInstant, ConditionalTouch, ConditionalDelete, RedisCalls, SessionBackend, Generic[ClientT]
):
    """What every Redis backend shares: the namespace, TTLs, retries, error translation, and the
    operations on one key, which run unchanged on one server, a Sentinel-managed primary and a
    cluster (each touches a single key, so a single slot).

    Subclasses bring the client, the bulk operations and listing, and override the hooks
    (``_FAILURES``, :meth:`_retryable`, :meth:`_secrets`, :meth:`_translate`, :meth:`_run_cas`,
    :meth:`_acked`) where their client differs.

    Args:
        client: the redis-py client.
        prefix: the key namespace; may not contain ``"\\x1f"``.
        default_ttl: seconds a write without a TTL lives; ``None``: no expiry.
        retries: how often an operation that may run twice is retried after a failed connection.
        owns_client: ``close`` disconnects the client.
        description: the redacted text :meth:`describe` returns.
        wait_replicas: writes return once this many replicas acknowledged them (``WAIT``);
            0 (the default): once the primary has them.
        wait_timeout: seconds ``WAIT`` may block.
    """

    scope = Scope.NETWORK
    #: A framed value's compare-and-set checks its version, not the payload (scripts.py): a
    #: store's ``update`` frames what it writes here (``storerules.checks_versions``).
    checks_versions: ClassVar[bool] = True
    compress_by_default: ClassVar[bool] = False  # a store writes plain (tiercompression)

    _client: ClientT

    #: Counters beside COUNTER_NAMES ("unacknowledged": writes fewer replicas than asked got).
    _EXTRA_COUNTERS: ClassVar[tuple[str, ...]] = ("unacknowledged",)
    #: What a failed command may raise (redis-py's cluster errors are not all RedisErrors).
    _FAILURES: ClassVar[tuple[type[BaseException], ...]] = (RedisError, OSError)

    def __init__(
        self,
        client: ClientT,
        *,
        prefix: str,
        default_ttl: float | None,
        retries: int,
        owns_client: bool,
        description: str,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
        separator: str = SEPARATOR,
    ) -> None:
        self._namespace = Namespace(prefix, separator)
        self._head = self._namespace.scan_head()  # what every stored key starts with
        self.prefix = prefix
        self.default_ttl = default_ttl
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigurationError(f"retries must be an integer >= 0, got {retries!r}")
        if isinstance(wait_replicas, bool) or not isinstance(wait_replicas, int):
            raise ConfigurationError(f"wait_replicas must be an integer, got {wait_replicas!r}")
        if wait_replicas < 0:
            raise ConfigurationError(f"wait_replicas must be >= 0, got {wait_replicas!r}")
        if isinstance(wait_timeout, bool) or not isinstance(wait_timeout, int | float):
            raise ConfigurationError(f"wait_timeout must be a number, got {wait_timeout!r}")
        if not 0 < wait_timeout < 86_400:
            raise ConfigurationError(f"wait_timeout must be > 0 seconds, got {wait_timeout!r}")
        self._client = client
        self.retries = retries
        self.wait_replicas = wait_replicas
        self.wait_timeout = float(wait_timeout)
        self._wait_ms = max(1, round(self.wait_timeout * 1000))
        self._backoff = make_backoff()
        self._owns_client = owns_client
        self._description = description
        self._close_lock = threading.Lock()
        self._closed = False
        # hot paths count inline under this lock (Counters.add without its frame and with block)
        self._count_lock = threading.Lock()
        self.counters = Counters(self._count_lock, names=(*COUNTER_NAMES, *self._EXTRA_COUNTERS))
        self._counts = self.counters._values
        forksafe.register(self)

    def _reset_locks(self) -> None:  # in a forked child (see session_store.forksafe)
        self._count_lock = self.counters._lock = threading.Lock()

    @property
    def default_ttl(self) -> float | None:
        """Seconds a write without a TTL lives; ``None``: no expiry."""
        return self._default_ttl

    @default_ttl.setter
    def default_ttl(self, ttl: float | None) -> None:
        chosen = self._default_ttl = normalize_ttl(ttl, what="default_ttl")
        # precomputed: PX of a write that gives no TTL (the usual case)
        self._default_px = None if chosen is None or chosen == NO_EXPIRY else ttl_to_ms(chosen)

    @property
    def namespace(self) -> Namespace:
        """How session keys map to stored keys."""
        return self._namespace

    def describe(self) -> str:
        return self._description

    @cached_property
    def trusted_calls(self) -> TrustedCalls:
        """The operations on one key without the argument checks, for a composite that made
        them (see :func:`session_store.backend_base.trusted`); listing and bulk operations are
        the public ones."""
        owner, unchecked = self._unchecked()
        return unchecked_calls(self, owner, **unchecked)

    def _unchecked(self) -> tuple[type, dict[str, Callable[..., Any]]]:
        """The class whose public methods go with the unchecked forms, and those forms."""
        return RedisBackendBase, {
            "get": self._get,
            "get_with_ttl": self._get_with_ttl,
            "set": self._set,
            "delete": self._delete,
            "touch": self._touch,
            "touch_if": self._touch_if,
            "ttl": self._ttl,
            "get_versioned": self._get_versioned,
            "set_if": self._set_if,
        }

    # -- hooks ---------------------------------------------------------------------------------
    def _retryable(self, error: BaseException) -> bool:
        """Whether an operation that failed with ``error`` may run again."""
        return retryable(error)

    def _secrets(self) -> tuple[str | None, ...]:
        """The secrets to scrub from error messages."""
        return ()

    def _run_cas(self, stored: str, token: object, value: bytes, px: int | None) -> Any:
        """Run the compare-and-set script once (loading it if the server does not know it)."""
        raise NotImplementedError

    def _acked(self, commands: Sequence[Command]) -> tuple[list[Any], int]:
        """Run writes followed by ``WAIT`` on the connection that ran them.

        Returns the replies in order and the fewest replicas any ``WAIT`` counted. A reply that
        is an error is raised (after every reply was read).
        """
        raise NotImplementedError

    # -- plumbing (the retries and error translation: see session_store_redis.calls) ----------
    def _px(self, ttl: float | None) -> int | None:
        """Milliseconds for ``PX`` / ``PEXPIRE``, or ``None`` for no expiry, of a ``ttl`` that
        passed :func:`~session_store.ttl.normalize_ttl` (the default if ``None``)."""
        if ttl is None:
            return self._default_px
        px = _PX.get(ttl)  # (every write asks: a table, not three calls)
        if px is None and ttl != NO_EXPIRY:
            if len(_PX) >= 1024:  # (a chain copying sessions with the TTL each has left)
                _PX.clear()
            px = _PX[ttl] = ttl_to_ms(ttl)
        return px

    def _count(self, name: str) -> None:
        lock = self._count_lock
        lock.acquire()
        self._counts[name] += 1  # cannot raise: every name counted is there
        lock.release()

    def _count_read(self, found: int, missed: int) -> None:
        if found:
            self.counters.add("hits", found)
        if missed:
            self.counters.add("misses", missed)

    # -- single keys ---------------------------------------------------------------------------
    # get and set are the hot path: the first attempt is inlined (no _call frame). Each public
    # method checks its arguments, then runs its unchecked form (``_get`` ...), which is also
    # what ``trusted_calls`` hands a composite that checked them already.
    def get(self, key: str) -> bytes | None:
        validate_key(key)
        return self._get(key)

    def _get(self, key: str) -> bytes | None:
        stored = self._namespace.encode(key)
        try:
            value: bytes | None = self._client.get(stored)  # type: ignore[assignment]
            failure: BaseException | None = None
        except self._FAILURES as exc:
            failure = exc
        if failure is not None:  # retried or raised outside the except block: no __context__
            value = self._retry(failure, "get", key, self._client.get, stored)
        lock = self._count_lock
        lock.acquire()
        self._counts["misses" if value is None else "hits"] += 1
        lock.release()
        return value

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        validate_key(key)
        if type(value) is not bytes:
            value = ensure_bytes(value, key=key, backend=self._description)
        self._set(key, value, None if ttl is None else normalize_ttl(ttl))

    def _set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        px = self._default_px if ttl is None else self._px(ttl)
        stored = self._namespace.encode(key)
        if self.wait_replicas:
            self._write_acked("set", key, [set_command(stored, value, px)])
            self._count("writes")
            return
        try:
            self._client.set(stored, value, px=px)
            failure: BaseException | None = None
        except self._FAILURES as exc:
            failure = exc
        if failure is not None:
            self._retry(failure, "set", key, self._client.set, stored, value, px=px)
        lock = self._count_lock
        lock.acquire()
        self._counts["writes"] += 1
        lock.release()

    def delete(self, key: str) -> bool:
        return self._delete(validate_key(key))

    def _delete(self, key: str) -> bool:
        stored = self._namespace.encode(key)
        if self.wait_replicas:
            removed = self._write_acked("delete", key, [(stored, ("UNLINK", stored))])[0]
        else:
            removed = self._call("delete", key, self._client.unlink, stored)
        if removed:
            self.counters.add("deletes")
        return bool(removed)

    def touch(self, key: str, ttl: float | None = None) -> bool:
        return self._touch(validate_key(key), normalize_ttl(ttl))

    def _touch(self, key: str, ttl: float | None = None) -> bool:
        stored = self._namespace.encode(key)
        px = self._px(ttl)
        if self.wait_replicas:
            commands: list[Command]
            if px is not None:
                commands = [(stored, ("PEXPIRE", stored, px))]
            else:
                commands = [(stored, ("PERSIST", stored)), (stored, ("EXISTS", stored))]
            return bool(self._write_acked("touch", key, commands)[-1])
        if px is not None:
            return bool(self._call("touch", key, self._client.pexpire, stored, px))
        _, exists = self._call("touch", key, self._persist, stored)
        return bool(exists)

    def ttl(self, key: str) -> float | None:
        return self._ttl(validate_key(key))

    def _ttl(self, key: str) -> float | None:
        stored = self._namespace.encode(key)
        return seconds_left(cast("int", self._call("ttl", key, self._client.pttl, stored)))

    def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        return self._get_with_ttl(validate_key(key))

    def _get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        stored = self._namespace.encode(key)
        value, pttl = self._call("get_with_ttl", key, self._get_with_pttl, stored)
        left = seconds_left(pttl)
        if value is None or left is None:
            self._count_read(0, 1)
            return None
        self._count_read(1, 0)
        return cast("bytes", value), left

    # -- listing -------------------------------------------------------------------------------
    def _keys_of(self, batch: Iterable[bytes], prefix: str, seen: MutableSet[str]) -> Iterator[str]:
        """The session keys of one page of ``SCAN`` replies not listed before."""
        return session_keys(self._namespace, batch, prefix, seen)

    # -- compare-and-set -----------------------------------------------------------------------
    def get_versioned(self, key: str) -> Versioned | None:
        return self._get_versioned(validate_key(key))

    def _get_versioned(self, key: str) -> Versioned | None:
        stored = self._namespace.encode(key)
        try:  # the first attempt inlined, as in get
            value: bytes | None = self._client.get(stored)  # type: ignore[assignment]
            failure: BaseException | None = None
        except self._FAILURES as exc:
            failure = exc
        if failure is not None:
            value = self._retry(failure, "get_versioned", key, self._client.get, stored)
        lock = self._count_lock
        lock.acquire()
        self._counts["misses" if value is None else "hits"] += 1
        lock.release()
        return None if value is None else Versioned(value, version_token(value))

    def token_for(self, value: bytes) -> VersionToken | None:
        """The token of a value stored unchanged: read from the bytes (see ``scripts``)."""
        return version_token(value)

    def _set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        """Write only if the value is still the one ``token`` names (``None``: if absent); see
        :mod:`session_store_redis.scripts` for the short tokens of framed values.

        One atomic round trip, never retried: after a lost reply the write may or may not have
        happened, and only the caller can decide what to do about that. A connection failure is
        :class:`~session_store.errors.BackendUnavailableError`.
        """
        stored = self._namespace.encode(key)
        px = self._default_px if ttl is None else self._px(ttl)
        if token is not None and not is_token(token):
            return False  # a token from another backend never matches
        if self.wait_replicas:
            if token is None:
                command = set_command(stored, value, px, "NX")
            else:
                argv: list[Any] = cas_args(token, value, px)
                command = (stored, ("EVALSHA", CAS_SHA, 1, stored, *argv))
            replies, acks = self._call_once("set_if", key, self._acked, [command])
            written = replies[0]
            if written:
                self._check_acks(acks, "set_if", key)
        elif token is None:
            written = self._call_once(
                "set_if", key, self._client.set, stored, value, nx=True, px=px
            )
        else:
            try:  # _call_once inlined: tried once, errors translated outside the except block
                written = self._run_cas(stored, token, value, px)
                failure: BaseException | None = None
            except self._FAILURES as exc:
                failure = exc
            if failure is not None:
                raise self._translate(failure, "set_if", key)
        if written:
            self._count("writes")
        return bool(written)

    set_if = checked(_set_if)
