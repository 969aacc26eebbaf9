"""``SessionMapping.edit`` when another writer changes the session during the ``with`` block,
case by case, against docs/dataroom.md ("``edit``: what another writer's change does"): the
edit's recorded changes are replayed on the newer session when they touch nothing the other
writer changed; otherwise ``ConflictError``, and the session is exactly the other writer's.

The other writer is a second mapping on the same store, changing the session inside the block
(the exact interleaving; ``test_mapping_edit_processes.py`` runs two real processes). Before
(``edit`` wrote only on the version it read), every case raised ``ConflictError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from session_store import ConflictError, MemoryBackend, SessionMapping, SessionStore
from session_store.backend import SessionBackend
from session_store.codec import Codec

Change = Callable[[dict[str, Any]], Any]


def _mapping(backend: SessionBackend, observed: list[Any] | None = None) -> SessionMapping:
    store: SessionStore[Any] = SessionStore(backend, codec=Codec(encryption=None))
    if observed is None:
        return SessionMapping(store)
    return SessionMapping(store, observer=lambda _k, prev, new: observed.append((prev, new)))


def _race(sessions: SessionMapping, mine: Change, theirs: Change, left: list[Any]) -> None:
    """Edit session ``u`` with ``mine`` while another writer applies ``theirs`` (tracked, as a
    host app's ``sessions[uid][k] = v``); what ``theirs`` left stored is appended to ``left``."""
    other = _mapping(sessions.store.backend)
    with sessions.edit("u") as d:
        mine(d)
        theirs(other["u"])
        left.append(json.loads(json.dumps(other["u"])))


def _all(*changes: Change) -> Change:
    return lambda d: [change(d) for change in changes]


REPLAYED: dict[str, tuple[dict[str, Any], Change, Change, dict[str, Any]]] = {
    "different top-level keys": (
        {"a": 0, "b": 0},
        lambda d: d.__setitem__("a", 1),
        lambda o: o.__setitem__("b", 2),
        {"a": 1, "b": 2},
    ),
    "a delete beside another key's change": (
        {"a": 0, "b": 0},
        lambda d: d.__delitem__("a"),
        lambda o: o.__setitem__("b", 2),
        {"b": 2},
    ),
    "different keys of one nested dict": (
        {"prefs": {"theme": "light", "lang": "en"}},
        lambda d: d["prefs"].__setitem__("theme", "dark"),
        lambda o: o["prefs"].__setitem__("lang", "fr"),
        {"prefs": {"theme": "dark", "lang": "fr"}},
    ),
    "appends to one list": (
        {"docs": ["a"]},
        lambda d: d["docs"].append("mine"),
        lambda o: o["docs"].append("theirs"),
        {"docs": ["a", "theirs", "mine"]},
    ),
    "+= on a list beside an append": (
        {"docs": ["a"]},
        lambda d: d.__setitem__("docs", d["docs"].__iadd__(["mine"])),  # d["docs"] += [...]
        lambda o: o["docs"].append("theirs"),
        {"docs": ["a", "theirs", "mine"]},
    ),
    "a list item's change beside an append": (
        {"docs": [{"n": "a"}, {"n": "b"}]},
        lambda d: d["docs"][1].__setitem__("done", True),
        lambda o: o["docs"].append({"n": "c"}),
        {"docs": [{"n": "a"}, {"n": "b", "done": True}, {"n": "c"}]},
    ),
    "a new dict, then a change inside it": (
        {"a": 0},
        _all(lambda d: d.__setitem__("new", {}), lambda d: d["new"].__setitem__("x", 1)),
        lambda o: o.__setitem__("a", 1),
        {"a": 1, "new": {"x": 1}},
    ),
    "an increment of a key only the edit writes": (
        {"n": 1, "other": 0},
        lambda d: d.__setitem__("n", d["n"] + 1),
        lambda o: o.__setitem__("other", 1),
        {"n": 2, "other": 1},
    ),
    "the same key set twice by the edit": (
        {"a": 0, "b": 0},
        _all(
            lambda d: d.__setitem__("a", 1),
            lambda d: d.__setitem__("a", 2),
            lambda d: d.pop("a"),
            lambda d: d.update(a=3),
        ),
        lambda o: o.__setitem__("b", 1),
        {"a": 3, "b": 1},
    ),
}


@pytest.mark.parametrize("case", list(REPLAYED))
def test_an_edit_beside_another_writer_is_replayed(case: str) -> None:
    start, mine, theirs, expected = REPLAYED[case]
    sessions = _mapping(MemoryBackend())
    sessions["u"] = start
    _race(sessions, mine, theirs, [])
    assert sessions["u"] == expected


RAISED: dict[str, tuple[dict[str, Any], Change, Change]] = {
    "one key, different values": (
        {"a": 0},
        lambda d: d.__setitem__("a", 1),
        lambda o: o.__setitem__("a", 2),
    ),
    # the same value: two increments from one read are still two (one would be lost)
    "one key, the same value": (
        {"n": 0},
        lambda d: d.__setitem__("n", d["n"] + 1),
        lambda o: o.__setitem__("n", o["n"] + 1),
    ),
    "a delete of a key the other changed": (
        {"a": 0},
        lambda d: d.__delitem__("a"),
        lambda o: o.__setitem__("a", 2),
    ),
    "a set of a key the other deleted": (
        {"a": 0, "b": 0},
        lambda d: d.__setitem__("a", 1),
        lambda o: o.__delitem__("a"),
    ),
    "a pop of a key the other popped too": (
        {"job": "j1", "b": 0},
        lambda d: d.pop("job"),
        lambda o: o.pop("job"),
    ),
    "a whole nested dict replaced while the other changed inside it": (
        {"prefs": {"theme": "light"}},
        lambda d: d.__setitem__("prefs", {"theme": "dark"}),
        lambda o: o["prefs"].__setitem__("lang", "fr"),
    ),
    "a change inside a dict the other removed": (
        {"prefs": {"theme": "light"}, "b": 0},
        lambda d: d["prefs"].__setitem__("theme", "dark"),
        lambda o: o.__delitem__("prefs"),
    ),
    "a change inside a dict the other replaced by a list": (
        {"prefs": {"theme": "light"}},
        lambda d: d["prefs"].__setitem__("theme", "dark"),
        lambda o: o.__setitem__("prefs", ["x"]),
    ),
    "a clear of a dict the other added to": (
        {"prefs": {"theme": "light"}},
        lambda d: d["prefs"].clear(),
        lambda o: o["prefs"].__setitem__("lang", "fr"),
    ),
    "a sort of a list the other appended to": (
        {"docs": ["b", "a"]},
        lambda d: d["docs"].sort(),
        lambda o: o["docs"].append("c"),
    ),
    "a change to a list item the other moved": (
        {"docs": [{"n": "a"}, {"n": "b"}]},
        lambda d: d["docs"][1].__setitem__("done", True),
        lambda o: o["docs"].insert(0, {"n": "z"}),
    ),
    "a remove of an item the other removed": (
        {"docs": ["a", "b"]},
        lambda d: d["docs"].remove("a"),
        lambda o: o["docs"].remove("a"),
    ),
    "+= on a list after the other replaced it": (
        {"docs": ["a"]},
        lambda d: d.__setitem__("docs", d["docs"] + ["mine"]),  # a new list, computed
        lambda o: o["docs"].append("theirs"),
    ),
}


@pytest.mark.parametrize("case", list(RAISED))
def test_an_ambiguous_edit_raises_and_writes_nothing(case: str) -> None:
    start, mine, theirs = RAISED[case]
    sessions, left = _mapping(MemoryBackend()), list[Any]()
    sessions["u"] = start
    with pytest.raises(ConflictError):
        _race(sessions, mine, theirs, left)
    assert sessions["u"] == left[0]  # exactly the other writer's session: nothing of the edit


def test_a_session_deleted_during_the_edit_stays_deleted() -> None:
    backend = MemoryBackend()
    sessions = _mapping(backend)
    sessions["u"] = {"a": 0}
    with pytest.raises(ConflictError):
        _race(sessions, lambda d: d.__setitem__("a", 1), lambda o: o.clear(), [])
    assert sessions["u"] == {}  # the other writer's clear, not the edit's set
    with pytest.raises(ConflictError), sessions.edit("u") as d:  # noqa: PT012
        d["a"] = 1
        del _mapping(backend)["u"]
    assert "u" not in sessions


def test_the_observer_sees_the_session_the_edit_was_replayed_on() -> None:
    backend = MemoryBackend()
    observed: list[Any] = []
    sessions = _mapping(backend, observed)
    sessions["u"] = {"a": 0, "b": 0}
    observed.clear()
    with sessions.edit("u") as d:
        d["a"] = 1
        _mapping(backend)["u"]["b"] = 2
    assert observed == [({"a": 0, "b": 2}, {"a": 1, "b": 2})]


def test_an_edit_is_a_real_dict_and_detached_after_its_block() -> None:
    backend = MemoryBackend()
    sessions = _mapping(backend)
    sessions["u"] = {"docs": [{"n": "a"}], "p": {"x": 1}}
    with sessions.edit("u") as d:
        assert isinstance(d, dict) and isinstance(d["docs"], list)
        assert json.loads(json.dumps(d)) == {"docs": [{"n": "a"}], "p": {"x": 1}}
        d["p"]["x"] = 2
    d["p"]["x"] = 3  # after the block: a local change, as on a plain dict, never written
    assert sessions["u"] == {"docs": [{"n": "a"}], "p": {"x": 2}}


def test_a_failing_block_writes_nothing() -> None:
    backend = MemoryBackend()
    sessions = _mapping(backend)
    sessions["u"] = {"a": 0}
    with pytest.raises(RuntimeError), sessions.edit("u") as d:  # noqa: PT012
        d["a"] = 1
        _mapping(backend)["u"]["b"] = 2
        raise RuntimeError
    assert sessions["u"] == {"a": 0, "b": 2}
