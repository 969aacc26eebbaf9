"""Fixtures of the data-room tests: a manager over a memory-above-diskcache chain, and the
plan's environment on a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from session_store.dataroom import SessionManager
from session_store.schema.dataroom import EnhancedSessionData
from session_store.store import SessionStore
from session_store_redis.testing import RedisServer

from .support import chain_url


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SessionStore[EnhancedSessionData]]:
    """A typed store over ``memory:// | diskcache://<tmp_path>``."""
    with SessionStore(chain_url(tmp_path / "sessions"), EnhancedSessionData) as opened:
        yield opened


@pytest.fixture
def manager(store: SessionStore[EnhancedSessionData]) -> SessionManager:
    """A manager that measures the size of every store."""
    return SessionManager(store, size_sample_every=1)


#: A database of the shared server that no other test uses (its keys are the plan's layout).
PLAN_DB = 7


@pytest.fixture
def redis_env(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[redis.Redis]:
    """REDIS_URL as the plan's app sets it (its own database of the suite's redis-server),
    the disk tier in ``tmp_path``, TTL 2 h; yields a client of that database. The plan's
    ``session:*`` keys are deleted after the test."""
    for name in ("SESSION_STORE_URL", "SESSION_STORE_KEYS", "SESSION_STORE_WRITE_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("MAX_MEMORY_SESSIONS", raising=False)
    monkeypatch.setenv("REDIS_URL", redis_server.url_for(db=PLAN_DB))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SESSION_TTL_HOURS", "2")
    client = redis.Redis.from_url(redis_server.url_for(db=PLAN_DB))
    try:
        yield client
    finally:
        for key in client.scan_iter(match="session:*"):
            client.delete(key)
        client.close()


@pytest.fixture
def plain_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The plan's environment without Redis: memory only for the plan, memory above disk (in
    ``tmp_path``) for ours."""
    for name in (
        "REDIS_URL",
        "SESSION_STORE_URL",
        "SESSION_STORE_KEYS",
        "SESSION_STORE_WRITE_FORMAT",
        "SESSION_TTL_HOURS",
        "MAX_MEMORY_SESSIONS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path
