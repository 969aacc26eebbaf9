"""Run the real ``session-store`` console script in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def script() -> str:
    found = shutil.which("session-store", path=str(Path(sys.executable).parent))
    assert found, "the session-store console script is not installed in this environment"
    return found


@pytest.fixture
def cli(script: str, tmp_path: Path) -> Run:
    """``cli("ls", url, env={...})``: the finished process, text output."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if k not in {"SESSION_STORE_URL", "REDIS_URL", "SESSION_STORE_KEYS"}
        }
        base["XDG_CACHE_HOME"] = str(tmp_path / "cache")
        base.update(env or {})
        return subprocess.run(
            [script, *args], capture_output=True, text=True, env=base, timeout=60, check=False
        )

    return run


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("session-store: error: "), lines[0]
    return lines[0]


@pytest.fixture
def error_line() -> Callable[[subprocess.CompletedProcess[str]], str]:
    """The single ``session-store: error:`` line a failure prints (asserted to be the only)."""
    return _one_error_line
