"""The Sentinel backend: ``redis+sentinel://host:port,host:port/service_name/db?prefix=...``.

URL form::

    redis+sentinel://[[username]:password@]host[:port][,host[:port]...]/service_name[/db][?...]

The hosts are sentinels (default port 26379); ``service_name`` is the name they monitor the
primary under (``sentinel monitor <service_name> ...``); ``db`` defaults to 0. The userinfo (or
the ``password`` / ``username`` parameters) authenticates to the data nodes. Sentinels that
require a password of their own get it from the keyword argument ``sentinel_password`` (and
``sentinel_username``), never from the URL: a URL travels into logs and its ``?`` parameters are
shown there. The other parameters are the standalone ones (:mod:`session_store_redis.client`);
TLS is not offered through Sentinel yet.

The backend is the standalone :class:`~session_store_redis.backend.RedisBackend` over redis-py's
``Sentinel(...).master_for(service_name)``, made to *follow the primary*
(:mod:`session_store_redis.sentinel_follow`): it subscribes to the sentinels' ``+switch-master``
and ``+promoted-slave`` announcements and leaves a demoted primary at once (busy connections
included), and checks ``ROLE`` on connect and every ``role_check_interval`` seconds (URL
parameter, default 1; 0: on connect only). Keys,
TTLs, bulk operations (one round trip), ``SCAN``, compare-and-set, errors and retries are those of
the standalone backend; a primary the sentinels cannot name yet (mid-failover) is
:class:`~session_store.errors.BackendUnavailableError`, retried like a refused connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from session_store.errors import ConfigurationError
from session_store.urls import BackendURL, Params, redact_url
from session_store_redis.backend import RedisBackend
from session_store_redis.client import connection_kwargs
from session_store_redis.config import (
    ClientSettings,
    backend_options,
    parse_hosts,
    take_settings,
)
from session_store_redis.sentinel_follow import (
    DEFAULT_ROLE_CHECK_INTERVAL,
    FollowingPool,
    PrimaryTracker,
)
from session_store_redis.urls import parse_multi_host_url

__all__ = ["SCHEME", "RedisSentinelBackend", "SentinelConfig", "parse_sentinel_config"]

#: The URL scheme this backend registers.
SCHEME = "redis+sentinel"
_DEFAULT_PORT = 26379
_KEYWORD_ONLY = ("sentinel_password", "sentinel_username")


@dataclass(frozen=True)
class SentinelConfig:
    """Everything a ``redis+sentinel://`` URL and its overrides say, checked; no password in
    its ``repr``."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    settings: ClientSettings
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False, compare=False)
    role_check_interval: float = DEFAULT_ROLE_CHECK_INTERVAL

    def describe(self) -> str:
        """A redacted URL naming the sentinels, the service, the db and the prefix."""
        hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.sentinels)
        service = quote(self.service, safe="")
        prefix = quote(self.settings.prefix, safe=":/")
        return redact_url(
            f"{SCHEME}://{self.settings.userinfo()}{hosts}/{service}/{self.db}?prefix={prefix}"
        )


def parse_sentinel_config(url: BackendURL, overrides: Mapping[str, Any]) -> SentinelConfig:
    """Check a ``redis+sentinel://`` URL and its keyword overrides; no I/O.

    Raises:
        ConfigurationError: a wrong scheme, no service name, a bad database number, a sentinel
            password in the URL, a bad or unknown parameter (named).
    """
    if url.scheme != SCHEME:
        raise ConfigurationError(f"a sentinel URL starts with {SCHEME}://, got {url.scheme}://")
    in_url = [name for name in _KEYWORD_ONLY if name in url.params]
    if in_url:  # no backend= here: the redacted URL would still show that parameter's value
        raise ConfigurationError(
            f"give {', '.join(in_url)} as a keyword argument of open_backend, not in the URL "
            "(URLs are logged)"
        )
    backend = url.redacted()
    parts = [part for part in url.path.split("/") if part]
    if not parts or len(parts) > 2:
        raise ConfigurationError(
            "the path of a sentinel URL is /service_name or /service_name/db "
            "(redis+sentinel://h:26379/mymaster/0)",
            backend=backend,
        )
    if "db" in url.params:
        raise ConfigurationError(
            "give the database number in the path (/service_name/2), not ?db=", backend=backend
        )
    db_text = parts[1] if len(parts) == 2 else "0"
    if not db_text.isdigit():
        raise ConfigurationError(
            f"the database of a sentinel URL is a number, got {db_text!r}", backend=backend
        )
    params = Params(url, overrides)
    settings = take_settings(url, params, health_check=True)
    db = params.take_int("db", int(db_text))
    sentinel_username = params.take_optional_str("sentinel_username")
    sentinel_password = params.take_optional_str("sentinel_password")
    role_check_interval = params.take_float("role_check_interval", DEFAULT_ROLE_CHECK_INTERVAL)
    params.finish()
    if (
        isinstance(role_check_interval, bool)
        or not isinstance(role_check_interval, int | float)
        or not 0 <= role_check_interval < 86_400
    ):
        raise ConfigurationError(
            "role_check_interval must be a number of seconds >= 0 (0: on connect only)",
            backend=backend,
        )
    if isinstance(db, bool) or not isinstance(db, int) or db < 0:
        raise ConfigurationError("db must be an integer >= 0", backend=backend)
    for name, value in (
        ("sentinel_username", sentinel_username),
        ("sentinel_password", sentinel_password),
    ):
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(f"{name} must be text", backend=backend)  # value not shown
    return SentinelConfig(
        sentinels=tuple(parse_hosts(url, _DEFAULT_PORT)),
        service=parts[0],
        db=db,
        settings=settings,
        sentinel_username=sentinel_username,
        sentinel_password=sentinel_password,
        role_check_interval=float(role_check_interval),
    )


