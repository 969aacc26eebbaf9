"""The marker a login's id rotation leaves on the old id, written through a chain, is no
session for any reader: not listed, not loaded, not touched.

A web integration's MOVE (``regenerate`` on login, Django's ``cycle_key``) replaces the old id,
by compare-and-set, with ``websession.steps.RETIRED`` (a tombstone frame, "every reader takes it
for a deleted session") and then deletes it; a crash or a failed delete in between leaves the
marker for up to ``RETIRED_TTL``. Through a chain (``memory:// | redis:// | diskcache://``, what
``from_env`` builds) the marker is a *value* like any other byte string: the chain frames it,
and its own byte-level listing (iterating ``scan``) lists it, as it lists every value. Every
reader of *sessions* leaves it out: a single-tier reader (a store or the CLI on the chain's
Redis alone), and over the chain ``SessionStore.keys()``, ``AsyncSessionStore.keys()``,
``session-store ls`` and ``copy`` (the chain listing's ``sessions()``, from the reads its
listing makes anyway).

Real redis-server and diskcache directory; the marker written exactly as the MOVE writes it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from session_store import AsyncSessionStore, SessionStore
from session_store.websession import web_codec
from session_store.websession.steps import RETIRED, RETIRED_TTL

Data = dict[str, object]


def _retire_through_the_chain(chain_url: str) -> None:
    """A session ``live`` and a session ``old`` that a login moved away from, crashed (or its
    delete failed) right after the compare-and-set that retired ``old``."""
    store: SessionStore[Data] = SessionStore(chain_url, dict, codec=web_codec(), ttl=600)
    try:
        store.save("live", {"user": "bob"})
        store.save("old", {"user": "ann"})
        found = store.backend.get_versioned("old")
        assert found is not None
        assert store.backend.set_if("old", RETIRED, found.token, store._ttl(RETIRED_TTL))
        assert store.load("old") is None and store.exists("old") is False  # held
    finally:
        store.close()


def test_a_single_tier_reader_takes_a_retired_id_for_no_session(
    redis_url: str, tmp_path: Path
) -> None:
    """Failed before: ``exists`` True, ``load`` raised ``CorruptPayloadError`` ("not a
    session-store payload"), ``touch`` True, and the id was listed."""
    _retire_through_the_chain(f"memory:// | {redis_url} | diskcache://{tmp_path / 'disk'}")
    alone: SessionStore[Data] = SessionStore(redis_url, dict, codec=web_codec(), ttl=600)
    try:
        assert alone.load("live") == {"user": "bob"}
        assert alone.exists("old") is False
        assert alone.load("old") is None
        assert alone.touch("old") is False
        assert sorted(alone.keys()) == ["live"]
    finally:
        alone.close()
    script = shutil.which("session-store", path=str(Path(sys.executable).parent))
    assert script is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_STORE")}
    listed = subprocess.run(
        [script, "ls", redis_url], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["live"]


def test_a_stores_listing_over_a_chain_leaves_a_retired_id_out(
    redis_url: str, tmp_path: Path
) -> None:
    """``SessionStore.keys()`` says an id a login rotated away is not listed. Failed before
    (the store trusted the chain's listing of values): ``['live', 'old'] == ['live']``."""
    chain_url = f"memory:// | {redis_url} | diskcache://{tmp_path / 'disk'}"
    _retire_through_the_chain(chain_url)
    store: SessionStore[Data] = SessionStore(chain_url, dict, codec=web_codec(), ttl=600)
    try:
        assert sorted(store.keys()) == ["live"]
        assert sorted(store.keys("o")) == []
        # the chain's own listing is of values, byte for byte: the marker is one
        assert sorted(store.backend.scan()) == ["live", "old"]
    finally:
        store.close()


def test_ls_and_copy_over_a_chain_leave_a_retired_id_out(redis_url: str, tmp_path: Path) -> None:
    """Failed before: ``session-store ls`` over the chain printed ``live`` and ``old``."""
    chain_url = f"memory:// | {redis_url} | diskcache://{tmp_path / 'disk'}"
    _retire_through_the_chain(chain_url)
    listed = _cli("ls", chain_url)
    assert listed.stdout.split() == ["live"]
    copied = _cli("copy", chain_url, f"diskcache://{tmp_path / 'copy'}", "--json")
    assert json.loads(copied.stdout)["copied"] == 1
    target: SessionStore[Data] = SessionStore(
        f"diskcache://{tmp_path / 'copy'}", dict, codec=web_codec(), ttl=600
    )
    try:
        assert sorted(target.backend.scan()) == ["live"]  # the marker was not copied
        assert target.load("live") == {"user": "bob"}
    finally:
        target.close()


def test_an_async_stores_listing_over_a_chain_leaves_a_retired_id_out(
    redis_url: str, tmp_path: Path
) -> None:
    """Failed before, as the sync store: ``['live', 'old'] == ['live']``."""
    chain_url = f"memory:// | {redis_url} | diskcache://{tmp_path / 'disk'}"
    _retire_through_the_chain(chain_url)

    async def listed() -> tuple[list[str], list[str]]:
        store: AsyncSessionStore[Data] = AsyncSessionStore(
            chain_url, dict, codec=web_codec(), ttl=600
        )
        try:
            sessions = sorted([key async for key in store.keys()])  # noqa: SIM118 - a store, no dict
            values = sorted([key async for key in store.backend.scan()])
            return sessions, values
        finally:
            await store.aclose()

    assert asyncio.run(listed()) == (["live"], ["live", "old"])


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    script = shutil.which("session-store", path=str(Path(sys.executable).parent))
    assert script is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_STORE")}
    done = subprocess.run(
        [script, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done
