"""Issue 12's visibility bounds on the async chain, across real processes.

Another process loads one session in a loop through its own async chain
(:class:`~session_store.aio.AsyncSessionStore` on ``memory | redis | diskcache``) and reports
each new value with the start of the last load that still returned the one before; this process
saves new values through its own async chain. With the invalidation stream up (the async Redis
backend's, the sync backend's thread-based stream) a save is seen within 50 ms (median; the max
within ``max_staleness``, as for the sync chain, whose test explains why), and no load that began
after the reader handled the save's invalidation returns the older value; with the reader's
Redis user unable to subscribe or track, within 1 s (the version check).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from session_store.aio import AsyncSessionStore, AsyncTieredBackend
from session_store_redis.testing import RedisServer

from . import visibility
from .nemesis import chain_url

TRIES = int(os.environ.get("SESSION_STORE_VISIBILITY_TRIES", "200")) // 2
TRIES_DOWN = int(os.environ.get("SESSION_STORE_VISIBILITY_TRIES_DOWN", "20")) // 2


def staleness_ms(writer_url: str, reader_url: str, tries: int, patience: float) -> visibility.Lags:
    """:func:`.visibility.staleness_ms` of saves through an async store on ``writer_url``,
    watched by a process loading through its own async chain."""
    with asyncio.Runner() as runner:
        store: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(writer_url, dict)
        assert isinstance(store.backend, AsyncTieredBackend)
        lags = visibility.staleness_ms(
            lambda token: runner.run(store.save("seen", {"t": token})),
            visibility.ASYNC_WATCHER,
            reader_url,
            tries,
            patience,
        )
        runner.run(store.aclose())
    return lags


@pytest.mark.slow
def test_a_save_is_seen_by_another_async_process_within_50_ms(
    redis_server: RedisServer, redis_namespace: str, tmp_path: Path
) -> None:
    url = chain_url(redis_server.url_for(prefix=redis_namespace), tmp_path / "disk")
    lags = staleness_ms(url, url, TRIES, patience=visibility.HUNG)
    # The p95 is the machine's (a message's delivery to a starved thread; the sync test saw
    # 67 ms under the parallel suite): printed, not bounded. What the chain promises is checked
    # per save: no load that began after the watcher handled the save's invalidation was stale.
    visibility.check_with_stream("async visibility", lags, TRIES)


@pytest.mark.slow
def test_a_save_is_seen_by_another_async_process_within_1_s_without_invalidations(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    writer, reader = visibility.without_stream(redis_server_factory(), tmp_path / "disk")
    lags = staleness_ms(writer, reader, TRIES_DOWN, patience=visibility.HUNG)
    visibility.check_without_stream("async visibility", lags, TRIES_DOWN)
