"""The plan's Redis layout and the rolling-deploy writer, piece by piece on a real redis-server:
``?separator=:`` keys, and :class:`PlanJsonCodec`."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import redis

from session_store import SerializationError, SessionStore, open_backend
from session_store.codec import AesGcmStage, Codec
from session_store.codec.legacy import PlanJsonCodec
from session_store.dataroom import DocumentExtractionResult, EnhancedSessionData, SessionManager
from session_store.errors import ConfigurationError
from session_store_redis.testing import RedisServer

from .conftest import PLAN_DB


def test_a_separator_in_the_url_gives_the_plan_keys(
    redis_server: RedisServer, redis_env: redis.Redis
) -> None:
    url = redis_server.url_for(db=PLAN_DB, prefix="session", separator=":")
    with open_backend(url) as backend:
        backend.set("U1:x", b"{}", 60)
        assert redis_env.get("session:U1:x") == b"{}"
        assert sorted(backend.scan()) == ["U1:x"]
        assert "separator=:" in backend.describe()
    with pytest.raises(ConfigurationError):
        open_backend(redis_server.url_for(db=PLAN_DB, prefix="session:", separator=":"))


def test_plan_json_codec_writes_the_plans_to_dict() -> None:
    codec = PlanJsonCodec(encryption=None)
    session = EnhancedSessionData(
        "U1",
        extraction_results={"d": asdict(DocumentExtractionResult("d", "d.pdf"))},
        extra={"drive_link": "https://x"},
    )
    raw = codec.encode("U1", session)
    assert json.loads(raw) == json.loads(json.dumps(session.to_dict()))
    assert json.loads(raw)["created_at"] == session.to_dict()["created_at"]  # naive ISO
    back = Codec(encryption=None).decode("U1", raw).obj
    assert back == session  # ours reads it back exactly (version 0, migrated)
    # a plain dict session is written as the data-room session it reads as
    as_dict = json.loads(codec.encode("U2", {"processed_documents": [1]}))
    assert as_dict["user_id"] == "U2" and as_dict["processed_documents"] == [1]
    assert as_dict["document_summary"] == {} and "created_at" in as_dict


def test_plan_json_codec_is_strict_json() -> None:
    codec = PlanJsonCodec(encryption=None)
    with pytest.raises(SerializationError):
        codec.encode("U1", EnhancedSessionData("U1", processing_metadata={"x": {1, 2}}))


def test_plan_json_codec_refuses_encryption() -> None:
    key = AesGcmStage.generate_key()
    with pytest.raises(ConfigurationError, match="cannot decrypt"):
        PlanJsonCodec(encryption=AesGcmStage([key]))


def test_a_manager_over_a_plan_json_store_keeps_created_at_and_counts(
    redis_server: RedisServer, redis_env: redis.Redis
) -> None:
    url = redis_server.url_for(db=PLAN_DB, prefix="session", separator=":")
    store = SessionStore(url, EnhancedSessionData, codec=PlanJsonCodec(encryption=None), ttl=60)
    with store:
        manager = SessionManager(store)
        first = manager.store_enhanced_session("U1", {"processed_documents": []})
        second = manager.store_enhanced_session("U1", {"processed_documents": [1]})
        assert second.created_at == first.created_at
        raw = redis_env.get("session:U1")
        assert raw is not None and json.loads(raw)["processed_documents"] == [1]
        stats = manager.session_metrics.session_stats
        assert (stats["total_sessions_created"], stats["total_sessions_updated"]) == (1, 1)
