"""``session-store migrate`` without ``--legacy`` over the data-room app's legacy JSON: the
value ``ls`` lists as a session and ``inspect`` says to migrate with ``--legacy dataroom`` was
reported only as "not sessions (left alone) 1", exit 0, with nothing naming the flag, so an
operator who ran the plain command took the store for migrated (newuser10, over the plan's
``session:{user_id}`` keys). The run now ends with a note naming ``--legacy``."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from session_store import open_backend

Run = Callable[..., subprocess.CompletedProcess[str]]

LEGACY = b'{"user_id": "U9", "processed_documents": [{"name": "a.pdf"}]}'


def test_migrate_without_legacy_names_the_flag_for_what_it_left(cli: Run, tmp_path: Path) -> None:
    url = f"diskcache://{tmp_path / 'plan'}"
    with open_backend(url) as backend:
        backend.set("U9", LEGACY)
    result = cli("migrate", "--no-checkpoint", url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not sessions (left alone) 1" in result.stdout, result.stdout
    assert "--legacy dataroom" in result.stderr, result.stderr
    done = cli("migrate", "--no-checkpoint", "--legacy", "dataroom", url)
    assert done.returncode == 0 and "rewritten 1," in done.stdout, done.stdout + done.stderr
    assert "--legacy" not in done.stderr, done.stderr


def test_no_note_when_nothing_was_left_alone(cli: Run, tmp_path: Path) -> None:
    from session_store import SessionStore

    url = f"diskcache://{tmp_path / 'ours'}"
    with SessionStore(url, dict) as store:
        store.save("s1", {"cart": []})
    result = cli("migrate", "--no-checkpoint", url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--legacy" not in result.stderr, result.stderr


def test_the_json_report_stays_the_only_output(cli: Run, tmp_path: Path) -> None:
    url = f"diskcache://{tmp_path / 'plan'}"
    with open_backend(url) as backend:
        backend.set("U9", LEGACY)
    result = cli("migrate", "--no-checkpoint", "--json", url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == "", result.stderr
