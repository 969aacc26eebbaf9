"""The hint for a backend whose plugin is not installed fits how session-store was installed:
from a checkout of the repository (where the plugins live in ``backends/`` and are installed by
path), or from the package index (where they are extras of ``session-store``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import session_store
from session_store import ConfigurationError, open_backend, registry
from session_store.pluginhint import plugin_install_hint

CHECKOUT = Path(session_store.__file__).resolve().parent.parent


def _fake_checkout(root: Path, name: str, directory: str) -> Path:
    (root / "session_store").mkdir(parents=True)
    plugin = root / "backends" / directory
    plugin.mkdir(parents=True)
    (plugin / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "0"\n')
    return root


def test_from_a_checkout_the_hint_installs_the_plugin_by_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _fake_checkout(tmp_path / "clone", "session-store-fancy", "fancy")
    monkeypatch.chdir(root)
    hint = plugin_install_hint("session-store-fancy", checkout=root)
    assert "pip install -e ./backends/fancy" in hint
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # outside the checkout: the path is absolute
    hint = plugin_install_hint("session-store-fancy", checkout=root)
    assert f"pip install -e {root / 'backends' / 'fancy'}" in hint


def test_from_the_package_index_the_hint_names_the_extra_or_the_distribution(
    tmp_path: Path,
) -> None:
    # no checkout (an installed wheel): the extra session-store declares, else the distribution
    redis = plugin_install_hint("session-store-redis", checkout=None)
    assert 'pip install "session-store[redis]"' in redis
    assert "pip install session-store-fancy" in plugin_install_hint(
        "session-store-fancy", checkout=None
    )
    # a checkout without that plugin's directory is not a checkout of it
    root = _fake_checkout(tmp_path / "other", "session-store-other", "other")
    hint = plugin_install_hint("session-store-fancy", checkout=root)
    assert "-e" not in hint and "pip install session-store-fancy" in hint


def test_the_hint_runs_the_pip_of_the_python_that_runs_session_store(tmp_path: Path) -> None:
    root = _fake_checkout(tmp_path / "clone", "session-store-fancy", "fancy")
    hint = plugin_install_hint("session-store-fancy", checkout=root)
    if sys.prefix != sys.base_prefix:  # a virtual environment: its own pip, whatever PATH says
        assert f"{os.path.relpath(sys.executable)} -m pip install" in hint or (
            f"{sys.executable} -m pip install" in hint
        )


def test_open_backend_of_a_missing_plugin_gives_the_checkout_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """This test suite runs from a checkout: the error for a scheme whose plugin is missing
    says to install its directory, not a distribution name pip would fetch from an index."""
    assert (CHECKOUT / "backends" / "redis" / "pyproject.toml").is_file(), (
        "the suite runs from a checkout (requirements-dev.txt installs it editable)"
    )
    monkeypatch.setattr(registry, "KNOWN_PLUGINS", {"fancy": "session-store-redis"})
    monkeypatch.chdir(CHECKOUT)
    with pytest.raises(ConfigurationError) as info:
        open_backend("fancy://h/0")
    message = str(info.value)
    assert "install the 'session-store-redis' distribution" in message
    assert "pip install -e ./backends/redis" in message
