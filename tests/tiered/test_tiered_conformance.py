"""A two-tier chain, memory above diskcache, passes the conformance kit and the model test."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from session_store import SessionBackend, TieredBackend, open_backend
from session_store.stamps import session_bytes
from session_store.testing import BackendConformance, make_state_machine


class TestMemoryOverDiskcache(BackendConformance):
    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> Callable[..., SessionBackend]:
        def factory(prefix: str = "t:") -> SessionBackend:
            chain = open_backend(
                f"memory://?max_entries=50 | diskcache://{tmp_path}?prefix={prefix}"
            )
            assert isinstance(chain, TieredBackend)
            return chain

        return factory


def _fresh_chain() -> SessionBackend:
    directory = tempfile.mkdtemp(prefix="tiered-model-")
    chain = open_backend(f"memory://?max_entries=3 | diskcache://{directory}")
    original_close = chain.close

    def close() -> None:
        original_close()
        shutil.rmtree(directory, ignore_errors=True)

    chain.close = close  # type: ignore[method-assign]
    return chain


# max_entries=3 keeps the memory tier evicting, so reads keep falling through and promoting.
TestMemoryOverDiskcacheModel = make_state_machine(_fresh_chain).TestCase


def test_a_fresh_disk_backend_sees_what_the_chain_wrote(tmp_path: Path) -> None:
    with open_backend(f"memory:// | diskcache://{tmp_path}") as chain:
        chain.set_many({f"k{i}": bytes([i]) * 100 for i in range(50)}, ttl=60)
    with open_backend(f"diskcache://{tmp_path}") as disk:
        found = disk.get_many([f"k{i}" for i in range(50)])
        # each copy carries the chain's version frame; a single-tier reader reads through it
        assert {key: session_bytes(data) for key, data in found.items()} == {
            f"k{i}": bytes([i]) * 100 for i in range(50)
        }
