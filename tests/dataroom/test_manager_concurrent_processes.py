"""The data-room facade (``session_store/dataroom``) against the plan's contract
(docs/migrating-from-plan.md, "``created_at`` survives updates": "the first ``created_at``
stays, and two processes storing at once both land (neither overwrites the other's half-done
work)"; ``user_sessions`` "every change persists"), with two real processes calling
``EnhancedSessionManager()`` at once, configured from the environment as the host app is, on
the default chain ``memory:// | redis:// | diskcache://`` over a real redis-server of the suite's
fixtures and a real directory.

Both workers start together (each says it is ready, then one start file releases both) and
record what each call returned; the test checks the recorded histories and the stored sessions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from session_store import SessionStore
from session_store.codec import Codec
from session_store.dataroom import SessionManager
from session_store.mapping import SessionMapping
from session_store.schema.dataroom import EnhancedSessionData

USERS = ["u1", "u2", "u3"]
ROUNDS = 30

_WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from session_store.dataroom import EnhancedSessionManager

    name, start, rounds = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    users = sys.argv[4].split(",")
    day = {"p0": "2025-01-0", "p1": "2025-02-0"}[name]
    manager = EnhancedSessionManager()
    sessions = manager.user_sessions()
    Path(f"{start}.{name}").touch()  # ready
    while not start.exists():
        time.sleep(0.001)
    history = []
    for i in range(rounds):
        for user in users:
            data = {
                "drive_link": f"{name}-{i}",
                "processed_documents": [f"{name}-{i}-a", f"{name}-{i}-b"],
                "analysis_timestamp": f"{day}{1 + i % 9}T10:00:00",
            }
            stored = manager.store_enhanced_session(user, data)
            history.append([user, stored.created_at.isoformat(), stored.extra["drive_link"]])
        sessions.modify("counter", lambda d: d.__setitem__("n", d.get("n", 0) + 1))
        sessions.modify("log", lambda d: d.setdefault("hits", []).append(f"{name}-{i}"))
    print(json.dumps({"history": history, "metrics": manager.get_metrics()}))
    manager.close()
    """
)


def test_two_processes_storing_at_once_keep_the_first_created_at_and_lose_nothing(
    redis_url: str, tmp_path: Path
) -> None:
    """What must hold across both processes' recorded histories: each user was created exactly
    once (the two processes' ``total_sessions_created`` sum to the number of users); every
    store of a user returned the same ``created_at``, the creator's (a January time from
    ``p0`` or a February one from ``p1``, never one of each); the stored session is one
    whole store (its ``processed_documents`` belong to its ``drive_link``); 2 x 30 atomic
    increments through ``user_sessions().modify`` give 60, and 60 appends are all there."""
    disk = tmp_path / "sessions"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_")}
    env.pop("REDIS_URL", None)
    env["SESSION_STORE_URL"] = f"memory:// | {redis_url} | diskcache://{disk}"
    start = tmp_path / "start"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, name, str(start), str(ROUNDS), ",".join(USERS)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("p0", "p1")
    ]
    deadline = time.monotonic() + 120
    while not all(Path(f"{start}.{name}").exists() for name in ("p0", "p1")):
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers)
        time.sleep(0.01)
    start.touch()  # both opened their chains: released at once
    results: list[dict[str, Any]] = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        results.append(json.loads(out))

    created = sum(r["metrics"]["total_sessions_created"] for r in results)
    updated = sum(r["metrics"]["total_sessions_updated"] for r in results)
    assert created == len(USERS) + 2  # the three users, and the two modify keys
    assert updated == 2 * ROUNDS * (len(USERS) + 2) - created
    for user in USERS:
        stamps = {at for r in results for u, at, _ in r["history"] if u == user}
        assert len(stamps) == 1, (user, sorted(stamps))
        (stamp,) = stamps
        assert stamp.startswith(("2025-01-01T10:00:00", "2025-02-01T10:00:00")), stamp

    store: SessionStore[Any]
    with SessionStore(env["SESSION_STORE_URL"], codec=Codec(encryption=None)) as store:
        sessions = SessionMapping(store)
        for user in USERS:
            session = sessions[user]
            link = session["drive_link"]
            assert session["processed_documents"] == [f"{link}-a", f"{link}-b"], session
        assert sessions["counter"]["n"] == 2 * ROUNDS
        hits = sessions["log"]["hits"]
        assert sorted(hits) == sorted(f"{p}-{i}" for p in ("p0", "p1") for i in range(ROUNDS))


def test_the_stored_session_belongs_to_the_user_it_is_stored_for() -> None:
    """The plan builds ``EnhancedSessionData(user_id)`` from the argument (``session_data``'s
    ``user_id`` is ignored), and docs/migrating-from-plan.md says an int id's
    ``session.user_id`` is ``"123"``. Input: a session copied from bob to alice
    (``store_enhanced_session("alice", bob.to_dict())``, the app sharing a data room), and an
    int id whose dict holds the int. Before: alice's stored session said ``user_id == "bob"``
    (so code using ``session.user_id`` acted for bob on alice's data), and the int one held
    ``123`` (an int)."""
    manager = SessionManager(SessionStore("memory://", EnhancedSessionData))
    bob = manager.store_enhanced_session("bob", {"processed_documents": [{"name": "a.pdf"}]})
    stored = manager.store_enhanced_session("alice", bob.to_dict())
    assert stored.user_id == "alice"
    loaded = manager.get_enhanced_session("alice")
    assert loaded is not None and loaded.user_id == "alice"
    assert manager.user_sessions()["alice"]["user_id"] == "alice"
    assert manager.store_enhanced_session(123, {"user_id": 123}).user_id == "123"
