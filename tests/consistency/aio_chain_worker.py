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
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[2]))  # run as a script: the repository root

from session_store.aio import AsyncSessionStore
from tests.consistency.chain_worker import Client, Session, watch_stream


async def main(config: dict[str, Any]) -> dict[str, Any]:
    client = Client(config)
    store: AsyncSessionStore[Session] = AsyncSessionStore(
        config["url"], dict, update_timeout=client.update_timeout
    )
    watch_stream(store.backend, config["events"] + ".stream")  # its stream is a thread too
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    for op in client.operations():
        try:
            op.done(await getattr(store, op.method)(*op.args))
        except Exception as exc:
            op.failed(exc)
    await store.aclose()
    return client.finish()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))), flush=True)
