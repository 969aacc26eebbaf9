"""What a new user waits when Redis does not answer: a loopback socket that accepts connections
and never replies (a hung or SIGSTOPped server, a proxy that lost its backend), and one whose
accept queue is full (a host that drops SYNs). Each server here is the test's own socket on
127.0.0.1, never a Redis.

The promise (backends/redis/README.md, "When Redis does not answer"): every call costs one
``socket_timeout`` (or one ``socket_connect_timeout``) at most once, the first call and every
later call alike: a timed-out command is never sent again (no retry multiplies the wait), and
a timed-out connection is dropped, never reused (its late reply would answer the next call).
In a chain the tier is then marked down, so only the first call waits.

Checked on the record, not on the clock: the server counts the commands it received and the
connections they came on. The clock is only a lower bound (each call did wait for its
timeout, which a loaded machine cannot make shorter).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from session_store import BackendUnavailableError, SessionStore

TIMEOUT = 0.4


class SilentServer:
    """Accepts every connection on a free loopback port, reads what each sends (RESP commands),
    answers nothing; :attr:`received` holds one list of commands per connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received: list[list[list[bytes]]] = []
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                commands: list[list[bytes]] = []
                self.received.append(commands)
                self._open.append(conn)
            threading.Thread(target=self._read, args=(conn, commands), daemon=True).start()

    def _read(self, conn: socket.socket, commands: list[list[bytes]]) -> None:
        buffer = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while True:
                parsed = _one_command(buffer)
                if parsed is None:
                    break
                command, buffer = parsed
                with self._lock:
                    commands.append(command)

    def commands(self) -> list[list[bytes]]:
        """The commands received, per connection, each as its name (upper case)."""
        with self._lock:
            return [[c[0].upper() for c in conn] for conn in self.received]

    def close(self) -> None:
        self.sock.close()
        with self._lock:
            for conn in self._open:
                conn.close()


def _one_command(buffer: bytes) -> tuple[list[bytes], bytes] | None:
    """The first RESP array of bulk strings in ``buffer`` and the rest, or ``None`` if partial."""
    if not buffer.startswith(b"*") or b"\r\n" not in buffer:
        return None
    head, rest = buffer.split(b"\r\n", 1)
    parts: list[bytes] = []
    for _ in range(int(head[1:])):
        if b"\r\n" not in rest:
            return None
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line[1:])
        if len(rest) < size + 2:
            return None
        parts.append(rest[:size])
        rest = rest[size + 2 :]
    return parts, rest


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def _timed_failures(store: SessionStore[object], calls: int) -> list[float]:
    waits = []
    for i in range(calls):
        began = time.monotonic()
        with pytest.raises(BackendUnavailableError, match="Timeout"):
            store.load(f"k{i}")
        waits.append(time.monotonic() - began)
    return waits


def test_each_call_to_a_silent_redis_sends_one_command_and_waits_one_timeout(
    silent: SilentServer,
) -> None:
    url = f"redis://127.0.0.1:{silent.port}/0?socket_timeout={TIMEOUT}&retries=2"
    with SessionStore[object](url) as store:
        waits = _timed_failures(store, 3)
    # The first call and the later ones alike: one command each (the GET, sent by the lean
    # client, which pings only an idle connection older than the health-check interval; on
    # redis-py's it was the new connection's health check PING), each on a fresh connection (a
    # timed-out connection is never reused), and nothing sent twice (no retry of a timeout).
    assert silent.commands() == [[b"GET"], [b"GET"], [b"GET"]], silent.commands()
    assert min(waits) >= TIMEOUT * 0.95, waits  # each did wait its timeout (never cut short)


def test_a_chain_waits_for_a_silent_redis_once_then_goes_on_without_it(
    silent: SilentServer, tmp_path: Path
) -> None:
    """The recommended chain: the first load waits one timeout, marks the tier down, and the
    loads after it are served by the other tiers without touching Redis (until the breaker's
    ``retry_after``, here longer than the test, lets one call probe it again). (A versioned
    write still asks Redis, the arbiter, whatever the breaker says: docs/guarantees.md.)"""
    chain = (
        "tiered://?retry_after=3600&invalidation=false | memory:// "
        f"| redis://127.0.0.1:{silent.port}/0?socket_timeout={TIMEOUT} "
        f"| diskcache://{tmp_path / 'disk'}"
    )
    with SessionStore[object](chain) as store:
        began = time.monotonic()
        assert store.load("k0") is None  # served by the other tiers, no error
        assert time.monotonic() - began >= TIMEOUT * 0.95  # it did wait for Redis, once
        first = silent.commands()
        for i in range(1, 10):
            assert store.load(f"k{i}") is None
    assert len([c for conn in first for c in conn]) == 1, first
    assert silent.commands() == first  # nothing more reached the silent server


def test_a_connect_that_is_never_answered_costs_one_connect_timeout_per_call() -> None:
    """A listener whose accept queue is full drops every further SYN, as a host that does not
    answer does: the connect times out, and is not tried again within the call."""
    server = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = server.getsockname()[1]
    fillers = []
    try:
        while True:  # fill the queue until a connect no longer completes
            probe = socket.socket()
            probe.settimeout(0.5)
            try:
                probe.connect(("127.0.0.1", port))
            except TimeoutError:
                probe.close()
                break
            fillers.append(probe)
            assert len(fillers) < 64, "the accept queue never filled"
        url = f"redis://127.0.0.1:{port}/0?socket_connect_timeout={TIMEOUT}&retries=2"
        with SessionStore[object](url) as store:
            for i in range(2):
                began = time.monotonic()
                with pytest.raises(BackendUnavailableError, match="Timeout connecting"):
                    store.load(f"k{i}")
                assert time.monotonic() - began >= TIMEOUT * 0.95
    finally:
        for probe in fillers:
            probe.close()
        server.close()
