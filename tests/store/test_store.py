"""SessionStore: the host-facing API over any backend."""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from session_store import (
    ConflictError,
    CorruptPayloadError,
    MemoryBackend,
    SerializationError,
    SessionStore,
)
from session_store.backend import VersionToken
from session_store.codec import Codec
from session_store.schema import EnhancedSessionData


def store(**options: Any) -> SessionStore[EnhancedSessionData]:
    options.setdefault("codec", Codec(encryption=None))
    return SessionStore(MemoryBackend(), EnhancedSessionData, **options)


def test_save_load_delete() -> None:
    s = store()
    assert s.load("u1") is None
    saved = s.save("u1", EnhancedSessionData("u1", document_summary="hello"))
    loaded = s.load("u1")
    assert loaded == saved
    assert s.exists("u1") and not s.exists("u2")
    assert list(s.keys()) == ["u1"]
    assert s.delete("u1") is True
    assert s.load("u1") is None


def test_save_stamps_last_accessed_without_mutating_the_callers_object() -> None:
    old = datetime(2020, 1, 1, tzinfo=UTC)
    mine = EnhancedSessionData("u", last_accessed=old)
    saved = store().save("u", mine)
    assert mine.last_accessed == old
    assert saved.last_accessed is not None and saved.last_accessed > old


def test_reads_never_write() -> None:
    backend = MemoryBackend()
    s = SessionStore(backend, EnhancedSessionData, codec=Codec(encryption=None), access_interval=60)
    stale = s.codec.encode(
        "u", EnhancedSessionData("u", last_accessed=datetime.now(UTC) - timedelta(hours=1))
    )
    backend.set("u", stale, ttl=30)
    writes = backend.counters.get("writes")
    for _ in range(3):
        assert s.load("u") is not None
    assert backend.counters.get("writes") == writes
    assert backend.get("u") == stale  # not rewritten, last_accessed as it was
    left = backend.ttl("u")
    assert left is not None and left <= 30


def test_touch_on_load_slides_the_expiry_with_the_sessions_own_ttl() -> None:
    from session_store import TieredBackend

    chain = TieredBackend([MemoryBackend(), MemoryBackend()])
    s = SessionStore(chain, EnhancedSessionData, codec=Codec(encryption=None), touch_on_load=True)
    s.ttl = 3600.0  # the store's default; the session keeps its own
    s.save("u", EnhancedSessionData("u"), ttl=30)
    stored = chain.tiers[1].get("u")
    chain.tiers[1].touch("u", 5)  # time passes: 5 s left
    assert s.load("u") is not None
    left = chain.ttl("u")
    assert left is not None and 25 < left <= 30  # touched with its own 30 s, not 3600
    assert chain.tiers[1].get("u") == stored  # the payload was not rewritten


def test_ttl_and_touch() -> None:
    s = store(ttl=100)
    s.save("u", EnhancedSessionData("u"))
    left = s.backend.ttl("u")
    assert left is not None and 99 < left <= 100
    s.save("u", EnhancedSessionData("u"), ttl=5)
    assert (s.backend.ttl("u") or 0) <= 5
    assert s.touch("u") is True  # keeps the session's own 5 s (recorded with it: ownttl)
    assert 0 < (s.backend.ttl("u") or 0) <= 5
    assert s.touch("u", 200) is True  # a TTL given is used
    assert (s.backend.ttl("u") or 0) > 199
    assert s.touch("nobody") is False


def test_bulk() -> None:
    s = store()
    s.save_many({f"u{i}": EnhancedSessionData(f"u{i}") for i in range(5)})
    found = s.load_many(["u0", "u3", "nope"])
    assert sorted(found) == ["u0", "u3"]
    assert found["u3"].user_id == "u3"


def test_a_failed_save_writes_nothing() -> None:
    s = store()
    s.save("u", EnhancedSessionData("u", document_summary="kept"))
    bad = EnhancedSessionData("u", market_research_data={"x": math.nan})
    with pytest.raises(SerializationError):
        s.save("u", bad)
    with pytest.raises(SerializationError):
        s.save_many({"v": EnhancedSessionData("v"), "u": bad})
    loaded = s.load("u")
    assert loaded is not None and loaded.document_summary == "kept"
    assert s.load("v") is None


