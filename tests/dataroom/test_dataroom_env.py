"""``SessionManager.from_env``: the app's environment variables, and bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from session_store.dataroom import SessionManager
from session_store.dataroom.manager import config_from_env
from session_store.errors import ConfigurationError
from session_store.samples import legacy_sessions


def test_embedded_default_under_xdg_cache_home(tmp_path: Path) -> None:
    environ = {
        "XDG_CACHE_HOME": str(tmp_path),
        "MAX_MEMORY_SESSIONS": "7",
        "SESSION_TTL_HOURS": "2",
    }
    directory = tmp_path / "session-store" / "sessions"
    with SessionManager.from_env(environ) as manager:
        assert manager.store.ttl == 2 * 3600
        described = manager.store.backend.describe()
        assert described.startswith("memory://?max_entries=7&")
        assert f"diskcache://{directory.as_posix()}?" in described
        session = legacy_sessions()["U063826716"]
        manager.store_enhanced_session("u1", session)
        ttl = manager.store.backend.ttl("u1")
        assert ttl is not None
        assert 2 * 3600 - 60 < ttl <= 2 * 3600
    assert directory.is_dir()
    with SessionManager.from_env(environ) as reopened:  # the disk tier kept it
        loaded = reopened.get_enhanced_session("u1")
        assert loaded is not None
        assert loaded.extra["drive_link"] == session["drive_link"]


def test_defaults(tmp_path: Path) -> None:
    config = config_from_env({"HOME": str(tmp_path), "XDG_CACHE_HOME": "relative/ignored"})
    directory = (tmp_path / ".cache" / "session-store" / "sessions").as_posix()
    assert config.url == f"memory://?max_entries=1000 | diskcache://{directory}"
    assert config.ttl == 24 * 3600


def test_redis_url_joins_the_chain_between_memory_and_disk(tmp_path: Path) -> None:
    config = config_from_env(
        {
            "XDG_CACHE_HOME": str(tmp_path),
            "REDIS_URL": "redis://:pa|ss@localhost:6379/0",
            "SESSION_TTL_HOURS": "0.5",
        }
    )
    tiers = config.url.split(" | ")
    assert tiers[0] == "memory://?max_entries=1000"
    assert tiers[1] == "redis://:pa%7Css@localhost:6379/0"
    assert tiers[2].startswith("diskcache://")
    assert config.ttl == 1800
    shown = repr(config)
    assert "pa|ss" not in shown
    assert "pa%7Css" not in shown
    assert "redis://:***@localhost:6379/0" in shown


def test_session_store_url_wins(tmp_path: Path) -> None:
    environ = {
        "SESSION_STORE_URL": "memory://?max_entries=5",
        "REDIS_URL": "redis://localhost:6379/0",
        "XDG_CACHE_HOME": str(tmp_path),
    }
    assert config_from_env(environ).url == "memory://?max_entries=5"
    with SessionManager.from_env(environ) as manager:
        assert manager.store.backend.describe().startswith("memory://?max_entries=5&")
    assert not (tmp_path / "session-store").exists()


def test_empty_values_count_as_unset(tmp_path: Path) -> None:
    config = config_from_env(
        {"XDG_CACHE_HOME": str(tmp_path), "SESSION_STORE_URL": " ", "MAX_MEMORY_SESSIONS": ""}
    )
    assert config.url.startswith("memory://?max_entries=1000 | diskcache://")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_MEMORY_SESSIONS", "0"),
        ("MAX_MEMORY_SESSIONS", "-3"),
        ("MAX_MEMORY_SESSIONS", "1.5"),
        ("MAX_MEMORY_SESSIONS", "many"),
        ("SESSION_TTL_HOURS", "0"),
        ("SESSION_TTL_HOURS", "-1"),
        ("SESSION_TTL_HOURS", "nan"),
        ("SESSION_TTL_HOURS", "inf"),
        ("SESSION_TTL_HOURS", "1e308"),
        ("SESSION_TTL_HOURS", "a day"),
        ("SESSION_STORE_URL", "not a url"),
        ("SESSION_STORE_URL", "memory:// | | memory://"),
        ("REDIS_URL", "redis://localhost:99999"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, name: str, value: str) -> None:
    environ = {"XDG_CACHE_HOME": str(tmp_path), name: value}
    with pytest.raises(ConfigurationError, match=name):
        SessionManager.from_env(environ)
    assert not (tmp_path / "session-store").exists()  # nothing opened


def test_unknown_backend_is_the_registry_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no backend is installed"):
        SessionManager.from_env({"SESSION_STORE_URL": "nosuchscheme://x"})


def test_cache_dir_with_a_space(tmp_path: Path) -> None:
    cache = tmp_path / "my cache"
    config = config_from_env({"XDG_CACHE_HOME": str(cache)})
    assert "my%20cache" in config.url
    with SessionManager.from_env({"XDG_CACHE_HOME": str(cache)}) as manager:
        manager.store_enhanced_session("u1", {"processed_documents": []})
    assert (cache / "session-store" / "sessions").is_dir()
