"""One process of ``test_mapping_edit_processes.py``: ``rounds`` edits of session ``u`` through
``SessionMapping.edit``, each recorded with its outcome (``ok`` or ``conflict``) and whether it
was replayed (the observer's ``previous`` is not the session the edit read).

An edit by process ``name`` in round ``i`` sets its own key ``{name}{i}``, increments its own
counter ``n_{name}`` (a read-modify-write of a key only it writes), appends ``{name}{i}`` to
the shared list ``log``, sets ``prefs[name]`` inside the shared dict ``prefs`` and, every third
round, increments the key both processes write, ``shared``. In the first half the two processes
run in lockstep (both read the same version before either writes: a barrier before the block,
one inside it), then free-running, with a short pause inside the block.

Imported by the spawned processes (``multiprocessing`` spawn), so it holds only this function.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from session_store import ConflictError, SessionMapping, SessionStore
from session_store.codec import Codec


def run(url: str, name: str, rounds: int, barrier: Any, out: str) -> None:
    """Edit, record, and write the history as JSON to ``out``."""
    previous: list[Any] = []
    history: list[dict[str, Any]] = []
    rng = random.Random(name)
    store: SessionStore[Any]
    with SessionStore(url, codec=Codec(encryption=None)) as store:
        sessions = SessionMapping(store, observer=lambda _k, prev, _s: previous.append(prev))
        for i in range(rounds):
            lockstep, contested = i < rounds // 2, i % 3 == 0
            previous.clear()
            read: Any = None
            if lockstep:  # the other's previous edit is written before either reads
                barrier.wait(timeout=120)
            try:
                with sessions.edit("u") as d:
                    read = json.loads(json.dumps(d))
                    if lockstep:
                        barrier.wait(timeout=120)
                    else:
                        time.sleep(rng.random() / 500)
                    d[f"{name}{i}"] = i
                    d[f"n_{name}"] = d[f"n_{name}"] + 1
                    d["log"].append(f"{name}{i}")
                    d["prefs"][name] = i
                    if contested:
                        d["shared"] += 1
                outcome = "ok"
            except ConflictError:
                outcome = "conflict"
            replayed = outcome == "ok" and previous[-1] != read
            history.append(
                {
                    "i": i,
                    "lockstep": lockstep,
                    "contested": contested,
                    "outcome": outcome,
                    "replayed": replayed,
                }
            )
    Path(out).write_text(json.dumps(history))
