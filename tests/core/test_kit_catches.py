"""The conformance kit catches the mistakes a plugin author makes, and says what it saw.

Each backend here is a small dict store with one deliberate bug, run through one kit test the
way a plugin's test file runs it: the kit must fail it, with a message that shows the values.
"""

from __future__ import annotations

import asyncio
import fnmatch
import math
import time
from collections.abc import Iterator

import pytest

from session_store.aio import ThreadedBackend
from session_store.plugin import AsyncBackendConformance, BackendBase, BackendConformance, Scope
from session_store.testing.hostile import HOSTILE_PREFIXES


class DictStore(BackendBase):
    """Values in a dict of ``key -> (value, monotonic deadline)``."""

    scope = Scope.PROCESS

    def __init__(self) -> None:
        super().__init__(prefix="t:")
        self.data: dict[str, tuple[bytes, float]] = {}

    def _live(self, skey: str) -> tuple[bytes, float] | None:
        entry = self.data.get(skey)
        return entry if entry is not None and entry[1] > time.monotonic() else None

    def _deadline(self, ttl: float | None) -> float:
        return math.inf if ttl is None else time.monotonic() + ttl

    def _get(self, skey: str) -> bytes | None:
        entry = self._live(skey)
        return None if entry is None else entry[0]

    def _set(self, skey: str, value: bytes, ttl: float | None) -> None:
        self.data[skey] = (value, self._deadline(ttl))

    def _delete(self, skey: str) -> bool:
        found = self._live(skey) is not None
        self.data.pop(skey, None)
        return found

    def _touch(self, skey: str, ttl: float | None) -> bool:
        entry = self._live(skey)
        if entry is not None:
            self.data[skey] = (entry[0], self._deadline(ttl))
        return entry is not None

    def _ttl(self, skey: str) -> float | None:
        entry = self._live(skey)
        return None if entry is None else max(entry[1] - time.monotonic(), 0.001)

    def _scan(self, head: str) -> Iterator[str]:
        return iter([k for k in list(self.data) if k.startswith(head) and self._live(k)])


class GlobScan(DictStore):
    """Lists keys with a glob pattern built from the prefix, unescaped (as a Redis ``SCAN
    MATCH`` or SQL ``GLOB`` written in a hurry would): ``[a]`` is a character class there."""

    def _scan(self, head: str) -> Iterator[str]:
        keys = [k for k in list(self.data) if self._live(k)]
        return iter([k for k in keys if fnmatch.fnmatchcase(k, head + "*")])


class NoExpiry(DictStore):
    """Ignores every TTL: each value lives forever."""

    def _deadline(self, ttl: float | None) -> float:
        return math.inf


class HalfSetMany(DictStore):
    """Stores the first half of a ``set_many``'s items: what a reader sees when it comes between
    two ``_set`` calls of the default loop (a worker thread finishing a cancelled ``set_many``)."""

    def _set_many(self, items: dict[str, bytes], ttl: float | None) -> None:
        super()._set_many(dict(list(items.items())[: len(items) // 2]), ttl)


def test_the_kit_catches_a_scan_that_globs_the_prefix() -> None:
    kit = BackendConformance()
    caught = []
    for prefix in HOSTILE_PREFIXES:
        try:
            kit.test_scan_prefix_is_literal(GlobScan(), prefix)
        except AssertionError:
            caught.append(prefix)
    assert caught, "every hostile prefix passed a scan that treats the prefix as a glob"
    kit.test_scan_prefix_is_literal(DictStore(), "[a]")  # a literal scan passes


def test_a_failing_kit_assertion_shows_the_values() -> None:
    """The kit's modules are installed code, not test files: without
    ``pytest.register_assert_rewrite`` a failure reads ``AssertionError`` and nothing else."""
    with pytest.raises(AssertionError) as info:
        BackendConformance().test_ttl_expiry(NoExpiry())
    assert "inf" in str(info.value)  # the TTL the backend reported


def test_a_half_applied_set_many_names_the_hook_to_write() -> None:
    """An async twin built as CONTRIBUTING's 2b shows (``ThreadedBackend``) over a sync backend
    whose ``set_many`` is the default loop fails the async kit's cancellation test: the failure
    says what to write, not only what it saw."""
    sync = HalfSetMany()
    sync.set("c19", b"new")  # the kit's last key, as a set_many's loop left it
    backend = ThreadedBackend(sync)
    kit = AsyncBackendConformance()
    with pytest.raises(AssertionError, match="half-applied set_many") as info:
        asyncio.run(kit.test_cancelled_writes_are_whole_or_absent(backend))
    asyncio.run(backend.aclose())
    assert "_set_many" in str(info.value)  # the hook that makes it one atomic step
