"""One staging key per connection (:mod:`session_store_redis.staged`).

A staged write sends ``MULTI``, ``SET <staging key> <value>``, the script that ``RENAME``-s the
staging key over the session's key, ``EXEC``. Under an ACL refusing ``MULTI`` the ``SET`` and
the script run one by one, so two writers sharing a staging key can interleave as ``SET A``,
``SET B``, script A, and A's key receives B's session (attack9, with processes:
``test_attack9_staged_unqueued_race.py``). A key per *backend* would not do: the threads of one
backend stage their first writes at once too, each on a connection of its own (shown here with
threads of one store: failed with the shared key, 3 to 4 of 4 sessions swapped). So the staging
key is the namespace's base name plus a random tag made once per connection: an unqueued ``SET``
can only be consumed by the script sent after it on the same connection.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import redis

from session_store import SessionStore, stamps
from session_store.ttl import NO_EXPIRY
from session_store_redis import RedisBackend
from session_store_redis.staged import (
    MOVE_AFTER_SCRIPT,
    MOVE_AFTER_SHA,
    STAGED_CAS_SCRIPT,
    connection_staging_key,
    staged_write,
    staging_key,
)
from session_store_redis.testing import RedisServer
from session_store_redis.testing.checks import unread_bytes

THREADS = 4
PAD_BYTES = 200_000  # above 32 KiB: Redis reads the SET's value in several passes


def _wait_until_sent(port: int, total: int) -> None:
    """Until ``total`` bytes are queued to the server on ``port``, or the queue has not grown
    for 0.3 s (the threads sent what the sockets take: every writer then waits for a reply)."""
    deadline = time.monotonic() + 30
    queued, still = 0, time.monotonic()
    while queued < total and time.monotonic() - still < 0.3:
        assert time.monotonic() < deadline, "the writes were not sent"
        time.sleep(0.002)
        now = unread_bytes(port)
        if now > queued:
            queued, still = now, time.monotonic()


def _staging_keys(client: redis.Redis, head: str) -> list[bytes]:
    """Every staging key of the namespace whose stored keys begin with ``head``."""
    return [
        k for k in client.keys(b"*") if isinstance(k, bytes) and k.startswith(staging_key(head))
    ]


def _round(server: RedisServer, url: str) -> tuple[list[str], list[BaseException]]:
    """A fresh store (its first large write is staged); ``THREADS`` threads each update their
    own session to a large one at once, sent in full while the server is paused. What each key
    holds afterwards that is not its own thread's session, and the errors the threads met."""
    ready = threading.Barrier(THREADS + 1)
    paused = threading.Event()
    errors: list[BaseException] = []
    with SessionStore(url, dict, ttl=600) as store:  # (with an expiry: staged)

        def writer(number: int) -> None:
            pad = str(number) * PAD_BYTES

            def change(current: dict[str, Any] | None) -> dict[str, Any]:
                ready.wait(30)
                paused.wait(30)
                return {"who": number, "pad": pad}

            try:
                store.save(f"s{number}", {"who": number})
                store.update(f"s{number}", change)
            except BaseException as exc:  # recorded; a failed write may say so
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        ready.wait(30)
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)  # a stall, during which every thread sends its
        try:  # whole staged write
            paused.set()
            _wait_until_sent(server.port, THREADS * PAD_BYTES)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        for thread in threads:
            thread.join(60)
    wrong: list[str] = []
    with SessionStore(url, dict, ttl=NO_EXPIRY) as reader:  # what Redis holds
        for number in range(THREADS):
            held = reader.load(f"s{number}")
            who = None if held is None else held.get("who")
            pad = None if held is None else str(held.get("pad", ""))[:1]
            if who != number or pad != str(number):  # (a failed update leaves no pad)
                wrong.append(f"s{number} holds who={who} pad={pad}")
    return wrong, errors


