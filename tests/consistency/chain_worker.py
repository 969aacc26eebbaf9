"""One client process of the consistency runs: random operations through a SessionStore, recorded.

Run by :mod:`tests.consistency.nemesis` as ``python chain_worker.py '<json config>'``; a fresh
interpreter, so it shares nothing with the others but the servers and the disk. It prints
``ready``, waits for a line on stdin (every client starts at once), then runs operations until
``seconds`` have passed (and, given ``min_ok``, it has that many acknowledged operations or
``max_seconds`` have passed) or ``ops`` are done, appending every invocation and completion to
its own events file as JSON lines (flushed at once, so a client killed mid-call leaves an open
invocation: ``unknown``). At the end it prints one JSON line of counts.

Config keys: ``url`` (chain string), ``process`` (its name in the history), ``keys``, ``mix``
(``{"load": 4, "save": 2, ...}`` weights), ``seconds`` or ``ops``, ``min_ok`` and ``max_seconds``
(a floor of acknowledged operations reached on a slow machine too, under a hard cap), ``seed``,
``events`` (path),
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
from collections.abc import Iterator
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


class Operation:
    """One recorded operation: the store method to call (:attr:`method`, :attr:`args`), then
    :meth:`done` with what it returned or :meth:`failed` with what it raised."""

    def __init__(self, client: Client, kind: OpKind, key: str) -> None:
        client.sequence += 1
        self.client, self.kind = client, kind
        self.token = f"{client.process}-{client.sequence}"
        self.pending = client.recorder.invoke(kind, key, self.token)
        self.handed: list[Value] = []  # what the update function was handed, attempt by attempt
        self.method: str = kind
        self.args: tuple[Any, ...] = (key,)
        if kind == "save":
            self.args = (key, {"t": self.token, "n": 0})
        elif kind == "update":
            self.args = (key, self.bump)

    def bump(self, current: Session | None) -> Session:
        self.handed.append(token_of(current))
        return {"t": self.token, "n": int((current or {}).get("n", 0)) + 1}

    def done(self, result: Any) -> None:
        recorder = self.client.recorder
        if self.kind == "load":
            recorder.ok(self.pending, token_of(result))
        elif self.kind == "update":
            recorder.ok(self.pending, prev=self.handed[-1])
        else:
            recorder.ok(self.pending)
        self._count()

    def failed(self, exc: Exception) -> None:
        """Every failure is recorded; the run goes on."""
        recorder, handed = self.client.recorder, self.handed
        if self.kind == "load" or (self.kind == "update" and not handed):
            recorder.fail(self.pending, exc)  # a read, or an update that never got to write
        elif isinstance(exc, ConflictError):
            recorder.fail(self.pending, exc)  # documented: nothing written
        else:
            recorder.unknown(self.pending, exc, prev=handed[-1] if handed else None)
        self._count()

    def _count(self) -> None:
        label = f"{self.kind} {self.client.recorder.operations[-1].outcome}"
        self.client.counts[label] = self.client.counts.get(label, 0) + 1


class Client:
    """A worker process's run, whatever store it calls (this module's sync one,
    :mod:`aio_chain_worker`'s async one): its operations, recorded."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.rng = random.Random(config.get("seed", 0))
        self.keys: list[str] = config["keys"]
        mix: dict[str, float] = config.get("mix", {"load": 4, "save": 2, "delete": 1, "update": 3})
        self.kinds: list[OpKind] = list(mix)  # type: ignore[arg-type]
        self.weights = [float(mix[kind]) for kind in self.kinds]
        self.events = open(config["events"], "a", encoding="utf-8")  # noqa: SIM115 - see finish
        self.process = str(config["process"])
        self.recorder = HistoryRecorder(self.process, sink=self._sink)
        self.update_timeout = float(config.get("update_timeout", 10.0))
        self.counts: dict[str, int] = {}
        self.sequence = 0
        self.started = 0.0

    def _sink(self, event: dict[str, Any]) -> None:
        self.events.write(json.dumps(event) + "\n")
        self.events.flush()

    def operations(self) -> Iterator[Operation]:
        """From now on: a sweep's loads of every key, in order, or random operations until
        ``seconds`` have passed or ``ops`` are done.

        Given ``min_ok``, the run goes on past ``seconds`` until that many operations were
        acknowledged, but never past ``max_seconds``: on a loaded machine the same run then
        still reaches its floor (whichever of the two comes last), and a store that stops
        acknowledging still ends the run, below its floor, for the test to report."""
        self.started = time.monotonic()
        if self.config.get("sweep"):
            for key in self.keys:
                yield Operation(self, "load", key)
            return
        deadline = self.started + float(self.config.get("seconds", 1e9))
        cap = self.started + float(self.config.get("max_seconds", 1e9))
        floor = int(self.config.get("min_ok", 0))
        limit = int(self.config.get("ops", 1 << 62))
        done = 0
        while done < limit and self._going(deadline, cap, floor):
            yield Operation(
                self, self.rng.choices(self.kinds, self.weights)[0], self.rng.choice(self.keys)
            )
            done += 1

    def acknowledged(self) -> int:
        """How many of this client's operations so far were acknowledged."""
        return sum(n for label, n in self.counts.items() if label.endswith(" ok"))

    def _going(self, deadline: float, cap: float, floor: int) -> bool:
        now = time.monotonic()
        return now < deadline or (now < cap and self.acknowledged() < floor)

    def finish(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        self.events.close()
        return {"process": self.process, "counts": self.counts, "seconds": elapsed}


def main(config: dict[str, Any]) -> dict[str, Any]:
    client = Client(config)
    store: SessionStore[Session] = SessionStore(
        config["url"], dict, update_timeout=client.update_timeout
    )
    watch_stream(store.backend, config["events"] + ".stream")
    print("ready", flush=True)
    sys.stdin.readline()
    for op in client.operations():
        try:
            op.done(getattr(store, op.method)(*op.args))
        except Exception as exc:
            op.failed(exc)
    store.close()
    return client.finish()


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
