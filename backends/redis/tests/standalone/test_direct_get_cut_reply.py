"""The Redis read that every web request makes: ``get_versioned`` sends its
``GET`` straight to a pooled connection (``session_store_redis.commands.direct_get``), outside
redis-py's command path. The danger of such a path is a connection put back in the pool with a
reply still on it: the next command, maybe another user's read, would get this reply.

Here the connection is cut in the middle of a 1 MiB reply, for real: a loopback proxy between
the backend and a real redis-server forwards 300,000 bytes of the reply and closes both sockets.
What held: the read is retried on a fresh connection and returns the whole value; every later
read on the pool returns its own key's value; a cut on every connection is a typed
``BackendUnavailableError`` and the pool serves correct values once the network heals.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from urllib.parse import urlsplit

import pytest

from session_store import open_backend
from session_store.errors import BackendUnavailableError


class _CutProxy:
    """A loopback TCP proxy to ``target``; while :attr:`cut` is set, each connection's replies
    stop after ``cut`` bytes (both sockets closed); ``cut_connections`` counts those."""

    def __init__(
        self, target: tuple[str, int], cut: int | None, *, first_only: bool, stall: bool = False
    ) -> None:
        self.target = target
        self.cut = cut
        self.first_only = first_only
        self.stall = stall  # keep the cut connection open, sending nothing more
        self.closed = threading.Event()
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            server = socket.create_connection(self.target)
            cut = self.cut if not self.first_only or self.connections == 1 else None
            stall = self.closed if self.stall else None
            threading.Thread(target=_pipe, args=(client, server, None), daemon=True).start()
            threading.Thread(target=_pipe, args=(server, client, cut, stall), daemon=True).start()

    def close(self) -> None:
        self.closed.set()
        self._listener.close()


def _pipe(
    source: socket.socket,
    sink: socket.socket,
    limit: int | None,
    stall: threading.Event | None = None,
) -> None:
    sent = 0
    try:
        while data := source.recv(65536):
            if limit is not None and sent + len(data) >= limit:
                sink.sendall(data[: limit - sent])
                if stall is not None:
                    stall.wait()  # the rest of the reply never comes, the socket stays open
                break
            sink.sendall(data)
            sent += len(data)
    except OSError:
        pass
    for end in (source, sink):
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)
        end.close()


def _through(proxy: _CutProxy, redis_url: str) -> str:
    parts = urlsplit(redis_url)
    return parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()


@pytest.mark.parametrize("stall", [False, True], ids=["closed", "stalled"])
def test_held_a_reply_cut_mid_read_never_reaches_another_read(redis_url: str, stall: bool) -> None:
    """``closed``: the connection dies mid-reply; ``stalled``: it stays open and the rest of the
    reply never comes (the read times out with bytes of the reply unread on the socket)."""
    parts = urlsplit(redis_url)
    target = (parts.hostname or "127.0.0.1", parts.port or 0)
    big = os.urandom(1 << 20)
    writer = open_backend(redis_url)
    writer.set("big", big)
    writer.set("small", b"small")
    proxy = _CutProxy(target, 300_000, first_only=True, stall=stall)
    reader = open_backend(_through(proxy, redis_url) + "&socket_timeout=1")
    try:
        if stall:  # a timeout is not retried (a call costs one timeout): a typed error
            with pytest.raises(BackendUnavailableError):
                reader.get_versioned("big")
        else:  # a dead connection is: the read is made again on another one
            read = reader.get_versioned("big")
            assert read is not None and read.value == big
            assert proxy.connections == 2  # the cut connection was dropped, not reused
        for _ in range(20):
            small, large = reader.get_versioned("small"), reader.get_versioned("big")
            assert small is not None and small.value == b"small"
            assert large is not None and large.value == big
    finally:
        reader.close()
        writer.close()
        proxy.close()


def test_held_every_connection_cut_is_a_typed_error_and_the_pool_recovers(
    redis_url: str,
) -> None:
    parts = urlsplit(redis_url)
    target = (parts.hostname or "127.0.0.1", parts.port or 0)
    big = os.urandom(1 << 20)
    writer = open_backend(redis_url)
    writer.set("big", big)
    writer.set("small", b"small")
    proxy = _CutProxy(target, 300_000, first_only=False)
    reader = open_backend(_through(proxy, redis_url))
    try:
        with pytest.raises(BackendUnavailableError):
            reader.get_versioned("big")
        proxy.cut = None  # the network heals
        for _ in range(20):
            small, large = reader.get_versioned("small"), reader.get_versioned("big")
            assert small is not None and small.value == b"small"
            assert large is not None and large.value == big
    finally:
        reader.close()
        writer.close()
        proxy.close()
