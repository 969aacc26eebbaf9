"""The decoded-object near cache (``session_store/decoded.py``, used by
``SessionStore`` and ``AsyncSessionStore``).

The guarantees under attack (decoded.py's docstring): the cache "can never serve anything the
backend would not have (same bytes -> same session)"; a caller mutating what it loaded, saved
or handed to ``update`` never changes what another ``load`` returns or what is stored; after
another writer (another store, another process) writes, a load does not return the cached
object; an ``update`` after a concurrent write from another process is not lost.

Tests that record a break began as ``xfail(strict=True)`` reproducers (2026-11-30), each seen
failing for the reason its docstring gives; their markers were removed as the fixes landed.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from functools import cached_property
from typing import Any

import attrs

from session_store import MemoryBackend, SessionStore
from session_store.aio import AsyncSessionStore
from session_store.aio.memory import AsyncMemoryBackend
from session_store.codec import Codec
from session_store.schema import SchemaInfo, register_schema


@attrs.frozen
class Appointment:
    """A frozen schema whose fields are all immutable: the cache shares it (``is_immutable``)."""

    user_id: str
    starts: datetime
    tags: Any = ()


APPOINTMENT = SchemaInfo("adversarial-appointment", Appointment, 1)
PARIS_SUMMER = timezone(timedelta(hours=2))


def _pair(backend: MemoryBackend) -> tuple[SessionStore[Appointment], SessionStore[Appointment]]:
    """Two stores on one backend: ``writer`` saves (and so caches), ``reader`` never saw it."""
    register_schema(APPOINTMENT)
    writer = SessionStore(backend, Appointment, codec=Codec(encryption=None))
    reader = SessionStore(backend, Appointment, codec=Codec(encryption=None))
    return writer, reader


def test_a_warm_load_of_a_frozen_session_is_what_its_bytes_decode_to() -> None:
    """Guarantee: same bytes -> same session, whatever the cache holds.

    Input: a frozen schema (shared by the cache, never copied) with an aware datetime in
    +02:00, saved by one store. What happens: the codec writes it in UTC and decodes it in UTC,
    but ``save`` puts the caller's own object into the cache (``DecodedCache.put(key, payload,
    stamped, ...)`` with ``is_immutable(stamped)``), so the saving store's ``load`` returns
    ``starts.hour == 10`` with tzinfo +02:00 while any other store, the same store after an
    eviction or a restart, or ``load_many`` returns ``hour == 8``, UTC: what a session reads
    as depends on the state of a cache.
    """
    writer, reader = _pair(MemoryBackend())
    writer.save("u", Appointment("u", datetime(2026, 7, 1, 10, tzinfo=PARIS_SUMMER)))
    warm, cold = writer.load("u"), reader.load("u")
    assert warm is not None and cold is not None
    assert (warm.starts.hour, warm.starts.tzinfo) == (cold.starts.hour, cold.starts.tzinfo)


def test_a_warm_load_equals_a_cold_load_of_the_same_bytes() -> None:
    """Guarantee: same bytes -> same session.

    Input: a frozen session whose ``Any`` field holds the tuple ``("vip", "beta")`` (storable:
    tuples are written as JSON arrays). What happens: the saving store's ``load`` returns the
    saved object (``tags == ("vip", "beta")``), another store's ``load`` of the very same
    bytes returns ``tags == ["vip", "beta"]``; the two sessions compare unequal.
    """
    writer, reader = _pair(MemoryBackend())
    writer.save("u", Appointment("u", datetime(2026, 7, 1, tzinfo=UTC), ("vip", "beta")))
    assert writer.load("u") == reader.load("u")


def test_the_async_store_has_the_same_divergence() -> None:
    """Guarantee: same bytes -> same session (``AsyncSessionStore`` shares the sync cache).

    Input: as above (+02:00 datetime and a tuple), through two async stores on one
    ``AsyncMemoryBackend``. What happens: as above.
    """
    register_schema(APPOINTMENT)

    async def main() -> tuple[Any, Any]:
        backend = AsyncMemoryBackend()
        writer = AsyncSessionStore(backend, Appointment, codec=Codec(encryption=None))
        reader = AsyncSessionStore(backend, Appointment, codec=Codec(encryption=None))
        starts = datetime(2026, 7, 1, 10, tzinfo=PARIS_SUMMER)
        await writer.save("u", Appointment("u", starts, ("vip",)))
        return await writer.load("u"), await reader.load("u")

    warm, cold = asyncio.run(main())
    assert warm == cold
    assert warm.starts.hour == cold.starts.hour


@attrs.frozen
class Basket:
    """Frozen, every field immutable (so the cache shares it), with a derived lookup table
    computed on first use: ``functools.cached_property``, which attrs supports on slotted
    classes."""

    user_id: str
    items: tuple[str, ...] = ()

    @cached_property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for item in self.items:
            out[item] = out.get(item, 0) + 1
        return out


BASKET = SchemaInfo("adversarial-basket", Basket, 1)


def test_mutating_a_shared_sessions_derived_state_does_not_leak() -> None:
    """Guarantee: a caller may mutate what ``load`` returned; that never changes what another
    ``load`` returns.

    Input: a frozen attrs session whose fields are a ``str`` and a ``tuple[str, ...]`` (so
    ``is_immutable`` says it may be shared) and which has a ``cached_property`` returning a
    dict. What happens: every ``load`` returns the one shared object; caller A computes
    ``counts`` and changes it (``counts["apple"] = 99``), and caller B's ``load`` sees 99,
    while a store that never cached it (or the same store after an eviction) sees 1.
    """
    register_schema(BASKET)
    backend = MemoryBackend()
    store = SessionStore(backend, Basket, codec=Codec(encryption=None))
    store.save("u", Basket("u", ("apple", "pear")))
    first = store.load("u")
    assert first is not None
    first.counts["apple"] = 99  # caller A's own working copy, as far as it knows
    second = store.load("u")
    assert second is not None and second.counts == {"apple": 1, "pear": 1}


# -- what held ----------------------------------------------------------------------------------
def test_held_mutating_what_was_loaded_saved_or_updated_never_leaks() -> None:
    """Held: a dict session's loaded, saved, ``update``-given and ``update``-returned objects
    are each the caller's own; mutating them changes no other load and nothing stored."""
    backend = MemoryBackend()
    store: SessionStore[dict[str, Any]] = SessionStore(backend, dict)
    other: SessionStore[dict[str, Any]] = SessionStore(backend, dict)
    saved = store.save("k", {"items": [1], "nested": {"a": [1]}})
    saved["items"].append("saved")
    loaded = store.load("k")
    assert loaded is not None
    loaded["nested"]["a"].append("loaded")
    given: list[dict[str, Any]] = []

    def fn(current: dict[str, Any] | None) -> dict[str, Any]:
        assert current is not None
        given.append(current)
        current["items"].append(2)
        return current

    result = store.update("k", fn)
    assert result is not None
    result["items"].append("returned")
    given[0]["nested"]["a"].append("given")
    expected = {"items": [1, 2], "nested": {"a": [1]}}
    assert store.load("k") == other.load("k") == expected


