"""Fixtures of the data-room tests: a manager over a memory-above-diskcache chain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from session_store.dataroom import SessionManager
from session_store.schema.dataroom import EnhancedSessionData
from session_store.store import SessionStore

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
