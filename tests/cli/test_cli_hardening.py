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


# -- item 12 --------------------------------------------------------------------------------------
@pytest.fixture
def odd_values(tmp_path: Path) -> str:
    url = f"diskcache://{tmp_path / 'odd'}"
    with open_backend(url) as backend:
        backend.set("raw", b"\xff\x00 raw bytes", 600)
        backend.set("future", b"\xa7SS\x09\x00{}")
        backend.set("broken", b"\xa7SS\x01\x00{not json")
    return url


@pytest.mark.parametrize("key", ["raw", "future", "broken"])
def test_inspect_shows_what_it_can_and_exits_1_when_it_cannot_decode(
    cli: Run, odd_values: str, key: str
) -> None:
    text = cli("inspect", odd_values, key)
    assert text.returncode == 1, text.stdout + text.stderr
    assert f"key:            {key}" in text.stdout and "size:" in text.stdout
    assert "tier 0:" in text.stdout and "holds it" in text.stdout
    as_json = cli("inspect", "--json", odd_values, key)
    assert as_json.returncode == 1
    facts = json.loads(as_json.stdout)
    assert facts["key"] == key and facts["size"] > 0 and facts["error"]
    assert facts["tiers"][0]["holds"] is True


def test_inspect_of_an_encrypted_payload_without_keys_exits_1(cli: Run, tmp_path: Path) -> None:
    from session_store import AesGcmStage, Codec, SessionStore

    url = f"diskcache://{tmp_path / 'enc'}"
    with SessionStore(
        url, dict, codec=Codec(encryption=AesGcmStage([AesGcmStage.generate_key()]))
    ) as s:
        s.save("k", {"a": 1})
    result = cli("inspect", url, "k")
    assert result.returncode == 1, result.stdout
    assert "aes-gcm" in result.stdout and "key id" in result.stdout


def test_stats_help_explains_instead_of_pointing_at_itself(cli: Run) -> None:
    result = cli("stats", "--help")
    assert result.returncode == 0
    assert "stats --help" not in result.stdout
    assert "zeros" in result.stdout  # why it measures: counters live in the process that counts


def test_ls_says_0_keys_on_an_empty_store(cli: Run, tmp_path: Path) -> None:
    url = f"diskcache://{tmp_path / 'empty'}"
    for args in (["ls", url], ["ls", "-l", url]):
        result = cli(*args)
        assert result.returncode == 0
        assert "0 keys" in result.stdout + result.stderr
        assert result.stdout.strip() in {"", "0 keys"}
    assert json.loads(cli("ls", "--json", url).stdout) == []


def test_stats_shows_whole_backend_names_at_80_columns(cli: Run, tmp_path: Path) -> None:
    disk = f"diskcache://{tmp_path / 'a-rather-long-directory-name' / 'sessions'}"
    url = f"memory://?max_entries=1000 | {disk}"
    result = cli("stats", url, env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    flat = "".join(result.stdout.split())  # wrapped lines joined: nothing cut out
    assert f"{tmp_path / 'a-rather-long-directory-name' / 'sessions'}?prefix=session:" in flat
    assert "..." not in result.stdout and "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


@pytest.fixture
def degraded_chain(tmp_path: Path) -> str:
    disk = f"diskcache://{tmp_path / 'disk'}"
    with open_backend(disk) as backend:
        backend.set("k", orjson.dumps({"user_id": "k", "processed_documents": []}))  # a session
    return f"memory:// | redis://127.0.0.1:1/0 | {disk}"  # nothing listens on port 1


@pytest.mark.parametrize(
    "args",
    [["ls", "{url}"], ["get", "{url}", "k"], ["inspect", "{url}", "k"], ["stats", "{url}"]],
    ids=["ls", "get", "inspect", "stats"],
)
def test_a_tier_down_in_a_chain_is_a_non_zero_exit_unless_accepted(
    cli: Run, degraded_chain: str, args: list[str], error_line: ErrorLine
) -> None:
    argv = [arg.format(url=degraded_chain) for arg in args]
    result = cli(*argv)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "degraded" in result.stderr and "--allow-degraded" in result.stderr
    assert result.stdout  # the answer from the tiers that are up is still printed
    accepted = cli("--allow-degraded", *argv)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert accepted.stdout  # the same answer (timings and load-time stamps aside)
    if argv[0] == "ls":
        assert accepted.stdout == result.stdout == "k\n"
