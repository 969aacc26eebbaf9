"""A new user's first mistakes with the command line get an error that says what is missing.

Before: ``session-store get redis://127.0.0.1:6379/0`` (the key forgotten) took the URL for the
key and said "no URL given and SESSION_STORE_URL is not set", though a URL was given; ``copy``
with one URL said the same of its source; ``ls memory://`` answered ``0 keys`` with no word that
the command's own memory is empty at start, whatever an app holds in its memory tier.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., subprocess.CompletedProcess[str]]
ErrorLine = Callable[[subprocess.CompletedProcess[str]], str]


@pytest.mark.parametrize("command", ["get", "inspect", "delete"])
def test_a_url_without_its_key_is_named_as_such(
    cli: Run, error_line: ErrorLine, tmp_path: Path, command: str
) -> None:
    url = f"diskcache://{tmp_path / 'disk'}?password=hunter2"
    result = cli(command, url)
    assert result.returncode == 2, result.stdout + result.stderr
    line = error_line(result)
    assert "KEY" in line and "is a URL" in line and "not set" not in line
    assert "hunter2" not in line
    assert not (tmp_path / "disk").exists()  # nothing opened
    as_key = cli(command, url, env={"SESSION_STORE_URL": f"diskcache://{tmp_path / 'env'}"})
    assert as_key.returncode in (1, 3)  # with the variable set, one argument is the key


def test_copy_with_one_url_says_the_source_is_missing(
    cli: Run, error_line: ErrorLine, tmp_path: Path
) -> None:
    result = cli("copy", f"diskcache://{tmp_path / 'dst'}")
    assert result.returncode == 2
    line = error_line(result)
    assert "SRC_URL" in line and "DST_URL" in line


@pytest.mark.parametrize("args", [["ls", "memory://"], ["get", "memory://", "k"]])
def test_reading_memory_says_it_is_the_commands_own(cli: Run, args: list[str]) -> None:
    result = cli(*args)
    assert "this command's own" in result.stderr, result.stderr
    assert "redis://" in result.stderr  # what to look at instead
    chain = cli(args[0], "memory:// | memory://", *args[2:])
    assert "this command's own" not in chain.stderr  # a chain's near tier is no surprise


def test_demo_with_redis_url_naming_a_redis_that_is_down_says_how_to_run_without(
    cli: Run, error_line: ErrorLine, tmp_path: Path
) -> None:
    """The quick start's demo takes Redis into its chain whenever REDIS_URL is set (a leftover
    export, a server not started yet): the error names the variable and the way out."""
    result = cli(
        "demo",
        "--dir",
        str(tmp_path / "demo"),
        env={"REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"},  # nothing listens on port 1
    )
    assert result.returncode == 1, result.stdout + result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("session-store: error: ")
    assert "REDIS_URL" in line and "env -u REDIS_URL session-store demo" in line
    assert "hunter2" not in result.stderr


def test_migrate_of_plaintext_with_keys_set_names_the_flag_that_encrypts_it(
    cli: Run, tmp_path: Path
) -> None:
    """A first ``migrate`` after setting SESSION_STORE_KEYS on a store that was not encrypted
    ended with "a value the codec never stores, such as NaN, or a payload it cannot read:
    running again will not help", and each line said "session-store migrate encrypts it" (the
    very command that failed): the way to switch a store to encryption went unnamed."""
    from session_store import AesGcmStage, SessionStore

    url = f"diskcache://{tmp_path / 'plain'}"
    with SessionStore(url, dict) as store:
        store.save("s1", {"cart": ["book"]})
    keys = {"SESSION_STORE_KEYS": AesGcmStage.generate_key()}
    result = cli("migrate", "--no-checkpoint", url, env=keys)
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "plaintext" in last and "--encrypt-plaintext" in last, last
    fixed = cli("migrate", "--no-checkpoint", "--encrypt-plaintext", url, env=keys)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr


def test_migrate_of_encrypted_sessions_without_keys_says_to_set_them(
    cli: Run, tmp_path: Path
) -> None:
    """``migrate`` run without SESSION_STORE_KEYS (another shell, a forgotten export) over
    encrypted sessions ended with "run again to retry the others", which fails the same way
    however often it runs: the missing keys went unnamed in the last line."""
    from session_store import AesGcmStage, Codec, SessionStore

    url = f"diskcache://{tmp_path / 'enc'}"
    codec = Codec(encryption=AesGcmStage([AesGcmStage.generate_key()]))
    with SessionStore(url, dict, codec=codec) as store:
        store.save("s1", {"cart": ["book"]})
    result = cli("migrate", "--no-checkpoint", url)
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "SESSION_STORE_KEYS" in last and "retry the others" not in last, last
