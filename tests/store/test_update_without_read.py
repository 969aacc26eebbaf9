"""``update`` of bytes this store just wrote or read compare-and-sets without reading them again
(one round trip instead of two), on backends whose tokens are a function of the stored bytes
(Redis, diskcache: ``SessionBackend.token_for``); and whatever another writer did in between is
never lost or overwritten by a decision taken on the old copy. Real redis-server, real
directories; the many-process race is ``backends/redis/tests/topologies`` (``update_race``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from session_store import SessionStore

Session = dict[str, Any]


@pytest.fixture
def stores(shared_url: str) -> Iterator[tuple[SessionStore[Session], SessionStore[Session]]]:
    """Two stores on one backend: two processes' views, each with its own near cache."""
    mine: SessionStore[Session] = SessionStore(shared_url, dict, access_interval=None)
    theirs: SessionStore[Session] = SessionStore(shared_url, dict, access_interval=None)
    try:
        yield mine, theirs
    finally:
        mine.close()
        theirs.close()


def _reads(store: SessionStore[Session]) -> int:
    counters = store.backend.counters
    return counters.get("hits") + counters.get("misses")


def test_an_update_after_a_save_reads_nothing(
    stores: tuple[SessionStore[Session], SessionStore[Session]],
) -> None:
    mine, _ = stores
    mine.save("u1", {"n": 0})
    before = _reads(mine)
    for _ in range(5):
        mine.update("u1", lambda s: {"n": (s or {})["n"] + 1})
    assert _reads(mine) == before  # each update: one compare-and-set, no read
    assert mine.load("u1") == {"n": 5}


def test_an_update_builds_on_another_stores_write(
    stores: tuple[SessionStore[Session], SessionStore[Session]],
) -> None:
    mine, theirs = stores
    mine.save("u1", {"n": 0})
    theirs.save("u1", {"n": 10})
    assert mine.update("u1", lambda s: {"n": (s or {})["n"] + 1}) == {"n": 11}
    assert theirs.load("u1") == {"n": 11}


def test_an_update_after_another_stores_delete_starts_from_nothing(
    stores: tuple[SessionStore[Session], SessionStore[Session]],
) -> None:
    mine, theirs = stores
    mine.save("u1", {"n": 3})
    theirs.delete("u1")
    seen: list[Session | None] = []

    def bump(current: Session | None) -> Session:
        seen.append(current)
        return {"n": (current or {"n": 0})["n"] + 1}

    assert mine.update("u1", bump) == {"n": 1}
    assert seen[-1] is None  # the last run of fn, the one that counted, saw the delete


def test_fn_failing_on_the_old_copy_runs_again_on_the_current_one(
    stores: tuple[SessionStore[Session], SessionStore[Session]],
) -> None:
    mine, theirs = stores
    mine.save("u1", {"a": 1})
    theirs.save("u1", {"a": 1, "b": 2})
    # only the current session has "b": on this store's old copy fn raises KeyError
    assert mine.update("u1", lambda s: {**(s or {}), "c": (s or {})["b"]}) == {
        "a": 1,
        "b": 2,
        "c": 2,
    }


def test_fn_writing_nothing_returns_what_is_stored_now(
    stores: tuple[SessionStore[Session], SessionStore[Session]],
) -> None:
    mine, theirs = stores
    mine.save("u1", {"v": "old"})
    theirs.save("u1", {"v": "new"})
    assert mine.update("u1", lambda s: None) == {"v": "new"}


def test_an_error_fn_raises_on_the_current_session_reaches_the_caller(
    stores: tuple[SessionStore[Session], SessionStore[Session]],
) -> None:
    mine, _ = stores
    mine.save("u1", {"a": 1})

    def broken(current: Session | None) -> Session:
        raise ValueError("fn refuses")

    with pytest.raises(ValueError, match="fn refuses"):
        mine.update("u1", broken)
    assert mine.load("u1") == {"a": 1}


def test_fn_changing_its_copy_and_writing_nothing_returns_what_is_stored(
    stores: tuple[SessionStore[Session], SessionStore[Session]],
) -> None:
    mine, theirs = stores
    mine.save("u1", {"v": "old"})
    theirs.save("u1", {"v": "new"})

    def meddle(current: Session | None) -> None:
        assert current is not None
        current["v"] = "changed in fn's copy"

    assert mine.update("u1", meddle) == {"v": "new"}
    assert mine.update("u1", meddle) == {"v": "new"}  # now from this store's own read
