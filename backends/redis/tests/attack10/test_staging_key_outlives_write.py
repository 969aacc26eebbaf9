"""Attack (attack10): can a per-connection staging key (``<head>\\xff:staged-write:<16 hex>``,
swap9) outlive its write?

A staged write is ``MULTI``, ``SET <staging key> <value> [PX ttl]``, ``EVALSHA``, ``EXEC``. When
the server does not know the script (restarted, ``SCRIPT FLUSH``ed: every deploy that restarts
Redis), ``EXEC`` runs the ``SET`` and answers ``NOSCRIPT`` for the script; the client then
sends the same transaction with ``EVAL``, which moves the value and removes the staging key. A
client that dies between the two (kill -9 of a worker during a deploy, a connection reset)
leaves the staging key holding the session's bytes: until the session's TTL, or for good for a
session without one. Every dead connection had its own tag, so each such death leaves another
key (with one shared staging key, the previous design, the next write replaced it).

Real processes: a redis-server of the test's own, paused with SIGSTOP while a child process's
staged compare-and-set is on its way (``unread_bytes``), the child killed with SIGKILL, the
server resumed; the history is the server's keys afterwards. The same for ``session-store ls``
and ``keys()``: they must not list a staging key (held: see the last test).

Fixed (stage10): a write without an expiry never stages (``staged.can_stage``: the value passes
through Lua, no staging key exists), so the first test passes (it was a strict xfail on the
tree before, 3 staging keys of PTTL -1 left); a write with one still stages, and the key its
death leaves expires no later than the write's TTL (the second test).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from session_store import NO_EXPIRY, SessionStore
from session_store_redis import RedisBackend
from session_store_redis.testing import RedisServer
from session_store_redis.testing.checks import unread_bytes

_CHILD = """
import sys
from session_store_redis import RedisBackend
backend = RedisBackend.from_url(sys.argv[1])
ttl = float(sys.argv[2]) if len(sys.argv) > 2 else None
backend.set("alice", b"before")
read = backend.get_versioned("alice")
backend.get("warm")  # the lean connection open before the server is paused
print("ready", flush=True)
sys.stdin.readline()
# a compare-and-set of at least 1024 bytes: staged
backend.set_if("alice", b"s3cret-session-bytes " * 100, read.token, ttl)
print("done", flush=True)
"""


def _die_mid_staged_write(server: RedisServer, url: str, ttl: float | None = None) -> None:
    """One child's compare-and-set (with the expiry ``ttl``, seconds) sent to the paused server,
    the child killed, the server resumed (which then runs what it was sent)."""
    with server.client() as admin:
        admin.script_flush()  # as after a restart: the script is unknown
        admin.delete("leak:\x1falice")
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, url, *([] if ttl is None else [str(ttl)])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        child.stdin.write("go\n")
        child.stdin.flush()
        deadline = time.monotonic() + 10
        while unread_bytes(server.port) < 2000:  # the whole transaction is on its way
            assert time.monotonic() < deadline, "the child's write never left"
            time.sleep(0.005)
        child.kill()
        child.wait(10)
    finally:
        os.kill(server.pid, signal.SIGCONT)
    with server.client() as admin:
        admin.ping()  # the server has run what the dead client sent


def _staging_keys(server: RedisServer) -> dict[bytes, int]:
    with server.client() as admin:
        return {
            key: admin.pttl(key) for key in admin.scan_iter(match=b"leak:*") if b"staged" in key
        }


def test_a_client_killed_mid_staged_write_leaves_no_staging_key(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """A write without an expiry: nothing is staged, so a death mid-write leaves no key (was a
    strict xfail: 3 keys of PTTL -1 after 3 deaths)."""
    server = redis_server_factory()
    url = server.url_for(prefix="leak:")
    for _ in range(3):
        _die_mid_staged_write(server, url)
    left = _staging_keys(server)
    assert left == {}, f"{len(left)} staging keys outlived their writes (PTTL -1: forever): {left}"
    with server.client() as admin:  # its one EVALSHA met NOSCRIPT: nothing written, as staged
        assert admin.get("leak:\x1falice") == b"before"


def test_a_client_killed_mid_staged_write_with_a_ttl_leaves_a_key_that_expires_with_it(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """A write with an expiry still stages; the key a death leaves carries the write's own TTL
    (a PTTL no longer than it), so it cannot outlive the session it copies."""
    server = redis_server_factory()
    url = server.url_for(prefix="leak:")
    _die_mid_staged_write(server, url, ttl=30.0)
    left = _staging_keys(server)
    assert len(left) == 1, left  # staged (the TTL'd path is unchanged)
    assert all(0 < pttl <= 30_000 for pttl in left.values()), left


def test_staging_keys_are_never_listed_as_sessions(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """Held: whatever staging keys are left, ``keys()`` and ``scan`` list only sessions."""
    server = redis_server_factory()
    url = server.url_for(prefix="leak:")
    _die_mid_staged_write(server, url, ttl=30.0)  # only a write with a TTL stages
    assert _staging_keys(server), "no staging key was left to list"
    backend = RedisBackend.from_url(url)
    store: SessionStore[dict[str, str]] = SessionStore(backend, dict, ttl=NO_EXPIRY)
    store.save("bob", {"a": "b"})
    # "alice": the dead child's own key (its value raw bytes, not a session)
    assert set(backend.scan()) == {"alice", "bob"}
    assert set(store.keys()) == {"alice", "bob"}
    listed = subprocess.run(
        [sys.executable, "-c", "from session_store.cli import main; main()", "ls", "--all", url],
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert "bob" in listed.stdout
    assert "staged" not in listed.stdout + listed.stderr, listed.stdout
    backend.close()
