"""The async backend protocol: :class:`~session_store.backend.SessionBackend`'s operations as
coroutines, for event-loop servers (Starlette, FastAPI, aiohttp).

The contract is the sync one, word for word (keys from :mod:`session_store.keys`, TTLs from
:mod:`session_store.ttl`, opaque bytes, compare-and-set through ``get_versioned`` / ``set_if``),
so that a value written through one protocol reads back through the other. Two additions are
the async world's own:

* ``scan`` is an async iterator, and ``aclose`` replaces ``close`` (``async with`` works).
* **Cancellation** (a client went away, a timeout fired) may interrupt an operation at any
  ``await``. Every write is one atomic step on the storage (one command, one transaction, one
  call in a worker thread), so a cancelled write has happened wholly or not at all, never half;
  and a backend stays usable after it (no reply left behind on a pooled connection).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

from session_store.backend import Scope, Versioned, VersionToken, ensure_bytes
from session_store.counters import Counters
from session_store.ttl import normalize_ttl

if TYPE_CHECKING:
    from session_store.touchrules import Step

__all__ = ["AsyncClosing", "AsyncSessionBackend", "whole"]

T = TypeVar("T")


class AsyncClosing:
    """``async with`` support for what must be closed (a backend, a store): leaving the block
    awaits :meth:`aclose`."""

    async def aclose(self) -> None:
        """Release what it holds. Idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncSessionBackend(AsyncClosing, ABC):
    """Abstract base of every async backend; see the module docstring.

    Attributes:
        scope: who else sees this backend's data (as for the sync protocol).
        counters: operation counters (hits, misses, errors, ...).
    """

    scope: ClassVar[Scope]
    counters: Counters

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or ``None``."""

    @abstractmethod
    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store ``value`` under ``key``; ``ttl`` seconds, ``None`` for the backend's default."""

    @abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove ``key``; ``True`` if it was there."""

    @abstractmethod
    async def touch(self, key: str, ttl: float | None = None) -> bool:
        """Reset the expiry of ``key``; ``True`` if it exists."""

    @abstractmethod
    async def ttl(self, key: str) -> float | None:
        """Seconds left, ``math.inf`` if it never expires, ``None`` if absent."""

    @abstractmethod
    def scan(self, prefix: str = "") -> AsyncIterator[str]:
        """Every key starting with ``prefix`` (literal text). The prefix is checked at once."""

    @abstractmethod
    async def get_versioned(self, key: str) -> Versioned | None:
        """The value of ``key`` with a version token, or ``None``."""

    @abstractmethod
    async def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        """Store ``value`` only if ``key`` still holds the version ``token`` names (``None``:
        only if absent); ``False``, writing nothing, when another writer got there first."""

    async def touch_if(self, key: str, head: bytes, ttl: float | None = None) -> bool:
        """Reset the expiry of ``key`` only if its value still begins with ``head``; ``True``
        if it did (:meth:`session_store.backend.SessionBackend.touch_if`, whose default this is
        too: :meth:`get_versioned`, then :meth:`set_if` of the same bytes with ``ttl``, as
        atomic as the backend's compare-and-set). A backend overrides it with one atomic step
        where it can (a script, a transaction, a call in a worker thread), which a cancellation
        then applies wholly or not at all."""
        head = ensure_bytes(head, key=key, backend=self.describe())
        normalize_ttl(ttl)  # refused before any I/O, as every write's
        for _ in range(16):
            read = await self.get_versioned(key)
            if read is None or not read.value.startswith(head):
                return False
            if await self.set_if(key, read.value, read.token, ttl):
                return True
        return False  # pragma: no cover - 16 writers in a row got in: none of them was touched

    async def touch_session(
        self, key: str, ttl: float | None = None, keep_own: bool = False
    ) -> bool:
        """Restart the expiry of ``key`` only if it holds a session; ``True`` if it did
        (:meth:`session_store.backend.SessionBackend.touch_session`, whose default this is
        too: the same steps, :func:`~session_store.touchrules.touch_session_steps`, awaited). A
        backend overrides it with one atomic step where it can."""
        from session_store.keys import validate_key
        from session_store.touchrules import touch_session_steps

        validate_key(key)
        ttl = normalize_ttl(ttl)
        own_touch_if = type(self).touch_if is not AsyncSessionBackend.touch_if
        return await _run_steps(self, touch_session_steps(key, ttl, keep_own, own_touch_if))

    async def delete_session(self, key: str) -> bool:
        """Remove ``key`` only if it holds a session; ``True`` if it did
        (:meth:`session_store.backend.SessionBackend.delete_session`, whose default this is
        too: the same steps, :func:`~session_store.deleterules.delete_session_steps`, awaited:
        a read, then :meth:`delete`). A backend overrides it with one atomic step where it can."""
        from session_store.deleterules import delete_session_steps
        from session_store.keys import validate_key

        return await _run_steps(self, delete_session_steps(validate_key(key)))

    def token_for(self, value: bytes) -> VersionToken | None:
        """The token :meth:`get_versioned` would return while a key holds exactly ``value``, if
        this backend can tell it from the bytes alone (no I/O); ``None`` (the default): it
        cannot. See :meth:`session_store.backend.SessionBackend.token_for`."""
        return None

    @abstractmethod
    async def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        """The value and its remaining TTL together."""

    @abstractmethod
    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The values of the ``keys`` that are present (every key checked before any I/O)."""

    @abstractmethod
    async def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        """Store every item with the same ``ttl``, all or none."""

    @abstractmethod
    async def delete_many(self, keys: Iterable[str]) -> int:
        """Remove the ``keys``; the number that were there."""

    async def aclose(self) -> None:
        """Release connections, files and threads. Idempotent."""

    def describe(self) -> str:
        """A one-line description safe for logs: never a password or key material."""
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


async def whole(run: Callable[[], Awaitable[T]]) -> T:
    """``await run()``, which a cancellation of the caller does not interrupt: the caller's
    cancellation is raised once ``run`` has finished. For a write that reaches several places
    one after the other (a chain's tiers, a cluster's nodes), which a cancellation in the middle
    would leave half applied."""
    task = asyncio.ensure_future(run())
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():  # the write itself was cancelled (the loop is closing)
                raise
            cancelled = True  # ours: wait for the write to end, then say so
            continue
        except BaseException:
            if cancelled:
                raise asyncio.CancelledError from None
            raise
        if cancelled:
            raise asyncio.CancelledError
        return result


async def _run_steps(backend: AsyncSessionBackend, steps: Generator[Step, Any, bool]) -> bool:
    """Await the calls ``steps`` asks of ``backend`` (a read, a conditional touch or delete),
    sending each result back: the async twin of
    :func:`session_store.touchrules.run_touch_session`, which drives the same generators of
    ``touch_session`` and ``delete_session`` on sync backends."""
    result: Any = None
    try:
        while True:
            name, args = steps.send(result)
            result = await getattr(backend, name)(*args)
    except StopIteration as done:
        return bool(done.value)
