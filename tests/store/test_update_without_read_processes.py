"""``update`` without a read (``SessionStore._update_known``):
``fn`` runs on what this store last wrote or read, and the write is a compare-and-set against
the token of those bytes (``SessionBackend.token_for``), with no read first.

Guarantees under attack: no lost update, no update applied on an old copy, ``fn``'s result or
exception on an old copy never reaches the caller. Real processes on a real redis-server and a
real diskcache directory; the checker compares the stored counters with the increments each
process saw acknowledged.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from session_store import SessionStore

#: Each worker: ROUNDS increments of the shared key, of its own key, and of a key it shares
#: with one neighbour, interleaved so that its near cache is often stale (another process
#: wrote since): the path where the compare-and-set must refuse and the store must read.
_WORKER = textwrap.dedent(
    """
    import json, sys
    from session_store import SessionStore
    from session_store.errors import SessionStoreError

    url, me, workers, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    store = SessionStore(url, dict, access_interval=None, update_timeout=60.0)
    acked = {}
    unknown = {}

    def bump(key):
        try:
            store.update(key, lambda s: {"n": (s or {"n": 0})["n"] + 1})
        except SessionStoreError:
            unknown[key] = unknown.get(key, 0) + 1
            return
        acked[key] = acked.get(key, 0) + 1

    for i in range(rounds):
        bump("shared")
        bump(f"own-{me}")
        bump(f"pair-{min(me, (me + 1) % workers)}-{max(me, (me + 1) % workers)}")
        if i % 7 == 0:
            store.load("shared")  # refresh the near cache from a read, not a write
    print(json.dumps({"acked": acked, "unknown": unknown}))
    """
)


#: A 32-byte AES-GCM key: an encrypted payload differs at every encode of the same session.
_KEY = base64.urlsafe_b64encode(bytes(range(32))).decode("ascii")


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_increments_from_several_processes_are_all_kept(
    shared_url: str, encrypted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What held: 4 processes x 150 rounds of increments on one shared key, on one key each
    and on keys shared by neighbours, plain and encrypted (``SESSION_STORE_KEYS``); every
    stored counter equals the increments acknowledged for it (none unknown: no faults were
    injected)."""
    if encrypted:
        monkeypatch.setenv("SESSION_STORE_KEYS", _KEY)
    else:
        monkeypatch.delenv("SESSION_STORE_KEYS", raising=False)
    workers, rounds = 4, 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, shared_url, str(me), str(workers), str(rounds)],
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        for me in range(workers)
    ]
    acked: dict[str, int] = {}
    unknown: dict[str, int] = {}
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0
        report: dict[str, dict[str, int]] = json.loads(out)
        for key, count in report["acked"].items():
            acked[key] = acked.get(key, 0) + count
        for key, count in report["unknown"].items():
            unknown[key] = unknown.get(key, 0) + count
    assert unknown == {}
    store: SessionStore[dict[str, Any]] = SessionStore(shared_url, dict, access_interval=None)
    try:
        stored = {key: (store.load(key) or {"n": 0})["n"] for key in acked}
    finally:
        store.close()
    assert stored == acked
    assert acked["shared"] == workers * rounds
    if encrypted:  # the stored bytes really are ciphertext: the counter is not in clear
        raw = SessionStore(shared_url, dict, access_interval=None)
        try:
            assert b'"n"' not in (raw.backend.get("shared") or b"")
        finally:
            raw.close()


def _reads(store: SessionStore[dict[str, Any]]) -> int:
    counters = store.backend.counters
    return int(counters.get("hits") + counters.get("misses"))


def test_identical_bytes_rewritten_between_are_updated_without_a_read(shared_url: str) -> None:
    """What held (ABA): this store last wrote ``{"n": 0}``; another store writes ``{"n": 5}``
    then ``{"n": 0}`` again (the very same bytes). The update compare-and-sets without reading
    and builds on ``{"n": 0}``, which is what is stored: the state read is the state replaced.
    """
    mine: SessionStore[dict[str, Any]] = SessionStore(shared_url, dict, access_interval=None)
    theirs: SessionStore[dict[str, Any]] = SessionStore(shared_url, dict, access_interval=None)
    try:
        mine.save("k", {"n": 0})
        theirs.save("k", {"n": 5})
        theirs.save("k", {"n": 0})
        before = _reads(mine)
        assert mine.update("k", lambda s: {"n": (s or {"n": 0})["n"] + 1}) == {"n": 1}
        assert _reads(mine) == before
        assert theirs.load("k") == {"n": 1}
    finally:
        mine.close()
        theirs.close()


def test_an_update_of_a_session_deleted_meanwhile_sees_none(shared_url: str) -> None:
    """What held: this store last wrote the session; another deleted it (a logout, an
    expiry). ``fn`` on the old copy is not used: the update reads, ``fn`` gets ``None``, and
    its ``None`` (do not recreate) is what the caller gets; nothing is written back."""
    mine: SessionStore[dict[str, Any]] = SessionStore(shared_url, dict, access_interval=None)
    theirs: SessionStore[dict[str, Any]] = SessionStore(shared_url, dict, access_interval=None)
    try:
        mine.save("k", {"user": "bob"})
        assert theirs.delete("k")
        seen: list[dict[str, Any] | None] = []

        def keep_if_present(s: dict[str, Any] | None) -> dict[str, Any] | None:
            seen.append(None if s is None else dict(s))
            return None if s is None else {**s, "seen": True}

        assert mine.update("k", keep_if_present) is None
        assert seen[-1] is None
        assert theirs.load("k") is None
    finally:
        mine.close()
        theirs.close()
