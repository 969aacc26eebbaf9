"""SessionMapping, the legacy dict done right: nested changes persist, a deleted session stays
deleted, int user ids work the way a dict user expects (issue 14 item 7, issue 13 item 8)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from session_store import (
    ConflictError,
    InvalidKeyError,
    MemoryBackend,
    SessionMapping,
    SessionStore,
)
from session_store.codec import Codec


def mapping(backend: MemoryBackend | None = None) -> SessionMapping:
    return SessionMapping(
        SessionStore(
            backend if backend is not None else MemoryBackend(), codec=Codec(encryption=None)
        )
    )


def test_append_in_place_persists() -> None:
    """The most common line of the old bot: it used to change only the reader's copy."""
    backend = MemoryBackend()
    sessions = mapping(backend)
    sessions["u"] = {"processed_documents": [{"name": "a.pdf"}]}
    sessions["u"]["processed_documents"].append({"name": "b.pdf"})
    fresh = mapping(backend)  # another process's view of the same store
    assert fresh["u"] == {"processed_documents": [{"name": "a.pdf"}, {"name": "b.pdf"}]}


def test_every_nested_change_persists_like_a_plain_dict() -> None:
    """The same operations on a plain dict and on the mapping leave the same data."""
    backend = MemoryBackend()
    sessions = mapping(backend)
    start: dict[str, Any] = {"docs": [{"n": 1}, {"n": 2}], "meta": {"a": {"b": []}}, "k": 0}
    model = copy.deepcopy(start)
    sessions["u"] = start
    d = sessions["u"]

    def both(fn: Any) -> None:
        fn(model)
        fn(d)
        assert mapping(backend)["u"] == model, fn
        assert d == model

    both(lambda s: s["docs"].append({"n": 3}))
    both(lambda s: s["docs"].insert(0, {"n": 0}))
    both(lambda s: s["docs"][1].update(seen=True))
    both(lambda s: s["docs"].extend([{"n": 4}]))
    both(lambda s: s["docs"].remove({"n": 4}))
    both(lambda s: s["docs"].sort(key=lambda x: -x["n"]))
    both(lambda s: s["docs"].reverse())
    both(lambda s: s["docs"].pop(0))
    both(lambda s: s["docs"].__setitem__(0, {"n": 10}))
    both(lambda s: s["docs"].__delitem__(-1))
    both(lambda s: s["docs"].__setitem__(slice(0, 1), iter([{"n": 11}, {"n": 12}])))
    both(lambda s: s["meta"]["a"]["b"].append("deep"))
    both(lambda s: s["meta"]["a"].setdefault("c", {}))
    both(lambda s: s["meta"]["a"]["c"].__setitem__("x", [1]))
    both(lambda s: s["meta"]["a"]["c"]["x"].__iadd__([2, 3]))
    both(lambda s: s["meta"].pop("a"))
    both(lambda s: s["meta"].__ior__({"z": 1}))
    both(lambda s: s.__setitem__("k", 1))
    both(lambda s: [doc.__setitem__("tag", "t") for doc in s["docs"]])
    both(lambda s: s["docs"].clear())


def test_a_held_container_keeps_persisting_after_each_change() -> None:
    backend = MemoryBackend()
    sessions = mapping(backend)
    sessions["u"] = {"docs": []}
    docs = sessions["u"]["docs"]
    for i in range(3):
        docs.append(i)
    first = sessions["u"]
    item = {"n": 0}
    first["docs"].append(item)  # assigned values are copied in, as JSON
    first["docs"][-1]["n"] = 1
    assert mapping(backend)["u"] == {"docs": [0, 1, 2, {"n": 1}]}


def test_a_detached_container_changes_nothing_stored_as_in_a_plain_dict() -> None:
    backend = MemoryBackend()
    sessions = mapping(backend)
    sessions["u"] = {"docs": [{"n": 1}], "meta": {"x": 1}}
    d = sessions["u"]
    popped = d["docs"].pop()
    popped["n"] = 99
    meta = d.pop("meta")
    meta["x"] = 2
    assert mapping(backend)["u"] == {"docs": []}


def test_concurrent_appends_from_stale_views_both_land() -> None:
    backend = MemoryBackend()
    a, b = mapping(backend), mapping(backend)
    a["u"] = {"docs": []}
    view_a, view_b = a["u"], b["u"]
    view_a["docs"].append("from a")
    view_b["docs"].append("from b")  # read before a's append: replayed on the fresh copy
    assert mapping(backend)["u"] == {"docs": ["from a", "from b"]}


def test_a_change_inside_a_part_another_writer_removed_is_a_conflict() -> None:
    backend = MemoryBackend()
    sessions = mapping(backend)
    sessions["u"] = {"meta": {"tags": []}}
    mine = sessions["u"]
    sessions["u"] = {"other": "writer"}
    with pytest.raises(ConflictError, match="no longer exists"):
        mine["meta"]["tags"].append("x")
    assert mapping(backend)["u"] == {"other": "writer"}


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.__setitem__("k", "v"),
        lambda d: d.update(k="v"),
        lambda d: d.setdefault("k", "v"),
        lambda d: d["docs"].append("x"),
    ],
)
def test_a_deleted_session_stays_deleted(change: Any) -> None:
    """Issue 13 item 8: a request still holding the session after logout re-created it."""
    backend = MemoryBackend()
    sessions = mapping(backend)
    sessions["u"] = {"docs": []}
    d = sessions["u"]
    del sessions["u"]  # the user logged out
    with pytest.raises(ConflictError, match="deleted"):
        change(d)
    assert "u" not in sessions
    assert mapping(backend).get("u") is None


