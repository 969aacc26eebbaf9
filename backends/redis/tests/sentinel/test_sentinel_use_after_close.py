"""A Sentinel backend used after ``close()`` (attack9's finding on the standalone backend,
``tests/standalone/test_attack9_use_after_close.py``, which the Sentinel backend shared).

A use after ``close()`` reopens a connection, as redis-py does (a late request on another
thread during a shutdown). ``RedisSentinelBackend.close()`` was a one-shot (``_closed``): no
later ``close()`` released that connection, only garbage collection did, and the primary kept
the client until then. Counted here with ``CLIENT LIST`` on the shared Sentinel set-up's primary,
by a client name of this test's own.
"""

from __future__ import annotations

import time
import uuid

from session_store_redis import RedisSentinelBackend
from session_store_redis.testing import RedisSentinelSet


def _named(sentinels: RedisSentinelSet, name: str, expected: int) -> int:
    """The primary's connections named ``name``, once they reach ``expected`` (a closed
    socket is seen by the server on its next turn), or after 5 s."""
    with sentinels.primary().client() as admin:
        deadline = time.monotonic() + 5
        while True:
            count = sum(1 for c in admin.client_list() if c.get("name") == name)
            if count == expected or time.monotonic() > deadline:
                return count
            time.sleep(0.01)


def test_a_sentinel_backend_used_after_close_releases_its_connection_on_the_next_close(
    redis_sentinel: RedisSentinelSet, redis_sentinel_namespace: str
) -> None:
    name = f"use-after-close-{uuid.uuid4().hex[:8]}"
    url = redis_sentinel.url_for(prefix=f"{redis_sentinel_namespace}closed:")
    backend = RedisSentinelBackend.from_url(url)
    backend.client.connection_pool.connection_kwargs["client_name"] = name  # before connecting
    backend.set("k", b"v")
    assert _named(redis_sentinel, name, 1) == 1
    backend.close()
    assert _named(redis_sentinel, name, 0) == 0
    assert backend.get("k") == b"v"  # reopens, as redis-py does
    assert _named(redis_sentinel, name, 1) == 1
    backend.close()
    assert _named(redis_sentinel, name, 0) == 0, "the second close() kept it"
