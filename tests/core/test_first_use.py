"""The first steps README and CONTRIBUTING walk a newcomer through, from a clean clone: the
error messages of a misplaced chain option, a relative SQLite path, a legacy session's advice,
a sync-only plugin opened async; ``delete`` and a missing chain read counting only what they
did; the plugin module's async kit. Each test failed on main before its fix."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from session_store import ConfigurationError, TieredBackend, open_backend
from session_store.aio import open_async_backend


def test_chain_options_after_the_first_tier_say_where_they_belong() -> None:
    """``tiered://?...`` placed after a tier was reported as a missing plugin ("no backend is
    installed for scheme 'tiered'"), sending the user to pip; the error now says to put the
    options first."""
    with pytest.raises(ConfigurationError) as raised:
        open_backend("memory:// | tiered://?max_staleness=1 | memory://")
    message = str(raised.value)
    assert "no backend is installed" not in message
    assert "first" in message and "tiered://?" in message


@pytest.mark.parametrize("kind", ["memory", "diskcache", "redis", "redis-async"])
def test_delete_counts_only_keys_it_removed(kind: str, redis_url: str, tmp_path: Path) -> None:
    """``deletes`` counts keys deleted (docs/metrics.md, and what ``BackendBase`` counts); the
    memory, diskcache and Redis backends counted every call, an absent key included."""
    if kind == "redis-async":
        asyncio.run(_async_deletes(redis_url))
        return
    url = {"memory": "memory://", "diskcache": f"diskcache://{tmp_path}", "redis": redis_url}
    with open_backend(url[kind]) as backend:
        backend.set("here", b"v")
        assert backend.delete("absent") is False
        assert backend.delete("here") is True
        backend.set("a", b"v")
        assert backend.delete_many(["a", "b", "c"]) == 1
        assert backend.counters.as_dict()["deletes"] == 2


async def _async_deletes(url: str) -> None:
    async with open_async_backend(url) as backend:
        await backend.set("here", b"v")
        assert await backend.delete("absent") is False
        assert await backend.delete("here") is True
        await backend.set("a", b"v")
        assert await backend.delete_many(["a", "b", "c"]) == 1
        assert backend.counters.as_dict()["deletes"] == 2


def test_a_chain_read_that_misses_deletes_nothing_in_the_counters(tmp_path: Path) -> None:
    """A miss through ``memory:// | diskcache://`` showed ``deletes=1`` on the memory tier in
    ``tier_states()`` and ``session-store stats`` (the chain drops the key from its near cache,
    which held nothing)."""
    with open_backend(f"memory:// | diskcache://{tmp_path}") as chain:
        assert isinstance(chain, TieredBackend)
        assert chain.get("nobody") is None
        assert [tier["counters"]["deletes"] for tier in chain.tier_states()] == [0, 0]


def test_sqlite_example_relative_path_says_how_to_write_it() -> None:
    """``sqlite://sessions.db`` (two slashes, as most users first write it) said only "needs a
    file path"; it now shows the three-slash form, as diskcache's error does."""
    with pytest.raises(ConfigurationError) as raised:
        open_backend("sqlite://sessions.db")
    assert "sqlite:///" in str(raised.value)


def _cli(*args: str, cache: Path) -> str:
    """The real console script's standard output (it must succeed)."""
    script = shutil.which("session-store", path=str(Path(sys.executable).parent))
    assert script, "the session-store console script is not installed in this environment"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSION_STORE", "REDIS"))}
    env["XDG_CACHE_HOME"] = str(cache)
    done = subprocess.run(
        [script, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_inspect_on_a_legacy_session_gives_advice_that_works(tmp_path: Path) -> None:
    """``inspect`` on headerless JSON said "up to date: no: `session-store migrate`", and that
    command leaves such values alone ("not sessions (left alone) 1") unless told their schema:
    the advice looped. It now names the ``--legacy`` schema it assumed, and following it
    brings the session up to date."""
    url = f"diskcache://{tmp_path}/sessions"
    with open_backend(url) as backend:
        backend.set("U1", b'{"processed_documents": [], "test_mode": true}')
    shown = _cli("inspect", url, "U1", cache=tmp_path)
    advice = next(line for line in shown.splitlines() if line.startswith("up to date:"))
    command = advice.partition("`")[2].rpartition("`")[0]
    assert command.startswith("session-store migrate"), advice
    _cli(*command.split()[1:], url, cache=tmp_path)  # the advice, as a user types it
    after = _cli("inspect", url, "U1", cache=tmp_path)
    assert "up to date:     yes" in after, after


def test_a_sync_only_plugin_opened_async_says_how_to_use_it(tmp_path: Path) -> None:
    """A plugin that registers a sync backend only (the example plugin, as CONTRIBUTING.md
    writes one) opened by the async API (``AsyncSessionStore``, Starlette's ``url=``) said
    "no backend is installed for scheme 'sqlite'" although it is installed. The error now says
    it is sync-only and how to use it; following the advice works."""
    import asyncio

    from session_store.aio import AsyncSessionStore, ThreadedBackend, open_async_backend

    url = f"sqlite://{tmp_path}/s.db"
    with pytest.raises(ConfigurationError) as raised:
        open_async_backend(url)
    message = str(raised.value)
    assert "no backend is installed" not in message
    assert "sync" in message and "ThreadedBackend(open_backend(" in message

    async def advised() -> object:
        async with AsyncSessionStore(ThreadedBackend(open_backend(url)), dict) as store:
            await store.save("u", {"cart": ["book"]})
            return await store.load("u")

    assert asyncio.run(advised()) == {"cart": ["book"]}


def test_the_plugin_module_gives_the_async_kit_too() -> None:
    """CONTRIBUTING.md promises one import for plugin authors, the kit included; the async
    kit, which an async twin must pass, had to be found in ``session_store.testing``."""
    import session_store.plugin as plugin
    from session_store.testing.async_conformance import AsyncBackendConformance

    assert "AsyncBackendConformance" in plugin.__all__
    assert plugin.AsyncBackendConformance is AsyncBackendConformance
