"""A session's own TTL is recorded with its payload (:mod:`session_store.ownttl`), so sliding
expiry keeps it on a single backend (memory, a real redis-server, a real diskcache directory),
through every write path (``save``, ``save_many``, ``update`` with and without its read, the
web integrations' commits), sync and async; and the common case is stored as before."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, session

from session_store import MemoryBackend, SessionStore
from session_store.aio import AsyncSessionStore
from session_store.cli.tierreads import read_first
from session_store.flask import SessionStoreInterface, regenerate
from session_store.stamps import MAGIC, own_ttl, session_bytes

Session = dict[str, Any]
BEFORE = {"purpose": "password reset"}
AFTER = {"purpose": "password reset", "step": 2}
#: Write paths: each stores AFTER under "k" with a TTL of 30 s into a store whose TTL is 24 h.
WRITES = ("save", "save_many", "update-read", "update-known")


def _write_sync(store: SessionStore[Session], how: str) -> None:
    if how == "save":
        store.save("k", AFTER, ttl=30)
    elif how == "save_many":
        store.save_many({"k": AFTER, "other": BEFORE}, ttl=30)
    elif how == "update-read":  # nothing known: read, fn, compare-and-set
        store.update("k", lambda s: AFTER, ttl=30)
    else:  # what this store just wrote is known: one compare-and-set, no read
        store.save("k", BEFORE, ttl=30)
        store.update("k", lambda s: {**(s or {}), "step": 2}, ttl=30)


async def _write_async(store: AsyncSessionStore[Session], how: str) -> None:
    if how == "save":
        await store.save("k", AFTER, ttl=30)
    elif how == "save_many":
        await store.save_many({"k": AFTER, "other": BEFORE}, ttl=30)
    elif how == "update-read":
        await store.update("k", lambda s: AFTER, ttl=30)
    else:
        await store.save("k", BEFORE, ttl=30)
        await store.update("k", lambda s: {**(s or {}), "step": 2}, ttl=30)


def _slides_sync(url: str, how: str) -> list[float | None]:
    """TTLs left after: a load with touch_on_load, then a plain touch(key), each once 25 s of
    the session's life seem to have passed."""
    with SessionStore(url, dict, touch_on_load=True) as store:
        _write_sync(store, how)
        left = []
        for slide in (store.load, store.touch):
            store.backend.touch("k", 5)  # as if 25 of its 30 s had passed
            assert slide("k")
            left.append(store.backend.ttl("k"))
        assert store.load("k") == AFTER
        return left


def _slides_async(url: str, how: str) -> list[float | None]:
    async def main() -> list[float | None]:
        async with AsyncSessionStore(url, dict, touch_on_load=True) as store:
            await _write_async(store, how)
            left = []
            for slide in (store.load, store.touch):
                await store.backend.touch("k", 5)
                assert await slide("k")
                left.append(await store.backend.ttl("k"))
            assert await store.load("k") == AFTER
            return left

    return asyncio.run(main())


@pytest.mark.parametrize("how", WRITES)
@pytest.mark.parametrize("twin", ["sync", "async"])
def test_every_write_path_records_the_ttl_that_touch_then_keeps(
    single_url: str, twin: str, how: str
) -> None:
    """Before the fix each slide restarted the session with the store's 24 h (86,400 s)."""
    left = (_slides_sync if twin == "sync" else _slides_async)(single_url, how)
    assert all(t is not None and 25 < t <= 30 for t in left), left


def test_the_stores_own_ttl_is_stored_byte_for_byte_as_before() -> None:
    """The common case costs nothing: with the store's TTL (not given, or given equal to it)
    the payload is stored as it is; only another TTL frames it, around the very same bytes."""
    backend = MemoryBackend()
    store: SessionStore[Session] = SessionStore(backend, dict, ttl=3600)
    store.save("default", BEFORE)
    store.save("same", BEFORE, ttl=3600)
    store.save("own", BEFORE, ttl=30)
    plain, same, framed = (backend.get(k) for k in ("default", "same", "own"))
    assert plain is not None and same == plain and not plain.startswith(MAGIC)
    assert framed is not None and framed.startswith(MAGIC) and session_bytes(framed) == plain
    assert own_ttl(framed) == 30.0


def test_every_reader_reads_a_recorded_ttl_and_older_payloads_still_load(tmp_path: Path) -> None:
    """A store of another TTL (or schema-less), the CLI's reader, load_many, exists and keys
    read the framed payload; a payload stored without a frame (any earlier release) loads and
    slides with the reading store's TTL."""
    url = f"diskcache://{tmp_path / 'disk'}"
    with SessionStore(url, dict, ttl=3600) as writer:
        writer.save("own", BEFORE, ttl=30)
        writer.save("default", AFTER)
    reader: SessionStore[Any] = SessionStore(url, ttl=600, touch_on_load=True)  # any schema
    with reader:  # and another TTL
        assert reader.load("own") == BEFORE and reader.load("default") == AFTER
        assert reader.load_many(["own", "default"]) == {"own": BEFORE, "default": AFTER}
        assert reader.exists("own") and sorted(reader.keys()) == ["default", "own"]
        left_own, left_default = reader.backend.ttl("own"), reader.backend.ttl("default")
        assert left_own is not None and 25 < left_own <= 30  # its own, whatever the store's
        assert left_default is not None and 590 < left_default <= 600  # the store's, now
        found = read_first(reader.backend, "own")
        assert found is not None and found.value is not None
        assert reader.codec.decode("own", found.value).obj == BEFORE  # no frame in the data


