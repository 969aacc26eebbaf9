"""Fault injection for tests: a real backend behind a switch that makes it unavailable.

The tiered backend's outage rules (skip, breaker, recovery, stamps) are checked fast and
deterministically with this switch; real outages of a real server (a killed or paused
redis-server) are tested beside it, never replaced by it. Plugin authors can wrap their own
backend the same way::

    from session_store.testing.faults import SwitchableBackend

    tier = SwitchableBackend(MyBackend(...))
    chain = TieredBackend([MemoryBackend(), tier])
    tier.down = True   # every call now raises BackendUnavailableError
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from session_store.backend import Scope, SessionBackend, Versioned, VersionToken
from session_store.errors import BackendUnavailableError

__all__ = ["SwitchableBackend"]


class SwitchableBackend(SessionBackend):
    """Delegates to ``inner``; every call raises :class:`BackendUnavailableError` while ``down``.

    Attributes:
        down: set it to ``True`` to make the backend unreachable, ``False`` to bring it back.
        calls: how many operations reached the switch (a breaker test counts them).
    """

    def __init__(self, inner: SessionBackend, scope: Scope | None = None) -> None:
        self.inner = inner
        self.down = False
        self.calls = 0
        self.counters = inner.counters
        self._scope = scope or inner.scope

    @property
    def scope(self) -> Scope:  # type: ignore[override]
        return self._scope

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise BackendUnavailableError("switched off", backend=self.describe())

    def describe(self) -> str:
        return f"switchable({self.inner.describe()})"

    def get(self, key: str) -> bytes | None:
        self._check()
        return self.inner.get(key)

    def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        self._check()
        return self.inner.get_with_ttl(key)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._check()
        self.inner.set(key, value, ttl)

    def delete(self, key: str) -> bool:
        self._check()
        return self.inner.delete(key)

    def touch(self, key: str, ttl: float | None = None) -> bool:
        self._check()
        return self.inner.touch(key, ttl)

    def touch_if(self, key: str, head: bytes, ttl: float | None = None) -> bool:
        self._check()
        return self.inner.touch_if(key, head, ttl)

    def touch_session(self, key: str, ttl: float | None = None, keep_own: bool = False) -> bool:
        self._check()
        return self.inner.touch_session(key, ttl, keep_own)

    def delete_session(self, key: str) -> bool:
        self._check()
        return self.inner.delete_session(key)

    def ttl(self, key: str) -> float | None:
        self._check()
        return self.inner.ttl(key)

    def scan(self, prefix: str = "") -> Iterator[str]:
        self._check()
        return self.inner.scan(prefix)

    def get_versioned(self, key: str) -> Versioned | None:
        self._check()
        return self.inner.get_versioned(key)

    def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        self._check()
        return self.inner.set_if(key, value, token, ttl)

    def get_many(self, keys: Any) -> dict[str, bytes]:
        self._check()
        return self.inner.get_many(keys)

    def set_many(self, items: Any, ttl: float | None = None) -> None:
        self._check()
        self.inner.set_many(items, ttl)

    def delete_many(self, keys: Any) -> int:
        self._check()
        return self.inner.delete_many(keys)
