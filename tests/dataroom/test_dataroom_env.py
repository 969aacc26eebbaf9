"""``SessionManager.from_env``: the app's environment variables, and bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from session_store.dataroom import EnhancedSessionManager, SessionManager
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
    # the plan's key layout, session:{user_id}, unless the URL names its own
    assert tiers[1] == "redis://:pa%7Css@localhost:6379/0?prefix=session&separator=:"
    assert tiers[2].startswith("diskcache://")
    assert config.ttl == 1800
    assert (config.ttl_hours, config.redis_enabled) == (0.5, True)
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


def test_a_redis_url_with_its_own_layout_keeps_it(tmp_path: Path) -> None:
    for url in ("redis://localhost:6379/0?prefix=app:", "redis+sentinel://h:26379/m/0"):
        config = config_from_env({"XDG_CACHE_HOME": str(tmp_path), "REDIS_URL": url})
        assert config.url.split(" | ")[1] == url
        assert config.redis_enabled is True


def test_enhanced_session_manager_takes_no_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan's EnhancedSessionManager(): configured from the environment, its attributes
    what the plan's host code and dashboards read."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("MAX_MEMORY_SESSIONS", "7")
    for name in ("SESSION_TTL_HOURS", "REDIS_URL", "SESSION_STORE_URL", "SESSION_STORE_KEYS"):
        monkeypatch.delenv(name, raising=False)
    manager = EnhancedSessionManager()
    try:
        assert manager.session_ttl_hours == 24 and isinstance(manager.session_ttl_hours, int)
        assert manager.max_memory_sessions == 7
        assert manager.redis_enabled is False
        assert manager.store.ttl == 24 * 3600
        assert manager.session_metrics.session_stats == {
            "total_sessions_created": 0,
            "total_sessions_updated": 0,
            "total_sessions_deleted": 0,
            "sessions_with_vision_data": 0,
            "total_processing_cost": 0.0,
            "average_session_size": 0.0,
            "size_samples": 0,
        }
        manager.store_enhanced_session("u1", legacy_sessions()["U063826716"])
        assert manager.session_metrics.session_stats["total_sessions_created"] == 1
    finally:
        manager.close()
    monkeypatch.setenv("SESSION_TTL_HOURS", "1.5")
    monkeypatch.setenv("SESSION_STORE_URL", "memory:// | redis://127.0.0.1:1/0")
    with EnhancedSessionManager() as other:
        assert other.session_ttl_hours == 1.5
        assert other.redis_enabled is True  # configured; no ping at start-up


def test_plan_json_writes_refuse_encryption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("SESSION_STORE_WRITE_FORMAT", "plan-json")
    monkeypatch.setenv("SESSION_STORE_KEYS", "Z29sZGVuLXRlc3Qta2V5LW5vdC1hLXNlY3JldC0zMiE=")
    with pytest.raises(ConfigurationError, match="cannot decrypt"):
        EnhancedSessionManager()
    monkeypatch.setenv("SESSION_STORE_WRITE_FORMAT", "pickle")
    with pytest.raises(ConfigurationError, match="SESSION_STORE_WRITE_FORMAT"):
        EnhancedSessionManager()


def test_plan_json_is_one_redis_alone(tmp_path: Path) -> None:
    """A chain stamps the values it stores, which the plan's json.loads cannot read: during a
    rolling deploy the store is the plan's Redis alone."""
    base = {"XDG_CACHE_HOME": str(tmp_path), "SESSION_STORE_WRITE_FORMAT": "plan-json"}
    config = config_from_env({**base, "REDIS_URL": "redis://127.0.0.1:6379/2"})
    assert config.url == "redis://127.0.0.1:6379/2?prefix=session&separator=:"
    assert (config.redis_enabled, config.write_format) == (True, "plan-json")
    with pytest.raises(ConfigurationError, match="set REDIS_URL"):
        config_from_env(base)
    chain = "memory:// | redis://127.0.0.1:6379/2?prefix=session&separator=:"
    with pytest.raises(ConfigurationError, match="one Redis URL"):
        config_from_env({**base, "SESSION_STORE_URL": chain})
    single = "redis://127.0.0.1:6379/2?prefix=session&separator=:"
    assert config_from_env({**base, "SESSION_STORE_URL": single}).url == single
