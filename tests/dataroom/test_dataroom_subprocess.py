"""Sessions stored through the manager are read back whole by another process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from session_store.dataroom import SessionManager
from session_store.samples import legacy_sessions
from session_store.schema.dataroom import EnhancedSessionData
from session_store.store import SessionStore

from .support import assert_whole, chain_url

READER = textwrap.dedent(
    """
    import json, sys
    from session_store.store import SessionStore
    from session_store.schema.dataroom import EnhancedSessionData

    with SessionStore(sys.argv[1], EnhancedSessionData) as store:
        out = {}
        for user_id in sorted(store.keys()):
            session = store.load(user_id)
            out[user_id] = store.codec.to_data(session)
    print(json.dumps(out))
    """
)


def test_fixture_sessions_read_back_whole_in_another_process(tmp_path: Path) -> None:
    directory = tmp_path / "sessions"
    sessions = legacy_sessions()
    with SessionStore(chain_url(directory), EnhancedSessionData) as store:
        manager = SessionManager(store)
        for user_id, session in sessions.items():
            manager.store_enhanced_session(user_id, session)

    done = subprocess.run(
        [sys.executable, "-c", READER, f"diskcache://{directory.as_posix()}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert sorted(loaded) == sorted(sessions)
    for user_id, original in sessions.items():
        assert_whole(original, loaded[user_id])
        assert loaded[user_id]["user_id"] == user_id
