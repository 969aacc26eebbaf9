"""A login (``regenerate``: MOVE) racing a read-only request of the same user, over a chain
(``memory:// | diskcache://``, the shape ``from_env`` builds without Redis).

The login copies the session to a new id, retires the old id by compare-and-set (the marker
``websession.steps.RETIRED``, "every reader takes it for a deleted session") and then deletes
it. A read-only request that read the session before the login ends with a ``touch`` of the old
id (sliding expiry); if it lands between the retire and the delete, it must be told ``GONE``:
"nothing written, and the cookie left alone (it may already carry that other request's new
id)". Over a single backend it is (``touch_session`` judges the marker). Through a chain the
chain's ``touch`` takes the marker for a session (it refuses a bare tombstone copy only), answers
``True``, and the request's outcome is ``TOUCH`` with the *old* id: Starlette (``sliding=True``,
the default, with ``max_age``) and Flask (a permanent session) send ``Set-Cookie`` with the old
id, and if that response reaches the browser after the login's, the user holds the retired id
and is logged out right after logging in.

Found by attack7 (round 7). The exact interleaving is forced: the login's commit is driven one
store call at a time (``commit_steps``) and the other request commits in full just before the
login's ``delete``. Strict xfail, fixed with ``tests/tiered/test_attack7_chain_touch_retired.py``
(``session_store/tiered/steps.py``: another helper's file this session).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from session_store import SessionStore
from session_store.websession import ServerSession, commit, read_session
from session_store.websession.plan import Action, Outcome
from session_store.websession.steps import commit_steps

Data = dict[str, Any]
SID = "B" * 43


@pytest.fixture(params=["single", "chain"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SessionStore[Data]]:
    disk = f"diskcache://{tmp_path / 'disk'}"
    url = disk if request.param == "single" else f"memory:// | {disk}"
    s: SessionStore[Data] = SessionStore(url, dict, ttl=3600)
    try:
        yield s
    finally:
        s.close()


def _request(store: SessionStore[Data], sid: str) -> ServerSession:
    return ServerSession(sid, lambda key: read_session(store, key))


def _login_with_a_read_only_request_before_its_delete(
    store: SessionStore[Data],
) -> tuple[Outcome, Outcome]:
    store.save(SID, {"cart": ["book"]})
    reader = _request(store, SID)
    assert reader["cart"] == ["book"]  # read before the login: a read-only request
    login = _request(store, SID)
    login["user"] = "alice"
    login.regenerate()
    steps = commit_steps(store, login, 3600)
    result: Any = None
    theirs: Outcome | None = None
    try:
        while True:
            name, args = steps.send(result)
            if name == "_discard" and theirs is None:
                theirs = commit(store, reader, 3600)  # between the retire and the delete
            target = store.backend if name in {"set_if", "get_versioned"} else store
            result = getattr(target, name)(*args)
    except StopIteration as done:
        mine: Outcome = done.value
    assert theirs is not None
    return mine, theirs


def test_a_read_only_request_landing_on_a_retired_id_leaves_the_cookie_alone(
    store: SessionStore[Data], request: pytest.FixtureRequest
) -> None:
    mine, theirs = _login_with_a_read_only_request_before_its_delete(store)
    assert mine.action is Action.MOVE and mine.sid not in (None, SID)
    assert store.load(mine.sid or "") == {"cart": ["book"], "user": "alice"}
    assert theirs == Outcome(None, Action.GONE), (
        f"the read-only request was told {theirs}: its response re-sends the retired id"
    )
