"""Start a real Sentinel set-up on free loopback ports: a primary, replicas, three sentinels.

    with RedisSentinelSet() as sentinels:
        backend = open_backend(sentinels.url_for(prefix="test:"))

The primary and its replicas are :class:`~session_store_redis.testing.server.RedisServer`
processes (``replicaof`` the primary); each sentinel is ``redis-server <conf> --sentinel`` with
``sentinel monitor <service> 127.0.0.1 <primary port> 2`` and a short
``down-after-milliseconds`` (1000 by default), so a killed primary is replaced within a few
seconds. :meth:`RedisSentinelSet.start` returns when the replicas are in sync and every sentinel
knows the replicas and the other sentinels (a failover needs both). :meth:`stop` stops exactly
the processes this object started, by pid. Without the binary,
:class:`~session_store_redis.testing.server.RedisServerNotFoundError`: tests fail, never skip.
"""

from __future__ import annotations

import os
from typing import Any, Self, cast
from urllib.parse import quote

import redis

from session_store_redis.testing.fleet import ClientCache, stop_all, wait_until
from session_store_redis.testing.server import (
    RedisServer,
    RedisServerError,
    delete_prefix,
    find_redis_server,
)
from session_store_redis.testing.workdir import Harness, quote_conf

__all__ = ["DEFAULT_SERVICE", "NO_LOSS_CONFIG", "RedisSentinelSet", "SentinelServer"]

#: The service name sentinels monitor unless told otherwise.
DEFAULT_SERVICE = "mymaster"

#: The data-node settings docs/scale-out.md names for Sentinel without acknowledged-write loss:
#: a primary refuses writes (``NOREPLICAS``) once no replica has acknowledged the replication
#: stream for a second, so a demoted primary that comes back (or is cut off) stops taking writes
#: that its reconfiguration would throw away. Needs two replicas or more to keep taking writes
#: after a failover (the promoted one keeps one).
NO_LOSS_CONFIG = ("min-replicas-to-write 1", "min-replicas-max-lag 1")


class SentinelServer(RedisServer):
    """One ``redis-server --sentinel`` process on 127.0.0.1, monitoring one primary.

    Args:
        service: the name clients ask for (``master_for(service)``).
        primary_port: where the primary listens now.
        quorum: sentinels that must agree the primary is down.
        down_after_ms: ``down-after-milliseconds``.
        failover_timeout_ms: ``failover-timeout``.
        auth_pass: the primary's ``requirepass``, if any (``sentinel auth-pass``).
        directory, binary, startup_timeout: as for :class:`RedisServer`.
    """

    def __init__(
        self,
        *,
        service: str,
        primary_port: int,
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 10_000,
        auth_pass: str | None = None,
        directory: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        super().__init__(directory=directory, binary=binary, startup_timeout=startup_timeout)
        self.service = service
        self.primary_port = primary_port
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self._auth_pass = auth_pass

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"SentinelServer(127.0.0.1:{self.port}, {self.service}, {state})"

    def _launch(self) -> str | None:
        assert self.directory is not None
        conf = self.directory / "sentinel.conf"
        name = self.service
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {quote_conf(str(self.directory))}",
            "daemonize no",
            'logfile ""',
            "sentinel resolve-hostnames no",
            f"sentinel monitor {name} 127.0.0.1 {self.primary_port} {self.quorum}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        if self._auth_pass:
            lines.append(f"sentinel auth-pass {name} {quote_conf(self._auth_pass)}")
        conf.write_text("\n".join(lines) + "\n", encoding="utf-8")  # sentinels rewrite it
        conf.chmod(0o600)
        return self._spawn(conf, "sentinel.log", "--sentinel")

    def client(self, db: int = 0, **options: object) -> redis.Redis:
        """A plain client to this sentinel (sentinels take no password here)."""
        settings: dict[str, Any] = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}
        settings.update(options)
        return redis.Redis(host=self.host, port=self.port, **settings)