def test_corrupt_stored_bytes_raise_and_stay() -> None:
    s = store()
    s.backend.set("u", b"\x00garbage")
    with pytest.raises(CorruptPayloadError):
        s.load("u")
    assert s.backend.get("u") == b"\x00garbage"


def test_update_is_atomic_across_threads() -> None:
    s = SessionStore(MemoryBackend(), dict, codec=Codec(encryption=None))

    def bump(current: dict[str, Any] | None) -> dict[str, Any]:
        data = dict(current or {})
        data["n"] = data.get("n", 0) + 1
        return data

    threads = [
        threading.Thread(target=lambda: [s.update("c", bump) for _ in range(50)]) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert s.load("c") == {"n": 400}


def test_update_returning_none_writes_nothing() -> None:
    s = store()
    assert s.update("u", lambda current: None) is None
    assert s.load("u") is None


def test_update_gives_up_with_conflict_error() -> None:
    class AlwaysLoses(MemoryBackend):
        def set_if(
            self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
        ) -> bool:
            self.set(key, b"\xa7SS\x01\x00" + b'{"schema":"dict","version":1,"data":{"other":1}}')
            return False

    s = SessionStore(AlwaysLoses(), dict, codec=Codec(encryption=None), update_timeout=0.2)
    calls: list[object] = []

    def mine(current: dict[str, Any] | None) -> dict[str, Any]:
        calls.append(current)
        return {"mine": 1}

    with pytest.raises(ConflictError, match="nothing written"):
        s.update("k", mine)
    assert len(calls) > 1  # retried on the fresh value
    assert s.load("k") == {"other": 1}


def test_store_from_url_owns_its_backend() -> None:
    with SessionStore("memory://?max_entries=10", dict) as s:
        s.save("k", {"a": 1})
        assert s.load("k") == {"a": 1}
    assert "memory://" in repr(s)


def test_schema_less_store_loads_whatever_was_stored() -> None:
    backend = MemoryBackend()
    typed = SessionStore(backend, EnhancedSessionData, codec=Codec(encryption=None))
    typed.save("t", EnhancedSessionData("t"))
    SessionStore(backend, dict, codec=Codec(encryption=None)).save("d", {"x": 1})
    anything: SessionStore[object] = SessionStore(backend, codec=Codec(encryption=None))
    assert isinstance(anything.load("t"), EnhancedSessionData)
    assert anything.load("d") == {"x": 1}


@attrs.define
class Unregistered:
    x: int = 0


def test_a_store_for_an_unregistered_class_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="register"):
        SessionStore(MemoryBackend(), Unregistered)


def test_a_dict_store_loads_legacy_json_as_the_plain_dict() -> None:
    backend = MemoryBackend()
    backend.set("old", b'{"whatever": [1, 2]}')
    assert SessionStore(backend, dict).load("old") == {"whatever": [1, 2]}
    typed = SessionStore(backend, EnhancedSessionData).load("old")
    assert typed is not None and typed.extra == {"whatever": [1, 2]}


def test_a_store_refuses_objects_of_another_schema() -> None:
    dict_store = SessionStore(MemoryBackend(), dict, codec=Codec(encryption=None))
    with pytest.raises(SerializationError, match="holds 'dict' sessions"):
        dict_store.save("k", EnhancedSessionData("k"))  # type: ignore[arg-type]
    with pytest.raises(SerializationError):
        dict_store.update("k", lambda current: EnhancedSessionData("k"))  # type: ignore[arg-type,return-value]
    assert dict_store.load("k") is None


def test_metrics_are_a_plain_dict_per_tier() -> None:
    with SessionStore("memory:// | memory://", dict) as s:
        s.save("k", {"a": 1})
        s.load("k")
        metrics = s.metrics()
    assert len(metrics["tiers"]) == 2
    assert metrics["tiers"][0]["counters"]["hits"] >= 1
