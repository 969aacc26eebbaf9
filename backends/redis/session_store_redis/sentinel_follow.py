"""Follow a Sentinel-managed primary through a failover: never write to a demoted one.

redis-py's Sentinel client asks a sentinel for the primary only when it opens a connection, and
drops a connection only when a write to it fails with ``READONLY``. A primary that is paused
(SIGSTOP, a VM freeze, a long fork) past the failover comes back *still believing it is the
primary*: it answers the commands waiting on its sockets and those a client keeps sending it,
and throws every one of them away when the sentinels make it a replica of the promoted one.

This module keeps a backend on the primary the sentinels chose:

* **Notifications.** A :class:`PrimaryTracker` subscribes, on every sentinel (those of the URL
  and those they know of; one daemon thread each, started in each process on first use, so
  forked workers get their own), to
  ``+promoted-slave`` (a replica was promoted: it already answers as a primary) and
  ``+switch-master`` (the sentinels moved the service). The newest such announcement is the
  primary: new connections go there without asking a sentinel (a sentinel that has not heard of
  the failover yet would name the old one), connections elsewhere are dropped at once (idle ones
  closed, sockets of busy ones shut down, so a call blocked on a paused primary fails now and is
  retried on the new one), and a reply that arrives on a connection to another node after the
  announcement is refused (:class:`redis.ConnectionError`: its outcome is unknown; idempotent
  operations are retried on the new primary, compare-and-set reports it).
* **Role check.** Every connection checks ``ROLE`` when it connects (a node that is not a
  primary is refused and the sentinels are asked again) and then every ``role_check_interval``
  seconds before a command (1 s by default; 0: on connect only): a node demoted while no
  notification reached us (all sentinels unreachable) is left within that interval, reads
  included (a demoted primary serves stale data without a ``READONLY`` error).

What remains: a write the old primary acknowledges *before* any notification reaches the
client (it resumes before the sentinels finish, or no sentinel is reachable) is lost when it is
reconfigured. ``min-replicas-to-write 1`` / ``min-replicas-max-lag`` on the data nodes close
that: a primary none of whose replicas acknowledged within the lag refuses writes. See
docs/scale-out.md for the bound with and without ``wait_replicas``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any, cast

import redis
from redis.connection import BlockingConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.sentinel import (
    SentinelConnectionPool,
    SentinelConnectionPoolProxy,
    SentinelManagedConnection,
)

from session_store import forksafe

__all__ = [
    "DEFAULT_ROLE_CHECK_INTERVAL",
    "FollowingConnection",
    "FollowingPool",
    "PrimaryTracker",
]

log = logging.getLogger(__name__)

#: Seconds between ``ROLE`` checks of a connection (0: only when it connects).
DEFAULT_ROLE_CHECK_INTERVAL = 1.0
#: The sentinel events that name a new primary.
_CHANNELS = ("+switch-master", "+promoted-slave")
#: Seconds a watcher waits before subscribing again after losing its sentinel.
_RESUBSCRIBE_PAUSE = 0.5

Address = tuple[str, int]


class PrimaryTracker:
    """The primary the sentinels last announced for one service, and the pools to steer.

    Args:
        service: the service name the sentinels monitor.
        sentinels: their addresses.
        sentinel_kwargs: connection settings for the sentinels (timeouts, credentials).
        role_check_interval: seconds between ``ROLE`` checks of a data connection (0: on
            connect only).
    """

    def __init__(
        self,
        service: str,
        sentinels: list[Address],
        sentinel_kwargs: Mapping[str, Any],
        role_check_interval: float = DEFAULT_ROLE_CHECK_INTERVAL,
    ) -> None:
        self.service = service
        self.sentinels = list(sentinels)
        self.sentinel_kwargs = dict(sentinel_kwargs)
        self.role_check_interval = role_check_interval
        self._address: Address | None = None
        self._lock = threading.Lock()
        self._pools: weakref.WeakSet[FollowingPool] = weakref.WeakSet()
        self._pid: int | None = None
        self._stop = threading.Event()
        self._watched: set[Address] = set()  # sentinels with a watcher thread in this process
        self._subscribed: set[Address] = set()  # ... and those subscribed now
        self.switches = 0  # announcements that moved the primary, seen by this process
        forksafe.register(self)

    def _reset_locks(self) -> None:
        """In a forked child: fresh locks (a parent thread may have held one at the fork); the
        watcher threads did not survive the fork and start again on first use."""
        self._lock = threading.Lock()
        stopped, self._stop = self._stop.is_set(), threading.Event()
        if stopped:
            self._stop.set()

    @property
    def announced(self) -> Address | None:
        """The primary of the newest announcement, if one arrived (and was not refused)."""
        return self._address

    def attach(self, pool: FollowingPool) -> None:
        """Steer ``pool``'s connections on every announcement."""
        with self._lock:
            self._pools.add(pool)

    # -- announcements -------------------------------------------------------------------------
    def switched(self, address: Address) -> None:
        """The sentinels announced ``address`` as the primary: drop connections elsewhere."""
        with self._lock:
            if address == self._address:
                return
            self._address = address
            self.switches += 1
            pools = list(self._pools)
        log.warning(
            "redis sentinel: %s has a new primary %s:%d; leaving the old one",
            self.service,
            *address,
        )
        for pool in pools:
            pool.leave_all_but(address)

    def refused(self, address: Address) -> None:
        """``address`` is not a primary (its ``ROLE`` said so): ask the sentinels again."""
        with self._lock:
            if self._address == address:
                self._address = None

    def handle(self, channel: str, data: str) -> None:
        """One pub/sub message from a sentinel."""
        fields = data.split()
        if channel == "+switch-master" and len(fields) == 5 and fields[0] == self.service:
            host, port = fields[3], fields[4]
        elif (
            channel == "+promoted-slave"
            and len(fields) == 8
            and fields[4] == "@"
            and fields[5] == self.service
        ):
            host, port = fields[2], fields[3]
        else:
            return
        if port.isdigit():
            self.switched((host, int(port)))

    # -- watching ------------------------------------------------------------------------------
    @property
    def watching(self) -> frozenset[Address]:
        """The sentinels this process is subscribed to now."""
        return frozenset(self._subscribed)

    def ensure_watching(self) -> None:
        """Start the watcher threads in this process (once; again in a forked child): one per
        sentinel of the URL, and one per sentinel those know of (``SENTINEL SENTINELS``), so
        that a URL naming one sentinel still hears the announcement of whichever leads."""
        pid = os.getpid()
        if self._pid == pid or self._stop.is_set():
            return
        with self._lock:
            if self._pid == pid:
                return
            self._pid = pid
            self._watched = set()
            self._subscribed = set()
        for host, port in self.sentinels:
            self._start_watcher((host, port))

    def _start_watcher(self, address: Address) -> None:
        with self._lock:
            if address in self._watched or self._stop.is_set():
                return
            self._watched.add(address)
        threading.Thread(
            target=self._watch,
            args=address,
            name=f"session-store sentinel watch {address[0]}:{address[1]}",
            daemon=True,
        ).start()

    def _watch(self, host: str, port: int) -> None:
        pid = os.getpid()
        while not self._stop.is_set() and os.getpid() == pid:
            client = redis.Redis(host=host, port=port, **self.sentinel_kwargs)
            pubsub = client.pubsub()  # type: ignore[no-untyped-call]
            try:
                self._listen(client, pubsub, (host, port))
            except (redis.RedisError, OSError, ValueError, KeyError, TypeError) as exc:
                log.debug("redis sentinel %s:%d: watch interrupted (%s)", host, port, exc)
            finally:
                self._subscribed.discard((host, port))
                with contextlib.suppress(redis.RedisError, OSError):
                    pubsub.close()
                    client.close()
            self._stop.wait(_RESUBSCRIBE_PAUSE)

    def _listen(self, client: redis.Redis, pubsub: Any, address: Address) -> None:
        """Subscribe, learn the other sentinels, then hand every announcement to :meth:`handle`."""
        pubsub.subscribe(*_CHANNELS)
        confirmed = 0
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            if message["type"] == "subscribe":
                confirmed += 1
                if confirmed == len(_CHANNELS):
                    self._subscribed.add(address)
                    others = client.sentinel_sentinels(self.service)
                    for other in cast("list[dict[str, Any]]", others):
                        self._start_watcher((str(other["ip"]), int(other["port"])))
            elif message["type"] == "message":
                self.handle(_text(message["channel"]), _text(message["data"]))

    def close(self) -> None:
        """Stop the watcher threads (they end within a second)."""
        self._stop.set()


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class _FollowingProxy(SentinelConnectionPoolProxy):
    """Names the primary for new connections: the newest announcement, else the sentinels."""

    tracker: PrimaryTracker

    def get_master_address(self) -> Address:
        self.tracker.ensure_watching()
        announced = self.tracker.announced
        if announced is None:
            address: Address = super().get_master_address()  # type: ignore[no-untyped-call]
            return address
        if self.master_address != announced:
            self.master_address = announced
            pool = self.connection_pool_ref()
            if pool is not None:
                pool.disconnect(inuse_connections=False)
        return announced


class FollowingPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's Sentinel pool with the blocking behaviour of the standalone backend's pool (a
    thread waits up to ``timeout`` seconds for a free connection), steered by a
    :class:`PrimaryTracker` (pass ``tracker=``)."""

    def __init__(self, service_name: str, sentinel_manager: Any, **kwargs: Any) -> None:
        tracker: PrimaryTracker = kwargs.pop("tracker")
        kwargs.setdefault("connection_class", FollowingConnection)
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        proxy = _FollowingProxy(  # type: ignore[no-untyped-call]
            connection_pool=self,
            is_master=self.is_master,
            check_connection=self.check_connection,
            service_name=service_name,
            sentinel_manager=sentinel_manager,
        )
        proxy.tracker = tracker
        self.proxy = proxy
        self.connection_kwargs["connection_pool"] = proxy
        self.tracker = tracker
        tracker.attach(self)

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        connection = super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        announced = self.tracker.announced
        if announced is not None and (connection.host, connection.port) != announced:
            try:  # connected before the announcement: connect again, to the announced one
                connection.disconnect()
                connection.connect()
            except BaseException:
                self.release(connection)  # type: ignore[no-untyped-call]
                raise
        return connection

    def leave_all_but(self, address: Address) -> None:
        """Close idle connections; shut down the sockets of busy ones to another node, so that
        a call waiting on a paused primary fails at once (and is retried on ``address``)."""
        self.disconnect(inuse_connections=False)
        for connection in self._get_in_use_connections():  # type: ignore[no-untyped-call]
            if (connection.host, connection.port) == address:
                continue
            sock = getattr(connection, "_sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class FollowingConnection(SentinelManagedConnection):
    """A connection to the primary that checks ``ROLE`` on connect and every
    ``role_check_interval`` seconds, and refuses a reply from a node that is no longer the
    announced primary."""

    _role_checked = 0.0
    _connecting = False  # no ROLE check inside the handshake (its replies may be pending)

    def _tracker(self) -> PrimaryTracker:
        tracker: PrimaryTracker = self.connection_pool.tracker
        return tracker

    def connect_to(self, address: Address) -> None:
        self._connecting = True
        try:
            super().connect_to(address)  # type: ignore[no-untyped-call]
        except (RedisConnectionError, RedisTimeoutError):
            # The announced primary does not answer (it failed too, and we missed the next
            # announcement): ask the sentinels again on the next attempt.
            self._tracker().refused((str(address[0]), int(address[1])))
            raise
        finally:
            self._connecting = False
        if self.connection_pool.is_master:
            self._check_role()

    def _check_role(self) -> None:
        """``ROLE``; a node that is not a primary is left and the sentinels asked again."""
        self._role_checked = time.monotonic()
        self.send_command("ROLE", check_health=False)  # type: ignore[no-untyped-call]
        reply = super().read_response()
        role = _text(reply[0]) if isinstance(reply, list | tuple) and reply else "?"
        if role != "master":
            address = (str(self.host), int(self.port))
            self.disconnect()  # type: ignore[no-untyped-call]
            self._tracker().refused(address)
            raise RedisConnectionError(f"{address[0]}:{address[1]} is a {role}, not the primary")
        if self.health_check_interval:  # ROLE answered: no PING needed for a while either
            self.next_health_check = time.monotonic() + self.health_check_interval  # type: ignore[assignment]

    def check_health(self) -> None:
        interval = self._tracker().role_check_interval
        if (
            interval
            and not self._connecting
            and self.connection_pool.is_master
            and time.monotonic() - self._role_checked > interval
        ):
            self._check_role()
        super().check_health()  # type: ignore[no-untyped-call]

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        response = super().read_response(*args, **kwargs)
        announced = self._tracker().announced
        if announced is not None and (self.host, self.port) != announced:
            self.disconnect()  # type: ignore[no-untyped-call]
            raise RedisConnectionError(
                f"{self.host}:{self.port} is no longer the primary (the sentinels announced "
                f"{announced[0]}:{announced[1]}); the outcome of the command is unknown"
            )
        return response
