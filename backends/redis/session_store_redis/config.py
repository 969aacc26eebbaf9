"""What a redis URL says, parsed and checked (no I/O): ``redis://`` / ``rediss://``, and the
parameters ``redis+cluster://`` and ``redis+sentinel://`` URLs share with them.

URL form::

    redis://[[username]:password@]host[:port][/db][?name=value&...]
    rediss://...        the same over TLS

A lone userinfo (``redis://secret@host``) is the password, as :func:`session_store.urls.redact_url`
assumes. Parameters (keyword arguments of ``open_backend`` / ``from_url`` override them):

==========================  ============  ======================================================
name                        default       meaning
==========================  ============  ======================================================
``prefix``                  ``session:``  key namespace, see :class:`session_store.keys.Namespace`
``separator``               U+001F        what ends the prefix in a stored key (``redis://``
                                          only); ``prefix=session&separator=:`` stores
                                          ``session:{key}``, the data-room plan's layout
``default_ttl``             none          seconds a write without a TTL lives
``socket_connect_timeout``  5             seconds to establish a connection
``socket_timeout``          5             seconds to wait for a reply (old redis-py: forever)
``retries``                 2             retries of an operation after a failed connection
``health_check_interval``   30            seconds idle before a pooled connection is PINGed
``max_connections``         50            connections in the pool; more threads wait for one ...
``pool_timeout``            5             ... at most this many seconds
``wait_replicas``           0             writes return once this many replicas have them
                                          (``WAIT``); 0: once the primary has them
``wait_timeout``            1             seconds ``WAIT`` may take; fewer replicas in time:
                                          :class:`~session_store.errors.BackendUnavailableError`
``password``                none          instead of the userinfo (prefer a keyword argument)
``username``                none          an ACL user, instead of the userinfo
``ssl_cert_reqs``           ``required``  ``rediss://`` only: ``required``, ``optional``, ``none``
``ssl_ca_certs``            system store  ``rediss://`` only: CA bundle file
``ssl_certfile``            none          ``rediss://`` only: client certificate (mutual TLS)
``ssl_keyfile``             none          ``rediss://`` only: its private key
``ssl_check_hostname``      true          ``rediss://`` only: verify the host name
==========================  ============  ======================================================

The same parameters (less ``db`` and ``health_check_interval`` for Cluster) configure
``redis+cluster://`` and ``redis+sentinel://`` URLs: :func:`take_settings` reads them for all three
(:func:`backend_options` hands them to a backend's constructor);
:mod:`session_store_redis.client` builds the clients.

The password is handed to redis-py's pool and kept nowhere else: not in the ``repr`` of
:class:`ClientSettings` or :class:`RedisConfig`, not in :meth:`RedisConfig.describe`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import quote

from session_store.errors import ConfigurationError
from session_store.keys import SEPARATOR
from session_store.urls import BackendURL, Params, redact_url

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_HEALTH_CHECK_INTERVAL",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_POOL_TIMEOUT",
    "DEFAULT_PREFIX",
    "DEFAULT_RETRIES",
    "DEFAULT_SOCKET_TIMEOUT",
    "DEFAULT_WAIT_TIMEOUT",
    "ClientSettings",
    "RedisConfig",
    "backend_options",
    "parse_config",
    "parse_hosts",
    "take_settings",
]

#: Key prefix of a backend opened without one (the data-room app's).
DEFAULT_PREFIX = "session:"
#: Seconds to establish a connection.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Seconds to wait for a reply.
DEFAULT_SOCKET_TIMEOUT = 5.0
#: Retries of a command that failed on the connection (0: none).
DEFAULT_RETRIES = 2
#: Seconds a pooled connection may idle before it is checked with a PING (0: never).
DEFAULT_HEALTH_CHECK_INTERVAL = 30.0
#: Connections per pool.
DEFAULT_MAX_CONNECTIONS = 50
#: Seconds a thread waits for a free pooled connection.
DEFAULT_POOL_TIMEOUT = 5.0
#: Seconds ``WAIT`` may block for replicas when ``wait_replicas`` is set.
DEFAULT_WAIT_TIMEOUT = 1.0

_MAX_RETRIES = 20
_SSL_PARAMS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")
_CERT_REQS = ("required", "optional", "none")


# -- checks ------------------------------------------------------------------------------------
def _seconds(name: str, value: object, backend: str, *, zero_ok: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a finite number of seconds", backend=backend)
    if value < 0 or (value == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise ConfigurationError(f"{name} must be {bound}, got {value!r}", backend=backend)
    return float(value)


def _integer(
    name: str, value: object, backend: str, *, minimum: int, maximum: int | None = None
) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an integer", backend=backend)
    if value < minimum or (maximum is not None and value > maximum):
        top = f" and <= {maximum}" if maximum is not None else ""
        raise ConfigurationError(
            f"{name} must be >= {minimum}{top}, got {value!r}", backend=backend
        )
    return value


def _text(name: str, value: object, backend: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(f"{name} must be text", backend=backend)  # never show a secret
    return value


def _db_from_path(url: BackendURL) -> int:
    path = url.path.strip("/")
    if not path:
        return 0
    if not path.isdigit():
        raise ConfigurationError(
            f"the path of a redis URL is a database number, got {path!r}", backend=url.redacted()
        )
    return int(path)


# -- the settings every redis URL shares ---------------------------------------------------------
@dataclass(frozen=True)
class ClientSettings:
    """The parameters every redis URL shares (standalone, Cluster, Sentinel), checked. Its
    ``repr`` holds no password."""

    username: str | None
    password: str | None = field(repr=False, compare=False)
    prefix: str
    default_ttl: float | None
    socket_connect_timeout: float
    socket_timeout: float
    retries: int
    health_check_interval: float
    max_connections: int
    pool_timeout: float
    wait_replicas: int
    wait_timeout: float

    def userinfo(self) -> str:
        """``user:***@``, ``:***@``, ``user@`` or nothing: the redacted userinfo of a URL."""
        if self.password is not None:
            user = quote(self.username, safe="") if self.username else ""
            return f"{user}:***@"
        if self.username:
            return f"{quote(self.username, safe='')}@"
        return ""


def take_settings(url: BackendURL, params: Params, *, health_check: bool) -> ClientSettings:
    """Take the shared parameters from ``params`` (the caller takes its own and finishes).

    The userinfo of ``url`` gives the username and password (a lone part is the password);
    ``password`` / ``username`` parameters replace them. ``health_check``: whether
    ``health_check_interval`` is a parameter of this scheme.

    Raises:
        ConfigurationError: a value that does not parse or is out of range (named).
    """
    backend = url.redacted()
    username, password = url.username, url.password
    if username is not None and password is None:
        username, password = None, username  # redis://secret@host: a lone part is the password
    password = _text("password", params.take_optional_str("password"), backend) or password
    username = _text("username", params.take_optional_str("username"), backend) or username
    prefix = _text("prefix", params.take_str("prefix", DEFAULT_PREFIX), backend)
    default_ttl = params.take_optional_float("default_ttl")
    connect_timeout = params.take_float("socket_connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    socket_timeout = params.take_float("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
    retries = params.take_int("retries", DEFAULT_RETRIES)
    health = (
        params.take_float("health_check_interval", DEFAULT_HEALTH_CHECK_INTERVAL)
        if health_check
        else 0.0
    )
    max_connections = params.take_int("max_connections", DEFAULT_MAX_CONNECTIONS)
    pool_timeout = params.take_float("pool_timeout", DEFAULT_POOL_TIMEOUT)
    wait_replicas = params.take_int("wait_replicas", 0)
    wait_timeout = params.take_float("wait_timeout", DEFAULT_WAIT_TIMEOUT)
    return ClientSettings(
        username=username,
        password=password,
        prefix=prefix or "",
        default_ttl=default_ttl,
        socket_connect_timeout=_seconds("socket_connect_timeout", connect_timeout, backend),
        socket_timeout=_seconds("socket_timeout", socket_timeout, backend),
        retries=_integer("retries", retries, backend, minimum=0, maximum=_MAX_RETRIES),
        health_check_interval=_seconds("health_check_interval", health, backend, zero_ok=True),
        max_connections=_integer("max_connections", max_connections, backend, minimum=1),
        pool_timeout=_seconds("pool_timeout", pool_timeout, backend),
        wait_replicas=_integer("wait_replicas", wait_replicas, backend, minimum=0),
        wait_timeout=_seconds("wait_timeout", wait_timeout, backend),
    )


def backend_options(settings: ClientSettings) -> dict[str, Any]:
    """The keyword arguments every Redis backend's constructor takes from the settings (what
    each ``from_url`` passes, written once)."""
    return {
        "prefix": settings.prefix,
        "default_ttl": settings.default_ttl,
        "retries": settings.retries,
        "wait_replicas": settings.wait_replicas,
        "wait_timeout": settings.wait_timeout,
    }


def parse_hosts(url: BackendURL, default_port: int) -> list[tuple[str, int]]:
    """The ``host[:port]`` list of a URL whose netloc names several servers, comma-separated
    (``redis+cluster://a:7000,b:7001``); IPv6 hosts in brackets.

    Read from the netloc itself, so it does not depend on ``url.hostname`` / ``url.port``, which
    describe one server only.

    Raises:
        ConfigurationError: an empty entry, a bad port.
    """
    backend = url.redacted()
    hostlist = url.netloc.rpartition("@")[2]
    hosts: list[tuple[str, int]] = []
    for entry in hostlist.split(","):
        entry = entry.strip()
        if entry.startswith("["):  # [::1]:7000
            host, bracket, rest = entry[1:].partition("]")
            port_text = rest.removeprefix(":")
            if not bracket or (rest and not rest.startswith(":")):
                host = ""
        else:
            host, _, port_text = entry.partition(":")
        if not host:
            raise ConfigurationError(
                "every server of the URL needs a host (host:port,host:port)", backend=backend
            )
        if not port_text:
            port = default_port
        elif port_text.isdigit() and 0 < int(port_text) < 65536:
            port = int(port_text)
        else:
            raise ConfigurationError(
                f"the port of {host!r} must be a number from 1 to 65535", backend=backend
            )
        hosts.append((host, port))
    return hosts


# -- redis:// and rediss:// --------------------------------------------------------------------


@dataclass(frozen=True)
class RedisConfig(ClientSettings):
    """Everything a ``redis://`` / ``rediss://`` URL and its overrides say, checked: the shared
    :class:`ClientSettings` plus the server, the database, TLS and the key separator. Its
    ``repr`` holds no password."""

    scheme: str
    host: str
    port: int
    db: int
    ssl: Mapping[str, Any] = field(default_factory=dict)
    separator: str = SEPARATOR

    @property
    def tls(self) -> bool:
        """Whether connections use TLS (``rediss://``)."""
        return self.scheme == "rediss"

    def describe(self) -> str:
        """A redacted URL naming the server, db and prefix: never the password."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = (
            f"{self.scheme}://{self.userinfo()}{host}:{self.port}/{self.db}"
            f"?prefix={quote(self.prefix, safe=':/')}"
        )
        if self.separator != SEPARATOR:
            text += f"&separator={quote(self.separator, safe=':/')}"
        return redact_url(text)


def parse_config(url: BackendURL, overrides: Mapping[str, Any]) -> RedisConfig:
    """Check a redis URL and its keyword overrides; no I/O.

    Raises:
        ConfigurationError: a wrong scheme, a bad path, a parameter that does not parse or is out
            of range, an unknown parameter (named), or a TLS parameter on ``redis://``.
    """
    backend = url.redacted()
    if url.scheme not in ("redis", "rediss"):
        raise ConfigurationError(
            f"a redis URL starts with redis:// or rediss://, got {url.scheme}://", backend=backend
        )
    if "db" in url.params:
        raise ConfigurationError(
            "give the database number as the URL path (redis://host:6379/2), not ?db=",
            backend=backend,
        )
    tls_given = sorted(name for name in _SSL_PARAMS if name in url.params or name in overrides)
    if tls_given and url.scheme != "rediss":
        raise ConfigurationError(
            f"TLS parameters ({', '.join(tls_given)}) need a rediss:// URL", backend=backend
        )
    params = Params(url, overrides)
    settings = take_settings(url, params, health_check=True)
    db = params.take_int("db", _db_from_path(url))
    separator = params.take_str("separator", SEPARATOR)
    ssl: dict[str, Any] = {
        "ssl_cert_reqs": params.take_str("ssl_cert_reqs", "required"),
        "ssl_ca_certs": _text("ssl_ca_certs", params.take_optional_str("ssl_ca_certs"), backend),
        "ssl_certfile": _text("ssl_certfile", params.take_optional_str("ssl_certfile"), backend),
        "ssl_keyfile": _text("ssl_keyfile", params.take_optional_str("ssl_keyfile"), backend),
        "ssl_check_hostname": params.take_bool("ssl_check_hostname", True),
    }
    params.finish()
    if ssl["ssl_cert_reqs"] not in _CERT_REQS:
        raise ConfigurationError(
            f"ssl_cert_reqs must be one of {', '.join(_CERT_REQS)}", backend=backend
        )
    if not isinstance(ssl["ssl_check_hostname"], bool):
        raise ConfigurationError("ssl_check_hostname must be a boolean", backend=backend)
    return RedisConfig(
        **{f.name: getattr(settings, f.name) for f in fields(ClientSettings)},
        scheme=url.scheme,
        host=url.hostname or "localhost",
        port=url.port or 6379,
        db=_integer("db", db, backend, minimum=0),
        ssl=ssl if url.scheme == "rediss" else {},
        separator=separator or SEPARATOR,
    )
