"""The operations of a :class:`~session_store.backend_base.BackendBase` without argument checks:
what its public methods call once they checked, and what
:func:`~session_store.backend_base.trusted` hands to composites that checked already. Each
namespaces the key, calls the backend's hook, counts, times and translates errors (through the
backend's ``_call``). A module of its own so that the base class stays short.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from session_store.backend import Versioned, VersionToken
from session_store.touchrules import run_touch_session, touch_session_steps

if TYPE_CHECKING:
    from session_store.backend_base import BackendBase

__all__ = ["CheckedOnceCalls"]


class CheckedOnceCalls:
    """A :class:`~session_store.backend_base.BackendBase`'s operations without argument checks
    (see the module docstring)."""

    __slots__ = ("_b", "_ns")

    def __init__(self, backend: BackendBase) -> None:
        self._b = backend
        self._ns = backend.namespace

    def get(self, key: str) -> bytes | None:
        b = self._b
        value = b._call("get", key, lambda: b._get(self._ns.encode(key)))
        b.counters.add("misses" if value is None else "hits")
        return value

    def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        b = self._b
        found = b._call("get_with_ttl", key, lambda: b._get_with_ttl(self._ns.encode(key)))
        b.counters.add("misses" if found is None else "hits")
        return found

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        b = self._b
        with b._write_lock:
            b._call("set", key, lambda: b._set(self._ns.encode(key), value, b._effective(ttl)))
        b.counters.add("writes")

    def delete(self, key: str) -> bool:
        b = self._b
        with b._write_lock:
            removed = b._call("delete", key, lambda: b._delete(self._ns.encode(key)))
        b.counters.add("deletes", int(removed))
        return removed

    def delete_session(self, key: str) -> bool:
        b = self._b
        skey = self._ns.encode(key)
        with b._write_lock:
            removed = b._call("delete_session", key, lambda: b._delete_session(skey))
        b.counters.add("deletes", int(removed))
        return removed

    def touch(self, key: str, ttl: float | None = None) -> bool:
        b = self._b
        return b._call("touch", key, lambda: b._touch(self._ns.encode(key), b._effective(ttl)))

    def touch_if(self, key: str, head: bytes, ttl: float | None = None) -> bool:
        b, skey = self._b, self._ns.encode(key)
        if not b._own_touch_if:  # the default: compare-and-set
            b._require_cas(key)
        with b._write_lock:
            return b._call("touch_if", key, lambda: b._touch_if(skey, head, b._effective(ttl)))

    def touch_session(self, key: str, ttl: float | None = None, keep_own: bool = False) -> bool:
        b = self._b
        if b._own_touch_session or b.cas == "lock" or (b.cas == "none" and not b._own_touch_if):
            skey = self._ns.encode(key)
            with b._write_lock:
                return b._call(
                    "touch_session",
                    key,
                    lambda: b._touch_session(skey, b._effective(ttl), keep_own),
                )
        steps = touch_session_steps(key, ttl, keep_own, b._own_touch_if)
        return run_touch_session(self, steps)

    def ttl(self, key: str) -> float | None:
        b = self._b
        return b._call("ttl", key, lambda: b._ttl(self._ns.encode(key)))

    def scan(self, prefix: str = "") -> Iterator[str]:
        # A generator: errors are translated while iterating; the checks ran before it started.
        b, ns = self._b, self._ns
        with b._translating("scan"):
            for stored in b._scan(ns.scan_head(prefix)):
                key = ns.decode(stored)
                if key is not None and key.startswith(prefix):
                    yield key

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        b, ns = self._b, self._ns
        wanted = {ns.encode(key): key for key in keys}
        if not wanted:
            return {}
        found = b._call("get_many", None, lambda: b._get_many(list(wanted)))
        b.counters.add("hits", len(found))
        b.counters.add("misses", len(wanted) - len(found))
        return {wanted[skey]: value for skey, value in found.items()}

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        b = self._b
        stored = {self._ns.encode(key): value for key, value in items.items()}
        if stored:
            with b._write_lock:
                b._call("set_many", None, lambda: b._set_many(stored, b._effective(ttl)))
            b.counters.add("writes", len(stored))

    def delete_many(self, keys: Iterable[str]) -> int:
        b = self._b
        stored = [self._ns.encode(key) for key in keys]
        if not stored:
            return 0
        with b._write_lock:
            removed = b._call("delete_many", None, lambda: b._delete_many(stored))
        b.counters.add("deletes", removed)
        return removed

    def get_versioned(self, key: str) -> Versioned | None:
        b = self._b
        b._require_cas(key)
        read = b._call("get_versioned", key, lambda: b._get_versioned(self._ns.encode(key)))
        b.counters.add("misses" if read is None else "hits")
        return read

    def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        b, skey = self._b, self._ns.encode(key)
        b._require_cas(key)
        with b._write_lock:
            done = b._call("set_if", key, lambda: b._set_if(skey, value, token, b._effective(ttl)))
        if done:
            b.counters.add("writes")
        return done
