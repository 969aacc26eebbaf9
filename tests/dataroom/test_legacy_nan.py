"""A legacy session holding NaN or infinity (the first app stored its sessions with Python's
``json``, which writes them) loads, can be changed and saved, through every public entry point:
``SessionStore`` (``save`` and ``update``), the data-room ``SessionManager`` and the
``SessionMapping`` drop-in. Each non-finite float becomes ``None`` when the legacy JSON is read,
reported by a warning naming the key and the path and by a counter; a NaN the application writes
itself is still refused (no silent conversion of new data).

Before the fix every change of such a session raised ``SerializationError``: the session was
stuck (see the commit message for the run that showed it).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pytest

from session_store import MemoryBackend, SessionMapping, SessionStore
from session_store.codec import Codec, jsonsafe, legacyjson
from session_store.dataroom import SessionManager
from session_store.errors import CorruptPayloadError, SerializationError
from session_store.samples import legacy_sessions
from session_store.schema.dataroom import EnhancedSessionData

from .support import chain_url

USER = "U063826716"


def _legacy_bytes() -> bytes:
    """A real-shaped legacy session as the first app's ``json.dumps`` wrote it, with NaN and
    both infinities where a computed score or rate would put them."""
    session: dict[str, Any] = legacy_sessions()[USER]
    session["processed_documents"][0]["metadata"]["extraction_score"] = math.nan
    session["analysis_result"] = {"score": math.inf, "history": [1.0, -math.inf, 2.0]}
    raw = json.dumps(session).encode()
    assert b"NaN" in raw and b"-Infinity" in raw  # what Python's json really writes
    return raw


NON_FINITE_PATHS = (
    "['processed_documents'][0]['metadata']['extraction_score']",
    "['analysis_result']['score']",
    "['analysis_result']['history'][1]",
)


def _codec() -> Codec:
    return Codec(encryption=None)


@pytest.fixture
def backend() -> MemoryBackend:
    """A memory backend holding the legacy session under its user id."""
    backend = MemoryBackend()
    backend.set(USER, _legacy_bytes())
    return backend


def _assert_nulls(data: dict[str, Any]) -> None:
    assert data["processed_documents"][0]["metadata"]["extraction_score"] is None
    assert data["analysis_result"] == {"score": None, "history": [1.0, None, 2.0]}


def test_a_typed_store_saves_a_changed_legacy_session(backend: MemoryBackend) -> None:
    store = SessionStore(backend, EnhancedSessionData, codec=_codec())
    session = store.load(USER)
    assert session is not None
    session.market_research_data = {"tam": "EUR 2bn"}
    store.save(USER, session)  # raised SerializationError before the fix

    again = store.load(USER)
    assert again is not None
    assert again.market_research_data == {"tam": "EUR 2bn"}
    stored = again.to_dict()
    _assert_nulls(stored)
    # nothing else changed: the legacy session as written, None where it held NaN or infinity
    expected: dict[str, Any] = json.loads(_legacy_bytes(), parse_constant=lambda _: None)
    assert {k: stored[k] for k in expected} == expected


def test_update_of_a_legacy_session_succeeds(backend: MemoryBackend) -> None:
    store = SessionStore(backend, EnhancedSessionData, codec=_codec())

    def change(current: EnhancedSessionData | None) -> EnhancedSessionData:
        assert current is not None
        current.processing_metadata["seen"] = True
        return current

    updated = store.update(USER, change)
    assert updated is not None and updated.processing_metadata == {"seen": True}
    _assert_nulls(updated.to_dict())


def test_the_manager_changes_a_legacy_session(backend: MemoryBackend) -> None:
    manager = SessionManager(SessionStore(backend, EnhancedSessionData, codec=_codec()))
    session = manager.get_enhanced_session(USER)
    assert session is not None
    data = session.to_dict()
    data["drive_link"] = "https://drive.example/new"
    stored = manager.store_enhanced_session(USER, data)
    assert stored.extra["drive_link"] == "https://drive.example/new"
    mapping = manager.user_sessions()
    mapping[USER]["test_mode"] = True  # through the drop-in, on the stored session
    assert mapping[USER]["test_mode"] is True


def test_the_mapping_changes_a_legacy_session(backend: MemoryBackend) -> None:
    user_sessions = SessionMapping(SessionStore(backend, codec=_codec()))
    user_sessions[USER]["drive_link"] = "https://drive.example/other"  # raised before the fix
    session = user_sessions[USER]
    assert session["drive_link"] == "https://drive.example/other"
    _assert_nulls(session)


def test_a_chain_manager_over_disk_changes_a_legacy_session(tmp_path: Path) -> None:
    """The app's default layout: memory above diskcache, the legacy bytes on disk."""
    with SessionStore(chain_url(tmp_path / "s"), EnhancedSessionData, codec=_codec()) as store:
        store.backend.set(USER, _legacy_bytes())
        manager = SessionManager(store)
        mapping = manager.user_sessions()
        mapping[USER]["market_research"] = {"note": "refreshed"}
        loaded = manager.get_enhanced_session(USER)
        assert loaded is not None and loaded.extra["market_research"] == {"note": "refreshed"}


def test_each_replacement_is_reported_with_the_key_and_path(
    backend: MemoryBackend, caplog: pytest.LogCaptureFixture
) -> None:
    before = legacyjson.LEGACY_COUNTERS.as_dict()
    store = SessionStore(backend, EnhancedSessionData, codec=_codec())
    with caplog.at_level(logging.WARNING, logger="session_store.codec.legacyjson"):
        assert store.load(USER) is not None
    (record,) = [r for r in caplog.records if r.name == "session_store.codec.legacyjson"]
    message = record.getMessage()
    assert repr(USER) in message
    for path in NON_FINITE_PATHS:
        assert path in message
    assert "nan" in message and "inf" in message and "-inf" in message
    after = legacyjson.LEGACY_COUNTERS.as_dict()
    assert after["non_finite_floats"] - before["non_finite_floats"] == 3
    assert after["sessions_with_non_finite"] - before["sessions_with_non_finite"] == 1


def test_a_new_nan_written_by_the_app_is_still_refused(backend: MemoryBackend) -> None:
    store = SessionStore(backend, EnhancedSessionData, codec=_codec())
    session = store.load(USER)
    assert session is not None
    stored_before = backend.get(USER)
    session.market_research_data = {"growth": math.nan}
    with pytest.raises(SerializationError, match="NaN"):
        store.save(USER, session)
    assert backend.get(USER) == stored_before  # nothing written
    user_sessions = SessionMapping(SessionStore(backend, codec=_codec()))
    with pytest.raises(SerializationError):
        user_sessions[USER]["score"] = math.inf
    manager = SessionManager(store)
    with pytest.raises(SerializationError):
        manager.store_enhanced_session(USER, {"document_summary": {"x": math.nan}})
    assert backend.get(USER) == stored_before


def test_strict_json_is_not_relaxed() -> None:
    """Only the legacy (headerless) reader turns non-finite floats into null: an envelope
    holding NaN is not valid JSON and stays a CorruptPayloadError."""
    with pytest.raises(CorruptPayloadError):
        jsonsafe.loads(b'{"schema": "dict", "version": 1, "data": {"a": NaN}}')
