"""A lean sync Redis client for the two commands of a web request: the session's ``GET`` and the
staged compare-and-set that writes it back (:func:`session_store_redis.staged.staged_write`).

Why: measured on this project's machine (callgrind and ``time.process_time``, a 2 KB value),
redis-py spends most of a ``GET``'s client cost around the command rather than in it: its pool's
checkout (process-id check, lock, observability counters, a readiness probe that sets the socket
non-blocking and back: three system calls) and its parser's layers. This client keeps what
those steps guarantee and drops their price:

* **A pool safe across threads**: idle connections in a list (``pop``/``append`` are atomic),
  a lock only to open or drop one. At most the redis-py pool's ``max_connections`` are open;
  a thread finding none free waits up to its ``timeout`` (``BlockingConnectionPool``) or
  fails at once (``ConnectionPool``), with redis-py's errors. A forked child (gunicorn
  ``--preload``) starts with an empty pool (:mod:`session_store.forksafe`).
* **No stale connection**: before a command, one ``poll(0)`` tells whether the server closed
  (or restarted behind) an idle connection; such a connection is dropped and a new one opened,
  so a write that must not run twice is never sent on a dead socket. An idle connection older
  than the pool's ``health_check_interval`` is ``PING``-ed first, as redis-py does.
* **Timeouts** as redis-py's: ``socket_connect_timeout`` to connect, ``socket_timeout`` per
  read or write, kept by Python's socket timeout (a deadline that holds across signals; the
  kernel's ``SO_RCVTIMEO`` restarts in full after every signal a handler absorbs, so a process
  with an interval timer never timed out: test_attack7_lean_timeout_signals). A connection
  that timed out or failed is closed, never reused.
* **Errors** are redis-py's types and messages (error replies parsed by redis-py's own
  ``parse_error``, so ``NOSCRIPT``, ``NOPERM``, ``WRONGPASS``... are its classes), so the
  backend's retries and :func:`session_store_redis.errors.translate` treat them as before.
* **Connecting** sends ``AUTH`` (username and password), ``CLIENT SETNAME`` and ``SELECT`` as
  the pool's settings say, in one round trip; replies are RESP2, parsed by hiredis.

:meth:`LeanRedis.of` builds one only for what it reproduces exactly: a plain TCP pool of redis-py
(``ConnectionPool`` or ``BlockingConnectionPool`` of ``Connection``; no TLS, Unix socket,
Sentinel, credential provider, RESP3 or non-UTF-8 encoding). Anything else keeps redis-py, and
so does everything but these two hot commands (and every retry after a failed first attempt).
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import hiredis
import redis
from redis import exceptions as rexc
from redis._parsers.base import BaseParser
from redis.connection import BlockingConnectionPool, Connection, ConnectionPool
from redis.utils import format_error_message

from session_store import forksafe
from session_store_redis.leanio import (
    GATHER,
    bulk_size,
    keepalive_options,
    pack_command,
    read_bulk,
    send_buffers,
)

__all__ = ["LeanConnection", "LeanRedis"]

_READ_SIZE = 65536
_POLLIN = select.POLLIN


class _Encoder:
    """What :func:`session_store_redis.staged.staged_write` asks of a connection's encoder."""

    encoding = "utf-8"


