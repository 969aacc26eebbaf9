"""Attack (round 6, a new user following the README): ``session-store migrate --legacy dataroom``
rewrites *any* headerless JSON object as a data-room session, also a plain JSON value another
program stored, which ``session-store get`` itself calls "plain JSON, not a session".

The README's quick start stores ``b'{"documents": 3}'`` under ``user:42``; its command-line
section then runs ``session-store migrate --legacy dataroom`` on "your own store", and
docs/cli.md promises: "Anything else in the same place, such as a raw ``b'{"documents": 3}'``
another program stored there or raw bytes, is left as it is and counted as ``not sessions (left
alone)``" (with the example ``migrate ... --legacy dataroom`` reporting ``not sessions (left
alone) 1``). Found: the value is rewritten into a data-room session with a made-up ``user_id``
and eight empty fields (``rewritten 2``, ``not sessions 0``), so the program that stored it reads
a session-store payload from then on. ``get`` decides with the data-room keys
(``cli.get.DATAROOM_KEYS``); ``migrate`` (``rewrite.walk.is_session``) with ``is_legacy`` only.
(``--legacy dict`` rewriting raw JSON is intended: ``tests/cli/test_cli_hardening.py``.)
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from session_store import open_backend

Run = Callable[..., subprocess.CompletedProcess[str]]
RAW_JSON = b'{"documents": 3}'  # the README's quick-start value
LEGACY = {"user_id": "U1", "processed_documents": [], "test_mode": True}


@pytest.mark.xfail(
    strict=True,
    reason="migrate --legacy dataroom rewrites plain JSON that get calls 'not a session' "
    "(rewrite.walk.is_session does not use the data-room keys); a maintainer's call",
)
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
