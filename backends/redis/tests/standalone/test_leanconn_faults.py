"""Attack (round 6) on the lean sync Redis client (:mod:`session_store_redis.leanconn`) beside
``test_leanconn.py``'s cases: replies larger than its 64 KiB read buffer, a reply cut in the
middle (the server goes silent past the timeout, then sends the rest; or closes; or answers a
staged write's pipelined commands but its ``EXEC`` late), a database
the server refuses at connect time, and a fork while another thread is inside a call. Real
redis-servers (the suite's fixtures) and loopback sockets of the test's own; each test says
which safeguard it needs.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from session_store import BackendError, BackendUnavailableError
from session_store_redis import RedisBackend
from session_store_redis.leanconn import LeanRedis
from session_store_redis.testing import RedisServer
from session_store_redis.testing.checks import run_forked


@pytest.fixture
def server(redis_server_factory: Callable[..., RedisServer]) -> RedisServer:
    return redis_server_factory()


def test_replies_larger_than_the_read_buffer_arrive_whole_and_keep_the_connection(
    server: RedisServer,
) -> None:
    """A 3 MB session read and compare-and-set through the lean client (its buffer is 64 KiB,
    so each reply takes dozens of reads): the exact bytes, one connection for all of it, and a
    small reply after a big one is not mixed with the big one's bytes."""
    big = os.urandom(3_000_000)
    with RedisBackend.from_url(server.url_for(prefix="big"), retries=0) as backend:
        lean = backend._lean
        assert lean is not None
        backend.set("k", big)
        found = backend.get_versioned("k")
        assert found is not None and found.value == big
        assert backend.set_if("k", big[::-1], found.token)
        found = backend.get_versioned("k")
        assert found is not None and found.value == big[::-1]
        backend.set("small", b"s")
        again = backend.get_versioned("small")
        assert again is not None and again.value == b"s"
        assert lean._opened == 1


class _Listener:
    """A loopback listener that serves each connection it accepts (numbered from 1) in a
    thread of its own, with :meth:`_serve`; ``pause``: the seconds a subclass holds a reply."""

    def __init__(self, pause: float) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.pause = pause
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            number = self.connections
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        raise NotImplementedError


class HalfThenRest(_Listener):
    """A loopback listener answering every ``GET`` with a bulk reply naming its connection
    (``conn-N``); on the first connection the first reply is cut in two, the second half
    sent ``pause`` seconds later. A client that reused that connection after timing out would
    read the rest of the old reply as the answer to its next command."""

    def _serve(self, conn: socket.socket, number: int) -> None:
        first = True
        with conn:
            while data := conn.recv(65536):
                for _ in range(data.count(b"GET")):
                    body = b"conn-%d" % number + b"x" * 100
                    reply = b"$%d\r\n%s\r\n" % (len(body), body)
                    if number == 1 and first:
                        first = False
                        conn.sendall(reply[:20])
                        time.sleep(self.pause)
                        reply = reply[20:]
                    try:
                        conn.sendall(reply)
                    except OSError:
                        return


@pytest.fixture
def half() -> Iterator[HalfThenRest]:
    listener = HalfThenRest(pause=3.5)
    yield listener
    listener.sock.close()


def test_a_reply_cut_by_a_timeout_is_never_read_as_the_next_answer(half: HalfThenRest) -> None:
    """The first ``GET`` gets half its reply, then nothing within the socket timeout (1.5 s): a
    ``TimeoutError`` (not retried); the next ``GET``, sent at once, is answered on a new
    connection. Had the timed-out connection gone back to the pool, the next ``GET`` would
    have been sent on it (nothing unread on it yet, so the stale-socket check passes it) and
    read the rest of the first reply (sent 3.5 s after the first half) or timed out (needs:
    a connection that timed out is closed, never put back)."""
    client = redis.Redis(host="127.0.0.1", port=half.port, socket_timeout=1.5)
    lean = LeanRedis.of(client)
    assert lean is not None
    with pytest.raises(redis.TimeoutError):
        lean.get("k")
    answer = lean.get("k")
    assert answer is not None and answer.startswith(b"conn-2"), answer
    assert lean._opened == 1 and half.connections == 2
    lean.close()


