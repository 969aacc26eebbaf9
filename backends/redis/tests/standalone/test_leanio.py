"""The lean client's large-value paths (:mod:`session_store_redis.leanio`, issue 17): a ``SET`` of a
value of 64 KiB or more sent from its buffers by ``sendmsg`` (not joined first), and a ``GET``
whose bulk reply is larger than the first read, read into bytes of its own (not fed through
hiredis). On a real redis-server (the suite's fixture) and on loopback listeners of the test's
own that cut a reply wherever a read could end: the exact bytes every time, the connection
kept when the reply was whole, and dropped (typed errors, never reused) when it was not."""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from session_store_redis import RedisBackend
from session_store_redis.leanconn import LeanRedis
from session_store_redis.leanio import read_bulk, send_buffers
from session_store_redis.testing import RedisServer

VALUE = os.urandom(300_000)


@pytest.fixture
def server(redis_server_factory: Callable[..., RedisServer]) -> RedisServer:
    return redis_server_factory()


@pytest.mark.parametrize("size", [65_535, 65_536, 65_600, 1_000_000])
def test_large_values_round_trip_exactly_on_one_connection(server: RedisServer, size: int) -> None:
    """Values around the read buffer's and the gathering threshold's 64 KiB and well above:
    what ``GET`` returns is exactly what ``SET`` sent, a small reply after a large one is its
    own, and one connection served all of it (every reply was read whole)."""
    value = os.urandom(size)
    with RedisBackend.from_url(server.url_for(prefix="io"), retries=0) as backend:
        lean = backend._lean
        assert lean is not None
        backend.set("k", value)
        assert backend.get("k") == value
        backend.set("k", value[::-1], ttl=60)
        assert backend.get("k") == value[::-1]
        backend.set("small", b"s")
        assert backend.get("small") == b"s"
        assert backend.get("absent") is None
        assert lean._opened == 1


class _Cutting:
    """A loopback listener answering each ``GET`` with ``reply`` sent in the pieces ``cuts``
    says (byte offsets), a short pause between pieces, then ``after`` (closing if ``None``)."""

    def __init__(self, reply: bytes, cuts: list[int], after: bytes | None = b"") -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.reply, self.cuts, self.after = reply, cuts, after
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                for _ in range(data.count(b"GET")):
                    bounds = [0, *self.cuts, len(self.reply)]
                    for start, end in itertools.pairwise(bounds):
                        conn.sendall(self.reply[start:end])
                        time.sleep(0.02)
                    if self.after is None:
                        return
                    conn.sendall(self.after)


@pytest.fixture
def lean_to() -> Iterator[Callable[[_Cutting], LeanRedis]]:
    made: list[tuple[_Cutting, LeanRedis]] = []

    def make(listener: _Cutting) -> LeanRedis:
        client = redis.Redis(host="127.0.0.1", port=listener.port, socket_timeout=2)
        lean = LeanRedis.of(client)
        assert lean is not None
        made.append((listener, lean))
        return lean

    yield make
    for listener, lean in made:
        lean.close()
        listener.sock.close()


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


@pytest.mark.parametrize(
    "cuts",
    [
        [3],  # the size cut in two: not read whole by the first read, hiredis reads it
        [8],  # the head whole, the value still to come
        [70_000, 140_000, 210_000],  # the value in pieces
        [len(_bulk(VALUE)) - 1],  # the closing CRLF cut in two
        [len(_bulk(VALUE)) - 2],  # the closing CRLF alone in the last piece
    ],
)
def test_a_large_reply_cut_anywhere_arrives_whole_and_keeps_the_connection(
    lean_to: Callable[[_Cutting], LeanRedis], cuts: list[int]
) -> None:
    lean = lean_to(_Cutting(_bulk(VALUE), cuts))
    for _ in range(2):
        assert lean.get("k") == VALUE
    assert lean._opened == 1 and len(lean._idle) == 1


def test_a_bulk_string_that_runs_on_past_its_size_is_a_protocol_error() -> None:
    """``read_bulk`` (what the lean client reads a large bulk with; a connection whose read
    raised is dropped, never reused) checks the CRLF its size says comes next."""
    left, right = socket.socketpair()
    with left, right:
        right.sendall(b"defghijXY")
        with pytest.raises(redis.exceptions.InvalidResponse, match="runs on"):
            read_bulk(left, memoryview(b"abc"), 10)
        right.sendall(b"defghij\r\n")
        assert read_bulk(left, memoryview(b"abc"), 10) == b"abcdefghij"


def test_a_server_closing_mid_value_is_a_connection_error_and_leaves_no_connection(
    lean_to: Callable[[_Cutting], LeanRedis],
) -> None:
    listener = _Cutting(_bulk(VALUE)[:150_000], [70_000], after=None)
    lean = lean_to(listener)
    with pytest.raises(redis.ConnectionError, match="Connection closed by server"):
        lean.get("k")
    assert lean._opened == 0 and not lean._idle


class _CountingSocket(socket.socket):
    """A socket that counts its ``sendmsg`` calls and the bytes each one sent."""

    sent: list[int]

    def sendmsg(self, buffers: Any, *args: Any) -> int:
        done = super().sendmsg(buffers, *args)
        self.sent.append(done)
        return done


def test_a_large_command_to_a_slow_reader_is_sent_whole_in_order() -> None:
    """A peer that reads 4 KiB at a time, with a pause, from a sender whose send buffer is
    small: ``send_buffers`` sends the parts in many partial ``sendmsg`` calls (some ending
    inside a part, some on a boundary) and the peer receives exactly the parts' bytes, in
    order."""
    left, right = socket.socketpair()
    sender = _CountingSocket(fileno=left.detach())
    sender.sent = []
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    sender.settimeout(5)
    parts = (b"head" * 10, os.urandom(300_000), b"tail" * 3, os.urandom(70_000))
    received = bytearray()

    def read() -> None:
        while len(received) < sum(map(len, parts)):
            data = right.recv(4096)
            if not data:
                return
            received.extend(data)
            time.sleep(0.0002)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        send_buffers(sender, parts)
        thread.join(10)
        assert bytes(received) == b"".join(parts)
        assert len(sender.sent) > 2 and sum(sender.sent) == len(received)
    finally:
        sender.close()
        right.close()
