"""How a sync Redis backend runs a command: retried after a failed connection when it may run
twice, its errors translated (see :mod:`session_store_redis.errors`) and counted, and writes
acknowledged by replicas (``WAIT``) checked.

A base of :class:`~session_store_redis.base.RedisBackendBase`, which provides the attributes and
hooks declared below.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

from session_store.counters import Counters
from session_store.errors import BackendError, BackendUnavailableError
from session_store_redis.commands import Command
from session_store_redis.errors import translate

__all__ = ["RedisCalls"]

log = logging.getLogger("session_store_redis.base")


class RedisCalls:
    """Retries, error translation and acknowledged writes of a sync Redis backend."""

    _FAILURES: ClassVar[tuple[type[BaseException], ...]]
    #: The typed error of a failed command (a cluster's knows its own conditions too).
    _TYPED_ERROR = staticmethod(translate)

    if TYPE_CHECKING:  # provided by RedisBackendBase
        counters: Counters
        retries: int
        wait_replicas: int
        wait_timeout: float
        _description: str
        _backoff: Any

        def _retryable(self, error: BaseException) -> bool: ...
        def _secrets(self) -> tuple[str | None, ...]: ...
        def _acked(self, commands: Sequence[Command]) -> tuple[list[Any], int]: ...

    def _call(
        self, what: str, key: str | None, fn: Callable[..., Any], *args: Any, **kw: Any
    ) -> Any:
        """``fn(*args, **kw)``, retried after a failed connection, errors translated and counted.

        Only for operations that may safely run twice.
        """
        try:
            return fn(*args, **kw)
        except self._FAILURES as exc:
            failure: BaseException = exc
        return self._retry(failure, what, key, fn, *args, **kw)

    def _retry(
        self,
        failure: BaseException,
        what: str,
        key: str | None,
        fn: Callable[..., Any],
        *args: Any,
        **kw: Any,
    ) -> Any:
        """The first attempt of ``fn`` failed with ``failure``: retry it if that may help (at
        once, then after a growing backoff), else raise the translated error.

        Every raise happens outside an ``except`` block, so the error we raise has no
        ``__context__`` pointing at a redis-py error.
        """
        failures = 1
        while failures <= self.retries and self._retryable(failure):
            if failures > 1:
                time.sleep(self._backoff.compute(failures - 1))
            try:
                return fn(*args, **kw)
            except self._FAILURES as exc:
                failure = exc
            failures += 1
        raise self._translate(failure, what, key)

    def _call_once(
        self, what: str, key: str | None, fn: Callable[..., Any], *args: Any, **kw: Any
    ) -> Any:
        """``fn(*args, **kw)`` tried once, errors translated and counted."""
        try:
            return fn(*args, **kw)
        except self._FAILURES as exc:
            error = self._translate(exc, what, key)
        raise error

    def _translate(self, exc: BaseException, what: str, key: str | None) -> BackendError:
        self.counters.add("errors")
        error = self._TYPED_ERROR(
            exc, what=what, key=key, backend=self._description, secrets=self._secrets()
        )
        log.debug("%s", error)
        return error

    def _write_acked(self, what: str, key: str | None, commands: Sequence[Command]) -> list[Any]:
        """Run idempotent writes with ``WAIT`` (retried after a failed connection); the replies.

        Raises:
            BackendUnavailableError: fewer than ``wait_replicas`` replicas acknowledged in time.
        """
        replies, acks = self._call(what, key, self._acked, commands)
        self._check_acks(acks, what, key)
        return cast("list[Any]", replies)

    def _check_acks(self, acks: int, what: str, key: str | None) -> None:
        if acks >= self.wait_replicas:
            return
        self.counters.add("errors")
        self.counters.add("unacknowledged")
        raise BackendUnavailableError(
            f"redis: {what} reached the primary, but only {acks} of {self.wait_replicas} "
            f"replica(s) acknowledged it within {self.wait_timeout:g} s; "
            "a failover now may lose it",
            key=key,
            backend=self._description,
        )
