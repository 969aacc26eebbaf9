"""A template-method base for backends: the rules once here, the storage in small hooks.

:class:`BackendBase` implements every public method of
:class:`~session_store.backend.SessionBackend`. Each one checks its arguments once (the key
rules of :mod:`session_store.keys`, values as ``bytes``, the TTL rules of
:mod:`session_store.ttl`), maps the key into the backend's :class:`~session_store.keys.Namespace`,
calls a protected hook, counts (hits, misses, writes, deletes, errors), times the call into
:meth:`Counters.observe <session_store.counters.Counters.observe>` and turns the store's own
exceptions into :class:`~session_store.errors.BackendError` /
:class:`~session_store.errors.BackendUnavailableError`.

A backend writes only the storage, as hooks on the stored (namespaced) key ``skey``:
``_get(skey)`` the live value or ``None``; ``_set(skey, value, ttl)``; ``_delete(skey)`` and
``_touch(skey, ttl)``, ``True`` if a live value was there; ``_ttl(skey)`` seconds left,
``NO_EXPIRY`` or ``None``; ``_scan(head)`` the stored keys starting with ``head`` as literal
text (a superset is fine, the base filters). Optional: ``_get_with_ttl``, ``_get_many``,
``_set_many``, ``_delete_many`` (one round trip instead of the default loops), ``_close()``,
compare-and-set, ``_get_versioned`` / ``_set_if`` (see :attr:`BackendBase.cas`), and the
conditional touch ``_touch_if(skey, head, ttl)`` (default: through compare-and-set, or under the
write lock; see :meth:`BackendBase._touch_if`), ``_touch_session(skey, ttl, keep_own)``, the
touch of a live session only (default: see :meth:`BackendBase._touch_session`), and
``_delete_session(skey)``, the delete of a live session only (default: see
:meth:`BackendBase._delete_session`).

Hooks receive keys already namespaced and values already ``bytes``; a TTL they receive is the
effective one (the caller's, else ``default_ttl``), ``None`` meaning "no expiry".

**Composites** (the tiered backend, wrappers) that already validated a call reach a tier
through :func:`trusted`: ``trusted(tier).get(key)`` skips the checks for a
:class:`BackendBase` tier (still namespaced, counted, timed and translated) and is the tier
itself for any other backend, so the composite needs no special case. The caller promises what
the public method would have checked: ``key`` passed :func:`~session_store.keys.validate_key`,
``value`` is exactly ``bytes``, ``ttl`` passed :func:`~session_store.ttl.normalize_ttl`, a scan
prefix passed :func:`~session_store.keys.validate_scan_prefix`. A composite that is not a
:class:`BackendBase` offers its own unchecked calls as ``trusted_calls`` (the tiered chain
does, so a store over a chain checks a key once); a leaf backend that is not one builds its
``trusted_calls`` with :func:`unchecked_calls` (the built-in memory, Redis and diskcache
backends do).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import cached_property
from typing import ClassVar, Literal, TypeVar, cast

from session_store.backend import Scope, SessionBackend, Versioned, VersionToken, ensure_bytes
from session_store.backend_trusted import CheckedOnceCalls
from session_store.counters import Counters
from session_store.deleterules import holds_session
from session_store.errors import BackendError, BackendUnavailableError, SessionStoreError
from session_store.keys import SEPARATOR, Namespace, validate_key, validate_scan_prefix
from session_store.touchrules import HEAD_SPAN, touch_decision
from session_store.ttl import NO_EXPIRY, normalize_ttl
from session_store.unchecked import TRUSTED_CALL_NAMES, TrustedCalls, unchecked_calls

__all__ = [
    "TRUSTED_CALL_NAMES",
    "BackendBase",
    "TrustedCalls",
    "trusted",
    "unchecked_calls",
    "value_token",
]

T = TypeVar("T")
CasMode = Literal["native", "lock", "none"]


def value_token(value: bytes) -> str:
    """A compare-and-set token naming ``value`` by its digest (BLAKE2b, 128 bits).

    A digest token is safe for read-modify-write: a rewrite of the same bytes still matches,
    and the state read is the state replaced. The default ``_get_versioned`` hands these out.
    """
    return hashlib.blake2b(value, digest_size=16).hexdigest()


def trusted(backend: SessionBackend) -> TrustedCalls:
    """The calls of ``backend`` that skip argument checks (see the module docstring).

    For a :class:`BackendBase` these are its checked-once internals; a composite that is not
    one (the tiered chain) offers its own as ``trusted_calls``; any other backend is returned
    as it is (it checks again, which is correct, only slower).
    """
    if isinstance(backend, BackendBase):
        return backend._trusted
    calls = getattr(backend, "trusted_calls", None)  # a composite's own: the tiered chain's
    return backend if calls is None else cast(TrustedCalls, calls)


class BackendBase(SessionBackend):
    """Base class of a backend written as hooks (see the module docstring).

    Args:
        prefix: namespace prefix every stored key starts with (see :mod:`session_store.keys`).
        default_ttl: TTL of writes that give none; ``None``: no expiry.
        separator: what ends the prefix in a stored key (default U+001F).

    Class attributes a subclass sets:
        scope: who else sees the data (required).
        cas: how ``set_if`` is atomic. ``"native"``: the subclass implements ``_set_if`` (and
            ``_get_versioned`` if its tokens are not :func:`value_token` digests). ``"lock"``:
            the base serialises every write of this instance under one lock and compares
            digests; correct only where no other process writes the same data, so only allowed
            for ``Scope.PROCESS``. ``"none"``: ``get_versioned`` / ``set_if`` raise
            :class:`BackendError` (``SessionStore.update`` is then unavailable). Left unset, it
            is ``"native"`` when ``_set_if`` is overridden, ``"lock"`` for ``Scope.PROCESS``;
            any other backend must choose, or its class definition fails.
        backend_errors: the store's own exception types, turned into :class:`BackendError`.
        unavailable_errors: those meaning "cannot reach the store", turned into
            :class:`BackendUnavailableError` (checked first).
    """

    cas: ClassVar[CasMode]
    backend_errors: ClassVar[tuple[type[Exception], ...]] = (OSError,)
    unavailable_errors: ClassVar[tuple[type[Exception], ...]] = (ConnectionError, TimeoutError)

    #: Whether the subclass implements ``_touch_if`` (else the default needs compare-and-set).
    _own_touch_if: ClassVar[bool] = False
    #: Whether the subclass implements ``_touch_session`` (else the base's steps).
    _own_touch_session: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls._own_touch_if = cls._touch_if is not BackendBase._touch_if
        cls._own_touch_session = cls._touch_session is not BackendBase._touch_session
        scope = getattr(cls, "scope", None)
        if "cas" not in cls.__dict__:
            if cls._set_if is not BackendBase._set_if:
                cls.cas = "native"
            elif scope is Scope.PROCESS:
                cls.cas = "lock"
        if (
            scope is not None
            and scope is not Scope.PROCESS
            and getattr(cls, "cas", "lock") == "lock"
        ):
            raise TypeError(
                f"{cls.__name__}: a {scope.value}-scoped backend implements _set_if "
                "(cas = 'native') or declares cas = 'none'; a process lock cannot make "
                "compare-and-set atomic for other processes"
            )

    def __init__(
        self,
        *,
        prefix: str = "session:",
        default_ttl: float | None = None,
        separator: str = SEPARATOR,
    ) -> None:
        if not isinstance(getattr(self, "scope", None), Scope):
            raise TypeError(f"{type(self).__name__} must declare its scope (a Scope)")
        self.namespace = Namespace(prefix, separator)
        self.default_ttl = normalize_ttl(default_ttl, what="default_ttl")
        self.counters = Counters()
        self._closed = False
        self._write_lock: AbstractContextManager[object] = (
            threading.Lock() if self.cas == "lock" else nullcontext()
        )

    # -- hooks a subclass implements -----------------------------------------------------------
    def _get(self, skey: str) -> bytes | None:
        raise NotImplementedError

    def _set(self, skey: str, value: bytes, ttl: float | None) -> None:
        raise NotImplementedError

    def _delete(self, skey: str) -> bool:
        raise NotImplementedError

    def _touch(self, skey: str, ttl: float | None) -> bool:
        raise NotImplementedError

    def _ttl(self, skey: str) -> float | None:
        raise NotImplementedError

    def _scan(self, head: str) -> Iterable[str]:
        raise NotImplementedError

    # -- optional hooks: defaults in terms of the ones above -----------------------------------
    def _get_with_ttl(self, skey: str) -> tuple[bytes, float] | None:
        value = self._get(skey)
        remaining = None if value is None else self._ttl(skey)
        return None if value is None or remaining is None else (value, remaining)

    def _get_many(self, skeys: list[str]) -> dict[str, bytes]:
        return {k: v for k in skeys if (v := self._get(k)) is not None}

    def _set_many(self, items: dict[str, bytes], ttl: float | None) -> None:
        for skey, value in items.items():
            self._set(skey, value, ttl)

    def _delete_many(self, skeys: list[str]) -> int:
        return sum(1 for skey in dict.fromkeys(skeys) if self._delete(skey))

    def _get_versioned(self, skey: str) -> Versioned | None:
        value = self._get(skey)
        return None if value is None else Versioned(value, value_token(value))

    def _set_if(
        self, skey: str, value: bytes, token: VersionToken | None, ttl: float | None
    ) -> bool:
        # cas == "lock": the caller holds _write_lock, which every write of this instance takes.
        current = self._get(skey)
        if (None if current is None else value_token(current)) != token:
            return False
        self._set(skey, value, ttl)
        return True

    def _touch_if(self, skey: str, head: bytes, ttl: float | None) -> bool:
        """:meth:`~session_store.backend.SessionBackend.touch_if`'s default, atomic as the
        backend's compare-and-set is: ``cas == "lock"``: read and ``_touch`` under the write lock
        (the caller holds it); ``"native"``: the value read rewritten by ``_set_if`` against its
        token (again if another writer got in). Override it with one atomic step if you can."""
        for _ in range(4):
            read = self._get_versioned(skey)
            if read is None or not read.value.startswith(head):
                return False
            if self.cas == "lock":
                return self._touch(skey, ttl)
            if self._set_if(skey, read.value, read.token, ttl):
                return True
        return False  # pragma: no cover - 4 writers in a row got in: none of them was touched

    def _touch_session(self, skey: str, ttl: float | None, keep_own: bool) -> bool:
        """:meth:`~session_store.backend.SessionBackend.touch_session` as one step: the value's
        head judged (:func:`~session_store.touchrules.touch_decision`), then ``_touch`` with the TTL
        chosen; ``ttl`` is the effective fallback (``None``: no expiry). The base calls it
        under the write lock where ``cas == "lock"``, which makes it atomic; for any other
        ``cas`` it runs the protocol's default steps instead (a conditional touch or
        compare-and-set; read and touch in two steps only where ``cas == "none"`` and there is
        no ``_touch_if``), unless a subclass overrides this with one atomic step of its own."""
        value = self._get(skey)
        if value is None:
            return False
        live, chosen = touch_decision(value[:HEAD_SPAN], ttl, keep_own)
        return live and self._touch(skey, None if chosen == NO_EXPIRY else chosen)

    def _delete_session(self, skey: str) -> bool:
        """:meth:`~session_store.backend.SessionBackend.delete_session` as one step: the
        value's head judged (:func:`~session_store.deleterules.holds_session`), then
        ``_delete``. The base calls it under the write lock, which makes it atomic where
        ``cas == "lock"``; for any other ``cas`` it is a read and a delete (a value written
        between them is deleted too; a key read holding no session never is), unless a
        subclass overrides this with one atomic step of its own (a script, a transaction)."""
        value = self._get(skey)
        return value is not None and holds_session(value) and self._delete(skey)

    def _close(self) -> None:
        """Release connections and files; called once, by the first :meth:`close`."""

    # -- the machinery ---------------------------------------------------------------------------
    @contextmanager
    def _translating(self, op: str, key: str | None = None) -> Iterator[None]:
        """Time ``op`` and turn the store's own exceptions into typed errors (counted)."""
        started = time.perf_counter()
        try:
            yield
        except SessionStoreError:
            self.counters.add("errors")
            raise
        except self.unavailable_errors as exc:
            self.counters.add("errors")
            message = f"{op} failed, store unreachable: {type(exc).__name__}: {exc}"
            raise BackendUnavailableError(message, key=key, backend=self.describe()) from None
        except self.backend_errors as exc:
            self.counters.add("errors")
            message = f"{op} failed: {type(exc).__name__}: {exc}"
            raise BackendError(message, key=key, backend=self.describe()) from None
        finally:
            self.counters.observe(op, time.perf_counter() - started)

    def _call(self, op: str, key: str | None, hook: Callable[[], T]) -> T:
        with self._translating(op, key):
            return hook()

    def _effective(self, ttl: float | None) -> float | None:
        chosen = self.default_ttl if ttl is None else ttl
        return None if chosen is None or chosen == NO_EXPIRY else chosen

    def _value(self, value: object, key: str) -> bytes:
        if type(value) is bytes:
            return value
        return ensure_bytes(value, key=key, backend=self.describe())

    def _require_cas(self, key: str) -> None:
        if self.cas == "none":
            raise BackendError(
                "this backend does not support compare-and-set (get_versioned / set_if)",
                key=key,
                backend=self.describe(),
            )

    @cached_property
    def _trusted(self) -> CheckedOnceCalls:
        return CheckedOnceCalls(self)

    # -- the public protocol: check once, then the trusted path --------------------------------
    def get(self, key: str) -> bytes | None:
        return self._trusted.get(validate_key(key))

    def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        return self._trusted.get_with_ttl(validate_key(key))

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        validate_key(key)
        self._trusted.set(key, self._value(value, key), normalize_ttl(ttl))

    def delete(self, key: str) -> bool:
        return self._trusted.delete(validate_key(key))

    def touch(self, key: str, ttl: float | None = None) -> bool:
        return self._trusted.touch(validate_key(key), normalize_ttl(ttl))

    def touch_if(self, key: str, head: bytes, ttl: float | None = None) -> bool:
        head = self._value(head, key)
        return self._trusted.touch_if(validate_key(key), head, normalize_ttl(ttl))

    def touch_session(self, key: str, ttl: float | None = None, keep_own: bool = False) -> bool:
        return self._trusted.touch_session(validate_key(key), normalize_ttl(ttl), keep_own)

    def delete_session(self, key: str) -> bool:
        return self._trusted.delete_session(validate_key(key))

    def ttl(self, key: str) -> float | None:
        return self._trusted.ttl(validate_key(key))

    def scan(self, prefix: str = "") -> Iterator[str]:
        return self._trusted.scan(validate_scan_prefix(prefix))

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        return self._trusted.get_many([validate_key(key) for key in keys])

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        checked = {validate_key(k): self._value(v, k) for k, v in items.items()}
        self._trusted.set_many(checked, normalize_ttl(ttl))

    def delete_many(self, keys: Iterable[str]) -> int:
        return self._trusted.delete_many([validate_key(key) for key in keys])

    def get_versioned(self, key: str) -> Versioned | None:
        return self._trusted.get_versioned(validate_key(key))

    def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        validate_key(key)
        return self._trusted.set_if(key, self._value(value, key), token, normalize_ttl(ttl))

    def close(self) -> None:
        """Release resources once; later calls do nothing."""
        if not self._closed:
            self._closed = True
            self._close()
