"""What a new user met on a first try from a clean clone (README, CONTRIBUTING, the example
plugin): each test failed on main before its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from session_store import ConfigurationError, MemoryBackend, TieredBackend, open_backend


def test_chain_options_after_the_first_tier_say_where_they_belong() -> None:
    """``tiered://?...`` placed after a tier was reported as a missing plugin ("no backend is
    installed for scheme 'tiered'"), sending the user to pip; the error now says to put the
    options first."""
    with pytest.raises(ConfigurationError) as raised:
        open_backend("memory:// | tiered://?max_staleness=1 | memory://")
    message = str(raised.value)
    assert "no backend is installed" not in message
    assert "first" in message and "tiered://?" in message


def test_memory_delete_counts_only_keys_it_removed() -> None:
    """``deletes`` counts keys deleted (docs/metrics.md, and what ``BackendBase`` counts); the
    memory backend counted every call, an absent key included."""
    backend = MemoryBackend()
    backend.set("here", b"v")
    assert backend.delete("absent") is False
    assert backend.delete("here") is True
    backend.set("a", b"v")
    assert backend.delete_many(["a", "b", "c"]) == 1
    assert backend.counters.as_dict()["deletes"] == 2


def test_a_chain_read_that_misses_deletes_nothing_in_the_counters(tmp_path: Path) -> None:
    """A miss through ``memory:// | diskcache://`` showed ``deletes=1`` on the memory tier in
    ``tier_states()`` and ``session-store stats`` (the chain drops the key from its near cache,
    which held nothing)."""
    with open_backend(f"memory:// | diskcache://{tmp_path}") as chain:
        assert isinstance(chain, TieredBackend)
        assert chain.get("nobody") is None
        assert [tier["counters"]["deletes"] for tier in chain.tier_states()] == [0, 0]


def test_sqlite_example_relative_path_says_how_to_write_it() -> None:
    """``sqlite://sessions.db`` (two slashes, as most users first write it) said only "needs a
    file path"; it now shows the three-slash form, as diskcache's error does."""
    with pytest.raises(ConfigurationError) as raised:
        open_backend("sqlite://sessions.db")
    assert "sqlite:///" in str(raised.value)
