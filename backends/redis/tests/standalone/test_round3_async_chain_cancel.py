"""Round 3 attack on the async chain's cancellation promise (docs/async.md: "A cancelled
``save``, ``delete`` or ``update`` is on every tier or on none"), with its arbiter *stopped*:
``memory:// | redis://...?socket_timeout=0.3 | diskcache://...`` on a redis-server of the test's
own, paused with ``SIGSTOP`` while twelve writes are cancelled by ``asyncio.wait_for`` after 1 to
12 ms (no reply can come: the cancellation always lands while a tier call is in flight), then
continued. The existing check (tests/aio/test_tiered_chain.py) cancels against a running server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from session_store import Codec, open_backend, stamps
from session_store.aio import AsyncSessionStore, open_async_backend
from session_store_redis.testing import RedisServer

ServerFactory = Callable[..., RedisServer]
Session = dict[str, Any]


def test_writes_cancelled_while_the_arbiter_is_stopped_end_on_every_tier_or_none(
    redis_server_factory: ServerFactory, tmp_path: Path
) -> None:
    """What held: every cancelled write raised ``TimeoutError`` to its caller; once the server
    runs again and the chain's probe has brought it up to date, Redis and the disk hold the
    same version of every key, each key holds its old value or the cancelled write's whole
    result (``save``: ``{v: 1}``; ``delete``: absent; ``update``: ``{v: 10}``), and the
    cancelling process's chain and a fresh one read the same."""
    server = redis_server_factory()
    redis_url = server.url_for(prefix="c") + "&socket_timeout=0.3"
    chain_url = f"memory:// | {redis_url} | diskcache://{tmp_path / 'disk'}"
    keys = [f"k{i}" for i in range(12)]
    allowed: dict[str, tuple[Session | None, ...]] = {}
    for i, key in enumerate(keys):
        allowed[key] = ({"v": 0}, ({"v": 1}, None, {"v": 10})[i % 3])
    codec = Codec(encryption=None, compression=None)

    async def main() -> None:
        store: AsyncSessionStore[Session] = AsyncSessionStore(
            open_async_backend(chain_url), dict, codec=codec
        )
        for key in keys:
            await store.save(key, {"v": 0})

        async def cancelled(i: int, key: str) -> str:
            calls: list[Callable[[], Any]] = [
                lambda: store.save(key, {"v": 1}),
                lambda: store.delete(key),
                lambda: store.update(key, lambda s: {"v": (s or {"v": 0})["v"] + 10}),
            ]
            try:
                await asyncio.wait_for(calls[i % 3](), 0.001 * (i + 1))
            except TimeoutError:
                return "cancelled"
            return "completed"  # cannot happen while the server is stopped

        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)
        try:
            outcomes = await asyncio.gather(*(cancelled(i, k) for i, k in enumerate(keys)))
        finally:
            os.kill(server.pid, signal.SIGCONT)
        assert set(outcomes) == {"cancelled"}
        raw_redis = open_backend(redis_url)
        raw_disk = open_backend(f"diskcache://{tmp_path / 'disk'}")

        def disagreeing() -> list[str]:
            out = []
            for key in keys:
                on_redis, on_disk = raw_redis.get(key), raw_disk.get(key)
                if (on_redis and stamps.version_of(on_redis)) != (
                    on_disk and stamps.version_of(on_disk)
                ):
                    out.append(key)
            return out

        deadline = time.monotonic() + 10  # the probe timer runs retry_after (1 s) after
        while disagreeing() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # polled until reconciled, never a race window
        assert disagreeing() == []
        fresh: AsyncSessionStore[Session] = AsyncSessionStore(
            open_async_backend(chain_url), dict, codec=codec
        )
        try:
            for key in keys:
                mine, theirs = await store.load(key), await fresh.load(key)
                assert mine == theirs, key
                assert mine in allowed[key], (key, mine)
        finally:
            await fresh.aclose()
            await store.aclose()
            raw_redis.close()
            raw_disk.close()

    asyncio.run(main())