def test_a_server_that_closes_mid_reply_is_unavailable_and_leaves_no_connection(
    server: RedisServer,
) -> None:
    """A listener that sends half a bulk reply and closes, for the lean client's ``GET`` and
    redis-py's retry alike: ``BackendUnavailableError``, and the lean pool holds nothing open
    (the half-read connection is not counted, not idle)."""
    sock = socket.create_server(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                try:
                    if conn.recv(65536):
                        conn.sendall(b"$1000\r\n" + b"y" * 400)
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        with RedisBackend.from_url(f"redis://127.0.0.1:{port}/0?retries=1") as backend:
            with pytest.raises(BackendUnavailableError, match="Connection closed by server"):
                backend.get_versioned("k")
            lean = backend._lean
            assert lean is not None and lean._opened == 0 and not lean._idle
    finally:
        sock.close()


def test_a_database_the_server_refuses_at_connect_is_an_error_and_frees_the_slot(
    server: RedisServer,
) -> None:
    """``SELECT 99`` on a server with 16 databases fails inside the lean client's connect: a
    typed error (not a hang, not a connection left counted), every time."""
    with RedisBackend.from_url(server.url_for(db=99, prefix="db"), retries=0) as backend:
        lean = backend._lean
        assert lean is not None
        for _ in range(3):
            with pytest.raises(BackendError, match="DB index is out of range"):
                backend.get_versioned("k")
        assert lean._opened == 0


def test_a_fork_while_another_thread_is_inside_a_call_gives_the_child_a_working_pool(
    server: RedisServer,
) -> None:
    """A thread holds the only lean connection (its ``GET`` sent to a SIGSTOP-ped server) when
    the main thread forks: the child's pool starts empty (its cap of one is free, not taken by
    the parent's connection) and its call works once the server resumes; the parent's call
    completes on its own connection (needs: the pool reset in the child, ``forksafe``)."""
    url = server.url_for(prefix="fork", max_connections="1", pool_timeout="5")
    with RedisBackend.from_url(url, retries=0) as backend:
        backend.set("k", b"v")
        lean = backend._lean
        assert lean is not None and server.pid is not None
        backend.get_versioned("k")  # the connection is open
        inside: list[object] = []

        def read() -> None:
            inside.append(backend.get_versioned("k"))

        os.kill(server.pid, signal.SIGSTOP)
        try:
            reader = threading.Thread(target=read)
            reader.start()
            deadline = time.monotonic() + 10
            while lean._idle:  # the reader takes the one connection
                assert time.monotonic() < deadline
                time.sleep(0.01)

            def child() -> dict[str, object]:
                found = backend.get_versioned("k")
                assert lean is not None
                return {
                    "value": None if found is None else found.value.decode(),
                    "opened": lean._opened,
                }

            def resume() -> None:
                time.sleep(0.3)  # the child is waiting on its own connection meanwhile
                assert server.pid is not None
                os.kill(server.pid, signal.SIGCONT)

            report = run_forked(child, resume)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        reader.join(10)
        assert report == {"value": "v", "opened": 1}, report
        assert len(inside) == 1 and getattr(inside[0], "value", None) == b"v"


class StallsMidTransaction(_Listener):
    """A loopback listener: on its first connection it answers a staged write's ``MULTI``,
    ``SET`` and ``EVALSHA`` (``+OK``, ``+QUEUED``, ``+QUEUED``) at once and the ``EXEC`` only
    ``pause`` seconds later; on every later connection it answers a ``GET`` with a bulk reply
    naming that connection."""

    def _serve(self, conn: socket.socket, number: int) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    if number == 1 and b"MULTI" in data:
                        conn.sendall(b"+OK\r\n+QUEUED\r\n+QUEUED\r\n")
                        time.sleep(self.pause)
                        conn.sendall(b"*2\r\n+OK\r\n:1\r\n")
                    for _ in range(data.count(b"GET")):
                        body = b"conn-%d" % number
                        conn.sendall(b"$%d\r\n%s\r\n" % (len(body), body))
            except OSError:
                return


def test_a_staged_write_cut_by_a_timeout_leaves_no_reply_for_the_next_call() -> None:
    """The staged compare-and-set's four replies come in part (``MULTI``, ``SET`` and
    ``EVALSHA`` answered, ``EXEC`` late): ``TimeoutError`` (its outcome is unknown, never
    retried), and the next ``GET``, sent at once, runs on a new connection; on the old one it
    would have read the late ``EXEC`` reply as its answer (needs: ``staged_write`` closes a
    connection it did not read to the end)."""
    from session_store_redis.staged import STAGED_CAS_SCRIPT, STAGED_CAS_SHA, staged_write

    listener = StallsMidTransaction(pause=3.5)
    try:
        client = redis.Redis(host="127.0.0.1", port=listener.port, socket_timeout=1.5)
        lean = LeanRedis.of(client)
        assert lean is not None
        run = (STAGED_CAS_SCRIPT, STAGED_CAS_SHA, "k", b"k\xff:staged-write", b"new", None)
        with pytest.raises(redis.TimeoutError):
            staged_write(lean, *run, (b"old", b"", -1))  # type: ignore[arg-type]
        answer = lean.get("k")
        assert answer == b"conn-2", answer
        assert lean._opened == 1
        lean.close()
    finally:
        listener.sock.close()


def test_refused_credentials_never_use_up_a_one_connection_pool(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """A pool of one connection (``max_connections=1``, a 1 s ``pool_timeout``) and a password
    the server refuses: every call is the credentials error at once, never "No connection
    available" after a wait (a slot taken by a failed ``AUTH`` and not given back), and the
    lean pool holds nothing after (needs: a failed connect frees its slot)."""
    server = redis_server_factory(password="right")
    url = f"redis://:wrong@127.0.0.1:{server.port}/0?prefix=auth&max_connections=1&pool_timeout=1"
    with RedisBackend.from_url(url, retries=0) as backend:
        lean = backend._lean
        assert lean is not None
        for _ in range(4):
            with pytest.raises(BackendError, match="credentials") as raised:
                backend.get_versioned("k")
            assert "No connection available" not in str(raised.value)
        assert lean._opened == 0 and not lean._idle
