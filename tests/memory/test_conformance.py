"""The memory backend passes the conformance kit."""

from collections.abc import Callable

import pytest

from session_store import MemoryBackend
from session_store.testing import BackendConformance, make_state_machine


class TestMemoryConformance(BackendConformance):
    shares_storage = False

    @pytest.fixture
    def backend_factory(self) -> Callable[..., MemoryBackend]:
        return lambda prefix="t:": MemoryBackend(max_entries=100_000)


TestMemoryModel = make_state_machine(lambda: MemoryBackend(max_entries=1000)).TestCase
