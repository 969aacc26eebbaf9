"""The test fixtures a third-party author gets by installing session-store-redis."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from session_store import open_backend
from session_store_redis.testing import RedisServer, RedisServerNotFoundError, find_redis_server
from session_store_redis.testing.cluster import CLI_ENV
from session_store_redis.testing.server import BINARY_ENV

pytest_plugins = ["pytester"]


def test_fixtures_come_from_pytest_plugins_in_the_root_conftest(
    request: pytest.FixtureRequest, redis_server: RedisServer, redis_url: str
) -> None:
    plugin = request.config.pluginmanager.get_plugin("session_store_redis.testing.plugin")
    assert plugin is not None and plugin.__name__ == "session_store_redis.testing.plugin"
    assert request.config.pluginmanager.get_plugin("session_store_redis") is None  # no pytest11
    assert redis_server.running and redis_url.startswith(redis_server.url)
    with open_backend(redis_url) as backend:
        backend.set("k", b"v")
        assert backend.get("k") == b"v"


def test_delete_prefix_deletes_only_that_literal_prefix(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    client = redis_server.client()
    try:
        mine = [f"{redis_namespace}a*[x]", f"{redis_namespace}\n", f"{redis_namespace}"]
        decoys = [f"{redis_namespace[:-1]}X", f"{redis_namespace[:-1]}*"]
        for key in [*mine, *decoys]:
            client.set(key, b"v")
        assert redis_server.delete_prefix(redis_namespace) == len(mine)
        assert [client.exists(key) for key in decoys] == [1, 1]
        client.delete(*decoys)
    finally:
        client.close()
    with pytest.raises(ValueError, match="non-empty"):
        redis_server.delete_prefix("")


def test_a_missing_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(BINARY_ENV, str(tmp_path / "no-such-redis-server"))
    with pytest.raises(RedisServerNotFoundError, match="not an executable"):
        find_redis_server()
    monkeypatch.delenv(BINARY_ENV)
    assert os.access(find_redis_server(), os.X_OK)


@pytest.mark.parametrize(
    ("variable", "fixture"), [(BINARY_ENV, "redis_url"), (CLI_ENV, "redis_cluster_url")]
)
def test_without_the_binaries_fixtures_error_instead_of_skipping(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, variable: str, fixture: str
) -> None:
    """No redis-server (or, for a cluster, no redis-cli): a test needing one errors."""
    monkeypatch.setenv(variable, "/nonexistent/binary")
    pytester.makeconftest('pytest_plugins = ["session_store_redis.testing.plugin"]')  # opt-in
    pytester.makepyfile(
        f"""
        def test_needs_it({fixture}):
            assert {fixture}
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*RedisServerNotFoundError*"])


def test_installing_the_plugin_adds_no_fixtures_to_a_host_apps_tests(
    pytester: pytest.Pytester,
) -> None:
    """The fixtures are opt-in (``pytest_plugins``), as dogpile and keyring do; a host app
    with session-store-redis installed sees none of them unless it asks."""
    host = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--fixtures")
    assert host.ret == 0
    listed = host.stdout.str()
    assert "tmp_path" in listed  # the listing works ...
    assert not any(name in listed for name in ("redis_server", "redis_url", "redis_cluster"))
    opted_in = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "session_store_redis.testing.plugin", "--fixtures"
    )
    opted_in.stdout.fnmatch_lines(["*redis_url*"])


def test_the_runtime_package_never_imports_the_test_harness() -> None:
    import subprocess
    import sys

    code = (
        "import sys, session_store, session_store_redis\n"
        "from session_store import open_backend\n"
        "open_backend('redis://127.0.0.1:1/0').close()\n"
        "bad = sorted(m for m in sys.modules if m.startswith('session_store_redis.testing')\n"
        "             or m in ('pytest', '_pytest'))\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_server_restart_kill_and_repr(redis_server_factory: Callable[..., RedisServer]) -> None:
    server = redis_server_factory(password="hidden-pw")
    port, first_pid = server.port, server.pid
    assert "hidden-pw" not in repr(server) and f"pid={first_pid}" in repr(server)
    server.kill()
    assert not server.running and "stopped" in repr(server)
    server.restart()
    assert server.running and server.port == port and server.pid != first_pid
    server.stop()
    server.stop()
    assert not server.running