def test_threads_of_one_backend_staging_their_first_writes_at_once_never_swap_sessions(
    tmp_path: Path,
) -> None:
    with RedisServer(directory=tmp_path) as server:
        with server.client() as admin:
            admin.execute_command(
                "ACL", "SETUSER", "nomulti", "on", ">secret", "~*", "&*", "+@all", "-multi"
            )
            admin.script_load(STAGED_CAS_SCRIPT)  # cached: the unqueued EVALSHA runs at once
        url = f"redis://nomulti:secret@127.0.0.1:{server.port}/0?prefix=acl:&socket_timeout=60"
        outcomes = [_round(server, url) for _ in range(3)]
        with server.client() as admin:
            left = _staging_keys(admin, "acl:\x1f")
        assert all(not wrong for wrong, _ in outcomes), outcomes
        assert left == []


def test_each_connection_stages_under_its_own_key_and_leaves_none(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """Two connections of one pool stage under two keys, each the namespace's base name and a
    tag of the connection's own, kept for the connection's life (seen with ``MONITOR``: the
    ``SET`` and the script of each write name the key of the connection it ran on); every
    write renames its key away."""
    backend = RedisBackend.from_url(redis_server.url_for(prefix=redis_namespace))
    head = backend.namespace.scan_head()
    base = staging_key(head)
    client: Any = backend._lean or backend._client
    pool = client.connection_pool
    first, second = pool.get_connection(), pool.get_connection()
    mine = [connection_staging_key(first, base), connection_staging_key(second, base)]
    pool.release(second)
    pool.release(first)
    stored = backend.namespace.encode("k")

    def write() -> None:
        data = stamps.frame(b"v" * 100, stamps.clock.now(), None)
        run = (MOVE_AFTER_SCRIPT, MOVE_AFTER_SHA, stored, base, data, None)
        assert staged_write(client, *run) == data[stamps.VERSION_START : stamps.VERSION_END]

    write()  # the script loaded
    with redis_server.client() as watcher, watcher.monitor() as monitor:
        write()  # on the connection released last
        held = pool.get_connection()  # that one busy: the next write takes the other
        write()
        pool.release(held)
        with redis_server.client() as pinger:
            pinger.echo("end-of-test")
        staged: list[bytes] = []
        for event in monitor.listen():
            command = str(event["command"])
            if "end-of-test" in command:
                break
            if command.startswith(("SET ", "EVALSHA ")):
                staged.append(command.encode("latin-1", "backslashreplace"))
    named = [[key for key in mine if repr(key)[2:-1].encode() in line] for line in staged]
    assert len(staged) == 4 and all(len(keys) == 1 for keys in named), (staged, mine)
    assert named[0] == named[1] and named[2] == named[3] and named[0] != named[2], named
    assert mine[0] != mine[1] and all(k.startswith(base) and len(k) > len(base) for k in mine)
    with redis_server.client() as admin:
        assert _staging_keys(admin, head) == []
    backend.close()


def test_the_staging_key_is_dropped_after_a_refused_script(tmp_path: Path) -> None:
    """Under an ACL refusing ``RENAME``, the script stops after the ``SET`` of the connection's
    staging key: that connection deletes it (the backend stages no more), and the write lands
    with the one-script text."""
    with RedisServer(directory=tmp_path) as server:
        with server.client() as admin:
            admin.execute_command(
                "ACL", "SETUSER", "norename", "on", ">secret", "~*", "&*", "+@all", "-rename"
            )
        url = f"redis://norename:secret@127.0.0.1:{server.port}/0?prefix=acl:"
        backend = RedisBackend.from_url(url)
        data = stamps.frame(b"v" * 100, stamps.clock.now(), None)
        kw = {"head": len(stamps.MAGIC), "start": stamps.VERSION_START}
        end = {"end": stamps.VERSION_END, "clock_end": stamps.VERSION_START + 8}
        version = data[stamps.VERSION_START : stamps.VERSION_END]
        assert backend.set_after("k", data, 60, **kw, **end) == version
        assert backend.get("k") == data and not backend._stage
        with server.client() as admin:
            assert _staging_keys(admin, "acl:\x1f") == []
        backend.close()