class LeanConnection:
    """One socket to the server, with the two calls ``staged_write`` makes of a redis-py
    connection (:meth:`send_packed_command`, :meth:`read_response`) and :meth:`disconnect`."""

    encoder: ClassVar[_Encoder] = _Encoder()

    __slots__ = (
        "_buffer",
        "_host",
        "_poll",
        "_reader",
        "_sock",
        "_view",
        "generation",
        "session_store_staging_keys",  # its staging keys (staged.connection_staging_key)
        "used",
    )

    def __init__(self, sock: socket.socket, host: str, generation: int) -> None:
        self._sock = sock
        self._host = host  # "host:port", for messages
        self._reader = hiredis.Reader(
            protocolError=rexc.InvalidResponse, replyError=BaseParser.parse_error
        )
        self._buffer = bytearray(_READ_SIZE)
        self._view = memoryview(self._buffer)
        self._poll = select.poll()
        self._poll.register(sock, _POLLIN)
        self.generation = generation
        self.used = time.monotonic()

    def stale(self) -> bool:
        """Whether the socket is readable while no reply is due: the server closed it (or it
        holds bytes nobody asked for). Either way, not a connection to send a command on."""
        return bool(self._poll.poll(0))

    def send_packed_command(self, packed: Any) -> None:
        """Send the RESP buffers ``packed`` (raises redis-py's errors; nothing is retried)."""
        try:
            send_buffers(self._sock, packed)  # a large value is not joined (leanio)
        except (BlockingIOError, TimeoutError):
            raise rexc.TimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            raise rexc.ConnectionError(f"Error while writing to {self._host}: {exc}") from None

    def read_response(self) -> Any:
        """The next reply; an error reply is raised as redis-py's exception (one inside an
        ``EXEC`` reply stays an item of the list, as redis-py leaves it)."""
        reply = self._reader.gets()
        while reply is False:
            self._fill()
            reply = self._reader.gets()
        if isinstance(reply, rexc.RedisError):
            raise reply
        return reply

    def read_value(self) -> Any:
        """:meth:`read_response` of a reply that may be a large bulk (``leanio.read_bulk``)."""
        if not self._reader.has_data():  # (in step, never: every reply was read whole)
            count = self._read(self._sock.recv_into, self._view)
            size, start = bulk_size(self._buffer, count) if count == _READ_SIZE else (-1, 0)
            if size > count - start:
                return self._read(read_bulk, self._sock, self._view[start:count], size)
            self._reader.feed(self._buffer, 0, count)  # type: ignore[arg-type]
        return self.read_response()

    def _fill(self) -> None:
        count = self._read(self._sock.recv_into, self._view)
        self._reader.feed(self._buffer, 0, count)  # type: ignore[arg-type]

    def _read(self, read: Callable[..., Any], *args: Any) -> Any:
        """``read(*args)`` from the socket, with redis-py's errors (nothing read: closed)."""
        try:
            done = read(*args)
        except (BlockingIOError, TimeoutError):
            raise rexc.TimeoutError(f"Timeout reading from {self._host}") from None
        except OSError as exc:
            raise rexc.ConnectionError(
                f"Error while reading from {self._host} : {exc.args}"
            ) from None
        if not done:
            raise rexc.ConnectionError("Connection closed by server.")
        return done

    def disconnect(self) -> None:
        """Close the socket (a reply may be pending on it: it is never used again)."""
        self.generation = -1
        self._sock.close()


