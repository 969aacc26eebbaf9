"""``update`` over Redis, alone or as a chain's arbiter, when the server pauses (``SIGSTOP``: a
long fork, a swapped-out VM, a stopped container) after the update's read and before its
compare-and-set is answered.

The compare-and-set was sent whole before the socket timeout, so the paused server holds it in
its socket buffer and runs it when it resumes: ``update`` raised ``BackendUnavailableError``
(``the chain's arbiter is unavailable, cannot set_if``), yet its result is what every reader sees
afterwards. README ("raises ``BackendUnavailableError`` (nothing written) rather than guess")
and docs/guarantees.md ("arbiter (Redis) killed, paused or absent ... ``update``:
``BackendUnavailableError``, nothing written") promised otherwise: a caller trusting them
retries the update and applies its function twice. The docs now say what holds (nothing
written when the arbiter could not be reached; a timeout leaves the outcome unknown until
read). Found by attack7 (round 7): the pause is made deterministic by sending ``SIGSTOP`` from
the update's own function, which runs between the read and the compare-and-set.

Real redis-server (its own, stopped and continued by its pid), real diskcache directory.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from session_store import BackendUnavailableError, SessionStore
from session_store_redis.testing import RedisServer


@pytest.mark.parametrize("shape", ["redis", "memory|redis|diskcache"])
def test_an_update_that_timed_out_in_a_pause_lands_when_the_server_resumes(
    shape: str, tmp_path: Path
) -> None:
    with RedisServer(directory=tmp_path / "redis") as server:
        pid = server.pid
        assert pid is not None
        redis_url = f"redis://127.0.0.1:{server.port}/0?socket_timeout=0.5&prefix=pause:"
        url = (
            redis_url if shape == "redis" else f"memory:// | {redis_url} | diskcache://{tmp_path}/d"
        )
        store: SessionStore[dict[str, Any]] = SessionStore(url, dict, ttl=600)
        with store:
            store.save("k", {"n": 0})
            store.update("k", lambda s: {"n": 0})  # the scripts are in the server's cache

            def pause_then_increment(current: dict[str, Any] | None) -> dict[str, Any]:
                os.kill(pid, signal.SIGSTOP)  # after the read, before the write
                return {"n": (current or {"n": 0})["n"] + 1}

            try:
                with pytest.raises(BackendUnavailableError):
                    store.update("k", pause_then_increment)
            finally:
                os.kill(pid, signal.SIGCONT)
        with server.client() as admin:
            admin.ping()  # resumed: what it held in its socket buffer has run
        fresh: SessionStore[dict[str, Any]] = SessionStore(url, dict, ttl=600)
        with fresh:
            assert fresh.load("k") == {"n": 1}, "the update reported unavailable did land"
