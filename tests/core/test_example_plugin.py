"""The example plugin distribution is found through its entry point and passes the kit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from session_store import SessionBackend, available_backends, open_backend
from session_store.testing import BackendConformance, make_state_machine
from session_store_example import SqliteBackend


def test_found_by_entry_point(tmp_path: Path) -> None:
    assert available_backends()["sqlite"] == "session_store_example.backend:SqliteBackend.from_url"
    backend = open_backend(f"sqlite://{tmp_path}/s.db?prefix=app:")
    assert isinstance(backend, SqliteBackend)
    backend.set("k", b"v")
    assert open_backend(f"sqlite://{tmp_path}/s.db?prefix=app:").get("k") == b"v"


class TestExamplePluginConformance(BackendConformance):
    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> Callable[..., SessionBackend]:
        return lambda prefix="t:": open_backend(f"sqlite://{tmp_path}/kit.db", prefix=prefix)


TestExamplePluginModel = make_state_machine(lambda: SqliteBackend(":memory:")).TestCase
