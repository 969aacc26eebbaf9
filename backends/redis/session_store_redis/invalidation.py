"""What a chain's near cache needs from Redis: an invalidation stream.

**Invalidation stream** (Redis client-side caching, Redis >= 6). One dedicated RESP2 connection
(``protocol=2``: with redis-py 8's RESP3 default the subscribe reply goes to a push handler and a
plain read hangs) runs ``CLIENT ID``, then ``CLIENT TRACKING ON REDIRECT <its own id> BCAST
PREFIX <namespace head + prefix>``, then ``SUBSCRIBE __redis__:invalidate``. From then on every
write, delete, expiry or eviction of a key under the prefix, by any client, arrives as one message
(measured 0.7 ms on loopback); ``FLUSHDB``/``FLUSHALL`` arrive as a ``None`` list. A thread reads
the messages and hands the session keys to the listener, a batch at a time: it reads whatever
has arrived off the socket at once and parses it with hiredis (redis-py's reads cost a few
microseconds per message), and after each batch it waits :data:`COALESCE` (2 ms) before it reads
again. A process writing steadily is sent the invalidation of each of its own writes (the stream
cannot tell them from another process's); handled one by one, they cost the writer's process
1.3x on a ``save`` (one wake-up of this thread, and one turn of the GIL, per write), gathered
about 1.2x. A lone message is handed over at once; while messages keep coming, one may wait up
to 2 ms more, well inside the near cache's stated bound (50 ms). Every ``ping_interval`` seconds the
thread pings through the subscription. Each answer, read after every message sent before it, is
reported to the listener's ``on_heard`` once those messages are handled: the near cache trusts
the stream only for ``max_staleness`` past the last ping answered, so a process that was paused
(its request threads running before this one reads what waited meanwhile) revalidates instead
of serving what the stream has not yet dropped. A missing answer (a paused or unreachable server)
marks the stream down, so the near cache falls back to its version check within that bound. On any
failure it reconnects with a growing pause; each (re)connection tells the listener, which
flushes what it cannot know about.

The chain's ordered writes (Lua scripts) are in :mod:`session_store_redis.ordered_scripts`.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from typing import Any, Protocol

import redis

try:
    import hiredis
except ImportError:  # pragma: no cover - a dependency of the plugin (redis[hiredis])
    hiredis = None  # type: ignore[assignment]

from session_store.keys import Namespace
from session_store.tiered.near import InvalidationListener
from session_store_redis.ordered_scripts import SET_AFTER_SCRIPT, SET_IF_NEWER_SCRIPT
from session_store_redis.staged import staging_key

__all__ = ["SET_AFTER_SCRIPT", "SET_IF_NEWER_SCRIPT", "InvalidationStream"]

# (re-exported: they were defined here until the module grew past 400 lines)

log = logging.getLogger(__name__)

_CHANNEL = b"__redis__:invalidate"

#: Seconds the thread waits after handling a batch of messages before it reads again.
COALESCE = 0.002


class InvalidationStream:
    """A thread turning Redis invalidation messages into listener calls. See the module doc."""

    def __init__(
        self,
        client: redis.Redis,
        namespace: Namespace,
        prefix: str,
        listener: InvalidationListener,
        *,
        ping_interval: float = 0.25,
        coalesce: float = COALESCE,
    ) -> None:
        pool = client.connection_pool
        self._connection_class = pool.connection_class
        self._connection_kwargs: dict[str, Any] = {
            **pool.connection_kwargs,
            "protocol": 2,
            "socket_timeout": max(ping_interval * 2, 0.5),
        }
        self._head = namespace.scan_head(prefix)
        # where a session key begins in a stored key: the namespace's head, cut without its
        # listing rule (Namespace.decode refuses a key holding U+001F under another separator,
        # a valid key whose invalidation must not be lost; an extra one costs a re-read)
        self._cut = len(namespace.scan_head())
        # the staged writes' staging keys (session_store_redis.staged: this base name and a
        # tag per connection) are no session's
        self._staging = staging_key(namespace.scan_head()).decode("utf-8", "surrogateescape")
        self._listener = listener
        self._ping_interval = ping_interval
        self._coalesce = coalesce
        self._wait = ping_interval / 2  # the longest a read blocks: pings are due meanwhile
        self._stop = threading.Event()
        self._warned: set[str] = set()  # refusals already logged as warnings
        self._connection: Any = None
        self._thread = threading.Thread(target=self._run, name="session-store-invalidation")
        self._thread.daemon = True

    def start(self) -> InvalidationStream:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread and close the connection (idempotent)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    # -- the thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        pause = 0.05
        while not self._stop.is_set():
            connected = False
            try:
                replies = self._connect()
                connected = True
                self._listener.on_connected()
                pause = 0.05
                self._listen(replies)
            except redis.ResponseError as exc:  # the server refused (an ACL without channels)
                self._refused(exc)
            except (redis.RedisError, OSError) as exc:  # down, unreachable: the breaker's news
                log.debug("invalidation stream: %s", exc)
            except Exception:  # anything else (a listener's error): reconnect all the same,
                # flushing, instead of ending the thread and the stream with it for good
                log.exception("invalidation stream: unexpected error, reconnecting")
                pause = max(pause, 1.0)
            finally:
                if connected:
                    self._listener.on_disconnected()
                self._disconnect()
            self._stop.wait(pause)
            pause = min(pause * 2, 2.0)

    def _refused(self, exc: redis.ResponseError) -> None:
        """A refusal keeps the near cache on its version check for as long as it lasts: say so
        once per distinct reason (a retry every 2 s must not flood the log)."""
        reason = str(exc)
        if reason in self._warned:
            log.debug("invalidation stream refused: %s", reason)
            return
        self._warned.add(reason)
        log.warning(
            "invalidation stream refused by the server (%s): the near cache falls back to its "
            "max_staleness check until it is allowed (Redis 7 ACL: grant the user the channel "
            "__redis__:invalidate)",
            reason,
        )

    def _connect(self) -> _Replies:
        connection = self._connection_class(**self._connection_kwargs)
        self._connection = connection
        connection.connect()
        connection.send_command("CLIENT", "ID")
        client_id = connection.read_response()
        connection.send_command(
            "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", "PREFIX", self._head
        )
        connection.read_response()  # (nothing else arrives before SUBSCRIBE: RESP2 redirect)
        connection.send_command("SUBSCRIBE", _CHANNEL)
        replies = _replies(connection)
        deadline = time.monotonic() + self._connection_kwargs["socket_timeout"]
        # messages that come with the confirmation are covered by the flush of on_connected
        while True:
            answers = replies.read(self._wait)
            for answer in answers:
                if isinstance(answer, Exception):  # hiredis hands error replies over as values
                    raise redis.ResponseError(str(answer))
            if any(_kind(answer) == b"subscribe" for answer in answers):
                return replies
            if time.monotonic() > deadline:
                raise redis.TimeoutError("no answer to SUBSCRIBE")

    def _listen(self, replies: _Replies) -> None:
        # the listener's optional on_heard: told, after each pong, how long ago its ping left
        heard = getattr(self._listener, "on_heard", None)
        pinged_at: float | None = None
        next_ping = time.monotonic() + self._ping_interval
        while not self._stop.is_set():
            if pinged_at is None and (now := time.monotonic()) >= next_ping:
                pinged_at = now  # read before it leaves: the server may answer at once
                replies.ping()
            # what has arrived, then tell the listener once: one lock per batch (and, for a
            # steady writer's messages, one pass over their stored keys, not a call per message)
            stored: list[Any] = []
            flush = False
            answered: float | None = None  # when the ping answered in this batch left
            batch = replies.read(self._wait)
            for reply in batch:
                if type(reply) is list and len(reply) == 3 and reply[0] == b"message":
                    if reply[1] == _CHANNEL:
                        if reply[2] is None:  # FLUSHDB / FLUSHALL
                            flush = True
                        else:
                            stored += reply[2]
                elif _kind(reply) == b"pong":
                    answered, pinged_at = pinged_at, None
                    next_ping = time.monotonic() + self._ping_interval
            keys = self._keys(stored) if stored else stored
            if flush:
                self._listener.on_invalidate(None)
            elif keys:
                self._listener.on_invalidate(keys)
            if answered is not None and heard is not None:
                # the pong came after every message the server sent before it read the ping,
                # and those were all handled just above: this is what the near cache's trust
                # rests on (a process paused with messages waiting has not heard them)
                heard(time.monotonic() - answered)
            if not batch:
                # late only if nothing at all is arriving: after a pause of this process the
                # pong is waiting in the socket, and the server is not to blame
                if pinged_at is not None and time.monotonic() - pinged_at > self._ping_interval * 2:
                    raise redis.ConnectionError("no answer to a ping: the server is not serving")
                continue
            if self._coalesce and (flush or keys):
                # let the next messages gather: one wake-up (and one turn of the GIL) for
                # all of them, instead of one per write while this process writes steadily
                self._stop.wait(self._coalesce)

    def _keys(self, stored: list[Any]) -> list[str]:
        """The session keys among the stored keys ``stored`` (the staging keys left out)."""
        head, cut, staging = self._head, self._cut, self._staging
        keys: list[str] = []
        for raw in stored:
            text = raw.decode("utf-8", "surrogateescape") if type(raw) is bytes else str(raw)
            if text.startswith(head) and len(text) > cut and not text.startswith(staging):
                keys.append(text[cut:])
        return keys

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # closing a broken socket may fail: nothing to do
                connection.disconnect()


def _kind(reply: Any) -> Any:
    return reply[0] if isinstance(reply, list) and reply else None


class _Replies(Protocol):
    """The subscribed connection's replies, read in batches."""

    def read(self, timeout: float) -> list[Any]:
        """Every complete reply that has arrived, waiting up to ``timeout`` for the first."""

    def ping(self) -> None:
        """Send ``PING`` (answered with a ``pong`` reply)."""


