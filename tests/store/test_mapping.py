"""SessionMapping: the legacy dict, persisted."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given

from session_store import ConflictError, MemoryBackend, SessionMapping, SessionStore
from session_store.codec import Codec
from session_store.samples import legacy_sessions
from session_store.schema import EnhancedSessionData
from session_store.testing.strategies import json_objects


def mapping(backend: MemoryBackend | None = None) -> SessionMapping:
    return SessionMapping(
        SessionStore(
            backend if backend is not None else MemoryBackend(), codec=Codec(encryption=None)
        )
    )


def test_every_fixture_session_round_trips_exactly() -> None:
    sessions = mapping()
    for uid, data in legacy_sessions().items():
        sessions[uid] = data
        got = sessions[uid]
        assert got == data
        assert isinstance(got, dict)
        assert json.loads(json.dumps(got)) == data
    assert len(sessions) == 4
    assert sorted(sessions) == sorted(legacy_sessions())


@given(json_objects())
def test_any_json_object_round_trips(data: dict[str, Any]) -> None:
    sessions = mapping()
    sessions["k"] = data
    assert sessions["k"] == data


def test_top_level_item_assignment_persists() -> None:
    backend = MemoryBackend()
    sessions = mapping(backend)
    sessions["u"] = {"processed_documents": []}
    sessions["u"]["market_research"] = {"tam": 1}
    fresh = mapping(backend)  # another process's view of the same store
    assert fresh["u"] == {"processed_documents": [], "market_research": {"tam": 1}}
    d = fresh["u"]
    del d["processed_documents"]
    d.update(a=1)
    assert d.pop("a") == 1
    assert d.setdefault("b", 2) == 2
    assert mapping(backend)["u"] == {"market_research": {"tam": 1}, "b": 2}
    d.clear()
    assert mapping(backend)["u"] == {}


def test_two_writers_of_different_keys_both_win() -> None:
    backend = MemoryBackend()
    a, b = mapping(backend), mapping(backend)
    a["u"] = {}
    view_a, view_b = a["u"], b["u"]
    view_a["from_a"] = 1
    view_b["from_b"] = 2  # view_b was read before a's change; the change still merges
    assert mapping(backend)["u"] == {"from_a": 1, "from_b": 2}


def test_nested_mutation_persists_and_edit_still_works() -> None:
    sessions = mapping()
    sessions["u"] = {"docs": []}
    sessions["u"]["docs"].append("kept")  # nested in-place changes persist (issue 14)
    assert sessions["u"] == {"docs": ["kept"]}
    with sessions.edit("u") as d:
        d["docs"].append("edited")
    assert sessions["u"] == {"docs": ["kept", "edited"]}
    sessions.modify("u", lambda d: d["docs"].append("again"))
    assert sessions["u"] == {"docs": ["kept", "edited", "again"]}


def test_edit_conflict_writes_nothing() -> None:
    sessions = mapping()
    sessions["u"] = {"v": 1}
    edit = sessions.edit("u")
    d = edit.__enter__()
    d["v"] = 2
    sessions["u"] = {"v": "other writer"}
    with pytest.raises(ConflictError):
        edit.__exit__(None, None, None)
    assert sessions["u"] == {"v": "other writer"}


def test_missing_keys_and_non_dicts() -> None:
    sessions = mapping()
    with pytest.raises(KeyError):
        sessions["nope"]
    with pytest.raises(KeyError):
        del sessions["nope"]
    assert "nope" not in sessions
    assert sessions.get("nope") is None
    with pytest.raises(ValueError, match="must be a dict"):
        sessions["u"] = ["not", "a", "dict"]  # type: ignore[assignment]


def test_copies_are_plain_detached_dicts() -> None:
    sessions = mapping()
    sessions["u"] = {"a": {"b": 1}}
    d = sessions["u"]
    assert type(copy.copy(d)) is dict and type(copy.deepcopy(d)) is dict


def test_interop_with_typed_sessions() -> None:
    backend = MemoryBackend()
    typed = SessionStore(backend, EnhancedSessionData, codec=Codec(encryption=None))
    sessions = mapping(backend)
    sessions["legacy"] = legacy_sessions()["U071780854"]
    loaded = typed.load("legacy")
    assert isinstance(loaded, EnhancedSessionData)
    assert loaded.extra["market_research"] == legacy_sessions()["U071780854"]["market_research"]
    typed.save("typed", EnhancedSessionData("typed", document_summary="s"))
    as_dict = sessions["typed"]
    assert as_dict["document_summary"] == "s" and as_dict["user_id"] == "typed"
    as_dict["note"] = "added through the dict"
    again = typed.load("typed")
    assert again is not None and again.extra["note"] == "added through the dict"