def sentinel_connection_kwargs(config: SentinelConfig) -> dict[str, Any]:
    """How to talk to the sentinels themselves (sync and asyncio alike); no retries: the
    backend retries whole operations."""
    settings = config.settings
    return {
        "socket_connect_timeout": settings.socket_connect_timeout,
        "socket_timeout": settings.socket_timeout,
        "username": config.sentinel_username,
        "password": config.sentinel_password,
        "retry": Retry(NoBackoff(), 0),
        "protocol": 2,
    }


def primary_connection_kwargs(config: SentinelConfig) -> dict[str, Any]:
    """How to talk to the primary a sentinel names (sync and asyncio alike)."""
    settings = config.settings
    return {
        "max_connections": settings.max_connections,
        "db": config.db,
        "health_check_interval": settings.health_check_interval,
        **connection_kwargs(settings, Retry(NoBackoff(), 0)),
    }


def build_sentinel_client(config: SentinelConfig) -> tuple[Sentinel, redis.Redis, PrimaryTracker]:
    """The sentinel manager, a client of the current primary, and the tracker that follows
    the sentinels' announcements (see :mod:`session_store_redis.sentinel_follow`); connects
    lazily."""
    sentinel_kwargs = sentinel_connection_kwargs(config)
    sentinel = Sentinel(list(config.sentinels), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    tracker = PrimaryTracker(
        config.service,
        list(config.sentinels),
        sentinel_connection_kwargs(config),
        config.role_check_interval,
    )
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        config.service,
        redis_class=redis.Redis,
        connection_pool_class=FollowingPool,
        tracker=tracker,
        timeout=config.settings.pool_timeout,
        **primary_connection_kwargs(config),
    )
    return sentinel, client, tracker


class RedisSentinelBackend(RedisBackend):
    """Sessions on a Sentinel-managed primary. Usually opened from a URL::

        open_backend("redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0?prefix=app:")

    Everything but opening and closing is :class:`~session_store_redis.backend.RedisBackend`.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        sentinel: Sentinel | None = None,
        tracker: PrimaryTracker | None = None,
        config: SentinelConfig | None = None,
        **options: Any,
    ) -> None:
        """``client`` and ``options`` as for :class:`~session_store_redis.backend.RedisBackend`;
        ``sentinel``, ``tracker``, ``config``: what :meth:`from_url` built (closed with it)."""
        super().__init__(client, **options)
        self._sentinel = sentinel
        self._tracker = tracker
        self._config = config

    @classmethod
    def from_url(cls, url: BackendURL | str, **overrides: Any) -> Self:
        """Build from ``redis+sentinel://...``; keyword arguments beat URL parameters.

        No I/O happens here: the sentinels are asked on the first operation.

        Raises:
            ConfigurationError: a bad or unknown parameter (named in the message).
        """
        parsed = parse_multi_host_url(url) if isinstance(url, str) else url
        config = parse_sentinel_config(parsed, overrides)
        sentinel, client, tracker = build_sentinel_client(config)
        try:
            return cls(
                client,
                sentinel=sentinel,
                tracker=tracker,
                config=config,
                owns_client=True,
                description=config.describe(),
                **backend_options(config.settings),
            )
        except BaseException:
            client.connection_pool.disconnect()
            sentinel.close()
            raise

    @property
    def sentinel(self) -> Sentinel | None:
        """redis-py's sentinel manager (``None`` for a client passed in)."""
        return self._sentinel

    @property
    def tracker(self) -> PrimaryTracker | None:
        """What follows the sentinels' failover announcements (``None`` for a client passed
        in): ``tracker.announced`` is the newest primary announced, ``tracker.switches`` how
        many announcements moved it."""
        return self._tracker

    def _secrets(self) -> tuple[str | None, ...]:
        extra = (self._config.sentinel_password,) if self._config is not None else ()
        return (*super()._secrets(), *extra)

    def close(self) -> None:
        """Disconnect from the data nodes and the sentinels if this backend built the client.
        Every call does, as :meth:`RedisBackend.close` (a use after ``close`` reopens a
        connection, and the next ``close`` releases it; it was a one-shot: such a connection
        stayed open); the tracker's watchers, once stopped, stay stopped."""
        if self._tracker is not None:
            self._tracker.close()
        super().close()
        if self._owns_client and self._sentinel is not None:
            self._sentinel.close()