_WORKER = textwrap.dedent(
    """
    import sys
    from session_store import SessionStore
    url, rounds = sys.argv[1], int(sys.argv[2])
    with SessionStore(url, dict) as store:
        for _ in range(rounds):
            store.update("k", lambda c: {**(c or {}), "n": (c or {}).get("n", 0) + 1})
    """
)


def test_held_updates_from_processes_interleaved_with_a_cached_reader_are_not_lost(
    redis_url: str,
) -> None:
    """Held: ``update`` reads through the near cache, yet 2 other processes' increments and
    this process's own (whose cache holds an older copy each time) all count, on a real
    redis-server."""
    rounds = 150
    with SessionStore(redis_url, dict) as store:
        store.save("k", {"n": 0})
        children = [
            subprocess.Popen([sys.executable, "-c", _WORKER, redis_url, str(rounds)])
            for _ in range(2)
        ]
        mine = 0
        while any(child.poll() is None for child in children) or mine < rounds:
            loaded = store.load("k")  # fills the near cache with what is stored now
            assert loaded is not None
            store.update("k", lambda c: {**(c or {}), "n": (c or {}).get("n", 0) + 1})
            mine += 1
        for child in children:
            assert child.wait(timeout=120) == 0
        final = store.load("k")
        assert final == {"n": 2 * rounds + mine}
