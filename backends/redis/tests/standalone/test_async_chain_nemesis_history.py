"""The async chain under a nemesis: per-key histories of ``save`` / ``delete``
/ ``update``, some cancelled by ``asyncio.wait_for``, while a redis-server of the test's own is
repeatedly stopped (``SIGSTOP``) and continued, so that writes time out on the arbiter, go
around it to the disk, are replayed by the probe, and are cancelled at every stage of that.

Each key has one writer task, so its history is a sequence: the value it must end with is the
result of its last acknowledged operation, or of one of the operations after it whose outcome
its caller never learnt (cancelled, or refused with ``BackendUnavailableError``, which may
still have reached a tier). The check holds for any interleaving and any fault timing; the
schedule only decides how many operations meet a fault.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from session_store import BackendUnavailableError, Codec, open_backend, stamps
from session_store.aio import AsyncSessionStore, open_async_backend
from session_store_redis.testing import RedisServer

ServerFactory = Callable[..., RedisServer]
Session = dict[str, Any]
ABSENT = None


def _becomes(value: Session) -> Callable[[Session | None], Session]:
    """An ``update`` function that replaces whatever is stored with ``value``."""
    return lambda _current: value


def test_per_key_histories_under_stops_and_cancellations_end_consistently(
    redis_server_factory: ServerFactory, tmp_path: Path
) -> None:
    """What held: after the run and the probe's reconciliation, Redis and the disk hold the
    same version of every key; a fresh chain and the writer's chain read the same; and every
    key holds the result of its last acknowledged operation or of a later unacknowledged one
    (no acknowledged write lost, no acknowledged delete undone, nothing from before the last
    acknowledged operation)."""
    server = redis_server_factory()
    redis_url = server.url_for(prefix="h") + "&socket_timeout=0.2"
    chain_url = f"tiered://?retry_after=0.3 | memory:// | {redis_url} | diskcache://{tmp_path}"
    codec = Codec(encryption=None, compression=None)
    keys = [f"k{i}" for i in range(6)]
    rng = random.Random(20261130)  # the operations; the faults' timing is the machine's

    async def main() -> None:
        store: AsyncSessionStore[Session] = AsyncSessionStore(
            open_async_backend(chain_url), dict, codec=codec, update_timeout=2.0
        )
        possible: dict[str, list[Session | None]] = {key: [ABSENT] for key in keys}
        outcomes = {"acknowledged": 0, "unknown": 0}
        plans = {
            key: [(rng.randrange(3), rng.choice([None, 0.002, 0.05])) for _ in range(80)]
            for key in keys
        }
        stop = asyncio.Event()

        async def nemesis() -> None:
            assert server.pid is not None
            while not stop.is_set():
                os.kill(server.pid, signal.SIGSTOP)
                await asyncio.sleep(0.35)
                os.kill(server.pid, signal.SIGCONT)
                await asyncio.sleep(0.35)

        async def writer(key: str) -> None:
            for n, (kind, timeout) in enumerate(plans[key]):
                value: Session | None
                if kind == 0:
                    value = {"key": key, "n": n}
                    call: Any = store.save(key, value)
                elif kind == 1:
                    value = ABSENT
                    call = store.delete(key)
                else:
                    value = {"key": key, "n": n, "updated": True}
                    call = store.update(key, _becomes(value))
                try:
                    await (call if timeout is None else asyncio.wait_for(call, timeout))
                except (TimeoutError, BackendUnavailableError):
                    possible[key].append(value)  # may or may not have happened
                    outcomes["unknown"] += 1
                else:
                    possible[key] = [value]  # acknowledged: what came before is over
                    outcomes["acknowledged"] += 1

        chaos = asyncio.ensure_future(nemesis())
        try:
            await asyncio.gather(*(writer(key) for key in keys))
            print(outcomes)  # shown with -s: how many operations met a fault
            assert outcomes["unknown"] >= 10 and outcomes["acknowledged"] >= 10, outcomes
        finally:
            stop.set()
            await chaos
            assert server.pid is not None
            os.kill(server.pid, signal.SIGCONT)
        # The check reads after the chaos, with the default timeout: the 0.2 s of the chain's
        # URL is for the faults, and a loaded machine can take longer than that to answer a GET.
        raw_redis = open_backend(server.url_for(prefix="h"))
        raw_disk = open_backend(f"diskcache://{tmp_path}")

        def versions(key: str) -> tuple[bytes | None, bytes | None]:
            on_redis, on_disk = raw_redis.get(key), raw_disk.get(key)
            return (
                None if on_redis is None else stamps.version_of(on_redis),
                None if on_disk is None else stamps.version_of(on_disk),
            )

        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(a != b for a, b in map(versions, keys)):
            await asyncio.sleep(0.05)  # polled until the probe has reconciled
        fresh: AsyncSessionStore[Session] = AsyncSessionStore(
            open_async_backend(chain_url), dict, codec=codec
        )
        try:
            assert {key: versions(key)[0] == versions(key)[1] for key in keys} == {
                key: True for key in keys
            }
            for key in keys:
                mine, theirs = await store.load(key), await fresh.load(key)
                assert mine == theirs, key
                assert mine in possible[key], (key, mine, possible[key])
        finally:
            await fresh.aclose()
            await store.aclose()
            raw_redis.close()
            raw_disk.close()

    asyncio.run(main())
