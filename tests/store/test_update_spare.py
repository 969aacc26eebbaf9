"""After an ``update`` of a plain ``dict`` session the near cache keeps a *spare*: a copy of the
object written (new containers, the written strings shared), which the next hit of those bytes
returns instead of a rebuild from the snapshot (issue 17, update17c). It must never alias what
``update`` returned, what ``fn`` got or what any later ``load`` returns, and it must be exactly
what the bytes decode to (a ``tuple`` written reads back as a ``list``). Real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from session_store import Codec, SessionStore
from session_store.decoded import plain_copy

Session = dict[str, Any]


@pytest.fixture
def store(shared_url: str) -> Iterator[SessionStore[Session]]:
    s: SessionStore[Session] = SessionStore(
        shared_url, dict, codec=Codec(encryption=None), access_interval=None
    )
    try:
        yield s
    finally:
        s.close()


def _session() -> Session:
    return {"n": 0, "docs": [{"name": "é", "meta": {"pages": [1, 2]}}], "tags": ["a"]}


def test_what_update_returned_changed_after_it_returns_changes_nothing_stored(
    store: SessionStore[Session],
) -> None:
    store.save("k", _session())
    first = store.update("k", lambda s: {**(s or {}), "n": 1})
    assert first is not None
    # the caller changes what update returned, deep inside: the spare is a copy of it
    first["docs"][0]["meta"]["pages"].append(99)
    first["tags"].append("changed")
    got: list[Session] = []

    def bump(current: Session | None) -> Session:
        assert current is not None
        got.append(current)
        current["n"] += 1
        return current

    second = store.update("k", bump)
    assert got[0]["docs"][0]["meta"]["pages"] == [1, 2]
    assert got[0]["tags"] == ["a"]
    assert second is not None and second["n"] == 2
    # fn's object (update returned it too) changed afterwards: later loads and updates unaffected
    got[0]["docs"][0]["meta"]["pages"].clear()
    got[0]["tags"].clear()
    loaded = store.load("k")
    assert loaded == {**_session(), "n": 2}
    third = store.update("k", bump)
    assert third is not None and third["docs"][0]["meta"]["pages"] == [1, 2]
    assert got[1] is not got[0] and got[1]["tags"] == ["a"]


def test_the_spare_goes_to_one_caller_only(store: SessionStore[Session]) -> None:
    store.save("k", _session())
    store.update("k", lambda s: {**(s or {}), "n": 1})
    one, two = store.load("k"), store.load("k")
    assert one is not None and two is not None
    assert one == two
    assert one is not two and one["docs"] is not two["docs"]
    assert one["docs"][0]["meta"] is not two["docs"][0]["meta"]
    one["docs"][0]["meta"]["pages"].append(3)
    assert two["docs"][0]["meta"]["pages"] == [1, 2]
    assert store.load("k") == {**_session(), "n": 1}


def test_a_tuple_written_by_update_reads_back_as_a_list_warm_as_cold(
    store: SessionStore[Session], shared_url: str
) -> None:
    store.save("k", {"n": 0})
    store.update("k", lambda s: {"n": 1, "pair": (1, [2, (3,)])})
    seen: list[Any] = []

    def look(current: Session | None) -> None:
        seen.append(current)

    store.update("k", look)  # writes nothing: fn saw the spare
    warm = seen[0]
    assert warm == {"n": 1, "pair": [1, [2, [3]]]}
    assert type(warm["pair"]) is list and type(warm["pair"][1][1]) is list
    cold: SessionStore[Session] = SessionStore(
        shared_url, dict, codec=Codec(encryption=None), access_interval=None
    )
    try:
        assert cold.load("k") == warm
    finally:
        cold.close()


def test_plain_copy_shares_leaves_and_no_container() -> None:
    text = "日本 €" * 10
    value: Any = {"a": [{"s": text, "t": (1, {"u": [text]})}], "b": text}
    copy = plain_copy(value)
    assert copy == {"a": [{"s": text, "t": [1, {"u": [text]}]}], "b": text}
    assert copy["b"] is text and copy["a"][0]["s"] is text
    assert copy is not value and copy["a"] is not value["a"]
    assert copy["a"][0] is not value["a"][0]
    assert copy["a"][0]["t"][1] is not value["a"][0]["t"][1]
    assert copy["a"][0]["t"][1]["u"] is not value["a"][0]["t"][1]["u"]


def test_the_spare_counts_in_the_bound_until_taken(store: SessionStore[Session]) -> None:
    store.save("k", _session())
    store.update("k", lambda s: {**(s or {}), "n": 1})
    held = store._decoded.size_bytes
    store.load("k")  # takes the spare
    assert store._decoded.size_bytes < held
    store.load("k")
    store.load("k")
    store.delete("k")
    assert store._decoded.size_bytes == 0