class LeanRedis:
    """The hot commands over a pool of :class:`LeanConnection`, built from a redis-py client's
    pool settings (:meth:`of`). Also what :func:`~session_store_redis.staged.staged_write` takes
    as its client: it has ``connection`` (``None``: pooled), ``connection_pool`` (itself),
    :meth:`get_connection` and :meth:`release`."""

    connection = None

    def __init__(
        self, kwargs: dict[str, Any], max_connections: int, blocking: bool, timeout: float | None
    ) -> None:
        self._host = str(kwargs.get("host", "localhost"))
        self._port = int(kwargs.get("port", 6379))
        self._address = f"{self._host}:{self._port}"
        timeout_s = kwargs.get("socket_timeout")
        connect = kwargs.get("socket_connect_timeout")
        self._socket_timeout: float | None = timeout_s
        self._connect_timeout: float | None = timeout_s if connect is None else connect
        self._keepalive = bool(kwargs.get("socket_keepalive"))
        self._keepalive_options = keepalive_options(kwargs.get("socket_keepalive_options"))
        self._health = float(kwargs.get("health_check_interval") or 0)
        hello: list[bytes] = []
        password, username = kwargs.get("password"), kwargs.get("username")
        if password or username:
            secret = str(password or "")
            auth = ("AUTH", str(username), secret) if username else ("AUTH", secret)
            hello.append(pack_command(auth))
        if kwargs.get("client_name"):
            hello.append(pack_command(("CLIENT", "SETNAME", kwargs["client_name"])))
        if kwargs.get("db"):
            hello.append(pack_command(("SELECT", int(kwargs["db"]))))
        self._hello = hello
        self._max = max_connections
        self._blocking = blocking  # wait for a free connection (else fail at once) ...
        self._wait = timeout  # ... at most this many seconds (None: as long as it takes)
        self._idle: list[LeanConnection] = []
        #: itself, as a redis-py client's pool (an attribute: staged_write reads it every write)
        self.connection_pool: LeanRedis = self
        self._generation = 0
        self._reset_locks()
        forksafe.register(self)

    @classmethod
    def of(cls, client: redis.Redis) -> LeanRedis | None:
        """A lean client for ``client``'s server and settings, or ``None`` if it cannot
        reproduce them exactly (see the module's docstring)."""
        pool = client.connection_pool
        kwargs = pool.connection_kwargs
        if (
            client.connection is not None
            or type(pool) not in (ConnectionPool, BlockingConnectionPool)
            or pool.connection_class is not Connection
            or kwargs.get("encoding", "utf-8") not in ("utf-8", "utf8")
            or kwargs.get("decode_responses")
            or kwargs.get("credential_provider") is not None
            or kwargs.get("redis_connect_func") is not None
            or kwargs.get("protocol") not in (None, 2, "2")
            or getattr(pool, "cache", None) is not None
        ):
            return None
        blocking = isinstance(pool, BlockingConnectionPool)
        wait: float | None = getattr(pool, "timeout", None)
        return cls(dict(kwargs), pool.max_connections, blocking, wait)

    def _reset_locks(self) -> None:
        """New locks and an empty pool (also in a forked child: the parent's sockets are not
        its to use; closing the child's copies leaves the parent's connections open)."""
        self._lock = threading.Condition(threading.Lock())
        self._opened = 0
        self._waiting = 0
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.disconnect()

    # -- the hot read --------------------------------------------------------------------------
    def get(self, stored: str) -> bytes | None:
        """``GET stored``."""
        key = stored.encode()
        packed = (b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key),)
        value: bytes | None = self._run(packed, True)
        return value

    def set(self, stored: str, value: bytes, px: int | None) -> Any:
        """``SET stored value [PX px]`` (the reply: ``b"OK"``); the value sent as it is."""
        key = stored.encode()
        if px is None:
            head = b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n" % (len(key), key, len(value))
            tail = b"\r\n"
        else:
            ms = b"%d" % px
            head = b"*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n" % (len(key), key, len(value))
            tail = b"\r\n$2\r\nPX\r\n$%d\r\n%s\r\n" % (len(ms), ms)
        parts = (head, value, tail)  # a large value is not joined (leanio.send_buffers)
        return self._run(parts if len(value) >= GATHER else b"".join(parts))

    def call(self, *args: bytes | str | int) -> Any:
        """One command's reply (``PEXPIRE ...``)."""
        return self._run(pack_command(args))

    def _run(self, packed: bytes | tuple[bytes, ...], value: bool = False) -> Any:
        """The reply to one packed command (or its buffers), with redis-py's errors; a connection
        that failed is closed, one that answered an error reply is in step and pooled again."""
        connection = self.get_connection()
        try:
            connection.send_packed_command((packed,) if type(packed) is bytes else packed)
            reply = connection.read_value() if value else connection.read_response()
        except rexc.ResponseError:
            raise  # the reply was read: the connection is in step
        except BaseException:
            connection.disconnect()  # a reply may be pending on it
            raise
        finally:
            self.release(connection)
        return reply

    # -- the pool ------------------------------------------------------------------------------
    def get_connection(self) -> LeanConnection:
        """An idle connection that is still open, or a new one (waiting for a free slot)."""
        idle = self._idle
        while True:
            try:
                connection = idle.pop()
            except IndexError:
                opened = self._open_slot()
                if opened is None:  # one came back meanwhile
                    continue
                return opened
            if connection.generation != self._generation or connection.stale():
                self._drop(connection)
                continue
            if self._health:
                now = time.monotonic()
                if now - connection.used > self._health and not self._ping(connection):
                    continue
                connection.used = now
            return connection

    def release(self, connection: LeanConnection) -> None:
        """Back to the pool (a connection closed meanwhile, or by :meth:`close`, is dropped)."""
        if connection.generation != self._generation:
            self._drop(connection)
            return
        self._idle.append(connection)
        if self._waiting:
            with self._lock:
                self._lock.notify()

    def _ping(self, connection: LeanConnection) -> bool:
        """Whether an idle connection still answers ``PING`` (else it is dropped)."""
        try:
            connection.send_packed_command((b"*1\r\n$4\r\nPING\r\n",))
            connection.read_response()
        except (rexc.RedisError, OSError):
            self._drop(connection)
            return False
        return True

    def _drop(self, connection: LeanConnection) -> None:
        connection.disconnect()
        with self._lock:
            self._opened -= 1
            self._lock.notify()

    def _open_slot(self) -> LeanConnection | None:
        """A new connection once the pool has room (``None`` if an idle one came back while
        waiting): at once, within the pool's timeout, or redis-py's errors
        (``ConnectionError: No connection available.``, ``MaxConnectionsError``)."""
        lock = self._lock
        deadline = None if self._wait is None else time.monotonic() + self._wait
        with lock:
            while self._opened >= self._max:
                # counted before the look at the idle list: a release after it then notifies
                self._waiting += 1
                try:
                    if self._idle:
                        return None
                    if not self._blocking:
                        raise rexc.MaxConnectionsError("Too many connections")
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise rexc.ConnectionError("No connection available.")
                    lock.wait(left)
                finally:
                    self._waiting -= 1
            self._opened += 1
            generation = self._generation
        try:
            return self._connect(generation)
        except BaseException:
            with lock:
                self._opened -= 1
                lock.notify()
            raise

    def _connect(self, generation: int) -> LeanConnection:
        """A connected, authenticated socket on the right database."""
        try:
            sock = socket.create_connection((self._host, self._port), self._connect_timeout)
        except TimeoutError:
            raise rexc.TimeoutError("Timeout connecting to server") from None
        except OSError as exc:
            raise rexc.ConnectionError(format_error_message(self._address, exc)) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._keepalive:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                for option, value in self._keepalive_options.items():
                    sock.setsockopt(socket.IPPROTO_TCP, option, value)
            self._set_timeout(sock)
            connection = LeanConnection(sock, self._address, generation)
            if self._hello:
                connection.send_packed_command(self._hello)
                for _ in self._hello:
                    if connection.read_response() not in (b"OK", "OK"):
                        raise rexc.ConnectionError("unexpected reply while connecting")
        except BaseException:
            sock.close()
            raise
        return connection

    def _set_timeout(self, sock: socket.socket) -> None:
        """``socket_timeout`` per read and per write as a deadline Python keeps across signals
        (one ``poll`` per blocking call: about 2 us per command, the price of a timeout that
        holds in a process receiving periodic signals)."""
        sock.settimeout(self._socket_timeout)

    def close(self) -> None:
        """Close every idle connection; one in use is closed when it comes back."""
        with self._lock:
            self._generation += 1
            idle, self._idle = self._idle, []
        while True:  # one at a time: a thread may be popping from the same list
            try:
                connection = idle.pop()
            except IndexError:
                return
            self._drop(connection)
