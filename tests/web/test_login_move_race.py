"""The web session moves (``session_store/websession/steps.py``):
a login (regenerate: MOVE) racing another request of the same user on a real redis-server.

The interleaving is exact, not a sleep: the login's commit is a generator of store calls
(:func:`~session_store.websession.steps.commit_steps`), driven here one call at a time, and the
other request commits in full between two of them, through the real store.

Guarantee under attack: no committed change is lost. A request told its change was written
(``Action.WRITE`` with the session's id) must find that change in the session its user holds
afterwards, whichever order the two requests are taken in.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from session_store import SessionStore
from session_store.websession import ServerSession, commit, read_session
from session_store.websession.plan import Action, Outcome
from session_store.websession.state import same
from session_store.websession.steps import commit_steps

Data = dict[str, Any]
SID = "A" * 43


@pytest.fixture
def store(redis_url: str) -> Iterator[SessionStore[Data]]:
    s: SessionStore[Data] = SessionStore(redis_url, dict, access_interval=None)
    try:
        yield s
    finally:
        s.close()


def _request(store: SessionStore[Data], sid: str) -> ServerSession:
    return ServerSession(sid, lambda key: read_session(store, key))


def _drive(
    store: SessionStore[Data], session: ServerSession, before: str, other: ServerSession
) -> tuple[Outcome, Outcome | None]:
    """Run ``session``'s commit one store call at a time; just before its first ``before``
    call, commit ``other`` in full. Returns both outcomes."""
    steps = commit_steps(store, session, None)
    result: Any = None
    theirs: Outcome | None = None
    try:
        while True:
            name, args = steps.send(result)
            if name == before and theirs is None:
                theirs = commit(store, other, None)
            target = store.backend if name in {"set_if", "get_versioned"} else store
            result = getattr(target, name)(*args)
    except StopIteration as done:
        mine: Outcome = done.value
        return mine, theirs


def test_a_write_committed_while_the_login_copies_is_kept(store: SessionStore[Data]) -> None:
    """What held: a change committed to the old id after the login read it but before the
    login's check re-read it is copied to the new id (the MOVE re-reads and copies again)."""
    store.save(SID, {"cart": []})
    login = _request(store, SID)
    login["user"] = "alice"
    login.regenerate()
    other = _request(store, SID)
    other["cart"] = ["book"]
    # the login's first set_if is the create of its copy under the new id (after its re-read)
    mine, theirs = _drive(store, login, "set_if", other)
    assert theirs == Outcome(SID, Action.WRITE)
    assert mine.action is Action.MOVE and mine.sid is not None
    assert store.load(mine.sid) == {"cart": ["book"], "user": "alice"}
    assert store.load(SID) is None


def test_a_write_committed_between_the_logins_check_and_its_delete_is_kept(
    store: SessionStore[Data],
) -> None:
    """Guarantee: no committed change lost. Input: a login (``regenerate``) and another request
    of the same user that adds ``cart=["book"]``; the other request commits after the login's
    last ``get_versioned`` of the old id (which found it unchanged) and before the login's
    ``delete`` of it. What happened: the other request is told ``WRITE`` under the old id (its
    cookie keeps the old id), then the login deletes the old id; the new id holds only
    ``user``: the acknowledged ``cart`` is nowhere. No order of the two requests explains it
    (login first: the write finds the id gone, GONE; write first: the login copies the cart).
    The delete of the old id is not conditional on the bytes the last check saw."""
    store.save(SID, {"cart": []})
    login = _request(store, SID)
    login["user"] = "alice"
    login.regenerate()
    other = _request(store, SID)
    other["cart"] = ["book"]
    _ = other["cart"]  # read before the login's move, as a concurrent request would
    mine, theirs = _drive(store, login, "_discard", other)
    assert mine.action is Action.MOVE and mine.sid is not None
    assert theirs is not None
    kept = [
        data.get("cart") for data in (store.load(mine.sid), store.load(SID)) if data is not None
    ]
    acknowledged = theirs.action is Action.WRITE
    assert not acknowledged or ["book"] in kept


def test_a_dict_rebuilt_in_another_key_order_is_no_change(store: SessionStore[Data]) -> None:
    """Guarantee: no committed change lost; ``same`` says "dict keys compare as ``==`` finds
    them" (so did the walk before 8582ae6). Input: ``{"prefs": {"a": 1, "b": 2}}``; request A
    rebuilds ``prefs`` with equal content in another key order (``{**defaults, **prefs}``
    with differently ordered defaults does this) and changes nothing else; request B of the
    same user adds ``prefs["c"] = 3`` and commits first. What happened: A's diff reports
    ``prefs`` changed (``orjson.dumps`` of the two orders differ), A's commit is a WRITE whose
    merge puts A's copy of ``prefs`` over B's: ``c`` is lost, though A changed nothing."""
    store.save(SID, {"prefs": {"a": 1, "b": 2}})
    a = _request(store, SID)
    a["prefs"] = {"b": a["prefs"]["b"], "a": a["prefs"]["a"]}  # equal, reordered
    b = _request(store, SID)
    b["prefs"] = {**b["prefs"], "c": 3}
    assert commit(store, b, None).action is Action.WRITE
    commit(store, a, None)
    stored = store.load(SID)
    assert stored is not None
    assert stored["prefs"] == {"a": 1, "b": 2, "c": 3}


def test_a_login_after_a_logout_moves_only_its_own_changes(store: SessionStore[Data]) -> None:
    """What held: a login that read the session before a logout deleted it moves only its own
    changes (nothing read before the logout is written back), and a plain write of the same
    read is GONE: it recreates nothing."""
    store.save(SID, {"cart": ["bob's book"], "csrf": "bob-token"})
    login = _request(store, SID)
    login["user"] = "alice"
    login.regenerate()
    writer = _request(store, SID)
    writer["cart"] = ["more"]
    logout = _request(store, SID)
    logout.clear()
    assert commit(store, logout, None).action is Action.DELETE
    assert commit(store, writer, None) == Outcome(None, Action.GONE)
    assert store.load(SID) is None
    moved = commit(store, login, None)
    assert moved.action is Action.MOVE and moved.sid is not None
    assert store.load(moved.sid) == {"user": "alice"}


class _Markup(str):
    """A ``str`` subclass (as ``markupsafe.Markup``, which Flask apps keep in sessions) that
    counts its comparisons: the work ``same`` does, counted instead of timed."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        _Markup.compared += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def _nested(depth: int, width: int) -> list[Any]:
    node: list[Any] = [_Markup("<b>hi</b>") for _ in range(width)]
    for _ in range(depth):
        node = [node]
    return node


def test_same_does_work_linear_in_the_size_of_what_it_compares() -> None:
    """Guarantee: nothing quadratic on large inputs (``diff`` runs at the end of every request
    that touched its session). Input: two equal values, 200 nested lists around 100 ``str``
    subclass items (orjson refuses subclasses with the options ``same`` uses, so each level
    falls back to the walk). What happened: at every level ``a == b`` compares the whole rest
    before the walk goes one level down, then the next level does it again: 20,200 item
    comparisons for 300 elements ((depth + 2) x width), where a linear check makes a few
    per item."""
    depth, width = 200, 100
    a, b = _nested(depth, width), _nested(depth, width)
    _Markup.compared = 0
    assert same(a, b)
    assert _Markup.compared <= 4 * (depth + width)