def test_int_user_ids_are_their_decimal_text() -> None:
    sessions = mapping()
    sessions[123] = {"docs": []}
    assert 123 in sessions and "123" in sessions
    assert sessions[123] == sessions["123"] == {"docs": []}
    sessions[123]["docs"].append(1)
    assert sessions["123"] == {"docs": [1]}
    assert list(sessions) == ["123"]
    assert sessions.get(123) == {"docs": [1]}
    assert 124 not in sessions and sessions.get(124) is None
    del sessions[123]
    assert 123 not in sessions and "123" not in sessions


@pytest.mark.parametrize("key", [12.0, b"123", True, None, ("1",)])
def test_other_key_types_are_refused_and_never_found(key: Any) -> None:
    sessions = mapping()
    sessions["123"] = {}
    assert key not in sessions
    with pytest.raises(InvalidKeyError):
        sessions[key]
    with pytest.raises(InvalidKeyError):
        sessions[key] = {}


def test_in_agrees_with_getitem() -> None:
    sessions = mapping()
    sessions["7"] = {}
    for key in (7, "7", 8, "8", "07"):
        found = key in sessions
        try:
            sessions[key]
            got = True
        except KeyError:
            got = False
        assert found == got, key


def test_reads_are_real_json_ready_dicts_and_copies_are_plain() -> None:
    sessions = mapping()
    sessions["u"] = {"a": {"b": [1, {"c": 2}]}}
    d = sessions["u"]
    assert isinstance(d, dict) and isinstance(d["a"], dict) and isinstance(d["a"]["b"], list)
    assert json.loads(json.dumps(d)) == {"a": {"b": [1, {"c": 2}]}}
    deep = copy.deepcopy(d)
    assert type(deep) is dict and type(deep["a"]) is dict and type(deep["a"]["b"]) is list
    assert type(deep["a"]["b"][1]) is dict
    shallow = copy.copy(d["a"]["b"])
    assert type(shallow) is list
    sessions["v"] = d  # a session read here stores as plain JSON elsewhere
    assert sessions["v"] == d


APPENDER = textwrap.dedent(
    """
    import sys
    from session_store import SessionMapping, SessionStore
    from session_store.codec import Codec

    store = SessionStore(sys.argv[1], codec=Codec(encryption=None))
    sessions = SessionMapping(store)
    for i in range(int(sys.argv[3])):
        sessions["u"]["docs"].append(f"{sys.argv[2]}-{i}")
    store.close()
    """
)


def test_appends_from_many_processes_are_never_lost(tmp_path: Path) -> None:
    """Real processes append in place to one list in a shared diskcache: every append lands."""
    url = f"diskcache://{(tmp_path / 'sessions').as_posix()}"
    store: SessionStore[Any]
    with SessionStore(url, codec=Codec(encryption=None)) as store:
        SessionMapping(store)["u"] = {"docs": []}
    workers, each = 4, 15
    procs = [
        subprocess.Popen([sys.executable, "-c", APPENDER, url, f"p{n}", str(each)])
        for n in range(workers)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * workers
    with SessionStore(url, codec=Codec(encryption=None)) as store:
        docs = SessionMapping(store)["u"]["docs"]
    assert sorted(docs) == sorted(f"p{n}-{i}" for n in range(workers) for i in range(each))
    for n in range(workers):  # each process's appends in its own order
        mine = [d for d in docs if d.startswith(f"p{n}-")]
        assert mine == [f"p{n}-{i}" for i in range(each)]


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=2), inner, max_size=2)
    ),
    max_leaves=4,
)
_keys = st.sampled_from(["a", "b", "c"])


@settings(deadline=None)
@given(st.data())
def test_random_nested_changes_persist_exactly_as_on_a_plain_dict(data: st.DataObject) -> None:
    """Any sequence of changes, through the session or through containers held from it,
    leaves the stored session equal to a plain dict that went through the same changes."""
    backend = MemoryBackend()
    sessions = mapping(backend)
    model: dict[str, Any] = {"docs": [{"n": 0}], "meta": {"a": []}}
    sessions["u"] = model
    model = copy.deepcopy(model)
    d = sessions["u"]
    held_docs, held_meta = d["docs"], d["meta"]
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.integers(0, 7))
        targets = [(model["docs"], held_docs)] if op < 4 else [(model["meta"], held_meta)]
        plain_c, tracked = targets[0]
        if op == 0:
            value = data.draw(_values)
            plain_c.append(copy.deepcopy(value))
            tracked.append(value)
        elif op == 1 and plain_c:
            i = data.draw(st.integers(0, len(plain_c) - 1))
            assert tracked.pop(i) == plain_c.pop(i)
        elif op == 2:
            i = data.draw(st.integers(0, len(plain_c)))
            value = data.draw(_values)
            plain_c.insert(i, copy.deepcopy(value))
            tracked.insert(i, value)
        elif op == 3 and plain_c and isinstance(plain_c[0], dict):
            key, value = data.draw(_keys), data.draw(_values)
            plain_c[0][key] = copy.deepcopy(value)
            tracked[0][key] = value
        elif op == 4:
            key, value = data.draw(_keys), data.draw(_values)
            plain_c[key] = copy.deepcopy(value)
            tracked[key] = value
        elif op == 5 and plain_c:
            key = data.draw(st.sampled_from(sorted(plain_c)))
            del plain_c[key]
            del tracked[key]
        elif op == 6:
            key, value = data.draw(_keys), data.draw(_values)
            got = tracked.setdefault(key, [])
            want = plain_c.setdefault(key, [])
            if isinstance(want, list):
                want.append(copy.deepcopy(value))
                got.append(value)
        elif op == 7:
            key, value = data.draw(_keys), data.draw(_values)
            plain_c.update({key: copy.deepcopy(value)})
            tracked.update({key: value})
        assert mapping(backend)["u"] == model
    assert d == model
