"""Attack (attack9, round 9): a Redis backend used after ``close()``.

Decision (attack9): using a Redis backend after ``close()`` reopens a connection, as a
``redis.Redis`` client does after its own ``close()`` (a late request on another thread during a
shutdown, a test reusing a fixture). That is not the bug. The bug is what happens next: ``close()``
was a one-shot (``_closed``), so the connection opened after the first ``close()`` was released by
no later ``close()``, only by garbage collection: the server kept the client until then. Counted
here on a real redis-server with ``CLIENT LIST``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from session_store_redis import RedisBackend
from session_store_redis.aio import AsyncRedisBackend
from session_store_redis.testing import RedisServer


def _clients(server: RedisServer, expected: int) -> int:
    """The connections a server of the test's own holds besides the one asking, once they
    reach ``expected`` (a closed socket is seen by the server on its next turn), or after 5 s."""
    with server.client() as admin:
        me = admin.client_id()
        deadline = time.monotonic() + 5
        while True:
            count = sum(1 for c in admin.client_list() if int(c["id"]) != me)
            if count == expected or time.monotonic() > deadline:
                return count
            time.sleep(0.01)


def test_a_sync_backend_used_after_close_releases_its_connection_on_the_next_close(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory()
    backend = RedisBackend.from_url(server.url_for(prefix="closed:"))
    backend.set("k", b"v")
    assert _clients(server, 1) == 1
    backend.close()
    assert _clients(server, 0) == 0
    assert backend.get("k") == b"v"  # reopens, as redis-py does
    assert _clients(server, 1) == 1
    backend.close()
    assert _clients(server, 0) == 0, "the second close() kept it"


def test_an_async_backend_used_after_aclose_releases_its_connection_on_the_next_aclose(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory()
    url = server.url_for(prefix="closed:")

    async def run() -> int:
        backend = AsyncRedisBackend.from_url(url)
        await backend.set("k", b"v")
        await backend.aclose()
        await asyncio.sleep(0)  # the transport closes on the loop's next turn
        assert await backend.get("k") == b"v"  # reopens
        await backend.aclose()
        for _ in range(3):
            await asyncio.sleep(0)
        count = await asyncio.to_thread(_clients, server, 0)
        del backend
        return count

    assert asyncio.run(run()) == 0, "the second aclose() kept it"
