"""Attack (round 6, a new user following the README): ``SessionManager.from_env()`` during the
plan's rolling deploy (``SESSION_STORE_WRITE_FORMAT=plan-json``, docs/migrating-from-plan.md).

The README presents ``SessionManager.from_env()`` as the way to build the manager from the
environment and ``EnhancedSessionManager()`` as "the same with no arguments"; the deploy guide
says that with ``plan-json`` new processes write the plan's JSON, so old processes keep reading
everything, and refuse encryption keys. Found: ``from_env`` read the setting (its store was the
Redis of ``REDIS_URL`` alone, as the mode asks) but opened the store with the default codec, so
it wrote the versioned envelope, framed by the store's ``update`` (``b"\\xa7SF\\x01..."``): the
plan's ``json.loads`` failed on every session it wrote (``UnicodeDecodeError ... byte 0xa7``),
and keys in ``SESSION_STORE_KEYS`` were not refused but used, encrypting what old processes must
read. On the suite's real redis-server, with the plan's own reader (``plan_reference``).
"""

from __future__ import annotations

import pytest
import redis

from session_store import ConfigurationError
from session_store.codec import AesGcmStage
from session_store.dataroom import SessionManager

from . import plan_reference as plan


def test_from_env_writes_what_the_plan_reads_in_rolling_deploy_mode(
    redis_env: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_STORE_WRITE_FORMAT", "plan-json")
    with SessionManager.from_env() as ours:
        ours.store_enhanced_session("U1", {"processed_documents": [{"name": "deck.pdf"}]})
    raw = redis_env.get("session:U1")
    assert isinstance(raw, bytes), raw
    assert raw.startswith(b"{"), raw[:30]
    old = plan.EnhancedSessionManager()  # an old process during the deploy
    session = old.get_enhanced_session("U1")
    assert session is not None and session.processed_documents == [{"name": "deck.pdf"}]


def test_from_env_refuses_keys_in_rolling_deploy_mode(
    redis_env: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_STORE_WRITE_FORMAT", "plan-json")
    monkeypatch.setenv("SESSION_STORE_KEYS", AesGcmStage.generate_key())
    with pytest.raises(ConfigurationError, match="cannot encrypt"):
        SessionManager.from_env()