def _replies(connection: Any) -> _Replies:
    """hiredis straight on the connection's socket if both are there, else redis-py's reads."""
    sock = getattr(connection, "_sock", None)
    if hiredis is None or not isinstance(sock, socket.socket):
        return _ParsedReplies(connection)
    return _RawReplies(connection, sock, hiredis.Reader())


class _RawReplies:
    """What has arrived, read off the socket in as few ``recv`` calls as it takes and parsed by
    hiredis at once (C): a handful of microseconds per wake-up instead of a redis-py
    ``read_response`` per message. (The socket is the connection's own: ``_sock``, which
    redis-py has kept under that name since 3.x. Over TLS each message is a record of its own,
    and a ``recv`` returns one record: hence the loop until nothing more is waiting.)"""

    def __init__(self, connection: Any, sock: socket.socket, reader: Any) -> None:
        self._connection = connection
        self._sock = sock
        self._reader = reader
        self._buffer = bytearray(1 << 16)
        self._timeout: float | None = None
        self._pending: Any = getattr(sock, "pending", None)  # an SSL socket's decrypted bytes
        # poll, not select.select: select refuses a descriptor >= FD_SETSIZE (1024), which a
        # process holding many sockets or files gives this one (ValueError killed the thread)
        self._ready: Any = _readiness(sock)

    def read(self, timeout: float) -> list[Any]:
        sock = self._sock
        if timeout != self._timeout:
            sock.settimeout(timeout)
            self._timeout = timeout
        try:
            size = sock.recv_into(self._buffer)
        except TimeoutError:
            return []
        replies: list[Any] = []
        while True:
            if not size:
                raise redis.ConnectionError("the server closed the invalidation stream")
            self._reader.feed(self._buffer, 0, size)
            try:
                while (reply := self._reader.gets()) is not False:
                    replies.append(reply)
            except hiredis.ProtocolError as exc:
                raise redis.ConnectionError(f"invalidation stream: {exc}") from exc
            waiting = self._pending is not None and self._pending()
            if len(replies) >= 10_000 or not (waiting or self._ready()):
                return replies
            try:  # ready: it does not wait (unless TLS has only part of a record yet)
                size = sock.recv_into(self._buffer)
            except TimeoutError:
                return replies

    def ping(self) -> None:
        # no redis-py health check: it would answer its own PING through its parser, which on
        # this connection reads (and loses) the messages, and fails on the subscribed "pong"
        self._connection.send_command("PING", check_health=False)


def _readiness(sock: socket.socket) -> Any:
    """A call answering, without waiting, whether ``sock`` has bytes to read (or is closed)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return lambda: bool(poller.poll(0))
    return lambda: bool(select.select([sock], [], [], 0)[0])  # pragma: no cover - Windows


class _ParsedReplies:
    """The same through redis-py's own reads (no hiredis)."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def read(self, timeout: float) -> list[Any]:
        connection = self._connection
        replies: list[Any] = []
        if connection.can_read(timeout=timeout):
            while len(replies) < 10_000:
                replies.append(connection.read_response())
                if not connection.can_read(timeout=0):
                    break
        return replies

    def ping(self) -> None:
        # no redis-py health check: it would answer its own PING through its parser, which on
        # this connection reads (and loses) the messages, and fails on the subscribed "pong"
        self._connection.send_command("PING", check_health=False)
