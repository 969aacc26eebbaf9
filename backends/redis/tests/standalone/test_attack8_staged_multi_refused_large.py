"""Staged writes under an ACL that refuses ``MULTI`` itself, with sessions large enough to be
staged at all.

attack7's regression test (``test_attack7_staged_multi_refused.py``) updates ``{"n": 0}``: since
``STAGE_CAS_FROM`` (1 KiB, commit eafa69e) a value that small is never staged, and its warm-up
(also small) no longer caches the staged script, so that test passes with the ``Unqueued`` fix
of ``staged._transaction`` removed (checked by attack8: 1 passed with the branch disabled). These
tests write sessions above 1 KiB, so the ``SET`` + ``EVALSHA`` really run one by one outside a
transaction, and check what the fix promises: the function applied once, staging turned off
after the first refusal (no second ``MULTI``), no staging key left behind; the same for the
chain's ordered write (a save through ``memory://|redis``).

Found by attack8 (round 8) on the suite's real redis-server.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from session_store import SessionStore
from session_store.aio import AsyncSessionStore
from session_store_redis.testing import RedisServer

#: Above ``staged.STAGE_CAS_FROM`` (1 KiB) once encoded: the staged compare-and-set is used.
PAD = "p" * 4000


def _server_with_acl(server: RedisServer) -> str:
    """A user refused ``MULTI``; the staged scripts cached by a process without that ACL (a
    large update and a chain save, as the rest of the app's processes would have made)."""
    with server.client() as admin:
        admin.execute_command(
            "ACL", "SETUSER", "nomulti", "on", ">secret", "~*", "&*", "+@all", "-multi"
        )
    base = f"redis://127.0.0.1:{server.port}/0"
    with SessionStore(f"{base}?prefix=other:", dict, ttl=600) as warm:
        warm.save("w", {"n": 0, "pad": PAD})
        warm.update("w", lambda s: {"n": 1, "pad": PAD})
    with SessionStore(f"memory://|{base}?prefix=otherchain:", dict, ttl=600) as warm_chain:
        warm_chain.save("w", {"n": 0, "pad": PAD})
    return _server_with_acl_url(server)


def _server_with_acl_url(server: RedisServer) -> str:
    return f"redis://nomulti:secret@127.0.0.1:{server.port}/0"


def _multi_refusals(server: RedisServer) -> int:
    with server.client() as admin:
        stats = admin.info("commandstats")
    return int(stats.get("cmdstat_multi", {}).get("rejected_calls", 0))


def _staging_keys(server: RedisServer) -> list[bytes]:
    with server.client() as admin:
        return [key for key in admin.keys("*") if b"\xff" in key]


def test_a_large_update_under_an_acl_refusing_multi_applies_once_and_stops_staging(
    tmp_path: Path,
) -> None:
    with RedisServer(directory=tmp_path) as server:
        url = _server_with_acl(server) + "?prefix=acl:"
        store: SessionStore[dict[str, Any]] = SessionStore(url, dict, ttl=600)
        with store:
            store.save("counter", {"n": 0, "pad": PAD})
            calls: list[Any] = []

            def increment(current: dict[str, Any] | None) -> dict[str, Any]:
                calls.append(current)
                return {"n": (current or {"n": 0})["n"] + 1, "pad": PAD}

            first = store.update("counter", increment)
            refused_once = _multi_refusals(server)
            second = store.update("counter", increment)
            stored = store.load("counter")
        assert refused_once == 1, "the first large update was not staged: the test tests nothing"
        assert first is not None and second is not None and stored is not None
        assert (first["n"], second["n"], stored["n"]) == (1, 2, 2), (
            f"two update(+1) stored {stored['n']} after {len(calls)} calls"
        )
        assert len(calls) == 2
        assert _multi_refusals(server) == 1, "staging was not turned off after MULTI's refusal"
        assert _staging_keys(server) == []


def test_a_chain_save_under_an_acl_refusing_multi_lands_once_and_stops_staging(
    tmp_path: Path,
) -> None:
    with RedisServer(directory=tmp_path) as server:
        url = "memory://|" + _server_with_acl(server) + "?prefix=aclchain:"
        store: SessionStore[dict[str, Any]] = SessionStore(url, dict, ttl=600)
        with store:
            store.save("s", {"v": 1, "pad": PAD})
            refused_once = _multi_refusals(server)
            store.save("s", {"v": 2, "pad": PAD})
            store.update("s", lambda cur: {"v": (cur or {"v": 0})["v"] + 1, "pad": PAD})
        assert refused_once == 1, "the first chain save was not staged: the test tests nothing"
        assert _multi_refusals(server) == 1, "staging was not turned off after MULTI's refusal"
        tier = _server_with_acl_url(server) + "?prefix=aclchain:"
        with SessionStore(tier, dict, ttl=600) as redis_alone:  # Redis's copy, read alone
            assert redis_alone.load("s") == {"v": 3, "pad": PAD}
        assert _staging_keys(server) == []


# A chain reads its Redis tier with get_with_ttl (and touches it without a TTL), MULTI/EXEC pairs:
# under an ACL refusing MULTI its load, touch and delete failed (sync: BackendError "EXEC without
# MULTI", even for a session the near tier held; async: NoPermissionError). Now the backend reads
# GET and PTTL in one script once MULTI is refused, and remembers it (session_store_redis.multi_acl;
# more cases, the async set_many among them, in test_multi_refused_acl.py).


def test_a_chain_over_redis_works_under_an_acl_refusing_multi(tmp_path: Path) -> None:
    with RedisServer(directory=tmp_path) as server:
        url = "memory://|" + _server_with_acl(server) + "?prefix=aclread:"
        with SessionStore(url, dict, ttl=600) as store:
            store.save("s", {"v": 1})
            assert store.load("s") == {"v": 1}  # fails here: the near tier asks the arbiter
            assert store.touch("s")
            assert store.delete("s")
        with SessionStore(url, dict, ttl=600) as writer:
            writer.save("t", {"v": 1})
        with SessionStore(url, dict, ttl=600) as fresh:  # a cold near tier: Redis's copy
            assert fresh.load("t") == {"v": 1}


def test_an_async_chain_over_redis_touches_under_an_acl_refusing_multi(tmp_path: Path) -> None:
    async def run(url: str) -> None:
        store: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(url, dict, ttl=600)
        try:
            await store.save("s", {"v": 1})
            assert await store.touch("s")  # fails here
            assert await store.delete("s")
        finally:
            await store.aclose()

    with RedisServer(directory=tmp_path) as server:
        asyncio.run(run("memory://|" + _server_with_acl(server) + "?prefix=aclasync:"))
