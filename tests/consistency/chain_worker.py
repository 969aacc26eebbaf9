"""One client process of the consistency runs: random operations through a SessionStore, recorded.

Run by :mod:`tests.consistency.nemesis` as ``python chain_worker.py '<json config>'``; a fresh
interpreter, so it shares nothing with the others but the servers and the disk. It prints
``ready``, waits for a line on stdin (every client starts at once), then runs operations until
``seconds`` have passed or ``ops`` are done, appending every invocation and completion to its own
events file as JSON lines (flushed at once, so a client killed mid-call leaves an open
invocation: ``unknown``). At the end it prints one JSON line of counts.

Config keys: ``url`` (chain string), ``process`` (its name in the history), ``keys``, ``mix``
(``{"load": 4, "save": 2, ...}`` weights), ``seconds`` or ``ops``, ``seed``, ``events`` (path),
``update_timeout``, ``sweep`` (instead of random operations, load every key once, in order).

Every write writes a unique token: the session is ``{"t": token, "n": count}``, where ``n`` is
what ``update`` increments (a save resets it to 0), so a counter run also tells how many
acknowledged increments the store kept.
"""

from __future__ import annotations

import json
import random
import sys
import time
from typing import Any

from session_store import SessionStore
from session_store.errors import ConflictError
from session_store.testing.history import HistoryRecorder, OpKind, Value

Session = dict[str, Any]


def token_of(session: Session | None) -> Value:
    """The register value a session stands for."""
    if session is None:
        return None
    token = session.get("t")
    return token if isinstance(token, str) else json.dumps(session, sort_keys=True)


def watch_stream(chain: Any, path: str, wait: float = 20.0) -> None:
    """Record what this process's invalidation stream delivers, and wait for it to connect.

    A near cache promises a copy at most one invalidation message old while its stream is up,
    and at most ``max_staleness`` old while it is down (docs/guarantees.md). How long one
    message takes depends on the machine: on a starved 2-core box a listener thread can wait
    tens of milliseconds for the interpreter. So the checker is told what arrived when: every
    invalidation (its keys, ``null`` for a flush), connection and disconnection is a line
    ``{"event": ..., "keys": ..., "time": ns}`` in ``path``, written when the stream (a thread,
    for the sync and the async chain) hands it to the chain's near cache, before the near cache
    acts on it. A load may then return a copy older than a write only until an invalidation
    reached its process after that write (see ``nemesis.ClientRun.staleness``). Waiting for the
    first connection before ``ready`` starts the run under the tight bound.
    """
    near = getattr(chain, "nearcache", None)  # the listener, in the sync and the async chain
    if near is None or not hasattr(chain, "coherent"):
        return  # not a chain with a near cache
    log = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process

    def note(event: str, keys: list[str] | None = None) -> None:
        log.write(json.dumps({"event": event, "keys": keys, "time": time.monotonic_ns()}) + "\n")
        log.flush()

    invalidate = near.on_invalidate
    connected, disconnected = near.on_connected, near.on_disconnected

    def on_invalidate(keys: list[str] | None) -> None:
        note("invalidate", keys)
        invalidate(keys)

    def on_connected() -> None:
        note("connected")  # a flush: every copy checked before it is distrusted
        connected()

    def on_disconnected() -> None:
        note("disconnected")
        disconnected()

    near.on_invalidate = on_invalidate
    near.on_connected = on_connected
    near.on_disconnected = on_disconnected
    if chain.coherent:
        note("connected")  # it connected before the hooks were in place
    deadline = time.monotonic() + wait
    while not chain.coherent and time.monotonic() < deadline:
        time.sleep(0.01)


def main(config: dict[str, Any]) -> dict[str, Any]:
    rng = random.Random(config.get("seed", 0))
    keys: list[str] = config["keys"]
    mix: dict[str, float] = config.get("mix", {"load": 4, "save": 2, "delete": 1, "update": 3})
    kinds: list[OpKind] = list(mix)  # type: ignore[arg-type]
    weights = [float(mix[kind]) for kind in kinds]
    events = open(config["events"], "a", encoding="utf-8")  # noqa: SIM115 - closed at the end

    def sink(event: dict[str, Any]) -> None:
        events.write(json.dumps(event) + "\n")
        events.flush()

    process = str(config["process"])
    recorder = HistoryRecorder(process, sink=sink)
    store: SessionStore[Session] = SessionStore(
        config["url"], dict, update_timeout=float(config.get("update_timeout", 10.0))
    )
    counts: dict[str, int] = {}
    watch_stream(store.backend, config["events"] + ".stream")
    sequence = 0

    def one(kind: OpKind, key: str) -> None:
        nonlocal sequence
        sequence += 1
        token = f"{process}-{sequence}"
        pending = recorder.invoke(kind, key, token)
        handed: list[Value] = []  # what the update function was handed, attempt by attempt

        def bump(current: Session | None) -> Session:
            handed.append(token_of(current))
            return {"t": token, "n": int((current or {}).get("n", 0)) + 1}

        try:
            if kind == "load":
                recorder.ok(pending, token_of(store.load(key)))
            elif kind == "save":
                store.save(key, {"t": token, "n": 0})
                recorder.ok(pending)
            elif kind == "delete":
                store.delete(key)
                recorder.ok(pending)
            else:
                store.update(key, bump)
                recorder.ok(pending, prev=handed[-1])
        except Exception as exc:  # every failure is recorded; the run goes on
            if kind == "load" or (kind == "update" and not handed):
                recorder.fail(pending, exc)  # a read, or an update that never got to write
            elif isinstance(exc, ConflictError):
                recorder.fail(pending, exc)  # documented: nothing written
            else:
                recorder.unknown(pending, exc, prev=handed[-1] if handed else None)
        outcome = recorder.operations[-1].outcome
        label = f"{kind} {outcome}"
        counts[label] = counts.get(label, 0) + 1

    print("ready", flush=True)
    sys.stdin.readline()
    started = time.monotonic()
    if config.get("sweep"):
        for key in keys:
            one("load", key)
    else:
        deadline = started + float(config.get("seconds", 1e9))
        limit = int(config.get("ops", 1 << 62))
        done = 0
        while done < limit and time.monotonic() < deadline:
            one(rng.choices(kinds, weights)[0], rng.choice(keys))
            done += 1
    elapsed = time.monotonic() - started
    store.close()
    events.close()
    return {"process": process, "counts": counts, "seconds": elapsed}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
