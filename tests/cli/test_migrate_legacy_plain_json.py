"""``session-store migrate --legacy dataroom`` leaves plain JSON alone.

It used to rewrite *any* headerless JSON object as a data-room session, also a plain JSON
value another program stored, which ``session-store get`` itself calls "plain JSON, not a
session". The README's quick start stores ``b'{"documents": 3}'`` under ``user:42``; its
command-line section then runs ``session-store migrate --legacy dataroom`` on "your own
store", and docs/cli.md promises that such a value "is left as it is and counted as ``not
sessions (left alone)``". Found by a new user's walk through the README: the value was
rewritten into a data-room session with a made-up ``user_id`` and eight empty fields
(``rewritten 2``, ``not sessions 0``). ``get`` decided with the data-room keys; ``migrate``
(``rewrite.walk.is_session``) with ``is_legacy`` only. Now both ask the schema
(``SchemaInfo.legacy_keys``, the data-room one's ``schema.builtin.DATAROOM_KEYS``).
(``--legacy dict`` rewriting raw JSON is intended: ``tests/cli/test_cli_hardening.py``.)
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson

from session_store import open_backend

Run = Callable[..., subprocess.CompletedProcess[str]]
RAW_JSON = b'{"documents": 3}'  # the README's quick-start value
LEGACY = {"user_id": "U1", "processed_documents": [], "test_mode": True}


def test_migrate_legacy_dataroom_leaves_plain_json_that_get_calls_not_a_session(
    cli: Run, tmp_path: Path
) -> None:
    url = f"diskcache://{tmp_path / 'sessions'}"
    with open_backend(url) as backend:
        backend.set("user:42", RAW_JSON)
        backend.set("U1", orjson.dumps(LEGACY))
    shown = cli("get", "--json", url, "user:42")
    assert json.loads(shown.stdout)["found"] == "plain JSON"  # get: not a session
    result = cli("migrate", "--json", "--no-checkpoint", "--legacy", "dataroom", url)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    with open_backend(url) as backend:
        assert backend.get("user:42") == RAW_JSON, "the other program's value was rewritten"
    assert (report["rewritten"], report["not_sessions"]) == (1, 1)
