"""A MOVE (login: ``regenerate``) retires the old id by compare-and-set against the read it
copied, then deletes it: a change another request commits to the old id at any point of the
move is either copied to the new id or refused (GONE), never acknowledged and then deleted.

The interleaving is exact: the move's store calls (:func:`commit_steps`) are driven one at a
time, and the other request commits in full, through the real store, just before a chosen one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from session_store import SessionStore, open_backend
from session_store.websession import Action, ServerSession, commit, read_session
from session_store.websession.plan import Outcome
from session_store.websession.steps import commit_steps

Data = dict[str, Any]
SID = "B" * 43


def _store(kind: str, tmp_path: Path) -> SessionStore[Data]:
    if kind == "memory":
        return SessionStore("memory://", dict)
    return SessionStore(open_backend(f"memory:// | diskcache://{tmp_path}"), dict)


def _request(store: SessionStore[Data]) -> ServerSession:
    return ServerSession(SID, lambda key: read_session(store, key))


def _login_meets_a_cart_change(
    kind: str, tmp_path: Path
) -> tuple[SessionStore[Data], ServerSession, ServerSession]:
    """A store holding ``SID``; a request that logs in (``regenerate``: a MOVE when committed)
    and another request on ``SID`` that adds to the cart, neither committed yet."""
    store = _store(kind, tmp_path)
    store.save(SID, {"cart": []})
    login = _request(store)
    login["user"] = "alice"
    login.regenerate()
    other = _request(store)
    other["cart"] = ["book"]
    _ = other["cart"]
    return store, login, other


def _drive(
    store: SessionStore[Data],
    session: ServerSession,
    before: Callable[[str, tuple[Any, ...]], bool],
    other: Callable[[], None],
) -> Outcome:
    """Run ``session``'s commit one store call at a time; call ``other`` once, just before the
    first call ``before`` picks."""
    steps = commit_steps(store, session, None)
    result: Any = None
    pending = True
    try:
        while True:
            name, args = steps.send(result)
            if pending and before(name, args):
                pending = False
                other()
            target = store.backend if name in {"set_if", "get_versioned"} else store
            result = getattr(target, name)(*args)
    except StopIteration as done:
        assert not pending, "the chosen call never came"
        outcome: Outcome = done.value
        return outcome


@pytest.mark.parametrize("kind", ["memory", "chain"])
def test_a_write_committed_just_before_the_old_id_is_retired_is_copied(
    kind: str, tmp_path: Path
) -> None:
    store, login, other = _login_meets_a_cart_change(kind, tmp_path)
    told: list[Outcome] = []
    mine = _drive(
        store,
        login,
        lambda name, args: name == "set_if" and args[0] == SID,
        lambda: told.append(commit(store, other, None)),
    )
    assert told == [Outcome(SID, Action.WRITE)]
    assert mine.action is Action.MOVE and mine.sid is not None
    assert store.load(mine.sid) == {"cart": ["book"], "user": "alice"}
    assert store.load(SID) is None


@pytest.mark.parametrize("kind", ["memory", "chain"])
def test_the_old_id_reads_as_gone_once_retired_and_a_late_write_is_refused(
    kind: str, tmp_path: Path
) -> None:
    store, login, other = _login_meets_a_cart_change(kind, tmp_path)
    told: list[Outcome] = []
    seen: list[Any] = []

    def late() -> None:  # between the retire and the delete
        seen.extend([read_session(store, SID), store.load(SID), store.exists(SID)])
        told.append(commit(store, other, None))

    mine = _drive(store, login, lambda name, args: name == "_discard", late)
    assert seen == [None, None, False]
    assert told == [Outcome(None, Action.GONE)]  # not acknowledged: nothing lost
    assert mine.action is Action.MOVE and mine.sid is not None
    assert store.load(mine.sid) == {"cart": [], "user": "alice"}
    assert store.load(SID) is None


def test_the_async_move_retires_the_old_id_too() -> None:
    """The Starlette integration runs the same steps awaited: a write committed just before
    the old id is retired is copied, and the old id reads as gone after."""
    import asyncio

    from session_store.aio.store import AsyncSessionStore
    from session_store.websession import aread_session
    from session_store.websession.state import DictSession
    from session_store.websession.storeio import acommit

    async def scenario() -> tuple[Outcome, list[Outcome], Any, Any]:
        store: AsyncSessionStore[Data] = AsyncSessionStore("memory://", dict)
        await store.save(SID, {"cart": []})
        login = DictSession(SID, await aread_session(store, SID))
        login["user"] = "alice"
        login.regenerate()
        other = DictSession(SID, await aread_session(store, SID))
        other["cart"] = ["book"]
        told: list[Outcome] = []
        steps = commit_steps(store, login, None)
        result: Any = None
        try:
            while True:
                name, args = steps.send(result)
                if name == "set_if" and args[0] == SID and not told:
                    told.append(await acommit(store, other, None))
                target = store.backend if name in {"set_if", "get_versioned"} else store
                result = await getattr(target, name)(*args)
        except StopIteration as done:
            mine: Outcome = done.value
        assert mine.sid is not None
        return mine, told, await store.load(mine.sid), await store.load(SID)

    mine, told, moved, old = asyncio.run(scenario())
    assert told == [Outcome(SID, Action.WRITE)]
    assert mine.action is Action.MOVE
    assert moved == {"cart": ["book"], "user": "alice"}
    assert old is None
