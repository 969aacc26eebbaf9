"""The conformance tests of the conditional touch, ``touch_if(key, head, ttl)``: it restarts the
expiry of a value that still begins with ``head`` and of nothing else, atomically (a value
written or deleted since the caller read it is never touched, even by a touch racing the
write), and it checks its arguments as every write does. Every backend passes them, sync
(:class:`ConditionalTouchConformance`, a base of
:class:`~session_store.testing.conformance.BackendConformance`) and async
(:class:`AsyncConditionalTouchConformance`, a base of
:class:`~session_store.testing.async_conformance.AsyncBackendConformance`), whether it
implements ``touch_if`` itself or inherits the protocol's default (compare-and-set).
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable
from typing import Any

import pytest

from session_store.aio.backend import AsyncSessionBackend
from session_store.backend import SessionBackend
from session_store.errors import ConfigurationError, InvalidKeyError, SerializationError
from session_store.testing.hostile import INVALID_KEYS

__all__ = ["AsyncConditionalTouchConformance", "ConditionalTouchConformance"]

#: Rounds of the racing tests: a writer replaces the value while a toucher keeps touching it.
RACE_ROUNDS = 30


def _left_between(left: float | None, low: float, high: float) -> bool:
    return left is not None and low < left <= high


def _race_round(backend: SessionBackend, old: bytes) -> None:
    """``old`` stored, then replaced by a value living 30 s while a thread keeps touching
    ``old`` for an hour (it goes on until it touched twice after the write)."""
    backend.set("k", old + b"payload", ttl=3600)
    calls, stop, started = [0], threading.Event(), threading.Event()

    def toucher() -> None:
        while not stop.is_set():
            backend.touch_if("k", old, 3600)
            calls[0] += 1
            started.set()

    thread = threading.Thread(target=toucher)
    thread.start()
    try:
        started.wait(10)
        backend.set("k", b"new|payload", ttl=30)
        seen = calls[0]
        while calls[0] < seen + 2 and thread.is_alive():
            stop.wait(0.001)
    finally:
        stop.set()
        thread.join()


async def _async_race_round(backend: AsyncSessionBackend, old: bytes) -> None:
    """:func:`_race_round` with three tasks touching ``old``."""
    await backend.set("k", old + b"payload", ttl=3600)
    stop = asyncio.Event()

    async def toucher() -> None:
        while not stop.is_set():
            await backend.touch_if("k", old, 3600)
            await asyncio.sleep(0)

    tasks = [asyncio.ensure_future(toucher()) for _ in range(3)]
    await asyncio.sleep(0)
    await backend.set("k", b"new|payload", ttl=30)
    for _ in range(6):
        await asyncio.sleep(0)
    stop.set()
    await asyncio.gather(*tasks)


class ConditionalTouchConformance:
    """``touch_if`` on a sync backend (the ``backend`` / ``backend_factory`` fixtures are
    :class:`~session_store.testing.conformance.BackendConformance`'s)."""

    shares_storage: bool = True

    def test_touch_if_touches_a_value_that_begins_with_head(self, backend: SessionBackend) -> None:
        backend.set("k", b"frame-1|payload", ttl=10)
        assert backend.touch_if("k", b"frame-1|", 60) is True
        assert _left_between(backend.ttl("k"), 10, 60)
        assert backend.touch_if("k", b"frame-1|payload", 3600) is True  # the whole value
        assert _left_between(backend.ttl("k"), 60, 3600)
        assert backend.touch_if("k", b"", math.inf) is True  # b"": any value, as touch
        assert backend.ttl("k") == math.inf
        assert backend.get("k") == b"frame-1|payload"  # the value is never rewritten otherwise

    def test_touch_if_leaves_any_other_value_and_absent_keys(self, backend: SessionBackend) -> None:
        backend.set("k", b"frame-2|payload", ttl=10)
        for head in (b"frame-1|", b"frame-2|payload and more", b"rame-2|", b"\x00"):
            assert backend.touch_if("k", head, 3600) is False, head
        assert _left_between(backend.ttl("k"), 0, 10)
        assert backend.get("k") == b"frame-2|payload"
        assert backend.touch_if("absent", b"", 60) is False
        assert backend.touch_if("absent", b"frame", 60) is False
        assert backend.get("absent") is None and backend.ttl("absent") is None

    def test_touch_if_never_touches_what_another_writer_put_there_since(
        self, backend_factory: Callable[..., SessionBackend]
    ) -> None:
        mine, theirs = backend_factory(), backend_factory()
        other = theirs if self.shares_storage else mine
        try:
            mine.set("k", b"old|session", ttl=3600)
            other.set("k", b"new|session", ttl=10)  # after this reader read "old|"
            assert mine.touch_if("k", b"old|", 7200) is False
            assert _left_between(mine.ttl("k"), 0, 10)
            assert other.delete("k") is True
            assert mine.touch_if("k", b"new|", 7200) is False  # never brought back
            assert other.get("k") is None  # (a chain's near copy in ``mine`` may lag a while)
        finally:
            mine.close()
            theirs.close()

    def test_touch_if_is_atomic_against_a_racing_write(self, backend: SessionBackend) -> None:
        """A thread keeps touching ``old`` while the value is replaced by a short-lived one:
        the new value's TTL is never extended (a read and a touch apart would, sometimes)."""
        for round_ in range(RACE_ROUNDS):
            _race_round(backend, b"old-%d|" % round_)
            assert _left_between(backend.ttl("k"), 0, 30), f"round {round_}: new value touched"
            assert backend.get("k") == b"new|payload"

    def test_touch_if_checks_its_arguments_before_any_io(self, backend: SessionBackend) -> None:
        backend.set("k", b"kept", ttl=60)
        for bad in INVALID_KEYS:
            with pytest.raises(InvalidKeyError):
                backend.touch_if(bad, b"", 10)  # type: ignore[arg-type]
        for ttl in (0, -1, math.nan, "10", True):
            with pytest.raises(ConfigurationError):
                backend.touch_if("k", b"kept", ttl)  # type: ignore[arg-type]
        with pytest.raises(SerializationError):
            backend.touch_if("k", "kept", 10)  # type: ignore[arg-type]
        assert backend.get("k") == b"kept" and _left_between(backend.ttl("k"), 0, 60)


class AsyncConditionalTouchConformance:
    """``touch_if`` on an async backend (the fixtures are
    :class:`~session_store.testing.async_conformance.AsyncBackendConformance`'s)."""

    shares_storage: bool = True

    async def test_touch_if_touches_only_a_value_that_begins_with_head(
        self, backend: AsyncSessionBackend
    ) -> None:
        await backend.set("k", b"frame-1|payload", ttl=10)
        assert await backend.touch_if("k", b"frame-1|", 60) is True
        assert _left_between(await backend.ttl("k"), 10, 60)
        for head in (b"frame-2|", b"frame-1|payload and more", b"\x00"):
            assert await backend.touch_if("k", head, 3600) is False, head
        assert _left_between(await backend.ttl("k"), 10, 60)
        assert await backend.touch_if("k", b"", math.inf) is True
        assert await backend.ttl("k") == math.inf
        assert await backend.get("k") == b"frame-1|payload"
        assert await backend.touch_if("absent", b"", 60) is False
        assert await backend.get("absent") is None

    async def test_touch_if_never_touches_what_another_writer_put_there_since(
        self, backend_factory: Callable[..., AsyncSessionBackend]
    ) -> None:
        mine, theirs = backend_factory(), backend_factory()
        other = theirs if self.shares_storage else mine
        try:
            await mine.set("k", b"old|session", ttl=3600)
            await other.set("k", b"new|session", ttl=10)
            assert await mine.touch_if("k", b"old|", 7200) is False
            assert _left_between(await mine.ttl("k"), 0, 10)
            assert await other.delete("k") is True
            assert await mine.touch_if("k", b"new|", 7200) is False
            assert await other.get("k") is None
        finally:
            await mine.aclose()
            await theirs.aclose()

    async def test_touch_if_is_atomic_against_a_racing_write(
        self, backend: AsyncSessionBackend
    ) -> None:
        """Tasks keep touching ``old`` while another task replaces it with a short-lived value:
        its TTL is never extended."""
        for round_ in range(RACE_ROUNDS // 3):
            await _async_race_round(backend, b"old-%d|" % round_)
            assert _left_between(await backend.ttl("k"), 0, 30), f"round {round_}: touched"
            assert await backend.get("k") == b"new|payload"

    async def test_touch_if_checks_its_arguments(self, backend: AsyncSessionBackend) -> None:
        await backend.set("k", b"kept", ttl=60)
        bad_calls: list[tuple[type[Exception], Any]] = [
            *((InvalidKeyError, (bad, b"", 10)) for bad in INVALID_KEYS),
            *((ConfigurationError, ("k", b"kept", ttl)) for ttl in (0, -1, math.nan, "10")),
            (SerializationError, ("k", "kept", 10)),
        ]
        for error, args in bad_calls:
            with pytest.raises(error):
                await backend.touch_if(*args)
        assert await backend.get("k") == b"kept"
        assert _left_between(await backend.ttl("k"), 0, 60)
