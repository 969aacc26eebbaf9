"""attack9b: a request that empties the session by removing its keys (not ``clear()``) deletes
it only if it is still the version it read; a key another request committed since is kept.

The real-server reproducer (gunicorn and uvicorn, Redis and the default chain) is
``test_attack9b_web_servers.py::test_emptying_the_session_keeps_a_key_another_request_...``;
these pin each branch of the commit on a real store, sync and async, fast."""

from __future__ import annotations

import asyncio
from typing import Any

from session_store import MemoryBackend, SessionStore
from session_store.aio import AsyncSessionStore
from session_store.aio.memory import AsyncMemoryBackend
from session_store.websession import (
    Action,
    DictSession,
    ServerSession,
    acommit,
    aread_session,
    commit,
    new_session_id,
    read_session,
)
from tests.web.support import RecordingBackend

Data = dict[str, Any]


def _store() -> tuple[SessionStore[Data], RecordingBackend]:
    backend = RecordingBackend(MemoryBackend())
    return SessionStore(backend, dict), backend


def _emptied(store: SessionStore[Data], sid: str) -> ServerSession:
    session = ServerSession(sid, lambda key: read_session(store, key))
    session.pop("flash")  # the read happens here; the session is empty now
    return session


def test_emptied_with_nothing_committed_since_is_deleted() -> None:
    store, backend = _store()
    sid = new_session_id()
    store.save(sid, {"flash": "saved"})
    backend.calls.clear()
    outcome = commit(store, _emptied(store, sid), ttl=60)
    assert outcome == (None, Action.DELETE)  # the cookie is expired
    assert store.load(sid) is None and backend.inner.get(sid) is None
    assert [name for name, _ in backend.writes()] == ["set_if", "delete"]  # a conditional delete


def test_a_key_committed_since_the_read_is_kept_and_the_removal_merged() -> None:
    store, _ = _store()
    sid = new_session_id()
    store.save(sid, {"flash": "saved"})
    session = _emptied(store, sid)
    store.save(sid, {"flash": "saved", "cart": [1]})  # another request, after our read
    outcome = commit(store, session, ttl=60)
    assert outcome == (sid, Action.WRITE)  # the cookie is kept
    assert store.load(sid) == {"cart": [1]}


def test_a_session_emptied_by_both_requests_is_deleted() -> None:
    store, _ = _store()
    sid = new_session_id()
    store.save(sid, {"flash": "saved", "other": 1})
    session = _emptied(store, sid)
    session.pop("other")
    store.save(sid, {"flash": "changed"})  # another request changed the key we remove
    assert commit(store, session, ttl=60) == (None, Action.DELETE)
    assert store.load(sid) is None


def test_a_session_deleted_meanwhile_is_not_resurrected() -> None:
    store, _ = _store()
    sid = new_session_id()
    store.save(sid, {"flash": "saved"})
    session = _emptied(store, sid)
    store.delete(sid)  # a logout in another tab
    assert commit(store, session, ttl=60) == (None, Action.GONE)
    assert store.load(sid) is None and store.backend.get(sid) is None


def test_clear_is_still_a_logout_of_whatever_is_stored() -> None:
    store, _ = _store()
    sid = new_session_id()
    store.save(sid, {"user": "ann"})
    session = ServerSession(sid, lambda key: read_session(store, key))
    session.clear()
    store.save(sid, {"user": "ann", "cart": [1]})  # committed after the logout's read
    assert commit(store, session, ttl=60) == (None, Action.DELETE)
    assert store.load(sid) is None


def test_the_async_integrations_keep_the_other_key_too() -> None:
    async def run() -> tuple[Any, Data | None]:
        store = AsyncSessionStore(AsyncMemoryBackend(), dict)
        sid = new_session_id()
        await store.save(sid, {"flash": "saved"})
        session = DictSession(sid, await aread_session(store, sid))
        session.pop("flash")
        await store.save(sid, {"flash": "saved", "cart": [1]})
        outcome = await acommit(store, session, ttl=60)
        return outcome, await store.load(sid)

    outcome, stored = asyncio.run(run())
    assert outcome.action is Action.WRITE and stored == {"cart": [1]}
