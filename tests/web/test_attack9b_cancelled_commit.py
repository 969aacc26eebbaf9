"""attack9b: the end of an async web request (``acommit``, what Starlette's middleware awaits)
cancelled at every loop step until one ends on its own, on the async default chain
``memory:// | redis:// | diskcache://`` (real redis-server, real directory), on asyncio and
uvloop.

A request's commit is several store calls (a login's move: read, create the new id, retire the
old one, delete it; an emptied session: retire, delete). Each call runs whole, but a
cancellation can fall between them. Whatever the step, afterwards: a change is applied whole or
not at all; a login never loses the session (the old id still holds it, or a new id holds it
with the login); a logout or an emptying leaves the session as it was or gone, never
half-there; the Redis and the disk tier, each read alone, agree; a touch changes no data.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from session_store import SessionStore
from session_store.aio import AsyncSessionStore, open_async_backend
from session_store.websession import DictSession, acommit, aread_session, new_session_id, web_codec

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

Data = dict[str, Any]
MAX_STEPS = 2_000


@pytest.fixture
async def store(redis_url: str, tmp_path: Path) -> AsyncIterator[AsyncSessionStore[Data]]:
    chain = open_async_backend(f"memory:// | {redis_url} | diskcache://{tmp_path / 'disk'}")
    opened: AsyncSessionStore[Data] = AsyncSessionStore(chain, dict, codec=web_codec(), ttl=600)
    yield opened
    await opened.aclose()


def _alone(url: str, sid: str) -> Data | None:
    with SessionStore(url, dict, codec=web_codec()) as reader:
        return reader.load(sid)


async def _cancelled(store: AsyncSessionStore[Data], session: DictSession, steps: int) -> bool:
    """Run the commit for ``steps`` loop steps, then cancel it; whether it had ended by then."""
    task = asyncio.ensure_future(acommit(store, session, 600.0))
    for _ in range(steps):
        await asyncio.sleep(0)
    ended = task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return ended


@pytest.mark.parametrize("action", ["write", "move", "empty", "logout", "touch"])
async def test_a_cancelled_commit_is_whole_and_a_login_never_loses_the_session(
    store: AsyncSessionStore[Data], redis_url: str, tmp_path: Path, action: str
) -> None:
    disk_url = f"diskcache://{tmp_path / 'disk'}"
    seen: set[str] = set()
    # every step from 0 until a commit ends before its cancellation (the number of loop steps
    # a commit takes depends on the loop and on the disk tier's thread, not on this test)
    steps, ended = -1, False
    while not ended:
        steps += 1
        assert steps < MAX_STEPS, f"a commit never ended within {MAX_STEPS} loop steps"
        sid = new_session_id()
        before: Data = {"a": f"x{steps}"} if action == "empty" else {"cart": steps, "a": "x"}
        await store.save(sid, before)
        session = DictSession(sid, await aread_session(store, sid))
        after: Data | None = None
        if action == "write":
            session["theme"] = "dark"
            after = {**before, "theme": "dark"}
        elif action == "move":
            session.regenerate()
            session["user"] = f"ann{steps}"
            after = {**before, "user": f"ann{steps}"}
        elif action == "empty":
            session.pop("a")
        elif action == "logout":
            session.clear()
        else:
            session.mark_accessed()
        ended = await _cancelled(store, session, steps)
        now = await store.load(sid)
        alone = (_alone(redis_url, sid), _alone(disk_url, sid))
        assert alone == (now, now), f"tiers disagree after {steps} steps: {alone} vs {now}"
        if action == "write":
            assert now in (before, after), f"half-applied after {steps} steps: {now}"
        elif action == "move":
            listed = store.keys()  # an async generator of the stored ids
            moved = [k async for k in listed if await store.load(k) == after]
            assert now == before or moved, f"the login lost the session after {steps} steps"
            seen.add("moved" if moved else "not moved")
        elif action in ("empty", "logout"):
            assert now in (before, None), f"after {steps} steps: {now}"
            seen.add("gone" if now is None else "kept")
        else:
            assert now == before
    if action in ("move", "empty", "logout"):
        assert len(seen) == 2, seen  # cancelled both before and after it took effect
