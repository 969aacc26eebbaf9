"""Why a chain's invalidation stream does not use ``CLIENT TRACKING ... NOLOOP``.

Every save through a chain makes Redis push the key's invalidation to the writing process's
own listener (the stream reports every client's writes), which costs Redis a message and the
writer a wake-up of its listener thread. ``NOLOOP`` on the *writing* connection's tracking
would spare the writer its own writes, but on the Redis this project runs (7.0) it filters only
commands the tracking client runs itself: a write made inside ``MULTI``/``EXEC`` or by a Lua
script is attributed to the transaction or the script, not to the connection, and is pushed all
the same. The chain's ordered writes are exactly that (a staged ``MULTI``, ``SET``, ``EVALSHA``,
``EXEC``; or one ``EVALSHA``), so ``NOLOOP`` would save nothing on the save path while it adds
what a redesign of the stream would need (tracking registered by a data connection that must
stay alive, one per process). This test pins the server behaviour the decision rests on; if it
fails, a newer Redis filters scripted writes too and the design is worth revisiting
(docs/performance.md, "Chain save cost").
"""

from __future__ import annotations

import time
from typing import Any

import redis

from session_store import stamps
from session_store_redis.ordered_scripts import SET_AFTER_SCRIPT
from session_store_redis.staged import MOVE_AFTER_SCRIPT, staging_key
from session_store_redis.testing import RedisServer


def _drain(connection: Any) -> list[bytes]:
    """The keys of every invalidation message waiting on the subscribed ``connection``."""
    time.sleep(0.05)  # (loopback: a message arrives within a millisecond)
    keys: list[bytes] = []
    while connection.can_read(timeout=0.02):
        reply = connection.read_response()
        if reply[0] == b"message" and reply[2] is not None:
            keys.extend(reply[2])
    return keys


def test_noloop_does_not_spare_a_writer_its_own_ordered_writes(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    url = redis_server.url_for()
    listener = redis.Redis.from_url(url, protocol=2)
    writer = redis.Redis.from_url(url, protocol=2, single_connection_client=True)
    other = redis.Redis.from_url(url, protocol=2)
    subscribed: Any = listener.connection_pool.get_connection()  # (partly untyped)
    try:
        subscribed.send_command("CLIENT", "ID")
        listener_id = subscribed.read_response()
        subscribed.send_command("SUBSCRIBE", "__redis__:invalidate")
        assert subscribed.read_response()[0] == b"subscribe"
        prefix = redis_namespace.encode()
        track: Any = writer.execute_command  # (untyped in redis-py)
        track(
            "CLIENT", "TRACKING", "ON", "REDIRECT", listener_id, "BCAST", "PREFIX", prefix, "NOLOOP"
        )
        framed = stamps.frame(b"session", stamps.clock.now(), 60)

        writer.set(prefix + b"plain", framed)  # a plain command: NOLOOP filters it
        assert _drain(subscribed) == []

        staging = staging_key(redis_namespace)
        staged = writer.pipeline(transaction=True)  # what staged.staged_write sends
        staged.set(staging, framed, px=60_000)
        staged.eval(MOVE_AFTER_SCRIPT, 2, prefix + b"staged", staging, framed[:16])
        staged.execute()
        assert prefix + b"staged" in _drain(subscribed), "NOLOOP now filters MULTI/EXEC"

        head, start, end = len(stamps.MAGIC), stamps.VERSION_START, stamps.VERSION_END
        args = (framed, 60_000, head, start + 1, end, start + 8)
        writer.eval(SET_AFTER_SCRIPT, 1, prefix + b"scripted", *args)  # the one-script form
        assert _drain(subscribed) == [prefix + b"scripted"], "NOLOOP now filters scripts"

        other.set(prefix + b"other", b"v")  # another client's write: reported, as it must be
        assert _drain(subscribed) == [prefix + b"other"]
    finally:
        subscribed.disconnect()
        for client in (listener, writer, other):
            client.close()
