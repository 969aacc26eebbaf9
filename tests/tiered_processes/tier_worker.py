"""A worker process for the tiered chain's process tests: one chain, commands on stdin, answers on
stdout (one JSON line each). Run as ``python tier_worker.py CHAIN_URL``.

Commands: ``probe`` (one write, errors swallowed: lets this process see an outage),
``incr N`` (N increments of the ``counter`` session, each retried while the chain says the
arbiter is unavailable; answers ``[acknowledged, unknown]``: an attempt that failed with
:class:`BackendUnavailableError` may still have been applied, its reply lost, as ``set_if``
documents, so the counter may exceed the acknowledged increments by at most the unknown ones),
``save KEY JSON``, ``delete KEY``, ``load KEY``, ``delete_all N`` (deletes ``k0`` ..
``k{N-1}`` in order), ``quit``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from session_store import BackendUnavailableError, Codec, SessionStore, SessionStoreError


def bump(current: dict[str, Any] | None) -> dict[str, Any]:
    return {"n": (current or {"n": 0})["n"] + 1}


def main() -> None:
    store: SessionStore[dict[str, Any]] = SessionStore(
        sys.argv[1], dict, codec=Codec(encryption=None, compression=None), update_timeout=30
    )
    print(json.dumps("ready"), flush=True)
    for line in sys.stdin:
        command, _, rest = line.strip().partition(" ")
        answer: Any = None
        if command == "probe":
            try:
                store.save("probe", {"p": 1})
                answer = "written"
            except SessionStoreError as exc:
                answer = type(exc).__name__
        elif command == "incr":
            acked = unknown = 0
            for _ in range(int(rest)):
                deadline = time.monotonic() + 30
                while True:
                    try:
                        store.update("counter", bump)
                        acked += 1
                        break
                    except BackendUnavailableError:
                        unknown += 1  # applied or not: its reply may be what was lost
                        if time.monotonic() > deadline:
                            break
                        time.sleep(0.05)
            answer = [acked, unknown]
        elif command == "save":
            key, _, payload = rest.partition(" ")
            store.save(key, json.loads(payload))
            answer = "saved"
        elif command == "delete":
            answer = store.delete(rest)
        elif command == "delete_all":
            answer = sum(1 for i in range(int(rest)) if store.backend.delete(f"k{i}"))
        elif command == "load":
            answer = store.load(rest)
        elif command == "quit":
            break
        print(json.dumps(answer), flush=True)
    store.close()


if __name__ == "__main__":
    main()
