"""Build redis-py clients: the connection settings every topology shares, the standalone
client and its connection pool, and the retry policy of the backends.

What a URL says is :mod:`session_store_redis.config`'s (its names are importable from here too,
as they always were). redis-py connects lazily, so building a client does no I/O; a server that
is down shows up on the first command.

**Retries** (:func:`retryable`) run whole operations again after a failed *connection*
(refused, reset, closed), with equal-jitter exponential backoff (50 ms base, 500 ms cap), and
only operations that may safely run twice: reads, ``SET``, ``PEXPIRE``, ``UNLINK``. Timeouts are
not retried, so a hung server costs one timeout, not several; refused credentials are not
retried; compare-and-set is never retried (if the reply to a write that landed is lost, running
it again would report a conflict that never happened, and an update loop would apply its change
twice). redis-py's own retries are switched off: they nest (connect, health check, command), and
with its defaults a dead server costs a multiple of the timeout.

**A silent server** (accepts, never replies) costs each call one ``socket_timeout`` (default 5 s;
a connect never answered: one ``socket_connect_timeout``), the first call and every later one
alike: a timed-out connection is dropped, never reused. The defaults bound a slow but healthy
Redis, not a web request's budget: backends/redis/README.md, "When Redis does not answer".
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import redis
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.connection import BlockingConnectionPool, Connection, SSLConnection
from redis.retry import Retry

from session_store.urls import redact_url
from session_store_redis import config
from session_store_redis.config import *  # noqa: F403 - re-exported, as they always were
from session_store_redis.config import ClientSettings, RedisConfig
from session_store_redis.errors import is_refusal

__all__ = [
    "build_client",
    "connection_kwargs",
    "describe_client",
    "make_backoff",
    "retryable",
    "secrets_of",
]
__all__ += config.__all__  # what a URL says: session_store_redis.config's names

_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 0.5


# -- retries -----------------------------------------------------------------------------------
def make_backoff() -> EqualJitterBackoff:
    """Pauses between retries: exponential from 50 ms, capped at 500 ms, with equal jitter."""
    return EqualJitterBackoff(cap=_BACKOFF_CAP, base=_BACKOFF_BASE)


def retryable(error: BaseException) -> bool:
    """Whether an operation that failed with ``error`` may run again.

    Only a failed *connection* is (refused, reset, closed, busy loading): such failures are quick
    and often brief (a restart, a failover, an idle connection a proxy dropped). A timeout is not:
    the caller already waited the whole timeout, and retrying would multiply what a hung server
    costs. Refused credentials and a certificate that failed verification are not: another try
    cannot fix them.
    """
    return isinstance(error, redis.ConnectionError) and not is_refusal(error)


# -- the clients -------------------------------------------------------------------------------
def connection_kwargs(settings: ClientSettings, retry: Any) -> dict[str, Any]:
    """The connection settings of every client of a data node, whatever the topology
    (standalone, a Sentinel's primary, a cluster's nodes; sync or asyncio), written once.

    ``retry`` is a no-op ``Retry`` of the flavour of the client (``redis.retry`` or
    ``redis.asyncio.retry``): redis-py does no retrying of its own, since its retries nest
    (connect, health check, command) and would multiply the time a dead server costs. The
    backends retry whole operations.
    """
    return {
        "username": settings.username,
        "password": settings.password,
        "socket_connect_timeout": settings.socket_connect_timeout,
        "socket_timeout": settings.socket_timeout,
        "socket_keepalive": True,
        "retry": retry,
        # RESP2: what every Redis speaks, and ~10% faster than RESP3 for a 700 KB MGET here; the
        # push messages RESP3 adds (client-side caching, maintenance notices) are not used.
        "protocol": 2,
        # 64 KiB reads: fewer system calls for bulk replies (measured best of 16 KiB..1 MiB).
        "socket_read_size": 65536,
    }


def build_client(config: RedisConfig) -> redis.Redis:
    """A client over a new blocking connection pool for ``config``; connects lazily."""
    kwargs: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "db": config.db,
        "health_check_interval": config.health_check_interval,
        **connection_kwargs(config, Retry(NoBackoff(), 0)),
    }
    connection_class: type[Connection] = Connection
    if config.tls:
        connection_class = SSLConnection
        kwargs.update(config.ssl)
    pool = BlockingConnectionPool(  # type: ignore[no-untyped-call]
        max_connections=config.max_connections,
        timeout=config.pool_timeout,
        connection_class=connection_class,
        **kwargs,
    )
    return redis.Redis(connection_pool=pool)


def describe_client(client: redis.Redis, prefix: str) -> str:
    """A redacted URL for a client someone else built: host, port, db and prefix, no secrets."""
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    scheme = "rediss" if issubclass(pool.connection_class, SSLConnection) else "redis"
    quoted = quote(prefix, safe=":/")
    if kwargs.get("path"):
        return redact_url(f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}&prefix={quoted}")
    host = str(kwargs.get("host", "localhost"))
    if ":" in host:
        host = f"[{host}]"
    return redact_url(
        f"{scheme}://{host}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}?prefix={quoted}"
    )


def secrets_of(client: redis.Redis) -> tuple[str | None, ...]:
    """The secrets a client holds, to scrub from messages (read when needed, never copied)."""
    kwargs = client.connection_pool.connection_kwargs
    return (kwargs.get("password"), kwargs.get("ssl_password"))
