"""One async client process of the consistency runs: :mod:`chain_worker`'s workload through an
:class:`~session_store.aio.AsyncSessionStore` on the async chain, recorded the same way.

Run by :func:`tests.consistency.nemesis.run_clients` (``worker=AIO_WORKER``) as
``python aio_chain_worker.py '<json config>'``; the config, the protocol on stdin/stdout and the
events file are :mod:`chain_worker`'s. The operations run one at a time on one event loop (the
history records one client per process, each operation completed before the next begins), so
the checker sees the same kind of history as from the sync worker.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[2]))  # run as a script: the repository root

from session_store.aio import AsyncSessionStore
from session_store.errors import ConflictError
from session_store.testing.history import HistoryRecorder, OpKind, Value
from tests.consistency.chain_worker import Session, token_of, watch_stream


async def main(config: dict[str, Any]) -> dict[str, Any]:
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
    store: AsyncSessionStore[Session] = AsyncSessionStore(
        config["url"], dict, update_timeout=float(config.get("update_timeout", 10.0))
    )
    counts: dict[str, int] = {}
    watch_stream(store.backend, config["events"] + ".stream")  # its stream is a thread
    sequence = 0

    async def one(kind: OpKind, key: str) -> None:
        nonlocal sequence
        sequence += 1
        token = f"{process}-{sequence}"
        pending = recorder.invoke(kind, key, token)
        handed: list[Value] = []

        def bump(current: Session | None) -> Session:
            handed.append(token_of(current))
            return {"t": token, "n": int((current or {}).get("n", 0)) + 1}

        try:
            if kind == "load":
                recorder.ok(pending, token_of(await store.load(key)))
            elif kind == "save":
                await store.save(key, {"t": token, "n": 0})
                recorder.ok(pending)
            elif kind == "delete":
                await store.delete(key)
                recorder.ok(pending)
            else:
                await store.update(key, bump)
                recorder.ok(pending, prev=handed[-1])
        except Exception as exc:  # every failure is recorded; the run goes on
            if (
                kind == "load"
                or (kind == "update" and not handed)
                or isinstance(exc, ConflictError)
            ):
                recorder.fail(pending, exc)
            else:
                recorder.unknown(pending, exc, prev=handed[-1] if handed else None)
        outcome = recorder.operations[-1].outcome
        label = f"{kind} {outcome}"
        counts[label] = counts.get(label, 0) + 1

    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    started = time.monotonic()
    if config.get("sweep"):
        for key in keys:
            await one("load", key)
    else:
        deadline = started + float(config.get("seconds", 1e9))
        limit = int(config.get("ops", 1 << 62))
        done = 0
        while done < limit and time.monotonic() < deadline:
            await one(rng.choices(kinds, weights)[0], rng.choice(keys))
            done += 1
    elapsed = time.monotonic() - started
    await store.aclose()
    events.close()
    return {"process": process, "counts": counts, "seconds": elapsed}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))), flush=True)