class RedisSentinelSet(Harness):
    """A primary, ``replicas`` replicas and ``sentinels`` sentinels, on 127.0.0.1.

    Args:
        service: the monitored service name (the URL's path).
        replicas: how many replicas the primary has.
        sentinels: how many sentinels watch it (quorum: a majority).
        down_after_ms: how long the primary may not answer before it is declared down.
        password: ``requirepass`` of the data nodes (sentinels get ``auth-pass``; replicas
            ``masterauth``).
        server_config: more ``redis.conf`` lines for every data node, such as
            :data:`NO_LOSS_CONFIG` (a primary that lost its replicas refuses writes).
        directory: where the processes keep their files; a temporary directory :meth:`stop`
            removes by default.
        startup_timeout: seconds to wait for replication and sentinel discovery.
    """

    def __init__(
        self,
        *,
        service: str = DEFAULT_SERVICE,
        replicas: int = 1,
        sentinels: int = 3,
        down_after_ms: int = 1000,
        password: str | None = None,
        server_config: tuple[str, ...] = (),
        directory: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.binary = find_redis_server()
        self.server_config = server_config
        self.service = service
        self.replica_count = replicas
        self.sentinel_count = sentinels
        self.down_after_ms = down_after_ms
        super().__init__(directory, password)
        self.startup_timeout = startup_timeout
        self.servers: list[RedisServer] = []  # the primary first, as started
        self.sentinels: list[SentinelServer] = []
        self._clients = ClientCache()

    # -- addresses -----------------------------------------------------------------------------
    def url_for(self, db: int = 0, *, sentinels: int = 1, **params: str) -> str:
        """``redis+sentinel://[:password@]127.0.0.1:PORT[,...]/SERVICE/DB?name=value...``.

        One sentinel is enough to find the primary; a URL naming several needs a session-store
        core whose ``parse_url`` accepts a host list.
        """
        auth = f":{quote(self._password, safe='')}@" if self._password else ""
        hosts = ",".join(f"{self.host}:{s.port}" for s in self.sentinels[:sentinels])
        query = "&".join(f"{name}={quote(value, safe='/:')}" for name, value in params.items())
        service = quote(self.service, safe="")
        return f"redis+sentinel://{auth}{hosts}/{service}/{db}" + (f"?{query}" if query else "")

    @property
    def url(self) -> str:
        """The URL naming one sentinel, database 0, no parameters."""
        return self.url_for()

    @property
    def pids(self) -> list[int]:
        """Process ids of everything this set started that runs."""
        return [p.pid for p in [*self.servers, *self.sentinels] if p.pid is not None]

    def __repr__(self) -> str:
        return (
            f"RedisSentinelSet({self.service}: servers {[s.port for s in self.servers]}, "
            f"sentinels {[s.port for s in self.sentinels]})"
        )

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> Self:
        """Start the primary, the replicas, the sentinels; wait until all see each other.

        Raises:
            RedisServerError: a process did not start, or discovery did not finish in time.
        """
        if self.servers:
            return self
        directory = self._make_directory("session-store-redis-sentinel-")
        auth = (f"masterauth {quote_conf(self._password)}",) if self._password else ()
        common = ("repl-diskless-sync-delay 0", *auth, *self.server_config)
        try:
            primary = RedisServer(
                directory=directory / "server-0",
                password=self._password,
                binary=self.binary,
                extra_config=common,
            ).start()
            self.servers.append(primary)
            for index in range(1, self.replica_count + 1):
                replica = RedisServer(
                    directory=directory / f"server-{index}",
                    password=self._password,
                    binary=self.binary,
                    extra_config=(*common, f"replicaof 127.0.0.1 {primary.port}"),
                )
                self.servers.append(replica.start())
            for index in range(self.sentinel_count):
                self.sentinels.append(self._start_sentinel(index, primary.port))
            self.wait_healthy(self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_sentinel(self, index: int, primary_port: int) -> SentinelServer:
        assert self.directory is not None
        return SentinelServer(  # picks a free port, another if that one was taken meanwhile
            service=self.service,
            primary_port=primary_port,
            quorum=self.sentinel_count // 2 + 1,
            down_after_ms=self.down_after_ms,
            auth_pass=self._password,
            directory=self.directory / f"sentinel-{index}",
            binary=self.binary,
        ).start()

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until every running sentinel agrees on one primary that runs, knows every running
        replica and the other sentinels, and every running replica is in sync.

        Raises:
            RedisServerError: not so within ``timeout`` seconds.
        """
        wait_until("the sentinels to agree and the replicas to sync", self.healthy, timeout)

    def healthy(self) -> bool:
        """See :meth:`wait_healthy`."""
        running = [s for s in self.servers if s.running]
        sentinels = [s for s in self.sentinels if s.running]
        try:
            primary = self.primary()
        except RedisServerError:
            return False
        if not primary.running:
            return False
        for server in running:
            if server is primary:
                continue
            try:
                info = self._clients.of(server).info("replication")
            except redis.RedisError:
                return False
            if info.get("role") != "slave" or info.get("master_port") != primary.port:
                return False
            if info.get("master_link_status") != "up" or info.get("master_sync_in_progress"):
                return False
        for sentinel in sentinels:
            client = self._clients.of(sentinel)
            try:
                state = cast("dict[str, Any]", client.sentinel_master(self.service))
                replicas = client.sentinel_slaves(self.service)
            except redis.RedisError:
                return False
            if (
                int(state["port"]) != primary.port
                or state.get("is_sdown")
                or not state.get("is_master")
            ):
                return False
            if int(state.get("num-other-sentinels", 0)) < len(sentinels) - 1:
                return False
            live = {
                int(r["port"]) for r in replicas if not r.get("is_sdown") and not r.get("is_odown")
            }
            if live != {s.port for s in running if s is not primary}:
                return False
        return True

    def primary(self) -> RedisServer:
        """The server the sentinels name as primary now.

        Raises:
            RedisServerError: no running sentinel answers, or it names no server of ours.
        """
        for sentinel in self.sentinels:
            if not sentinel.running:
                continue
            try:
                address = self._clients.of(sentinel).sentinel_get_master_addr_by_name(self.service)
                _, port = cast("tuple[str, int]", address)
            except (redis.RedisError, TypeError):
                continue
            for server in self.servers:
                if server.port == int(port):
                    return server
        raise RedisServerError("no sentinel names a primary of this set")

    def replicas(self) -> list[RedisServer]:
        """The running servers that are not the primary now."""
        primary = self.primary()
        return [s for s in self.servers if s is not primary and s.running]

    def rejoin(self, old: RedisServer, timeout: float = 30.0) -> None:
        """After a failover, make the old primary a replica of the promoted one, as an operator
        would (the sentinels do it themselves within their 10 s ``INFO`` period), and wait
        until the set is healthy again. Whatever the old primary took meanwhile is gone."""
        raw = old.client()
        try:
            raw.replicaof("127.0.0.1", self.primary().port)
        finally:
            raw.close()
        self.wait_healthy(timeout)

    def stop(self, *, remove_directory: bool | None = None) -> None:
        """Stop every process this object started (by pid: SIGTERM, then SIGKILL)."""
        sentinels, self.sentinels = self.sentinels, []
        servers, self.servers = self.servers, []
        self._clients.close()
        stop_all([*sentinels, *servers])
        self._release_directory(remove_directory)

    # -- inspection ----------------------------------------------------------------------------
    def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with the literal ``prefix`` on the primary (SCAN + UNLINK)."""
        if not prefix:  # checked before asking the sentinels
            raise ValueError("refusing to delete every key: give a non-empty prefix")
        return delete_prefix(self._clients.of(self.primary()), prefix)
