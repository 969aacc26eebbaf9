"""Issue 13 through the real console script: migrate rewrites only sessions (item 7), copy and
migrate keep "no expiry" (item 7), and the command-line fixes of item 12."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from session_store import open_backend
from session_store.samples import legacy_sessions

Run = Callable[..., subprocess.CompletedProcess[str]]
ErrorLine = Callable[[subprocess.CompletedProcess[str]], str]
SAMPLES = legacy_sessions()
RAW_JSON = b'{"documents": 3}'  # the README's raw value: not a session
RAW_BYTES = b"\xff\x00 a counter, a blob"


@pytest.fixture
def mixed_disk(tmp_path: Path) -> str:
    """Legacy sessions, a raw JSON value and raw bytes some other code stored, in one place."""
    url = f"diskcache://{tmp_path / 'mixed'}"
    with open_backend(url) as backend:
        for user_id, data in SAMPLES.items():
            backend.set(user_id, orjson.dumps(data), 7200)
        backend.set("raw-json", RAW_JSON)
        backend.set("raw-bytes", RAW_BYTES)
    return url


def test_migrate_leaves_values_it_cannot_prove_are_sessions(cli: Run, mixed_disk: str) -> None:
    result = cli("migrate", "--json", "--no-checkpoint", mixed_disk)
    assert result.returncode == 0, result.stdout + result.stderr  # raw bytes are no failure
    report = json.loads(result.stdout)
    assert (report["rewritten"], report["failed"], report["not_sessions"]) == (
        0,
        0,
        len(SAMPLES) + 2,
    )
    with open_backend(mixed_disk) as backend:
        assert backend.get("raw-json") == RAW_JSON
        assert backend.get("raw-bytes") == RAW_BYTES
        assert backend.get("U071780854") == orjson.dumps(SAMPLES["U071780854"])


def test_migrate_with_legacy_rewrites_legacy_json_only(cli: Run, mixed_disk: str) -> None:
    result = cli("migrate", "--json", "--no-checkpoint", "--legacy", "dict", mixed_disk)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    # the raw JSON value is legacy JSON too: named as such, it is rewritten; raw bytes never
    assert (report["rewritten"], report["failed"], report["not_sessions"]) == (
        len(SAMPLES) + 1,
        0,
        1,
    )
    with open_backend(mixed_disk) as backend:
        assert backend.get("raw-bytes") == RAW_BYTES
    text = cli("migrate", "--no-checkpoint", mixed_disk)
    assert "not sessions (left alone) 1" in text.stdout


def test_migrate_refuses_an_unknown_legacy_schema(
    cli: Run, mixed_disk: str, error_line: ErrorLine
) -> None:
    result = cli("migrate", "--no-checkpoint", "--legacy", "nope", mixed_disk)
    assert result.returncode == 1 and "nope" in error_line(result)


def test_copy_and_migrate_keep_no_expiry_over_a_destination_default(
    cli: Run, tmp_path: Path
) -> None:
    src = f"diskcache://{tmp_path / 'src'}"
    with open_backend(src) as backend:
        backend.set("forever", orjson.dumps({"user_id": "forever"}))
        backend.set("hour", orjson.dumps({"user_id": "hour"}), 3600)
    dst = f"diskcache://{tmp_path / 'dst'}?default_ttl=60"
    result = cli("copy", "--json", src, dst)
    assert result.returncode == 0, result.stderr
    with open_backend(dst) as backend:
        assert backend.ttl("forever") == float("inf")
        assert 3500 < (backend.ttl("hour") or 0) <= 3600
    migrated = cli("migrate", "--json", "--no-checkpoint", "--legacy", "dict", dst)
    assert json.loads(migrated.stdout)["rewritten"] == 2, migrated.stdout + migrated.stderr
    with open_backend(dst) as backend:
        assert backend.ttl("forever") == float("inf")
        assert 3500 < (backend.ttl("hour") or 0) <= 3600
