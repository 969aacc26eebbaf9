"""A lean asyncio Redis client: one pipelined connection per event loop, RESP2 parsed by hiredis.

Why not ``redis.asyncio`` for the standalone backend: measured on this project's machine, a
``GET`` of a 2 KB session through ``redis.asyncio`` costs 4 to 5 times what it costs through the
sync client (its per-command connection checkout, locks and callbacks), which makes an async app
slower than a sync one for the very thing sessions do. This client writes each command (or a
whole pipeline) to one connection in a single ``write`` and pairs replies with waiting futures
in order (``asyncio.Protocol`` + ``hiredis.Reader``): about 60 to 75 us per ``GET`` here, faster
than the sync client. Many tasks share the connection, their commands pipelined.

* **One future per command, one wake-up per reply**: the caller awaits the future of its
  reply itself (no coroutine, task, ``gather`` or ``wait_for`` per command). On asyncio's own
  loop that future is a :class:`~session_store.aio.reply.Reply`, whose task resumes inside the
  callback that parsed the reply: one loop pass per command instead of two.
* **Cancellation**: a task cancelled while it waits leaves its future in the queue; the reply,
  when it comes, is read and dropped, so the next command never reads a stale reply. The
  command itself was sent whole (one ``write``) and Redis applies it whole.
* **Timeouts**: a reply that does not come within ``socket_timeout`` of its command closes the
  connection (it may be hung): the commands that waited that long fail with
  ``redis.exceptions.TimeoutError``, those sent later with ``ConnectionError`` (an idempotent
  one is retried); the next command opens a new connection. One timer per connection watches
  the oldest reply awaited, not a timer per command.
* **Errors** are redis-py's exception types (``ConnectionError``, ``TimeoutError``,
  ``AuthenticationError``, ``NoPermissionError``, ``NoScriptError``, ``ResponseError``, ...), so
  :func:`session_store_redis.errors.translate` maps them as for the sync backend.
* **Connecting** sends ``AUTH`` and ``SELECT`` as the URL says; ``rediss://`` wraps the socket in
  TLS with the URL's certificate settings.
* **Forgotten** by its backend (:meth:`LeanClient.forget`, the backend's ``aclose``), a client
  opens no connection again (:class:`ClientClosed`, a retryable ``ConnectionError``: the backend
  retries on the driver it now has), and an open under way when it is closed serves the calls
  that waited for it, then closes once their replies are in (attack10b: a close that ran while
  ``SELECT`` waited left the socket open on a client nobody would close again).
"""

from __future__ import annotations

import _asyncio
import asyncio
import collections
from collections.abc import Awaitable, Sequence
from functools import partial
from typing import Any

import hiredis
from redis import exceptions as rexc

from session_store.aio.reply import Reply
from session_store_redis.aio_resp import PACK, ReplyError, deliver, pack, packed
from session_store_redis.aio_tls import ssl_context
from session_store_redis.client import RedisConfig

__all__ = ["ClientClosed", "LeanClient", "pack"]

#: The running task of a loop, by a C call (asyncio.current_task is Python code in 3.11).
_current_task: Any = getattr(_asyncio, "current_task", None)  # 3.12+
if _current_task is None:  # 3.11: the loop's entry in asyncio's own table of running tasks
    _current_task = vars(asyncio.tasks)["_current_tasks"].get
_READ_SIZE = 65536


class _Batch:
    """The replies of several commands sent together, handed to one future when the last
    arrives (one wake-up of the caller instead of one per reply)."""

    __slots__ = ("future", "left", "replies")

    def __init__(self, future: asyncio.Future[Any], count: int) -> None:
        self.future = future
        self.left = count
        self.replies: list[Any] = []

    def add(self, reply: Any) -> None:
        self.replies.append(reply)
        self.left -= 1
        if not self.left and not self.future.done():
            self.future.set_result(self.replies)


def _failed(future: asyncio.Future[Any] | Reply[Any], error: BaseException) -> None:
    """Fail ``future`` with ``error``, marked as seen: a caller cancelled just as it failed
    never reads it, and asyncio would log "exception was never retrieved" at ERROR for it."""
    if not future.done():
        future.set_exception(error)
        future.exception()


