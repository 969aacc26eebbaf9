"""The framework-free rules every integration shares: ids, the commit plan, the key merge."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup

from session_store import MemoryBackend, SessionStore
from session_store.websession import (
    Action,
    ServerSession,
    commit,
    is_session_id,
    merge_changes,
    new_session_id,
    plan_commit,
    read_session,
)
from session_store.websession.state import diff, same
from tests.web.support import RecordingBackend


def store() -> tuple[SessionStore[dict[str, Any]], RecordingBackend]:
    backend = RecordingBackend(MemoryBackend())
    return SessionStore(backend, dict), backend


def test_ids_are_256_bit_and_only_well_formed_ones_are_looked_up() -> None:
    ids = {new_session_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(is_session_id(i) and len(i) == 43 for i in ids)
    for bad in (None, "", "short", "A" * 42, "A" * 44, "A" * 42 + "=", "../" * 15, b"A" * 43):
        assert not is_session_id(bad)


def test_untouched_session_is_never_read_and_plans_nothing() -> None:
    s, backend = store()
    session = ServerSession("A" * 43, lambda sid: read_session(s, sid))
    assert plan_commit(session).action is Action.NOTHING
    assert backend.calls == []


def test_plans() -> None:
    s, _ = store()
    s.save("A" * 43, {"a": 1, "b": 2})

    def loaded() -> ServerSession:
        session = ServerSession("A" * 43, lambda sid: read_session(s, sid))
        session.get("a")
        return session

    assert plan_commit(loaded()).action is Action.TOUCH
    assert plan_commit(loaded(), sliding=False).action is Action.NOTHING
    changed = loaded()
    changed["a"] = 3
    del changed["b"]
    plan = plan_commit(changed)
    assert (plan.action, plan.changed, plan.removed) == (Action.WRITE, {"a": 3}, frozenset("b"))
    emptied = loaded()
    emptied.clear()
    assert plan_commit(emptied).action is Action.DELETE
    moved = loaded()
    moved.regenerate()
    assert plan_commit(moved).action is Action.MOVE
    fresh = ServerSession(None)
    fresh.get("x")
    assert plan_commit(fresh).action is Action.NOTHING  # new and empty: no write, no cookie


def test_merge_keeps_other_writers_keys_and_never_resurrects() -> None:
    assert merge_changes({"a": 1, "b": 2}, {"c": 3}, frozenset({"a"})) == {"b": 2, "c": 3}
    assert merge_changes({"a": 1, "b": 2}, {"c": 3}, frozenset(), replace=True) == {"c": 3}
    assert merge_changes(None, {"c": 3}, frozenset(), existing=True) is None
    assert merge_changes(None, {"c": 3}, frozenset(), existing=False) == {"c": 3}


def test_an_unchanged_write_path_is_one_read_and_one_compare_and_set() -> None:
    s, backend = store()
    sid = new_session_id()
    s.save(sid, {"n": 1, "blob": "x" * 2000})
    backend.calls.clear()
    session = ServerSession(sid, lambda key: read_session(s, key))
    session["n"] = 2
    assert commit(s, session, ttl=60).action is Action.WRITE
    assert backend.names() == ["get_versioned", "set_if"]
    assert s.load(sid) == {"n": 2, "blob": "x" * 2000}


def test_a_lost_race_falls_back_to_a_merge_with_the_other_writer() -> None:
    s, _ = store()
    sid = new_session_id()
    s.save(sid, {"n": 1})
    session = ServerSession(sid, lambda key: read_session(s, key))
    session["mine"] = True  # read happens here
    s.save(sid, {"n": 1, "theirs": True})  # another request wrote meanwhile
    commit(s, session, ttl=60)
    assert s.load(sid) == {"n": 1, "theirs": True, "mine": True}


def test_a_session_deleted_meanwhile_is_not_resurrected() -> None:
    s, _ = store()
    sid = new_session_id()
    s.save(sid, {"user": "ann"})
    session = ServerSession(sid, lambda key: read_session(s, key))
    session["cart"] = ["book"]
    s.delete(sid)  # logged out in another tab
    outcome = commit(s, session, ttl=60)
    assert outcome.action is Action.GONE and outcome.sid is None  # the cookie is left alone
    assert s.load(sid) is None


def test_the_next_request_reads_what_this_one_wrote_without_a_decode() -> None:
    s, backend = store()
    sid = new_session_id()
    s.save(sid, {"n": 1, "blob": "x" * 2000})
    for n in (2, 3, 4):
        session = ServerSession(sid, lambda key: read_session(s, key))
        session["n"] = n
        assert commit(s, session, ttl=60).action is Action.WRITE
    misses = s._decoded.misses
    session = ServerSession(sid, lambda key: read_session(s, key))
    assert session["n"] == 4 and session["blob"] == "x" * 2000
    assert s._decoded.misses == misses  # the bytes it wrote: no decode
    assert backend.names()[-1] == "get_versioned"  # still read from the store, every time


def test_a_change_is_judged_by_type_and_value_as_stored() -> None:
    nan = float("nan")
    when = datetime(2026, 7, 1, tzinfo=UTC)
    unchanged = [
        (1, 1),
        (nan, nan),
        (float("nan"), nan),
        ([1, {"a": nan}], [1, {"a": nan}]),
        ([1, {"a": float("nan")}], [1, {"a": float("nan")}]),
        ({"a": [when, Markup("<b>")]}, {"a": [datetime(2026, 7, 1, tzinfo=UTC), Markup("<b>")]}),
        ({"k": [1, 2.5, "x", None, True]}, {"k": [1, 2.5, "x", None, True]}),
    ]
    for before, after in unchanged:
        assert same(before, after), (before, after)
    changed = [
        (False, 0),
        (1, 1.0),
        (True, 1),
        (0.0, -0.0),
        (None, False),
        ([1], [1.0]),
        ([1], (1,)),
        ({"a": 0}, {"a": False}),
        ({"a": 1}, {"a": 1, "b": 2}),
        ({"a": 1}, {"b": 1}),
        (nan, 1.0),
        ([{"a": [0]}], [{"a": [False]}]),  # equal to ==, told apart by their encodings
        ([0.0], [-0.0]),
        ({"a": 1, "b": 2}, {"a": 1, "b": 2.0}),
        ([Markup("<b>")], ["<b>"]),  # a str subclass (Flask tags it): walked, not encoded
        ([b"x"], [bytearray(b"x")]),
        ([[1, 2]], [(1, 2)]),
    ]
    for before, after in changed:
        assert not same(before, after), (before, after)
    assert diff({"n": 1, "x": nan, "f": False}, {"n": 1.0, "x": nan, "f": False}) == (
        {"n": 1.0},
        frozenset(),
    )


def test_a_request_that_only_reads_a_nan_session_writes_nothing() -> None:
    s, backend = store()
    sid = new_session_id()
    backend.inner.set(sid, b'{"user": "ann", "score": NaN}')  # legacy JSON, read as nan
    session = ServerSession(sid, lambda key: read_session(s, key))
    assert session["user"] == "ann"
    backend.calls.clear()
    assert commit(s, session, ttl=60).action is Action.TOUCH
    assert backend.writes() == []


class WritesDuringTheMove(MemoryBackend):
    """A real memory backend where another request commits ``extra`` to ``old`` (a real
    write) at the moment a MOVE first writes the new id: the interleaving the MOVE's re-read
    is for, made deterministic."""

    def __init__(self) -> None:
        super().__init__()
        self.old: str | None = None
        self.extra: dict[str, Any] = {}

    def set_if(self, key: str, value: bytes, token: Any, ttl: float | None = None) -> bool:
        done = super().set_if(key, value, token, ttl)
        if self.old is not None and key != self.old:
            old, self.old = self.old, None
            other: SessionStore[dict[str, Any]] = SessionStore(self, dict)
            other.update(old, lambda current: {**(current or {}), **self.extra})
        return done


def test_a_move_copies_what_the_old_id_holds_now_merged_with_the_requests_changes() -> None:
    backend = WritesDuringTheMove()
    s: SessionStore[dict[str, Any]] = SessionStore(backend, dict)
    sid = new_session_id()
    s.save(sid, {"user": "anonymous", "theme": "dark"})
    session = ServerSession(sid, lambda key: read_session(s, key))
    assert session["user"] == "anonymous"  # read here
    s.update(sid, lambda current: {**(current or {}), "cart": ["book"]})  # committed before
    del session["theme"]
    session.regenerate()
    session["user"] = "alice"
    backend.old, backend.extra = sid, {"wish": ["pen"]}  # committed while the move copies
    outcome = commit(s, session, ttl=60)
    assert outcome.action is Action.MOVE and outcome.sid not in (None, sid)
    assert outcome.sid is not None
    assert s.load(outcome.sid) == {"user": "alice", "cart": ["book"], "wish": ["pen"]}
    assert s.load(sid) is None


def test_a_request_finding_its_session_moved_meanwhile_leaves_the_cookie_alone() -> None:
    s, _ = store()
    sid = new_session_id()
    s.save(sid, {"user": "anonymous"})
    reader = ServerSession(sid, lambda key: read_session(s, key))
    writer = ServerSession(sid, lambda key: read_session(s, key))
    assert reader["user"] == writer["user"] == "anonymous"
    login = ServerSession(sid, lambda key: read_session(s, key))
    login.regenerate()
    login["user"] = "alice"
    moved = commit(s, login, ttl=60)
    writer["cart"] = ["book"]
    for late in (reader, writer):  # a touch and a write of the old id: both find it gone
        outcome = commit(s, late, ttl=60)
        assert outcome.action is Action.GONE and outcome.sid is None
    assert s.load(sid) is None
    assert moved.sid is not None and s.load(moved.sid) == {"user": "alice"}


def test_a_value_json_gives_back_as_another_type_is_read_back_as_a_decode_gives_it() -> None:
    s, _ = store()
    sid = new_session_id()
    s.save(sid, {"n": 1})
    session = ServerSession(sid, lambda key: read_session(s, key))
    session["pair"] = (1, 2)  # JSON has no tuple: a decode gives a list
    session["nested"] = {"at": [("x", 1)]}
    commit(s, session, ttl=60)
    again = ServerSession(sid, lambda key: read_session(s, key))
    assert again["pair"] == [1, 2] and type(again["pair"]) is list
    assert again["nested"] == {"at": [["x", 1]]}
    assert again == {"n": 1, "pair": [1, 2], "nested": {"at": [["x", 1]]}}


def test_what_a_request_reads_is_its_own_copy() -> None:
    s, _ = store()
    sid = new_session_id()
    s.save(sid, {"cart": ["book"]})
    first = ServerSession(sid, lambda key: read_session(s, key))
    first["cart"].append("pen")
    commit(s, first, ttl=60)
    second = ServerSession(sid, lambda key: read_session(s, key))
    second["cart"].append("ink")  # changes only this request's copy, until its commit
    third = ServerSession(sid, lambda key: read_session(s, key))
    assert third["cart"] == ["book", "pen"]
    commit(s, second, ttl=60)
    assert s.load(sid) == {"cart": ["book", "pen", "ink"]}


def test_a_session_id_never_appears_in_a_store_error(tmp_path: Any) -> None:
    """Found by a new user: with Redis down, the 500's log line held the live session id (a
    bearer credential) in the error's ``key=``. Errors about a session show a digest instead,
    on reads and on the end-of-request commit, through the real chain and a dead Redis."""
    import socket

    import pytest

    from session_store import BackendUnavailableError, open_backend
    from session_store.websession import shown_id

    with socket.socket() as probe:  # a loopback port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = f"redis://127.0.0.1:{port}/0?socket_connect_timeout=0.2"
    store: SessionStore[dict[str, Any]] = SessionStore(
        open_backend(f"memory:// | {dead} | diskcache://{tmp_path}"), dict
    )
    sid = new_session_id()
    with pytest.raises(BackendUnavailableError) as raised:
        read_session(store, sid)  # an update-style read: the arbiter is down
    assert sid not in str(raised.value) and sid not in repr(raised.value)
    assert shown_id(sid) in str(raised.value)
    session = ServerSession(sid, None)
    session["cart"] = ["book"]
    with pytest.raises(BackendUnavailableError) as raised:
        commit(store, session, 3600.0)
    assert sid not in str(raised.value)
    store.close()


def test_an_unreadable_stored_session_starts_a_new_one_and_is_left_alone(
    caplog: Any,
) -> None:
    """Found by a new user: turning encryption on (or any corrupt payload) gave every user whose
    stored session could not be decoded a 500 on every request until it expired. Now the
    request starts a new session (as Django's own backends do), logged without the id, and the
    stored bytes stay for inspection."""
    import asyncio
    import logging

    from session_store.aio import AsyncSessionStore
    from session_store.websession import aread_session, shown_id

    backend = MemoryBackend()
    store: SessionStore[dict[str, Any]] = SessionStore(backend, dict)
    sid = new_session_id()
    backend.set(sid, b"\x00\x01 not a session")  # what no codec of ours wrote
    with caplog.at_level(logging.WARNING, logger="session_store.web"):
        assert read_session(store, sid) is None
    assert shown_id(sid) in caplog.text and sid not in caplog.text
    assert backend.get(sid) == b"\x00\x01 not a session"  # left as it was

    async def read_async() -> object:
        astore: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore("memory://", dict)
        await astore.backend.set(sid, b"\x00garbage")
        return await aread_session(astore, sid)

    assert asyncio.run(read_async()) is None


def test_the_memory_default_of_the_web_integrations_is_a_logged_choice(caplog: Any) -> None:
    import logging

    from session_store.websession import config as websession

    websession._warned_memory = False
    with caplog.at_level(logging.WARNING, logger="session_store.web"):
        assert websession.store_url("redis://127.0.0.1:1/0") == "redis://127.0.0.1:1/0"
        assert "SESSION_STORE_URL" not in caplog.text
        assert websession.store_url(None) in (
            "memory://",
            __import__("os").environ.get("SESSION_STORE_URL"),
        )
    if not __import__("os").environ.get("SESSION_STORE_URL"):
        assert "no SESSION_STORE_URL configured" in caplog.text


def test_the_next_request_gets_what_this_one_wrote_without_a_parse() -> None:
    """A request that writes its session keeps the data (websession.memo): the next request
    reading those very bytes gets a copy without parsing the body; changing that copy, nested
    lists included, changes neither what is kept nor what is stored. Other bytes (another
    writer) are parsed as before."""

    class CountingStore(SessionStore[dict[str, Any]]):
        parses = 0

        def _rebuild(self, key: str, plain: Any) -> Any:
            CountingStore.parses += 1
            return super()._rebuild(key, plain)

    backend = MemoryBackend()
    s = CountingStore(backend, dict)
    sid = new_session_id()
    s.save(sid, {"cart": ["book"], "user": "ann"})

    def request(change: Any) -> dict[str, Any]:
        session = ServerSession(sid, lambda key: read_session(s, key))
        seen: dict[str, Any] = __import__("copy").deepcopy(dict(session))
        change(session)
        commit(s, session, 3600.0)
        return seen

    request(lambda session: session["cart"].append("pen"))  # a parse: saved, not web-written
    CountingStore.parses = 0
    seen = request(lambda session: session["cart"].append("ink"))
    assert seen == {"cart": ["book", "pen"], "user": "ann"} and CountingStore.parses == 0
    seen = request(lambda session: session.update(n=1))
    assert seen == {"cart": ["book", "pen", "ink"], "user": "ann"} and CountingStore.parses == 0
    s.save(sid, {"cart": [], "user": "bob"})  # another writer's bytes
    assert request(lambda session: None) == {"cart": [], "user": "bob"}
    assert CountingStore.parses == 1
    assert s.codec.decode(sid, backend.get(sid) or b"").obj == {"cart": [], "user": "bob"}


def test_no_web_module_is_over_400_lines() -> None:
    """Small modules with one job each: the web integrations and their building blocks."""
    from pathlib import Path

    import session_store

    root = Path(session_store.__file__).parent
    modules = [
        *sorted((root / "websession").glob("*.py")),
        root / "flask.py",
        root / "starlette.py",
        root / "django" / "__init__.py",
    ]
    sizes = {
        str(p.relative_to(root)): len(p.read_text(encoding="utf-8").splitlines()) for p in modules
    }
    assert len(sizes) >= 10 and max(sizes.values()) <= 400, sizes


def test_key_order_is_no_change_at_any_depth_but_types_still_are() -> None:
    reordered = {"p": {"a": 1, "b": [{"x": 1, "y": 2}]}, "q": 1}
    assert same(
        {"p": {"a": 1, "b": [{"x": 1, "y": 2}]}, "q": 1},
        {"q": 1, "p": {"b": [{"y": 2, "x": 1}], "a": 1}},
    )
    assert same({1: "a", 2: "b"}, {2: "b", 1: "a"})  # non-str keys: the walk
    assert not same(reordered, {"q": 1, "p": {"b": [{"y": 2.0, "x": 1}], "a": 1}})
    assert not same(reordered, {"q": 1, "p": {"b": [{"y": 2, "x": True}], "a": 1}})
    assert not same({"t": [(1,), [2]]}, {"t": [[1], [2]]})
    assert not same([[[[(1,)]]]], [[[[[1]]]]])  # below the levels the C check runs on
    assert not same([[[[1]]]], [[[[1.0]]]])
    nan = float("nan")
    assert same([[[{"b": nan, "a": 0.0}]]], [[[{"a": 0.0, "b": float("nan")}]]])
    assert not same([[[{"a": -0.0}]]], [[[{"a": 0.0}]]])
    assert diff({"p": {"a": 1, "b": 2}}, {"p": {"b": 2, "a": 1}}) == ({}, frozenset())


def test_a_new_session_is_created_with_one_conditional_write_and_no_read() -> None:
    """A session created by this request has a fresh 256-bit id nobody else can hold: its
    first write is one create-if-absent (``set_if`` with no token), not a read followed by
    one; the same for the copy a login's move writes under its new id."""
    s, backend = store()
    fresh = ServerSession(None)
    fresh["user"] = "ann"
    outcome = commit(s, fresh, ttl=60)
    assert outcome.action is Action.WRITE and is_session_id(outcome.sid)
    assert backend.calls == [("set_if", outcome.sid)]
    assert outcome.sid is not None and s.load(outcome.sid) == {"user": "ann"}
    backend.calls.clear()
    login = ServerSession(outcome.sid, lambda key: read_session(s, key))
    login.regenerate()
    login["user"] = "bob"
    moved = commit(s, login, ttl=60)
    assert moved.action is Action.MOVE and moved.sid not in (None, outcome.sid)
    assert backend.calls == [
        ("get_versioned", outcome.sid),  # the request's own read
        ("get_versioned", outcome.sid),  # what the old id holds now
        ("set_if", moved.sid),  # the copy, created under the new id
        ("set_if", outcome.sid),  # the old id retired
        ("delete", outcome.sid),
    ]
    assert moved.sid is not None and s.load(moved.sid) == {"user": "bob"}
    assert s.load(outcome.sid) is None


def test_the_next_request_reads_a_new_sessions_first_write_without_a_decode() -> None:
    s, _ = store()
    fresh = ServerSession(None)
    fresh["n"] = 1
    outcome = commit(s, fresh, ttl=60)
    assert outcome.sid is not None
    misses = s._decoded.misses
    session = ServerSession(outcome.sid, lambda key: read_session(s, key))
    assert session["n"] == 1
    assert s._decoded.misses == misses  # the bytes this process created: no decode
