"""A tier that can be switched off: a real backend behind a switch, for tier-outage logic.

Real outages of a real server (a killed redis-server) are tested in tests/redis; this switch
lets the core suite pin down the tiered backend's own rules deterministically.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from session_store import BackendUnavailableError, SessionBackend
from session_store.backend import Scope, Versioned, VersionToken


class Switchable(SessionBackend):
    """Delegates to ``inner``; every call raises BackendUnavailableError while ``down``."""

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
