"""Unchecked calls: what a composite that already checked a call's arguments passes down.

:class:`TrustedCalls` names the data operations; :func:`unchecked_calls` builds a backend's
``trusted_calls`` from its forms of them that skip the argument checks (see
:func:`session_store.backend_base.trusted`, which hands them to composites), and
:func:`checked` builds a write's public method from its unchecked form, so the checks are
written once. A module of its own so that a backend needs neither the template base class nor
anything above the protocol.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol, TypeVar, cast

from session_store.backend import SessionBackend, Versioned, VersionToken, ensure_bytes
from session_store.errors import InvalidKeyError
from session_store.keys import validate_key
from session_store.ttl import normalize_ttl

__all__ = ["ONE_KEY_CALLS", "TRUSTED_CALL_NAMES", "TrustedCalls", "checked", "unchecked_calls"]

F = TypeVar("F", bound=Callable[..., Any])


class TrustedCalls(Protocol):
    """The data operations of a backend, for callers that already checked their arguments."""

    def get(self, key: str) -> bytes | None: ...
    def get_with_ttl(self, key: str) -> tuple[bytes, float] | None: ...
    def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...
    def delete(self, key: str) -> bool: ...
    def touch(self, key: str, ttl: float | None = None) -> bool: ...
    def touch_if(self, key: str, head: bytes, ttl: float | None = None) -> bool: ...
    def ttl(self, key: str) -> float | None: ...
    def scan(self, prefix: str = "") -> Iterator[str]: ...
    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]: ...
    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None: ...
    def delete_many(self, keys: Iterable[str]) -> int: ...
    def get_versioned(self, key: str) -> Versioned | None: ...
    def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool: ...


#: The operations on one key, which a backend's unchecked forms most often cover.
ONE_KEY_CALLS = (
    "get",
    "get_with_ttl",
    "set",
    "delete",
    "touch",
    "ttl",
    "get_versioned",
    "set_if",
)


#: The operations of :class:`TrustedCalls` (``touch_if``, newer than :data:`ONE_KEY_CALLS`, is
#: not among them, so that a backend naming those need not have a ``_touch_if``; one that has
#: it names it too).
TRUSTED_CALL_NAMES = (*ONE_KEY_CALLS, "touch_if", "scan", "get_many", "set_many", "delete_many")


class _Calls:
    """Bound methods under the :class:`TrustedCalls` names (see :func:`unchecked_calls`)."""


def unchecked_calls(
    backend: SessionBackend, owner: type, *named: str, **unchecked: Callable[..., Any]
) -> TrustedCalls:
    """The ``trusted_calls`` of a backend that is not a
    :class:`~session_store.backend_base.BackendBase`.

    Each keyword names an operation (a :class:`TrustedCalls` name, or an extra such as
    ``set_if_newer``) and gives the backend's form of it that skips the argument checks but
    does everything else (namespacing, counting, error translation); a positional ``name``
    (:data:`ONE_KEY_CALLS`, say) gives the backend's ``_name`` method as that form. ``owner``
    is the class whose public methods those forms go with: where ``backend`` is of a subclass
    that overrides a public method (a wrapper, a test's failing tier), that override is the
    operation, checks and all, so no override is ever bypassed. An operation of
    :data:`TRUSTED_CALL_NAMES` not given is the public method too (it checks again: correct,
    only slower). The calls are the bound methods themselves, so a trusted call costs no extra
    frame.
    """
    unchecked = {**{name: getattr(backend, f"_{name}") for name in named}, **unchecked}
    cls = type(backend)
    calls = _Calls()
    for name in (*TRUSTED_CALL_NAMES, *unchecked):
        public = getattr(backend, name, None)
        own = getattr(cls, name, None) is getattr(owner, name, None)
        call = unchecked.get(name) if own else None
        if call is not None or public is not None:
            setattr(calls, name, call or public)
    return cast(TrustedCalls, calls)


def checked(unchecked: F) -> F:
    """The public method of a backend's unchecked write ``_name(self, key, value, ..., ttl, ...)``.

    Used in a class body as ``name = checked(_name)``: the public method checks ``key``
    (:func:`~session_store.keys.validate_key`), ``value`` (bytes, as
    :func:`~session_store.backend.ensure_bytes` makes them) and ``ttl``
    (:func:`~session_store.ttl.normalize_ttl`), all before any I/O (a bad key or value names the
    backend, ``describe()``, in its error), then calls ``self._name`` with the checked
    arguments; every other argument passes through. ``self._name`` is looked up on each call,
    so a subclass that overrides it is obeyed. A coroutine function gives a coroutine function
    (the checks run when it is awaited, as an ``async def`` method's would). The public method
    has ``unchecked``'s signature and docstring.
    """
    name = unchecked.__name__
    at = list(inspect.signature(unchecked).parameters).index("ttl") - 3  # after self, key, value

    def public(self: Any, key: str, value: bytes, *args: Any, **kwargs: Any) -> Any:
        try:
            validate_key(key)
        except InvalidKeyError as exc:  # the backend named on the way out only: a hot path
            exc.backend = self.describe()
            raise
        if type(value) is not bytes:
            value = ensure_bytes(value, key=key, backend=self.describe())
        if len(args) > at:
            args = (*args[:at], normalize_ttl(args[at]), *args[at + 1 :])
        elif "ttl" in kwargs:
            kwargs["ttl"] = normalize_ttl(kwargs["ttl"])
        return getattr(self, name)(key, value, *args, **kwargs)

    if inspect.iscoroutinefunction(unchecked):
        checks_then_awaits = public

        async def public_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            return await checks_then_awaits(self, *args, **kwargs)

        public = public_async
    functools.update_wrapper(public, unchecked)
    public.__name__ = name.lstrip("_")
    public.__qualname__ = unchecked.__qualname__.replace(name, public.__name__)
    return cast(F, public)
