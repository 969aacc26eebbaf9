"""The backend protocol: a bytes key-value store with TTL, which knows nothing of sessions.

A backend stores opaque ``bytes`` under ``str`` keys (validated by :mod:`session_store.keys`), with
an optional time to live whose rules live in :mod:`session_store.ttl`. Subclasses implement the
abstract methods; the bulk forms have naive defaults that a backend overrides when it can do
better (one round trip). Compare-and-set (``get_versioned`` / ``set_if``) is what makes
``SessionStore.update`` atomic: a read returns a token, a conditional write succeeds only if the
key still holds what was read.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import ClassVar, NamedTuple, Self

from session_store.counters import Counters
from session_store.errors import SerializationError
from session_store.keys import validate_key
from session_store.ttl import normalize_ttl

__all__ = ["Closing", "Scope", "SessionBackend", "VersionToken", "Versioned", "ensure_bytes"]

#: An opaque value a backend hands out with a read and checks on ``set_if``. Compare only by ``==``.
VersionToken = object


class Scope(enum.Enum):
    """Who else sees a backend's data: this process, this host, or the network."""

    PROCESS = "process"
    HOST = "host"
    NETWORK = "network"


class Versioned(NamedTuple):
    """A value read for a compare-and-set, with the token ``set_if`` checks."""

    value: bytes
    token: VersionToken


