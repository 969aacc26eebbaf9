"""Safe defaults of the host API (issue 13, items 5 and 6): sessions expire unless told otherwise,
and a TTL no backend can hold is one typed error everywhere."""

from __future__ import annotations

import math
from typing import Any

import pytest

from session_store import NO_EXPIRY, MemoryBackend, SessionMapping, SessionStore
from session_store.dataroom import EnhancedSessionData, SessionManager
from session_store.errors import InvalidTTLError

DAY = 86400.0


def _left(store: SessionStore[Any], key: str) -> float:
    left = store.backend.ttl(key)
    assert left is not None
    return left


def test_a_store_without_ttl_expires_sessions_after_a_day() -> None:
    with SessionStore("memory://", dict) as store:
        assert store.ttl == DAY
        store.save("u1", {"a": 1})
        assert DAY - 5 < _left(store, "u1") <= DAY
        store.update("u2", lambda current: {"b": 2})
        assert DAY - 5 < _left(store, "u2") <= DAY


def test_ttl_none_is_the_default_not_forever() -> None:
    with SessionStore("memory://", dict, ttl=None) as store:
        store.save("u1", {"a": 1})
        assert _left(store, "u1") <= DAY


def test_forever_is_an_explicit_choice_even_over_a_backend_default() -> None:
    with SessionStore("memory://?default_ttl=60", dict, ttl=NO_EXPIRY) as store:
        store.save("u1", {"a": 1})
        assert _left(store, "u1") == math.inf
        store.save("u2", {"a": 1}, ttl=30)  # a per-call TTL still wins
        assert _left(store, "u2") <= 30


def test_manager_and_mapping_inherit_the_finite_default() -> None:
    store = SessionStore(MemoryBackend(), EnhancedSessionData)
    manager = SessionManager(store)
    manager.store_enhanced_session("U1", {"processed_documents": []})
    assert _left(store, "U1") <= DAY
    sessions = SessionMapping(SessionStore(MemoryBackend(), dict))
    sessions["U2"] = {"a": 1}
    assert _left(sessions.store, "U2") <= DAY


@pytest.mark.parametrize("huge", [pytest.param(10**400, id="1e400"), 1e300, 2e16])
def test_huge_ttls_are_one_typed_error_through_the_store(huge: float) -> None:
    with pytest.raises(InvalidTTLError):
        SessionStore("memory://", dict, ttl=huge)
    with SessionStore("memory://", dict) as store:
        store.save("k", {"kept": True})
        for call in (
            lambda: store.save("k", {"kept": False}, ttl=huge),
            lambda: store.touch("k", ttl=huge),
            lambda: store.update("k", lambda current: {"kept": False}, ttl=huge),
        ):
            with pytest.raises(InvalidTTLError):
                call()
        assert store.load("k") == {"kept": True}