def test_a_chain_frames_once() -> None:
    """A chain records each write's TTL itself: the store does not frame it a second time, so
    a single-tier reader of the chain's disk tier still decodes the session."""
    from session_store import TieredBackend

    lower = MemoryBackend()
    chain = TieredBackend([MemoryBackend(), lower])
    store: SessionStore[Session] = SessionStore(chain, dict)
    store.save("k", BEFORE, ttl=30)
    stored = lower.get("k")
    assert stored is not None and own_ttl(stored) == 30.0
    single: SessionStore[Session] = SessionStore(lower, dict)
    assert single.load("k") == BEFORE


def test_a_chain_run_in_threads_frames_once() -> None:
    """An async store over a sync chain run in threads (``ThreadedBackend``) does not frame
    either: the chain records the TTL, and its tiers still hold what a single-tier reader
    decodes; touch_on_load keeps the session's own TTL."""
    from session_store import TieredBackend
    from session_store.aio import ThreadedBackend

    lower = MemoryBackend()
    chain = TieredBackend([MemoryBackend(), lower])

    async def main() -> None:
        store: AsyncSessionStore[Session] = AsyncSessionStore(
            ThreadedBackend(chain), dict, touch_on_load=True
        )
        await store.save("k", BEFORE, ttl=30)
        chain.touch("k", 5)
        assert await store.load("k") == BEFORE

    asyncio.run(main())
    assert SessionStore(lower, dict).load("k") == BEFORE
    left = chain.ttl("k")
    assert left is not None and 25 < left <= 30, left


def test_touch_without_ttl_of_a_deleted_sessions_marker_is_false() -> None:
    """Over one tier of a chain, a deleted session's tombstone is no session: ``touch`` says so
    and does not restart it (it read the key to learn its TTL)."""
    from session_store import TieredBackend

    lower = MemoryBackend()
    chain = TieredBackend([MemoryBackend(), lower])
    chain.set("k", b"{}", 30)
    chain.delete("k")
    before = lower.ttl("k")
    single: SessionStore[Session] = SessionStore(lower, dict)
    assert single.touch("k") is False
    assert (lower.ttl("k") or 0) <= (before or 0)  # not restarted with a session's TTL


def _reads(store: SessionStore[Session]) -> int:
    counters = store.backend.counters
    return counters.get("hits") + counters.get("misses")


def test_an_update_of_a_recorded_ttl_still_reads_nothing(shared_url: str) -> None:
    """The decoded cache is keyed by the bytes as stored, frame included, so an ``update``
    after a save with a TTL of its own is still one compare-and-set (the token of the framed
    bytes), and a load of them undoes no stage."""
    with SessionStore(shared_url, dict) as store:
        store.save("u", {"n": 0}, ttl=30)
        reads = _reads(store)
        for _ in range(5):
            store.update("u", lambda s: {"n": (s or {})["n"] + 1}, ttl=30)
        assert _reads(store) == reads  # no get_versioned: each update one compare-and-set
        misses = store._decoded.misses
        assert store.load("u") == {"n": 5}
        assert store._decoded.misses == misses  # the load decoded nothing


def test_a_store_started_with_another_default_moves_default_sessions_only() -> None:
    """The rule for a store reconfigured later: a session saved with the store's TTL follows
    the store's TTL as configured now; one saved with a TTL of its own keeps that TTL."""
    backend = MemoryBackend()
    with SessionStore(backend, dict, ttl=3600) as old:
        old.save("default", BEFORE)
        old.save("own", BEFORE, ttl=30)
        old.save("explicit-same", BEFORE, ttl=3600)  # equal to the store's: its default
    new: SessionStore[Session] = SessionStore(backend, dict, ttl=120)
    assert all(new.touch(k) for k in ("default", "own", "explicit-same"))
    left = {k: backend.ttl(k) or 0 for k in ("default", "own", "explicit-same")}
    assert 110 < left["default"] <= 120 and 110 < left["explicit-same"] <= 120
    assert 25 < left["own"] <= 30


def _flask_app(store: SessionStore[Session]) -> Flask:
    app = Flask(__name__)
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=600)
    SessionStoreInterface.init_app(app, store)

    @app.post("/set/<value>")
    def set_value(value: str) -> str:
        session["v"] = value
        return "ok"

    @app.post("/login")
    def login() -> str:
        regenerate()
        session["user"] = "ann"
        return "ok"

    return app


@pytest.mark.parametrize(
    "requests",
    [["/set/a"], ["/set/a", "/set/b"], ["/set/a", "/login"]],
    ids=["create", "first-try", "move"],
)
def test_a_web_commit_records_its_ttl_for_every_other_reader(
    single_url: str, requests: list[str]
) -> None:
    """Flask commits with its session lifetime (600 s here), not the store's 24 h: a plain store
    over the same backend (a job, the CLI's ``touch``) that slides the session keeps 600 s.
    Create-if-absent, the first try's compare-and-set and a login's move all record it."""
    with SessionStore(single_url, dict) as store:
        client = _flask_app(store).test_client()
        for path in requests:
            assert client.post(path).status_code == 200
        cookie = client.get_cookie("session")
        assert cookie is not None
        sid = cookie.value
        other: SessionStore[Session] = SessionStore(store.backend, dict)
        store.backend.touch(sid, 5)
        assert other.touch(sid) is True
        left = store.backend.ttl(sid)
        assert left is not None and 590 < left <= 600, left
