"""The primary of a real Sentinel set-up is killed with SIGKILL; the sentinels promote the replica.

The test gets a set-up of its own (a primary, a replica, three sentinels,
``down-after-milliseconds`` 1000), so the session's shared one is never broken. It shows that

* every write acknowledged with ``wait_replicas=1`` (by the primary *and* the replica) before the
  kill is still there afterwards, read through a fresh backend;
* reads and writes resume once the sentinels have promoted the replica: each new connection asks
  a sentinel where the primary is;
* writes that must be acknowledged by a replica resume once the killed server is back as a replica
  of the promoted one: until then they fail with ``BackendUnavailableError`` instead of
  pretending.

The measured pause is printed (``pytest -s``) and bounded here; docs/scale-out.md states it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

import pytest

from session_store import BackendError, SessionBackend, open_backend
from session_store_redis.testing import RedisSentinelSet
from session_store_redis.testing.cluster import wait_until
from session_store_redis.testing.failover import (
    FAILOVER_OPTIONS,
    FailoverLog,
    Resumed,
    assert_kept,
    write_again,
)

SentinelFactory = Callable[..., RedisSentinelSet]


@pytest.mark.slow
def test_killing_the_primary_loses_no_acknowledged_write(
    redis_sentinel_factory: SentinelFactory,
) -> None:
    sentinels = redis_sentinel_factory(down_after_ms=1000)
    acked = open_backend(sentinels.url_for(prefix="f:", wait_replicas="1") + FAILOVER_OPTIONS)
    plain = open_backend(sentinels.url_for(prefix="f:") + FAILOVER_OPTIONS)
    fresh_keys = (f"key-{n}" for n in itertools.count())
    expected: dict[str, bytes] = {}
    log = FailoverLog()  # refused writes after the restart; printed if the test fails
    with log.explained(lambda: sentinels.url_for(prefix="f:"), expected):
        _kill_the_primary(sentinels, acked, plain, fresh_keys, expected, log)
        assert_kept(sentinels.url_for(prefix="f:"), expected, only=True, maybe=log.maybe)


def _kill_the_primary(
    sentinels: RedisSentinelSet,
    acked: SessionBackend,
    plain: SessionBackend,
    fresh_keys: Iterator[str],
    expected: dict[str, bytes],
    log: FailoverLog,
) -> None:
    old_primary = sentinels.primary()
    replica = sentinels.replicas()[0]
    try:
        for _ in range(200):  # acknowledged by the replica, up to the very moment of the kill
            log.until_ok("acknowledged write before the kill", fresh_keys, acked.set, expected)
        assert plain.get_many(expected) == expected  # a running app: connected
        first = next(iter(expected))
        old_primary.kill()
        log.note(f"SIGKILL of the primary {old_primary.port}")
        resumed = Resumed("write", "read")
        while resumed.waiting():
            key = next(fresh_keys)  # a fresh key per attempt: a failed write leaves no doubt
            try:
                plain.set(key, key.encode())
                expected[key] = key.encode()
                resumed.ok("write")
                log.ok("write after the kill")
            except BackendError as exc:
                log.refused_with("write after the kill", exc)
            try:
                assert plain.get(first) == expected[first]
                resumed.ok("read")
                log.ok("read after the kill")
            except BackendError as exc:
                log.refused_with("read after the kill", exc)
            time.sleep(0.02)
        resumed.check("sentinel failover")
        # promoted; the backend may have followed the leader's announcement before the sentinel
        # the test asks has switched (its configuration spreads within a hello period, 2 s)
        wait_until("the sentinels to name the replica", lambda: sentinels.primary() is replica, 10)

        # Writes acknowledged by a replica need one: the killed server returns as the new one's.
        restarted = time.monotonic()
        old_primary.restart()
        sentinels.rejoin(old_primary)
        log.note(f"{old_primary.port} restarted, rejoined as a replica")
        write_again(acked, fresh_keys, expected, restarted, log)
    finally:
        acked.close()
        plain.close()
