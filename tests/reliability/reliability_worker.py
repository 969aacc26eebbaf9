"""A worker process for the reliability tests: one JSON command per line in, one reply per line out.

Started by :mod:`reliability_support` as ``python reliability_worker.py``; it holds one
:class:`SessionStore` at a time, opened from a URL or chain string, and runs what it is told:

``{"op": "open", "url": ..., "timeout": s}``
    open a ``dict`` store (no encryption) with ``update_timeout=s``; replies ``{"ok": true}``.
``{"op": "increment", "key": k, "n": n, "work": s}``
    ``n`` times ``update(k, +1)``, sleeping ``s`` inside the update function (the work between
    read and write, where races happen); replies the number of times the function ran.
``{"op": "hammer", "key": k, "seconds": s}``
    ``save`` a new value under ``k`` as fast as it can for ``s`` seconds; replies
    ``{"started": true}`` at once and ``{"ok": true, "writes": w}`` at the end.
``{"op": "close"}``
    close the store.

An error is replied as ``{"error": type name, "message": str}``; end of input ends the process.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from session_store import Codec, SessionStore


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _increment(store: SessionStore[Any], key: str, rounds: int, work: float) -> dict[str, Any]:
    calls = 0

    def bump(current: dict[str, Any] | None) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if work:
            time.sleep(work)
        data = dict(current or {})
        data["n"] = data.get("n", 0) + 1
        return data

    started = time.perf_counter()
    for _ in range(rounds):
        store.update(key, bump)
    return {"ok": True, "calls": calls, "seconds": time.perf_counter() - started}


def _hammer(store: SessionStore[Any], key: str, seconds: float) -> dict[str, Any]:
    _reply({"started": True})
    writes = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        writes += 1
        store.save(key, {"by": "hammer", "i": writes})
    return {"ok": True, "writes": writes}


def main() -> None:
    store: SessionStore[Any] | None = None
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        try:
            if op == "open":
                if store is not None:
                    store.close()
                store = SessionStore(
                    command["url"],
                    dict,
                    codec=Codec(encryption=None),
                    access_interval=None,
                    update_timeout=command.get("timeout", 30.0),
                )
                _reply({"ok": True})
            elif op == "increment":
                assert store is not None
                _reply(_increment(store, command["key"], command["n"], command.get("work", 0.0)))
            elif op == "hammer":
                assert store is not None
                _reply(_hammer(store, command["key"], command["seconds"]))
            elif op == "close":
                if store is not None:
                    store.close()
                    store = None
                _reply({"ok": True})
            else:
                _reply({"error": "ValueError", "message": f"unknown op {op!r}"})
        except Exception as exc:
            _reply({"error": type(exc).__name__, "message": str(exc)})
    if store is not None:
        store.close()


if __name__ == "__main__":
    main()
