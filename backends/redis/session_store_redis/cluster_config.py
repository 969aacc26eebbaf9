"""What a ``redis+cluster://`` URL says, and the cluster clients built from it (sync and asyncio,
one set of connection settings).

URL form::

    redis+cluster://[[username]:password@]host[:port][,host[:port]...][/][?name=value&...]

The hosts are *startup nodes*: any one that answers is enough, the client learns every other
node and the slot map from it (``CLUSTER SLOTS``). The parameters are the standalone ones
(:mod:`session_store_redis.config`) less ``db`` (a cluster has database 0 only) and
``health_check_interval`` (redis-py's cluster client does not pass it on), plus ``scan_rounds``
(default 5: rounds of reading again, slot by slot, what moved during a listing; 0: prove a
listing from its walk alone). TLS is not offered for clusters yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import BlockingConnectionPool
from redis.retry import Retry

from session_store.errors import ConfigurationError
from session_store.urls import BackendURL, Params, redact_url
from session_store_redis.client import connection_kwargs
from session_store_redis.config import ClientSettings, parse_hosts, take_settings

__all__ = [
    "DEFAULT_SCAN_ROUNDS",
    "SCHEME",
    "ClusterConfig",
    "build_async_cluster",
    "build_cluster",
    "describe_cluster",
    "parse_cluster_config",
]

#: The URL scheme this backend registers.
SCHEME = "redis+cluster"
_DEFAULT_PORT = 6379
#: Rounds of reading again, slot by slot, what moved during a listing's walk.
DEFAULT_SCAN_ROUNDS = 5


@dataclass(frozen=True)
class ClusterConfig:
    """Everything a ``redis+cluster://`` URL and its overrides say, checked; no password in
    its ``repr``."""

    nodes: tuple[tuple[str, int], ...]
    settings: ClientSettings
    scan_rounds: int = 5

    def describe(self) -> str:
        """A redacted URL naming the startup nodes and the prefix: never the password."""
        hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.nodes)
        prefix = quote(self.settings.prefix, safe=":/")
        return redact_url(f"{SCHEME}://{self.settings.userinfo()}{hosts}/?prefix={prefix}")


def parse_cluster_config(url: BackendURL, overrides: Mapping[str, Any]) -> ClusterConfig:
    """Check a ``redis+cluster://`` URL and its keyword overrides; no I/O.

    Raises:
        ConfigurationError: a wrong scheme, a path, a bad or unknown parameter (named).
    """
    backend = url.redacted()
    if url.scheme != SCHEME:
        raise ConfigurationError(
            f"a cluster URL starts with {SCHEME}://, got {url.scheme}://", backend=backend
        )
    if url.path.strip("/") or "db" in url.params or "db" in overrides:
        raise ConfigurationError(
            "a Redis Cluster has database 0 only: give no database (redis+cluster://h:p/)",
            backend=backend,
        )
    params = Params(url, overrides)
    settings = take_settings(url, params, health_check=False)
    scan_rounds = params.take_int("scan_rounds", DEFAULT_SCAN_ROUNDS)
    params.finish()
    if isinstance(scan_rounds, bool) or not isinstance(scan_rounds, int) or scan_rounds < 0:
        raise ConfigurationError("scan_rounds must be an integer >= 0", backend=backend)
    return ClusterConfig(tuple(parse_hosts(url, _DEFAULT_PORT)), settings, scan_rounds)


def build_cluster(config: ClusterConfig) -> RedisCluster:
    """A ``RedisCluster`` for ``config``. This does I/O: it asks a startup node for the slots.

    Every node gets a blocking pool of ``max_connections`` (threads wait ``pool_timeout`` for a
    free connection). redis-py builds pools of the class asked for only on its ``url=`` path, so
    the first startup node is passed as a URL (host and port only; the password travels as a
    keyword, never inside a URL).
    """
    settings = config.settings
    (first_host, first_port), *others = config.nodes
    host = f"[{first_host}]" if ":" in first_host else first_host
    return RedisCluster(
        url=f"redis://{host}:{first_port}",
        startup_nodes=[ClusterNode(h, p) for h, p in others],  # type: ignore[no-untyped-call]
        connection_pool_class=BlockingConnectionPool,
        max_connections=settings.max_connections,
        timeout=settings.pool_timeout,
        **connection_kwargs(settings, Retry(NoBackoff(), 0)),
    )


def build_async_cluster(config: ClusterConfig) -> AsyncRedisCluster:
    """A ``redis.asyncio`` cluster client for ``config``; connects on its first command."""
    settings = config.settings
    return AsyncRedisCluster(
        startup_nodes=[AsyncClusterNode(host, port) for host, port in config.nodes],
        max_connections=settings.max_connections,
        **connection_kwargs(settings, AsyncRetry(NoBackoff(), 0)),
    )


def describe_cluster(client: RedisCluster, prefix: str) -> str:
    """A redacted URL for a cluster client someone else built: its startup nodes, no secrets."""
    nodes = client.nodes_manager.startup_nodes.values()
    hosts = ",".join(node.name for node in nodes) or "?"
    return redact_url(f"{SCHEME}://{hosts}/?prefix={quote(prefix, safe=':/')}")
