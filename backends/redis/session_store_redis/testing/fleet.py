"""What a harness of several servers needs: poll until a condition holds, one kept client per
server for the inspection helpers, and stopping every server at once (each by its own pid).
Shared by the Cluster and Sentinel harnesses."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from session_store_redis.testing.server import RedisServer, RedisServerError

__all__ = ["ClientCache", "stop_all", "wait_until"]


def wait_until(what: str, check: Callable[[], bool], timeout: float, pause: float = 0.05) -> None:
    """Poll ``check`` until it is true.

    Raises:
        RedisServerError: still false after ``timeout`` seconds (naming ``what``).
    """
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RedisServerError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(pause)


class ClientCache:
    """Plain clients to our own servers, kept for the inspection helpers (one connection per
    server instead of one per call); RESP2, one retry so that a restarted server is reached
    again at once, short timeouts so that a dead one costs little."""

    def __init__(self) -> None:
        self._clients: dict[int, redis.Redis] = {}
        self._lock = threading.Lock()

    def of(self, server: RedisServer) -> redis.Redis:
        """The kept client of ``server`` (by port)."""
        with self._lock:
            client = self._clients.get(server.port)
            if client is None:
                client = server.client(
                    socket_timeout=2.0,
                    socket_connect_timeout=1.0,
                    protocol=2,
                    retry=Retry(NoBackoff(), 1),
                )
                self._clients[server.port] = client
            return client

    def close(self) -> None:
        """Close every kept client."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


def stop_all(servers: Iterable[RedisServer]) -> None:
    """Stop servers concurrently (each by its own pid), keeping their directories."""
    servers = list(servers)
    if not servers:
        return
    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        list(pool.map(lambda server: server.stop(remove_directory=False), servers))