class _Connection(asyncio.BufferedProtocol):
    """One socket: writes commands, hands each reply to the future waiting for it, in order.

    Every reply awaited is a ``(sink, deadline)`` in :attr:`_waiting`: the sink a future (one
    command) or a :class:`_Batch`. One timer per connection, not one per command, watches the
    oldest deadline: armed when nothing is armed, it fires at most once per ``socket_timeout``
    while replies come in time, and re-arms at the then oldest deadline."""

    def __init__(self, timeout: float | None = None) -> None:
        self._reader = hiredis.Reader(protocolError=rexc.InvalidResponse, replyError=ReplyError)
        self._buffer = bytearray(_READ_SIZE)
        self._waiting: collections.deque[tuple[Any, float]] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._timeout = timeout
        self._timer: asyncio.TimerHandle | None = None
        # asyncio's own loop: replies resume their task in the pass reading them (aio.reply)
        self._inline = isinstance(self._loop, asyncio.BaseEventLoop)
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport

    def get_buffer(self, sizehint: int) -> bytearray:
        """Where the transport reads into: one buffer reused (``recv_into``), not a new
        256 KiB ``bytes`` per read as ``data_received`` costs on asyncio's own loop."""
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self._reader.feed(self._buffer, 0, nbytes)  # type: ignore[arg-type]  # any buffer
        # a transport callback runs outside any task, as it should: a waiting task may then
        # resume right here (Reply.resolve), once this connection is in step for its reply
        inline = _current_task(self._loop) is None
        while True:
            try:
                reply = self._reader.gets()
            except rexc.InvalidResponse as exc:
                self._fail(rexc.ConnectionError(f"invalid reply from redis: {exc}"))
                return
            if reply is False:
                return
            failed = type(reply) is ReplyError
            if failed or type(reply) is list:
                reply = deliver(reply)
            sink = self._waiting.popleft()[0]
            if type(sink) is Reply:
                if inline:
                    try:
                        sink.resolve(reply, failed)
                    except BaseException:  # a task's KeyboardInterrupt / SystemExit leaves
                        self._loop.call_soon(self._rest)  # the loop: the rest in a next pass
                        raise
                    if self.closed:  # the resumed task closed it: nothing more to hand out
                        return
                elif failed:
                    sink.set_exception(reply)
                else:
                    sink.set_result(reply)
            elif type(sink) is _Batch:
                sink.add(reply)
            elif failed:  # one command's error reply: raised where it is awaited
                _failed(sink, reply)
            elif not sink.done():  # a cancelled caller: its reply is dropped
                sink.set_result(reply)

    def _rest(self) -> None:
        """The replies parsed with one whose task left the loop (a KeyboardInterrupt): as
        futures, they reach their tasks when the loop runs again."""
        if not self.closed:
            self.buffer_updated(0)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(rexc.ConnectionError(f"connection to redis lost: {exc or 'closed'}"))

    def _fail(self, error: rexc.RedisError, overdue: float | None = None) -> None:
        """Close; every reply still awaited fails with ``error`` (those waiting since before
        ``overdue`` with ``TimeoutError``: their own timeout, as a caller's ``wait_for``)."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiting:
            sink, deadline = self._waiting.popleft()
            failure: rexc.RedisError = error
            if overdue is not None and deadline <= overdue:
                failure = rexc.TimeoutError("timeout reading from redis")
            _failed(sink.future if type(sink) is _Batch else sink, failure)
        if self._transport is not None:
            self._transport.close()

    def _watch(self) -> None:
        """The timer: a reply overdue closes the connection (it may be hung)."""
        self._timer = None
        if not self._waiting:
            return
        oldest = self._waiting[0][1]
        now = self._loop.time()
        if oldest <= now:
            self._fail(rexc.ConnectionError("connection to redis closed: a reply timed out"), now)
        else:
            self._timer = self._loop.call_at(oldest, self._watch)

    def _write(self, payload: bytes, sink: Any, count: int) -> None:
        if self.closed or self._transport is None or self._transport.is_closing():
            raise rexc.ConnectionError("connection to redis is closed")
        timeout = self._timeout
        deadline = float("inf") if timeout is None else self._loop.time() + timeout
        entry = (sink, deadline)
        if count == 1:
            self._waiting.append(entry)
        else:
            self._waiting.extend([entry] * count)
        if self._timer is None and timeout is not None:
            self._timer = self._loop.call_at(deadline, self._watch)
        try:
            self._transport.write(payload)
        except BaseException as exc:  # nothing or part written: the connection is out of step
            self._fail(rexc.ConnectionError(f"error writing to redis: {exc}"))
            raise

    def request(self, payload: bytes) -> asyncio.Future[Any] | Reply[Any]:
        """Write one packed command; a future of its reply (an error reply raised by it): a
        :class:`Reply` on asyncio's own loop."""
        future: asyncio.Future[Any] | Reply[Any]
        future = Reply(self._loop) if self._inline else self._loop.create_future()
        self._write(payload, future, 1)
        return future

    def send(self, commands: Sequence[Sequence[object]]) -> asyncio.Future[list[Any]]:
        """Write ``commands`` in one write; a future of their replies, in order."""
        payload = b"".join(pack(command) for command in commands)  # may raise: nothing sent
        future = self._loop.create_future()
        self._write(payload, _Batch(future, len(commands)), len(commands))
        return future

    def close(self) -> None:
        self._fail(rexc.ConnectionError("connection closed by the client"))


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a failed open as seen (every waiter got the error; nobody else needs it)."""
    if not future.cancelled():
        future.exception()


class ClientClosed(rexc.ConnectionError):
    """A call on a :class:`LeanClient` its backend forgot (closed): nothing was sent."""


class LeanClient:
    """Commands to the server of ``config`` over one pipelined connection, opened on first use
    (and again after it failed or was closed, until its backend forgets it). Belongs to the
    event loop that first uses it."""

    def __init__(self, config: RedisConfig) -> None:
        self._config = config
        self._connection: _Connection | None = None
        self._opening: asyncio.Future[_Connection] | None = None
        self._forgotten = False
        self._waiters = 0  # the calls awaiting the open under way

    async def _open(self) -> _Connection:
        config = self._config
        loop = asyncio.get_running_loop()
        context = ssl_context(config)
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    partial(_Connection, config.socket_timeout),
                    config.host,
                    config.port,
                    ssl=context,
                    server_hostname=config.host if context is not None else None,
                ),
                config.socket_connect_timeout,
            )
        except TimeoutError:
            raise rexc.TimeoutError("timeout connecting to redis") from None
        except OSError as exc:
            raise rexc.ConnectionError(f"error connecting to redis: {exc}") from None
        hello: list[list[object]] = []
        if config.password is not None:
            auth: list[object] = ["AUTH", config.password]
            if config.username:
                auth = ["AUTH", config.username, config.password]
            hello.append(auth)
        if config.db:
            hello.append(["SELECT", config.db])
        if hello:
            try:
                replies = await connection.send(hello)
            except BaseException:
                connection.close()
                raise
            for reply in replies:
                if isinstance(reply, BaseException):
                    connection.close()
                    raise reply
        return connection

    async def _get(self) -> _Connection:
        connection = self._connection
        if connection is not None and not connection.closed:
            return connection
        if self._forgotten:
            raise ClientClosed("this client was closed by its backend's aclose(); nothing sent")
        if self._opening is None or self._opening.done():  # one task opens it, others wait
            self._opening = asyncio.ensure_future(self._open())
            self._opening.add_done_callback(_retrieve)
        self._waiters += 1
        try:
            connection = await asyncio.shield(self._opening)
        except BaseException:
            self._waiters -= 1
            self._settle()  # a waiter cancelled: the last one leaving closes a late open
            raise
        self._waiters -= 1
        if not self._forgotten:
            self._connection = connection
        return connection  # forgotten meanwhile: used by this call, closed after it (_settle)

    def _settle(self, _: object = None) -> None:
        """Forgotten while an open was under way: close what it opened once no call waits for
        the open any more and every reply sent on it is in (the calls it served ran)."""
        opening = self._opening
        if not self._forgotten or self._waiters or opening is None or not opening.done():
            return
        if not opening.cancelled() and opening.exception() is None:
            connection = opening.result()
            if not connection._waiting:
                connection.close()

    def call(self, *args: object) -> Awaitable[Any]:
        """One command's reply, to await; an error reply is raised as redis-py's exception.

        The command is sent now, and what is returned is the reply's own future while the
        connection is open: no coroutine, task, ``gather`` or ``wait_for`` per command (the
        connection's timer enforces ``socket_timeout``), so a reply wakes the caller in the
        loop pass that reads it (:mod:`session_store.aio.reply`)."""
        connection = self._connection
        if connection is None or connection.closed:
            return self._call_opening(args)
        try:
            payload = PACK(args)  # hiredis's C packer takes str, bytes, int and float
        except TypeError:
            payload = pack(args)  # a bytearray; a bool or another type raises pack's error
        return connection.request(payload)

    async def _call_opening(self, args: tuple[object, ...]) -> Any:
        connection = await self._get()
        try:
            return await connection.request(packed(args))
        finally:
            if self._forgotten:  # forgotten while this call opened: the last one out closes
                self._settle()

    async def call_many(
        self, commands: Sequence[Sequence[object]], *, transaction: bool = False
    ) -> list[Any]:
        """Several commands in one write; ``transaction``: inside ``MULTI``/``EXEC`` (all or
        nothing). The replies in order, error replies as exception objects."""
        connection = self._connection
        if connection is None or connection.closed:
            connection = await self._get()
            try:
                return await self._many(connection, commands, transaction)
            finally:
                if self._forgotten:  # as in _call_opening
                    self._settle()
        return await self._many(connection, commands, transaction)

    async def _many(
        self, connection: _Connection, commands: Sequence[Sequence[object]], transaction: bool
    ) -> list[Any]:
        if not transaction:
            return await connection.send(commands)
        replies = await connection.send([["MULTI"], *commands, ["EXEC"]])
        for reply in replies[:-1]:
            if isinstance(reply, BaseException):  # a command refused while queueing
                raise reply
        result = replies[-1]
        if isinstance(result, BaseException):
            raise result
        if result is None:
            raise rexc.ExecAbortError("transaction aborted")
        return list(result)

    def forget(self) -> None:
        """Its backend forgot it (safe from any thread): no call opens a connection on it any
        more, since no later ``aclose`` of the backend would find that connection to close."""
        self._forgotten = True

    async def aclose(self) -> None:
        """Close the connection (the next call opens another, unless :meth:`forget` was called:
        then an open under way is closed when done, after the calls that waited for it)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._opening is not None:
            if self._opening.done():
                self._settle()
            else:
                self._opening.add_done_callback(self._settle)