class Closing:
    """``with`` support for what must be closed (a backend, a store, a manager): leaving the
    block calls :meth:`close`."""

    def close(self) -> None:
        """Release what it holds. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SessionBackend(Closing, ABC):
    """Abstract base of every backend. See the module docstring and CONTRIBUTING.md.

    Attributes:
        scope: who else sees this backend's data; the tiered backend picks the first tier wider
            than ``Scope.PROCESS`` to arbitrate compare-and-set.
        counters: operation counters (hits, misses, errors, evictions, fallbacks, ...).
    """

    scope: ClassVar[Scope]
    counters: Counters

    # -- single keys -------------------------------------------------------------------------
    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or ``None`` if it is absent or expired."""

    @abstractmethod
    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store ``value`` under ``key``; ``ttl`` seconds, ``None`` for the backend's default."""

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove ``key``; ``True`` if it was there."""

    @abstractmethod
    def touch(self, key: str, ttl: float | None = None) -> bool:
        """Reset the expiry of ``key`` (``None``: the default TTL); ``True`` if it exists."""

    @abstractmethod
    def ttl(self, key: str) -> float | None:
        """Seconds left to live, ``math.inf`` if it never expires, ``None`` if absent."""

    @abstractmethod
    def scan(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with ``prefix``, literal text, never a pattern; order unspecified."""

    # -- compare-and-set ---------------------------------------------------------------------
    @abstractmethod
    def get_versioned(self, key: str) -> Versioned | None:
        """The value of ``key`` with a version token, or ``None`` if absent."""

    @abstractmethod
    def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        """Store ``value`` only if ``key`` still holds the version ``token`` names.

        ``token=None`` means "only if ``key`` is absent". Returns ``False``, writing nothing, when
        another writer got there first.
        """

    def touch_if(self, key: str, head: bytes, ttl: float | None = None) -> bool:
        """Reset the expiry of ``key`` (as :meth:`touch`) only if its value still begins with
        ``head``; ``True`` if it did. ``False``, changing nothing, if the key is absent or holds
        a value that does not begin with ``head`` (``b""``: any value, as :meth:`touch`).

        A conditional touch: whoever read a value touches *that* value, never one written since
        (a tiered chain passes the read copy's version frame, so that a touch racing a delete
        never re-expires its tombstone, nor extends a newer write). A backend implements it
        atomically where it can (one script, one transaction, under its lock).

        **The default** (for a backend that does not override it) rewrites the value read:
        :meth:`get_versioned`, then :meth:`set_if` of the same bytes with ``ttl`` against that
        token, again (up to 16 times) if another writer got in between. It is exactly as atomic
        as the backend's compare-and-set: a value written since the read is never touched. It
        costs a read and a write of the value, and a backend whose tokens are not a function of
        the bytes hands out a new token, so a concurrent ``set_if`` holding the old one loses
        once and retries. A backend without compare-and-set raises what its ``get_versioned``
        raises (a chain counts it as an error of that tier).
        """
        head = ensure_bytes(head, key=key, backend=self.describe())
        normalize_ttl(ttl)  # refused before any I/O, as every write's
        for _ in range(16):
            read = self.get_versioned(key)
            if read is None or not read.value.startswith(head):
                return False
            if self.set_if(key, read.value, read.token, ttl):
                return True
        return False  # pragma: no cover - 16 writers in a row got in: none of them was touched

    def touch_session(self, key: str, ttl: float | None = None, keep_own: bool = False) -> bool:
        """Restart the expiry of ``key`` only if it holds a session; ``True`` if it did.
        ``False``, changing nothing, if the key is absent or holds a value that is no session:
        a deleted session's marker (a chain's tombstone read through one tier, the marker a
        login's id rotation leaves on the old id; see
        :func:`~session_store.stamps.session_bytes`). The new TTL is ``ttl`` (``None``: the
        default TTL), or with ``keep_own`` the TTL the value's frame records if it records one
        (a session saved with a TTL of its own, :mod:`session_store.ownttl`).

        What a store's sliding expiry calls over a single backend. The value is judged on its
        first :data:`~session_store.touchrules.HEAD_SPAN` bytes, and the judgement and the touch
        are one atomic step where the backend can (one script on Redis, under the lock or
        transaction on memory and diskcache): a write landing meanwhile keeps its own expiry.

        **The default** (:func:`~session_store.touchrules.touch_session_steps`) reads the value,
        judges it, then touches it by :meth:`touch_if` with its first bytes (a backend with a
        ``touch_if`` of its own), else by :meth:`set_if` of the bytes read: exactly as atomic
        as those, one read more than a backend's own; a backend without compare-and-set and
        without ``touch_if`` raises what its :meth:`get_versioned` raises.
        """
        from session_store.touchrules import run_touch_session, touch_session_steps

        validate_key(key)
        ttl = normalize_ttl(ttl)
        own_touch_if = type(self).touch_if is not SessionBackend.touch_if
        return run_touch_session(self, touch_session_steps(key, ttl, keep_own, own_touch_if))

    def delete_session(self, key: str) -> bool:
        """Remove ``key`` only if it holds a session; ``True`` if it did. ``False``, changing
        nothing, if the key is absent or holds a value that is no session: a deleted session's
        marker (a chain's tombstone read through one tier, the marker a login's id rotation
        leaves on the old id), judged as :meth:`touch_session` judges it
        (:func:`~session_store.deleterules.holds_session`). What ``SessionStore.delete`` calls:
        a logout with an old cookie never undoes a rotation's marker.

        The judgement and the delete are one atomic step where the backend can (one script on
        Redis, under the lock or transaction on memory and diskcache, a chain judging its
        newest copy): a key found holding a marker is never deleted, whatever lands after.

        **The default** (:func:`~session_store.deleterules.delete_session_steps`) reads the
        value, judges it, then calls :meth:`delete`: two steps, so a value written between the
        two is deleted too; a key found holding no session is left alone.
        """
        from session_store.deleterules import delete_session_steps
        from session_store.touchrules import run_touch_session

        return run_touch_session(self, delete_session_steps(validate_key(key)))

    def token_for(self, value: bytes) -> VersionToken | None:
        """The token :meth:`get_versioned` would return while ``key`` holds exactly ``value``, if
        this backend can tell it from the bytes alone; ``None`` (the default): it cannot.

        A backend whose tokens are a function of the stored bytes (a digest, a version the value
        carries) overrides this, so that a store that has just written or read ``value`` can
        compare-and-set against it without reading it again (one round trip for an ``update``
        instead of two). It must never return a token that could match other bytes in a way a
        read of ``value`` would not.
        """
        return None

    # -- bulk: naive defaults, override for one round trip -------------------------------------
    def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        """The value and its remaining TTL (``math.inf``: none) together, for promotion."""
        value = self.get(key)
        if value is None:
            return None
        remaining = self.ttl(key)
        if remaining is None:  # expired between the two calls
            return None
        return value, remaining

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The values of the ``keys`` that are present; absent keys are left out."""
        found: dict[str, bytes] = {}
        for key in [validate_key(key) for key in keys]:  # all refused before any I/O
            value = self.get(key)
            if value is not None:
                found[key] = value
        return found

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        """Store every item with the same ``ttl``."""
        checked = [(validate_key(k), ensure_bytes(v, key=k)) for k, v in items.items()]
        normalize_ttl(ttl)
        for key, value in checked:
            self.set(key, value, ttl)

    def delete_many(self, keys: Iterable[str]) -> int:
        """Remove the ``keys``; the number that were there."""
        return sum(1 for key in [validate_key(key) for key in keys] if self.delete(key))

    # -- life cycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Release connections and files. Idempotent."""

    def describe(self) -> str:
        """A one-line description safe for logs and errors: never a password or key material."""
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


def ensure_bytes(value: object, *, key: str | None = None, backend: str | None = None) -> bytes:
    """``value`` as ``bytes``: backends store bytes only; making them is the codec's job.

    Raises:
        SerializationError: ``value`` is not bytes-like.
    """
    if type(value) is bytes:
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise SerializationError(
        f"backends store bytes, got {type(value).__name__}", key=key, backend=backend
    )
