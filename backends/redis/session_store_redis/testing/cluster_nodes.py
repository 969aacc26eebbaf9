"""The nodes of a test Redis Cluster: the ``redis-cli`` binary, a cluster-enabled server on free
ports, and ``CLUSTER NODES`` read into :class:`ClusterNodeInfo` records."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from session_store_redis.testing.server import (
    RedisServer,
    RedisServerError,
    find_binary,
    free_port,
)

__all__ = [
    "CLI_ENV",
    "ClusterNodeInfo",
    "command",
    "find_redis_cli",
    "nodes_of",
    "start_node",
]

#: Environment variable naming the redis-cli binary to use.
CLI_ENV = "SESSION_STORE_REDIS_CLI"
_CLI_FALLBACKS = ("/usr/bin/redis-cli", "/usr/local/bin/redis-cli")
PORT_ATTEMPTS = 5


def find_redis_cli() -> str:
    """The redis-cli binary: ``$SESSION_STORE_REDIS_CLI``, else on ``PATH``, else the usual places.

    Raises:
        RedisServerNotFoundError: there is none.
    """
    return find_binary(
        "redis-cli",
        CLI_ENV,
        _CLI_FALLBACKS,
        "the Redis Cluster tests need it to create a real cluster: install it (Debian/Ubuntu: "
        "`apt-get install redis-tools`, macOS: `brew install redis`)",
    )


def start_node(
    directory: Path,
    extra_config: Iterable[str] = (),
    *,
    binary: str | None = None,
    password: str | None = None,
) -> RedisServer:
    """A cluster-enabled redis-server with a free client port and a free bus port.

    Both ports are picked anew when the server reports one of them taken (another test process
    may grab a port between our check and the server's bind).
    """
    last: RedisServerError | None = None
    for _ in range(PORT_ATTEMPTS):
        server = RedisServer(
            port=free_port(),
            directory=directory,
            binary=binary,
            password=password,
            extra_config=(
                "cluster-enabled yes",
                "cluster-config-file nodes.conf",
                f"cluster-port {free_port()}",
                *extra_config,
            ),
        )
        try:
            return server.start()
        except RedisServerError as exc:
            if "Address already in use" not in str(exc):
                raise
            last = exc
    assert last is not None
    raise last


@dataclass(frozen=True)
class ClusterNodeInfo:
    """One line of ``CLUSTER NODES`` as seen from a live node."""

    node_id: str
    port: int
    primary: bool
    failed: bool
    primary_id: str | None  # a replica's primary
    slots: int  # how many slots a primary serves
    ranges: tuple[tuple[int, int], ...] = ()  # the slots it serves, as inclusive ranges

    def owns(self, slot: int) -> bool:
        """Whether this node serves ``slot`` (by this view)."""
        return any(low <= slot <= high for low, high in self.ranges)


def parse_nodes(text: str) -> list[ClusterNodeInfo]:
    nodes = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        address = fields[1].split("@")[0]
        flags = set(fields[2].split(","))
        slots = 0
        ranges: list[tuple[int, int]] = []
        for part in fields[8:]:
            if part.startswith("["):  # a slot being migrated, not owned
                continue
            low, _, high = part.partition("-")
            ranges.append((int(low), int(high) if high else int(low)))
            slots += ranges[-1][1] - ranges[-1][0] + 1
        nodes.append(
            ClusterNodeInfo(
                node_id=fields[0],
                port=int(address.rsplit(":", 1)[1]),
                primary="master" in flags,
                failed="fail" in flags or "fail?" in flags,
                primary_id=None if fields[3] == "-" else fields[3],
                slots=slots,
                ranges=tuple(ranges),
            )
        )
    return nodes


def command(client: redis.Redis, *args: object) -> Any:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def nodes_of(client: redis.Redis) -> list[ClusterNodeInfo]:
    reply = client.execute_command("CLUSTER", "NODES")  # type: ignore[no-untyped-call]
    return parse_nodes(reply.decode() if isinstance(reply, bytes) else str(reply))
