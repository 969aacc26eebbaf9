"""The registry: entry-point discovery, URL and chain opening, typed errors before any I/O."""

from __future__ import annotations

import logging
import threading

import pytest

from session_store import (
    ConfigurationError,
    MemoryBackend,
    TieredBackend,
    available_backends,
    open_backend,
    registry,
)
from session_store.entrypoints import BrokenPlugin, EntryPointGroup
from session_store.registry import split_chain
from session_store.schema import get_schema, require_schema
from session_store.schema import registry as schema_registry


def test_builtin_memory_is_found_through_its_entry_point() -> None:
    assert available_backends()["memory"] == "session_store.memory:MemoryBackend.from_url"
    with pytest.raises(TypeError):
        available_backends()["x"] = "y"  # type: ignore[index]


def test_unknown_scheme_lists_installed_schemes() -> None:
    with pytest.raises(ConfigurationError) as info:
        open_backend("nosuch://x")
    message = str(info.value)
    assert "'nosuch'" in message and "memory" in message


def test_known_but_missing_plugin_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "KNOWN_PLUGINS", {"fancy": "session-store-fancy"})
    with pytest.raises(ConfigurationError, match="install the 'session-store-fancy'"):
        open_backend("fancy://h/0")


def test_chain_string_builds_a_tiered_backend() -> None:
    backend = open_backend("memory://?max_entries=2 | memory://?max_entries=50")
    assert isinstance(backend, TieredBackend)
    assert [t.max_entries for t in backend.tiers if isinstance(t, MemoryBackend)] == [2, 50]


def test_chain_with_a_bad_tier_opens_nothing() -> None:
    with pytest.raises(ConfigurationError, match="max_entries"):
        open_backend("memory:// | memory://?max_entries=banana")


@pytest.mark.parametrize("chain", ["memory:// | ", "| memory://", "memory:// || memory://"])
def test_empty_tiers_are_refused(chain: str) -> None:
    with pytest.raises(ConfigurationError, match="empty tier"):
        split_chain(chain)


def test_a_broken_plugin_is_logged_and_reported_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The example distribution registers a deliberately broken scheme, `broken`.
    if "broken" not in available_backends():
        pytest.fail(
            "the example plugin distribution (examples/session_store_example) is not installed"
        )
    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(ConfigurationError, match="failed to import"),
    ):
        open_backend("broken://")
    assert "failed to import" in caplog.text
    assert isinstance(open_backend("memory://"), MemoryBackend)  # the host keeps working


def test_a_typo_in_a_scheme_gets_a_suggestion() -> None:
    with pytest.raises(ConfigurationError, match="did you mean 'memory'"):
        open_backend("memroy://")


def test_an_empty_url_says_so() -> None:
    with pytest.raises(ConfigurationError, match="empty backend URL"):
        open_backend("   ")


def test_the_shared_loader_imports_each_plugin_once_across_threads() -> None:
    group = EntryPointGroup("session_store.backends", "backend", fold_case=True)
    barrier = threading.Barrier(8)
    results: list[object] = []

    def load() -> None:
        barrier.wait()
        results.append(group.load("MEMORY"))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and all(r is results[0] for r in results)
    assert results[0] == MemoryBackend.from_url
    assert group.load("nosuch") is None


def test_the_shared_loader_reports_a_broken_plugin_each_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    group = EntryPointGroup("session_store.backends", "backend")
    with caplog.at_level(logging.WARNING):
        first, second = group.load("broken"), group.load("broken")
    assert isinstance(first, BrokenPlugin) and isinstance(first.error, ImportError)
    assert isinstance(second, BrokenPlugin)
    assert caplog.text.count("failed to import") == 2


def test_missing_schema_names_get_none_or_raise() -> None:
    assert get_schema("no-such-schema") is None  # the lookup, as before
    with pytest.raises(ConfigurationError, match="no schema named 'no-such-schema'"):
        require_schema("no-such-schema")
    assert require_schema("dict") is get_schema("dict")


class _SchemaPluginThatLooksUpASchema:
    """An entry-point group whose one plugin calls get_schema while it is imported."""

    def discover(self) -> dict[str, None]:
        return {"looker": None}

    def load(self, name: str) -> object:
        return schema_registry.get_schema("dict")  # registered built-in: no reload needed


def test_a_schema_plugin_looking_up_a_schema_while_imported_does_not_deadlock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(schema_registry, "_plugins", _SchemaPluginThatLooksUpASchema())
    monkeypatch.setattr(schema_registry, "_loaded_entry_points", False)
    errors: list[BaseException] = []

    def load_all() -> None:
        try:
            schema_registry.available_schemas()
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=load_all, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "loading the schema entry points deadlocked"
    assert errors == [] and schema_registry._loaded_entry_points
