"""``migrate --legacy`` decodes each legacy session once: one warning, one count per value.

Found by a new user (newuser10): ``session-store migrate --legacy dataroom`` over a session
holding one NaN logged the legacy reader's warning five times and counted it five times in
``LEGACY_COUNTERS`` (``non_finite_floats`` 5, ``sessions_with_non_finite`` 5; 3 of each with
``--legacy dict``). The walk
(``rewrite.walk``) read the value's JSON once to tell whether it is a session (the data-room
schema wants one of its keys), once to tell whether it is current, then, in the compare-and-set
rewrite of the copy read again, the same two, and once more to rewrite it. It now judges each
value once (``walk.judge``): the parse that recognises the session is the codec's body, and the
decode that tells whether it is current is the one the rewrite encodes again.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from session_store import Codec, SessionStore, open_backend
from session_store.codec.legacyjson import LEGACY_COUNTERS
from session_store.rewrite import rewrite_all

Run = Callable[..., subprocess.CompletedProcess[str]]
NAN_SESSION = b'{"user_id": "U1", "score": NaN}'
READER = "session_store.codec.legacyjson"


def _counts() -> tuple[int, int]:
    return LEGACY_COUNTERS.get("non_finite_floats"), LEGACY_COUNTERS.get("sessions_with_non_finite")


@pytest.mark.parametrize("schema", ["dataroom", "dict"])
def test_a_legacy_session_with_one_nan_is_warned_about_and_counted_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, schema: str
) -> None:
    url = f"diskcache://{tmp_path / 'sessions'}"
    store: SessionStore[object]
    with SessionStore(url, codec=Codec(encryption=None)) as store:
        store.backend.set("U1", NAN_SESSION, 3600)
        before = _counts()
        with caplog.at_level(logging.WARNING, logger=READER):
            report = rewrite_all(store, legacy_schema=schema)
        assert (report.rewritten, report.failed) == (1, 0)
        warnings = [r for r in caplog.records if r.name == READER]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "['score'] was nan" in warnings[0].getMessage()
        after = _counts()
        assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
        caplog.clear()
        again = rewrite_all(store, legacy_schema=schema)  # current now: nothing read as legacy
        assert (again.rewritten, again.current) == (0, 1)
        assert [r for r in caplog.records if r.name == READER] == []
    with open_backend(url) as backend:
        loaded = SessionStore(backend, codec=Codec(encryption=None)).load("U1")
    extra = getattr(loaded, "extra", loaded)
    assert isinstance(extra, dict) and extra["score"] is None


def test_the_command_warns_once_per_legacy_session(cli: Run, tmp_path: Path) -> None:
    url = f"diskcache://{tmp_path / 'nan'}"
    with open_backend(url) as backend:
        backend.set("U1", NAN_SESSION, 3600)
        backend.set("U2", b'{"user_id": "U2", "a": [Infinity, -Infinity]}', 3600)
        backend.set("plain", b'{"documents": 3}', 3600)  # not a data-room session: left alone
    result = cli("migrate", "--json", "--no-checkpoint", "--legacy", "dataroom", url)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["rewritten"], report["not_sessions"]) == (2, 1)
    warned = [line for line in result.stderr.splitlines() if "legacy session" in line]
    assert len(warned) == 2, result.stderr
    assert sum("'U1'" in line for line in warned) == 1
    assert sum("'U2'" in line and "2 non-finite" in line for line in warned) == 1
