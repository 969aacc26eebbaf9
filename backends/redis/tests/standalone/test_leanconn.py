"""The lean sync client (:mod:`session_store_redis.leanconn`) that carries a web request's ``GET``
and staged compare-and-set, on real redis-servers (the suite's fixtures) and loopback sockets
of the test's own: it is used where it reproduces the client and only there, its pool reuses
and caps connections across threads and forks, and every failure (a connection the server
dropped, a server killed mid-call, a server that never answers, an error reply, refused
credentials) ends as redis-py's did: the same typed errors, never a dead connection reused, a
compare-and-set never sent twice."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.connection import BlockingConnectionPool, UnixDomainSocketConnection

from session_store import BackendError, BackendUnavailableError
from session_store_redis import RedisBackend
from session_store_redis.leanconn import LeanRedis
from session_store_redis.testing import RedisServer
from session_store_redis.testing.checks import run_forked

VALUE = b"v" * 2000


def _connections(admin: redis.Redis) -> int:
    """Connections the server of ``admin`` (a client kept for the test) has accepted so far:
    its own counter (``INFO stats``)."""
    return int(admin.info("stats")["total_connections_received"])


def _write(backend: RedisBackend, key: str, value: bytes) -> None:
    """A compare-and-set over what is stored (the web commit's write), which must land."""
    found = backend.get_versioned(key)
    assert backend.set_if(key, value, None if found is None else found.token)


@pytest.fixture
def server(redis_server_factory: Callable[..., RedisServer]) -> RedisServer:
    return redis_server_factory()


@pytest.fixture
def admin(server: RedisServer) -> Iterator[redis.Redis]:
    """A plain redis-py client to ``server``, kept for the test (one connection)."""
    client = server.client()
    yield client
    client.close()


def test_the_web_read_and_write_run_on_one_pooled_lean_connection(
    server: RedisServer, admin: redis.Redis
) -> None:
    before = _connections(admin)
    with RedisBackend.from_url(server.url_for(prefix="lean"), retries=0) as backend:
        assert backend._lean is not None
        for n in range(5):
            _write(backend, "k", VALUE + b"%d" % n)
        found = backend.get_versioned("k")
        assert found is not None and found.value == VALUE + b"4"
        # a read-only request's sliding expiry
        assert backend.touch("k", 5000)
        assert 4990 < admin.pttl(backend.namespace.encode("k")) / 1000 <= 5000
        assert not backend.touch("absent", 5000)
        (connection,) = backend._lean._idle  # the last command on it was that PEXPIRE
        port = connection._sock.getsockname()[1]
        last = {c["addr"]: c["cmd"] for c in admin.client_list()}
        assert last[f"127.0.0.1:{port}"] == "pexpire", last
        # six reads, four compare-and-sets and two touches on one lean connection; the
        # redis-py pool connected once, for the first write (SET NX, which it sends)
        assert _connections(admin) - before == 2
        assert backend._lean._opened == 1


def test_the_lean_client_is_used_only_where_it_reproduces_the_client() -> None:
    """No I/O: what ``LeanRedis.of`` accepts. TLS, a Unix socket, decoded replies, another
    encoding, RESP3, a credential provider: redis-py."""
    assert LeanRedis.of(redis.Redis(port=1)) is not None
    pool = BlockingConnectionPool(port=1, max_connections=3)  # type: ignore[no-untyped-call]
    blocking = redis.Redis(connection_pool=pool)
    assert LeanRedis.of(blocking) is not None
    refused = [
        redis.Redis(port=1, ssl=True, ssl_cert_reqs="none"),
        redis.Redis(connection_pool=redis.ConnectionPool(
            connection_class=UnixDomainSocketConnection, path="/nonexistent")),
        redis.Redis(port=1, decode_responses=True),
        redis.Redis(port=1, encoding="latin-1"),
        redis.Redis(port=1, protocol=3),
        redis.Redis(port=1, credential_provider=redis.UsernamePasswordCredentialProvider("a")),
    ]  # fmt: skip
    for client in refused:
        assert LeanRedis.of(client) is None, client


def test_a_connection_the_server_dropped_is_not_used_for_the_next_write(
    server: RedisServer, admin: redis.Redis
) -> None:
    """The server closes every client connection between two requests (a restart, a proxy's
    idle timeout, ``CLIENT KILL``): the next compare-and-set, never retried, must not be sent
    on the dead socket (its outcome would be unknown) but on a new connection, and land."""
    with RedisBackend.from_url(server.url_for(prefix="lean"), retries=0) as backend:
        _write(backend, "k", VALUE)
        admin.client_kill_filter(_type="normal", skipme=True)
        found = backend.get_versioned("k")  # never retried (retries=0): a new connection
        assert found is not None
        admin.client_kill_filter(_type="normal", skipme=True)
        assert backend.set_if("k", VALUE + b"2", found.token)
        assert backend.get("k") == VALUE + b"2"


def _server_holds_unread_bytes(port: int) -> bool:
    """Whether a socket of the server on ``port`` has bytes it has not read (``/proc/net/tcp``):
    the command was sent and arrived, and the server did not take it."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            rx_queue = int(fields[4].split(":")[1], 16)
            if local_port == port and rx_queue > 0:
                return True
    return False


@pytest.mark.parametrize("call", ["get_versioned", "set_if", "get", "set"])
def test_a_server_killed_mid_call_fails_the_call_and_the_next_one_reconnects(
    server: RedisServer, call: str
) -> None:
    """SIGSTOP the server, start the call (its command reaches the server's socket), SIGKILL
    the server: the call fails as unavailable (a compare-and-set is not retried: its outcome is
    unknown), and after a restart on the same port the next calls work on a new connection."""
    url = server.url_for(prefix="lean")
    with RedisBackend.from_url(url, retries=0) as backend:
        _write(backend, "k", VALUE)
        found = backend.get_versioned("k")
        assert found is not None and server.pid is not None
        outcome: list[BaseException | object] = []

        def run() -> None:
            try:
                if call == "get_versioned":
                    outcome.append(backend.get_versioned("k"))
                elif call == "get":
                    outcome.append(backend.get("k"))
                elif call == "set":
                    backend.set("k", VALUE + b"x", 60)
                    outcome.append(None)
                else:
                    outcome.append(backend.set_if("k", VALUE + b"x", found.token))
            except BaseException as exc:  # recorded for the assertion
                outcome.append(exc)

        os.kill(server.pid, signal.SIGSTOP)
        worker = threading.Thread(target=run)
        try:
            worker.start()
            deadline = time.monotonic() + 30
            while not _server_holds_unread_bytes(server.port):
                assert time.monotonic() < deadline, "the command never reached the server"
                assert worker.is_alive(), outcome
                time.sleep(0.01)
        finally:
            server.kill()  # SIGKILL, stopped or not
        worker.join(30)
        assert not worker.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], BackendUnavailableError), outcome
        server.restart()  # same port, empty (no persistence)
        assert backend.get_versioned("k") is None
        _write(backend, "k", VALUE)
        assert backend.get("k") == VALUE


class SilentListener:
    """A loopback socket that accepts connections and reads them, never answering; the bytes
    each connection sent, in :attr:`received`."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.received: list[bytearray] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            data = bytearray()
            with self._lock:
                self.received.append(data)
            threading.Thread(target=self._read, args=(conn, data), daemon=True).start()

    def _read(self, conn: socket.socket, data: bytearray) -> None:
        with conn:
            while chunk := conn.recv(65536):
                with self._lock:
                    data += chunk

    def commands(self) -> list[list[bytes]]:
        """Per connection, the names of the commands received (each RESP array's first item)."""
        with self._lock:
            sent = [bytes(data) for data in self.received]
        return [[part.split(b"\r\n")[2] for part in data.split(b"*")[1:] if b"$" in part[:8]]
                for data in sent]  # fmt: skip


@pytest.fixture
def silent() -> Iterator[SilentListener]:
    listener = SilentListener()
    yield listener
    listener.sock.close()


def test_a_server_that_never_answers_costs_each_call_one_timeout_on_a_new_connection(
    silent: SilentListener,
) -> None:
    timeout = 0.3
    url = f"redis://127.0.0.1:{silent.port}/0?socket_timeout={timeout}&retries=2"
    with RedisBackend.from_url(url) as backend:
        began = time.monotonic()
        for _ in range(2):
            with pytest.raises(BackendUnavailableError, match="Timeout reading"):
                backend.get_versioned("k")
        token = b"\x00" * 16  # a framed value's token shape does not matter: never answered
        for _ in range(2):
            with pytest.raises(BackendUnavailableError, match="Timeout reading"):
                backend.set_if("k", VALUE, backend.token_for(VALUE) or token, 60)  # staged
        waited = time.monotonic() - began
    # each call: one command (a timeout is not retried), on a connection of its own (a
    # timed-out one is never reused: its late reply would answer the next call)
    staged = [b"MULTI", b"SET", b"EVALSHA", b"EXEC"]
    assert silent.commands() == [[b"GET"], [b"GET"], staged, staged], silent.commands()
    assert waited >= 4 * timeout * 0.95  # each did wait its timeout (a lower bound only)


def test_a_refused_connection_is_unavailable_and_the_read_is_retried(
    server: RedisServer,
) -> None:
    port = server.port
    server.stop()
    url = f"redis://127.0.0.1:{port}/0"
    with (
        RedisBackend.from_url(url, retries=1) as backend,
        pytest.raises(BackendUnavailableError, match=r"Error 111 connecting"),
    ):
        backend.get_versioned("k")


def test_threads_share_a_capped_pool_and_lose_no_update(
    server: RedisServer, admin: redis.Redis
) -> None:
    """Eight threads increment one counter by compare-and-set through one backend whose pool
    holds two connections: every increment lands, and the server saw two connections."""
    url = server.url_for(prefix="lean", max_connections="2", pool_timeout="30")
    with RedisBackend.from_url(url, retries=0) as backend:
        _write(backend, "n", b"0")
        before = _connections(admin)

        def bump(times: int) -> None:
            for _ in range(times):
                while True:
                    found = backend.get_versioned("n")
                    assert found is not None
                    if backend.set_if("n", b"%d" % (int(found.value) + 1), found.token):
                        break

        threads = [threading.Thread(target=bump, args=(25,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert backend.get("n") == b"200"
        assert _connections(admin) - before <= 2 + 1  # the lean pool's two, and the get
        assert backend._lean is not None and backend._lean._opened <= 2


def test_a_full_pool_waits_its_timeout_then_fails_as_redis_py_does(server: RedisServer) -> None:
    url = server.url_for(prefix="lean", max_connections="1", pool_timeout="0.2")
    with RedisBackend.from_url(url, retries=0) as backend:
        lean = backend._lean
        assert lean is not None
        held = lean.get_connection()
        with pytest.raises(BackendUnavailableError, match="No connection available"):
            backend.get_versioned("k")
        lean.release(held)
        assert backend.get_versioned("k") is None  # the released connection serves it


def test_an_error_reply_is_typed_and_keeps_the_connection(
    server: RedisServer, admin: redis.Redis
) -> None:
    with RedisBackend.from_url(server.url_for(prefix="lean"), retries=0) as backend:
        assert backend.get_versioned("k") is None
        admin.hset(backend.namespace.encode("h"), "f", "v")
        before = _connections(admin)
        with pytest.raises(BackendError, match="WRONGTYPE") as raised:
            backend.get_versioned("h")
        assert not isinstance(raised.value, BackendUnavailableError)
        assert backend.get_versioned("k") is None
        assert _connections(admin) == before  # the same connection answered both


def test_a_forked_child_opens_its_own_connections(server: RedisServer, admin: redis.Redis) -> None:
    with RedisBackend.from_url(server.url_for(prefix="lean"), retries=0) as backend:
        _write(backend, "k", VALUE)
        before = _connections(admin)

        def child() -> dict[str, object]:
            found = backend.get_versioned("k")
            assert found is not None
            return {"written": backend.set_if("k", VALUE + b"c", found.token)}

        assert run_forked(child) == {"written": True}
        assert _connections(admin) == before + 1  # the child's, not the parent's socket
        found = backend.get_versioned("k")  # the parent's connection still works
        assert found is not None and found.value == VALUE + b"c"
        assert _connections(admin) == before + 1


def test_credentials_and_database_are_sent_and_a_wrong_password_is_refused(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    secret = "lean-s3cret"
    server = redis_server_factory(password=secret)
    with RedisBackend.from_url(server.url_for(db=5, prefix="lean"), retries=0) as backend:
        _write(backend, "k", VALUE)
        _write(backend, "k", VALUE + b"2")
        stored = backend.namespace.encode("k")
    admin = server.client(db=5)
    try:
        assert admin.get(stored) == VALUE + b"2"
    finally:
        admin.close()
    wrong = f"redis://:nope@127.0.0.1:{server.port}/5?prefix=lean"
    with RedisBackend.from_url(wrong, retries=0) as backend:
        with pytest.raises(BackendError, match="credentials") as raised:
            backend.get_versioned("k")
        assert "nope" not in str(raised.value)


def test_close_closes_the_lean_connections(server: RedisServer, admin: redis.Redis) -> None:
    """Idle ones at once, one in use when it comes back; the server sees them go."""
    clients = int(admin.info("clients")["connected_clients"])
    backend = RedisBackend.from_url(server.url_for(prefix="lean"), retries=0)
    lean = backend._lean
    assert lean is not None
    backend.get_versioned("k")  # opens one, back in the pool
    held = lean.get_connection()
    held_too = lean.get_connection()  # a second one, opened now
    lean.release(held_too)
    assert int(admin.info("clients")["connected_clients"]) == clients + 2
    backend.close()
    lean.release(held)
    deadline = time.monotonic() + 30
    while int(admin.info("clients")["connected_clients"]) != clients:
        assert time.monotonic() < deadline, admin.info("clients")
        time.sleep(0.01)
    assert lean._opened == 0


# -- a store's plain save and load: SET and GET on the lean client ---------------------------
def test_a_stores_set_and_get_run_on_the_lean_connection_with_their_ttls(
    server: RedisServer, admin: redis.Redis
) -> None:
    """``set`` and ``get`` (what ``SessionStore.save`` and ``load`` call) go on the lean
    client's pooled connection, never opening one of redis-py's; a TTL is the ``PX`` redis-py
    would send, the backend's default when none is given, no expiry for ``NO_EXPIRY``."""
    from session_store import NO_EXPIRY

    url = server.url_for(prefix="lean", default_ttl="3600")
    with RedisBackend.from_url(url, retries=0) as backend:
        backend.set("a", VALUE, 5000)
        backend.set("b", VALUE + b"b")
        backend.set("c", b"", NO_EXPIRY)
        assert backend.get("a") == VALUE
        assert backend.get("b") == VALUE + b"b"
        assert backend.get("c") == b""
        assert backend.get("absent") is None
        ttl = {k: admin.pttl(backend.namespace.encode(k)) / 1000 for k in "abc"}
        assert 4990 < ttl["a"] <= 5000 and 3590 < ttl["b"] <= 3600 and ttl["c"] == -0.001, ttl
        (connection,) = backend._lean._idle  # type: ignore[union-attr]
        port = connection._sock.getsockname()[1]
        last = {c["addr"]: c["cmd"] for c in admin.client_list()}
        assert last[f"127.0.0.1:{port}"] == "get", last
        assert not backend.client.connection_pool._connections  # type: ignore[attr-defined]
        assert backend.counters.get("writes") == 3
        assert backend.counters.get("hits") == 3 and backend.counters.get("misses") == 1


def test_a_plain_set_or_get_that_fails_on_the_lean_client_is_retried_through_redis_py(
    server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first attempt's connection fails (a reset, a server restarted behind it): the write
    and the read may run twice, so the backend's retry runs them again through redis-py, as
    it did before the lean client carried them; with ``retries=0`` the failure is typed."""
    with RedisBackend.from_url(server.url_for(prefix="lean"), retries=1) as backend:
        lean = backend._lean
        assert lean is not None

        def reset(*args: object) -> object:
            raise redis.ConnectionError("Connection reset by peer")

        monkeypatch.setattr(lean, "set", reset)
        monkeypatch.setattr(lean, "get", reset)
        backend.set("k", VALUE, 60)  # retried: lands
        assert backend.get("k") == VALUE  # retried: read
        backend.retries = 0
        with pytest.raises(BackendUnavailableError, match="reset by peer"):
            backend.set("k", VALUE)
        with pytest.raises(BackendUnavailableError, match="reset by peer"):
            backend.get("k")


def test_a_silent_server_costs_a_plain_set_or_get_one_timeout_each(
    silent: SilentListener,
) -> None:
    timeout = 0.3
    url = f"redis://127.0.0.1:{silent.port}/0?socket_timeout={timeout}&retries=2"
    with RedisBackend.from_url(url) as backend:
        began = time.monotonic()
        with pytest.raises(BackendUnavailableError, match="Timeout reading"):
            backend.get("k")
        with pytest.raises(BackendUnavailableError, match="Timeout reading"):
            backend.set("k", VALUE, 60)
        waited = time.monotonic() - began
    # one command each (a timeout is not retried), each on a connection of its own
    assert silent.commands() == [[b"GET"], [b"SET"]], silent.commands()
    assert waited >= 2 * timeout * 0.95


def test_an_error_reply_to_a_plain_get_is_typed_and_keeps_the_connection(
    server: RedisServer, admin: redis.Redis
) -> None:
    with RedisBackend.from_url(server.url_for(prefix="lean"), retries=2) as backend:
        backend.set("k", VALUE)
        admin.hset(backend.namespace.encode("h"), "f", "v")
        before = _connections(admin)
        with pytest.raises(BackendError, match="WRONGTYPE") as raised:
            backend.get("h")
        assert not isinstance(raised.value, BackendUnavailableError)
        assert backend.get("k") == VALUE
        assert _connections(admin) == before  # the same connection answered both


def test_a_stores_get_many_is_one_mget_on_the_lean_connection(
    server: RedisServer, admin: redis.Redis
) -> None:
    """``get_many`` (what ``SessionStore.load_many`` and a chain's listing call) is one ``MGET``
    on the lean client's pooled connection, as ``get`` is: the bulk read stays one round trip
    on the same cheap path, and answers exactly as redis-py's ``MGET`` (absent keys left out)."""
    with RedisBackend.from_url(server.url_for(prefix="leanmget"), retries=0) as backend:
        backend.set_many({"a": VALUE, "b": b"", "c": VALUE + b"c"})
        assert backend.get_many(["a", "b", "absent", "c"]) == {
            "a": VALUE,
            "b": b"",
            "c": VALUE + b"c",
        }
        (connection,) = backend._lean._idle  # type: ignore[union-attr]
        port = connection._sock.getsockname()[1]
        last = {c["addr"]: c["cmd"] for c in admin.client_list()}
        assert last[f"127.0.0.1:{port}"] == "mget", last
        assert backend.counters.get("hits") == 3 and backend.counters.get("misses") == 1
