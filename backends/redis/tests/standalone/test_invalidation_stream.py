"""The invalidation stream's reader: every message arrives, in bulk, over TCP and TLS, with or
without hiredis, and a batch gathered during the pause after another is handed over whole.

The stream reads its socket with one ``recv`` and parses what arrived with hiredis at once, then
waits :data:`~session_store_redis.invalidation.COALESCE` before it reads again (one wake-up for
the messages of a steady writer, not one per write). These tests drive it with a real
redis-server and a second client writing, and check the listener was told every key.
"""

from __future__ import annotations

import time
from functools import partial

from session_store_redis import RedisBackend, invalidation
from session_store_redis.testing import RedisServer
from session_store_redis.testing.streams import FLUSHED_DB
from session_store_redis.testing.streams import StreamRecorder as Recorder


def test_every_write_of_a_steady_writer_is_reported(
    opened: tuple[RedisBackend, Recorder], stream_server: RedisServer, redis_namespace: str
) -> None:
    """Another client writes 3,000 keys as fast as it can (messages arrive many per read):
    the listener is told every one of them, in fewer calls than writes."""
    _backend, recorder = opened
    names = [f"k{i}" for i in range(3000)]
    with RedisBackend.from_url(stream_server.url_for(prefix=redis_namespace)) as writer:
        for name in names:
            writer.set(name, b"v")
    assert recorder.wait_for(lambda: recorder.seen >= set(names)), len(recorder.seen)
    assert recorder.batches < len(names)


def test_a_write_after_a_pause_is_reported_at_once(
    opened: tuple[RedisBackend, Recorder], stream_server: RedisServer, redis_namespace: str
) -> None:
    """A lone write (the stream idle) is handed over without waiting for company, and a flush
    arrives as ``None``."""
    _backend, recorder = opened
    with RedisBackend.from_url(stream_server.url_for(prefix=redis_namespace)) as writer:
        lags: list[float] = []
        for i in range(20):
            time.sleep(invalidation.COALESCE * 2)  # the stream is idle again
            started = time.monotonic()
            writer.set(f"lone{i}", b"v")
            assert recorder.wait_for(partial(recorder.seen.__contains__, f"lone{i}"))
            lags.append(time.monotonic() - started)
        with stream_server.client(db=FLUSHED_DB) as admin:  # any database's flush is reported
            admin.flushdb()
    assert recorder.wait_for(lambda: recorder.flushes >= 1)
    assert sorted(lags)[len(lags) // 2] < 0.05  # the median, on a loaded 2-core machine


def test_the_stream_stays_up_past_the_health_check_interval(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """The stream's pings must not trigger redis-py's own health check (a ``PING`` answered
    through redis-py's parser, which on a subscribed connection reads the stream's messages
    and fails on its ``pong``): the stream would drop and flush the near cache every
    ``health_check_interval`` (30 s by default; 0.2 s here). (Failed before: reconnected.)"""
    url = redis_server.url_for(prefix=redis_namespace, health_check_interval="0.2")
    backend = RedisBackend.from_url(url)
    connects: list[float] = []

    class Counting(Recorder):
        def on_connected(self) -> None:
            connects.append(time.monotonic())
            super().on_connected()

    recorder = Counting()
    stream = backend.invalidations("", recorder)
    try:
        assert recorder.connected.wait(10)
        with RedisBackend.from_url(redis_server.url_for(prefix=redis_namespace)) as writer:
            deadline = time.monotonic() + 1.5  # pings every 0.25 s: several health checks due
            i = 0
            while time.monotonic() < deadline:
                writer.set(f"w{i}", b"v")
                i += 1
                time.sleep(0.01)
        assert recorder.wait_for(lambda: len(recorder.seen) == i), (len(recorder.seen), i)
        assert len(connects) == 1
    finally:
        stream.close()
        backend.close()
