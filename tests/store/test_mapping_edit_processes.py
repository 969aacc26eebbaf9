"""``SessionMapping.edit`` from two real processes (``multiprocessing`` spawn) on one session of
a real store (``shared_url``: a redis-server of the suite's fixtures, a diskcache directory),
against docs/dataroom.md ("``edit``: what another writer's change does"): an edit whose
changes another writer's did not touch is replayed on the newer session and lands; one that
changed what the other writer changed raises ``ConflictError`` and writes nothing.

Each process records every edit's outcome (``tests/store/mapping_edit_worker.py``); the test
checks the recorded histories against the stored session: no acknowledged edit is lost, every
``ConflictError`` left the session unchanged by that edit, and in the lockstep rounds (both
processes read the same version before either writes) exactly the edits that incremented the
contested key, ``shared``, raised.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

from session_store import SessionMapping, SessionStore
from session_store.codec import Codec
from tests.store.mapping_edit_worker import run

ROUNDS = 40
NAMES = ("a", "b")


def test_two_processes_editing_one_session_lose_no_acknowledged_edit(
    shared_url: str, tmp_path: Path
) -> None:
    """Before (edit wrote only on the version it read): in every lockstep round the second
    writer got ``ConflictError`` although it changed only its own keys, the shared list's end
    and its own key of the shared dict; 13 of 20 such rounds are not contested, and the test
    failed on the first of them."""
    store: SessionStore[Any]
    with SessionStore(shared_url, codec=Codec(encryption=None)) as store:
        SessionMapping(store)["u"] = {"log": [], "prefs": {}, "shared": 0, "n_a": 0, "n_b": 0}
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(NAMES))
    outs = {name: tmp_path / f"{name}.json" for name in NAMES}
    workers = [
        ctx.Process(target=run, args=(shared_url, name, ROUNDS, barrier, str(outs[name])))
        for name in NAMES
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
        assert worker.exitcode == 0, f"worker exited with {worker.exitcode}"
    histories = {name: json.loads(outs[name].read_text()) for name in NAMES}
    with SessionStore(shared_url, codec=Codec(encryption=None)) as store:
        final = json.loads(json.dumps(SessionMapping(store)["u"]))
    _check(histories, final)


def _check(histories: dict[str, list[dict[str, Any]]], final: dict[str, Any]) -> None:
    log = final["log"]
    assert len(log) == len(set(log)), f"an append was replayed twice: {log}"
    ok_contested = 0
    for name, history in histories.items():
        ok = [h for h in history if h["outcome"] == "ok"]
        for h in history:
            mark = f"{name}{h['i']}"
            if h["outcome"] == "ok":  # acknowledged: every change of it is stored
                assert final.get(mark) == h["i"], (mark, final)
                assert mark in log, (mark, log)
            else:  # ConflictError: nothing of it is stored
                assert mark not in final, (mark, final)
                assert mark not in log, (mark, log)
        assert final[f"n_{name}"] == len(ok), (name, final)
        assert final["prefs"][name] == ok[-1]["i"], (name, final["prefs"])
        assert [m for m in log if m.startswith(name)] == [f"{name}{h['i']}" for h in ok]
        ok_contested += sum(1 for h in ok if h["contested"])
    assert final["shared"] == ok_contested, "an increment of the contested key was lost"
    assert len(log) == sum(1 for h in histories.values() for x in h if x["outcome"] == "ok")
    for i in range(ROUNDS // 2):  # lockstep: one of the two writes first, the other replays
        rows = [history[i] for history in histories.values()]
        outcomes = sorted(r["outcome"] for r in rows)
        if rows[0]["contested"]:  # both incremented `shared` from the same value
            assert outcomes == ["conflict", "ok"], (i, rows)
        else:
            assert outcomes == ["ok", "ok"], (i, rows)
            assert sorted(r["replayed"] for r in rows) == [False, True], (i, rows)
