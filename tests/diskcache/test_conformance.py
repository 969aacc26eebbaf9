"""The diskcache backend passes the conformance kit, and random operation runs match a dict."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from session_store.testing import BackendConformance, make_state_machine
from session_store_diskcache import DiskcacheBackend


class TestDiskcacheConformance(BackendConformance):
    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> Callable[..., DiskcacheBackend]:
        """Every call opens another backend over the same fresh directory."""
        directory = tmp_path / "sessions"

        def open_view(prefix: str = "t:") -> DiskcacheBackend:
            return DiskcacheBackend(directory, prefix=prefix)

        return open_view


class _ThrowawayBackend(DiskcacheBackend):
    """A backend over a fresh temporary directory that it removes when closed."""

    def __init__(self) -> None:
        super().__init__(tempfile.mkdtemp(prefix="session-store-model-"), prefix="m:")

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.directory, ignore_errors=True)


TestDiskcacheModel = make_state_machine(_ThrowawayBackend).TestCase
