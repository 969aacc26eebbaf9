"""The console script, run for real in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def _cli() -> list[str]:
    script = shutil.which("session-store", path=str(Path(sys.executable).parent))
    assert script, "the session-store console script is not installed in this environment"
    return [script]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"SESSION_STORE_URL", "REDIS_URL"}}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env.update(extra)
    return env


def test_demo_runs_on_the_embedded_default(tmp_path: Path) -> None:
    result = subprocess.run(
        [*_cli(), "demo"], capture_output=True, text=True, env=_env(tmp_path), timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "memory://" in result.stdout and "diskcache://" in result.stdout
    assert "U071780854" in result.stdout
    assert "read back whole" in result.stdout
    assert (tmp_path / "cache" / "session-store" / "demo").is_dir()


def test_demo_twice_reuses_the_disk_tier(tmp_path: Path) -> None:
    for _ in range(2):
        result = subprocess.run(
            [*_cli(), "demo"], capture_output=True, text=True, env=_env(tmp_path), timeout=120
        )
        assert result.returncode == 0, result.stderr


def test_bad_url_is_one_line_and_masks_the_password(tmp_path: Path) -> None:
    result = subprocess.run(
        [*_cli(), "demo", "--url", "redis://:topsecret@127.0.0.1:1/0?bogus=1 | nosuch://x"],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("session-store: error:")
    assert "topsecret" not in result.stdout + result.stderr


def test_demo_puts_redis_in_the_middle_when_redis_url_is_set(
    tmp_path: Path, redis_url: str
) -> None:
    result = subprocess.run(
        [*_cli(), "demo"],
        capture_output=True,
        text=True,
        env=_env(tmp_path, REDIS_URL=redis_url),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    tiers = [line for line in result.stdout.splitlines() if line.startswith("tier ")]
    assert [t.split()[2].split(":")[0] for t in tiers] == ["memory", "redis", "diskcache"]


def test_demo_docs_column_counts_each_sessions_documents(tmp_path: Path) -> None:
    """The docs column is the number of documents each sample session holds (it was always 0:
    it counted extraction results, which the legacy samples do not have)."""
    from session_store.samples import legacy_sessions

    result = subprocess.run(
        [*_cli(), "demo"], capture_output=True, text=True, env=_env(tmp_path), timeout=120
    )
    assert result.returncode == 0, result.stderr
    shown = {
        line.split()[0].removeprefix("demo:"): int(line.split()[1])
        for line in result.stdout.splitlines()
        if line.startswith("demo:")
    }
    expected = {uid: len(s["processed_documents"]) for uid, s in legacy_sessions().items()}
    assert shown == expected
    assert any(count > 1 for count in expected.values())  # the samples do hold documents
