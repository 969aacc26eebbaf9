"""The Redis Cluster backend: ``redis+cluster://host:port,host:port/?prefix=...``.

URL form::

    redis+cluster://[[username]:password@]host[:port][,host[:port]...][/][?name=value&...]

The hosts are *startup nodes*: any one that answers is enough, the client learns every other
node and the slot map from it (``CLUSTER SLOTS``) and follows the cluster as it changes. The
parameters are the standalone ones (:mod:`session_store_redis.client`) less ``db`` (a cluster
has database 0 only) and ``health_check_interval`` (redis-py's cluster client does not pass it
on), plus ``scan_rounds`` (default 5: rounds of reading again, slot by slot, what moved during a
listing; 0: prove a listing from its walk alone). TLS is not offered for clusters yet.

**No operation assumes one node.**

* Operations on one key (``get``, ``set``, ``delete``, ``touch``, ``ttl``, compare-and-set) go
  to the primary that owns the key's hash slot; redis-py follows ``MOVED`` (and refreshes its
  slot map) and ``ASK`` (sending ``ASKING``) redirections. ``get_with_ttl`` and ``touch`` without
  a TTL are ``MULTI``/``EXEC`` on one key, so one slot. The compare-and-set script touches one
  key (``KEYS[1]``), so it runs within that key's slot; redis-py loads it on the owning primary
  when that one does not know it (after a failover, say).
* ``get_many`` groups the keys by hash slot (``MGET`` must not cross slots) and sends one
  ``MGET`` per slot, all the slots of a node in one pipeline: every node is written to before
  any reply is read, so the whole call costs one round trip per node, concurrently. ``set_many``
  (``SET`` per key) and ``delete_many`` (``UNLINK`` per slot) likewise. None of them is atomic
  across slots (neither are the standalone ones across keys).
* ``scan`` walks every primary with ``SCAN`` (replicas hold copies), one node after the other,
  and proves the listing complete slot by slot, reading again what moved during the walk
  (:mod:`session_store_redis.listing`); one it cannot prove says so (``listing.complete``,
  :class:`~session_store_redis.listing.ListingIncompleteWarning`). If a node fails mid-way the
  scan refreshes the slot map and starts again over the primaries of the new map, never listing
  a key twice.
* Keys spread over the slots by the stored key ``prefix + "\\x1f" + key``. A prefix holding a
  hash tag, such as ``{app}:``, puts every key of the store in one slot: multi-key operations
  become single commands, at the price of putting the whole store on one primary. A session key
  holding ``{...}`` (when the prefix has none) picks its own slot the same way; that moves no
  data between namespaces.

Errors: besides the standalone mapping (:mod:`session_store_redis.errors`), ``CLUSTERDOWN``,
``TRYAGAIN``, an uncovered slot, too many redirections and no reachable startup node are
:class:`~session_store.errors.BackendUnavailableError` and are retried like a failed connection;
a server that is not in cluster mode is a :class:`~session_store.errors.BackendError`.

Opening does no I/O: the client is built (asking a startup node for the slot map) on the first
operation, so a chain whose cluster is down still opens and skips the tier.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Self, cast
from urllib.parse import quote

from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.connection import BlockingConnectionPool
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from session_store.backend import ensure_bytes
from session_store.counters import Counters
from session_store.errors import BackendError, BackendUnavailableError, ConfigurationError
from session_store.keys import validate_key, validate_scan_prefix
from session_store.urls import BackendURL, Params, redact_url
from session_store_redis.backend import SCAN_COUNT, Command, RedisBackendBase
from session_store_redis.client import (
    DEFAULT_PREFIX,
    ClientSettings,
    parse_hosts,
    retryable,
    take_settings,
)
from session_store_redis.errors import is_refusal, sanitize, translate
from session_store_redis.listing import ClusterListing, walk_cluster, warn_incomplete
from session_store_redis.patterns import prefix_pattern
from session_store_redis.scripts import CAS_SCRIPT
from session_store_redis.urls import parse_multi_host_url

__all__ = [
    "SCHEME",
    "ClusterConfig",
    "NodeOutcome",
    "RedisClusterBackend",
    "cluster_retryable",
    "is_cluster_error",
    "parse_cluster_config",
    "sort_node_replies",
    "translate_cluster",
]

log = logging.getLogger(__name__)

#: The URL scheme this backend registers.
SCHEME = "redis+cluster"
_DEFAULT_PORT = 6379
#: Rounds of reading again, slot by slot, what moved during a listing's walk.
DEFAULT_SCAN_ROUNDS = 5
#: Rounds of re-sending writes a redirection or a slot migration bounced (``WAIT`` path).
_REDIRECT_ROUNDS = 5

# Cluster conditions that clear by themselves (a failover, a migration, a topology change).
_TRANSIENT: tuple[type[BaseException], ...] = (ClusterDownError, TryAgainError)
_TRANSIENT_MESSAGES = ("cannot be connected", "not covered", "No targets", "TTL exhausted")


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
    keyword, never inside a URL). redis-py's own retries are off, as for the standalone backend:
    the backend retries whole operations.
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
        username=settings.username,
        password=settings.password,
        socket_connect_timeout=settings.socket_connect_timeout,
        socket_timeout=settings.socket_timeout,
        socket_keepalive=True,
        socket_read_size=65536,
        protocol=2,
        retry=Retry(NoBackoff(), 0),
    )


class _PendingCluster:
    """Stands in for the ``RedisCluster`` until the first command: building one asks a startup
    node for the slot map, and opening a backend does no I/O. Every attribute is a function that
    connects (once; the backend then holds the real client) and forwards the call, so a failure
    to connect surfaces inside the operation, where it is translated like any other."""

    backend: RedisClusterBackend | None = None

    def __getattr__(self, name: str) -> Any:
        def forward(*args: Any, **kwargs: Any) -> Any:
            assert self.backend is not None
            return getattr(self.backend._connect(), name)(*args, **kwargs)

        return forward


class NodeOutcome(NamedTuple):
    """What one primary's replies to a round of writes mean (see :func:`sort_node_replies`)."""

    bounced: list[int]  # writes a redirection bounced: they did not run, send them again
    refresh: bool  # a slot moved, or an ASK named a node the client does not know
    reload_script: bool  # the node lacks the compare-and-set script: load it, then resend
    acked: int | None  # replicas WAIT counted, if any of the writes ran; else None


def sort_node_replies(
    indexes: Sequence[int],
    node_replies: Sequence[Any],
    acks: Any,
    replies: list[Any],
    asking: dict[int, Any],
    find_node: Callable[[str, int], Any],
) -> NodeOutcome:
    """Sort one primary's replies to the writes ``indexes`` (the sync and asyncio cluster
    backends alike; no I/O): a reply goes into ``replies``; ``MOVED``, ``TRYAGAIN`` and
    ``NOSCRIPT`` bounce the write; ``ASK`` bounces it to the node it names (``asking``).

    Raises:
        the ``WAIT`` reply, if it is an error and some write ran (it counts only those).
    """
    bounced: list[int] = []
    refresh = reload_script = applied = False
    for index, reply in zip(indexes, node_replies, strict=True):
        asking.pop(index, None)
        if isinstance(reply, MovedError | TryAgainError | NoScriptError):
            refresh = refresh or isinstance(reply, MovedError)
            reload_script = reload_script or isinstance(reply, NoScriptError)
            bounced.append(index)
        elif isinstance(reply, AskError):  # the slot is migrating to that node
            target = find_node(reply.host, reply.port)
            if target is None:
                refresh = True
            else:
                asking[index] = target
            bounced.append(index)
        else:
            replies[index] = reply
            applied = True
    if not applied:  # WAIT counts for the writes this node ran, not for bounced ones
        return NodeOutcome(bounced, refresh, reload_script, None)
    if isinstance(acks, BaseException):
        raise acks
    return NodeOutcome(bounced, refresh, reload_script, int(acks))


class RedisClusterBackend(RedisBackendBase[RedisCluster]):
    """Sessions in a Redis Cluster. Usually opened from a URL::

        open_backend("redis+cluster://10.0.0.1:7000,10.0.0.2:7000/?prefix=app:")

    Args:
        client: a ready ``redis.RedisCluster`` (built with ``decode_responses=False``), for
            set-ups a URL cannot express; it stays yours to close unless ``owns_client``.
        prefix, default_ttl, retries, owns_client, wait_replicas, wait_timeout: as for
            :class:`~session_store_redis.backend.RedisBackend`.

    Raises:
        ConfigurationError: not a ``RedisCluster``, one that decodes responses, a bad prefix or
            TTL.
    """

    _FAILURES: ClassVar[tuple[type[BaseException], ...]] = (
        RedisError,
        RedisClusterException,
        OSError,
    )

    def __init__(
        self,
        client: RedisCluster,
        *,
        prefix: str = DEFAULT_PREFIX,
        default_ttl: float | None = None,
        retries: int = 0,
        owns_client: bool = False,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
    ) -> None:
        if not isinstance(client, RedisCluster | _PendingCluster):
            raise ConfigurationError(
                f"client must be a redis.RedisCluster, got {type(client).__name__}"
            )
        self._cluster: RedisCluster | None = None
        self._config: ClusterConfig | None = None
        self._connect_lock = threading.Lock()
        self._cas: Script | None = None
        #: Rounds of reading again what moved during a listing (0: prove from the walk alone).
        self.scan_rounds = DEFAULT_SCAN_ROUNDS
        description = f"{SCHEME}://?prefix={quote(prefix, safe=':/')}"
        if isinstance(client, RedisCluster):
            if client.get_encoder().decode_responses:  # type: ignore[no-untyped-call]
                raise ConfigurationError(
                    "the cluster client must return bytes: build it with decode_responses=False"
                )
            self._cluster = client
            self._cas = client.register_script(CAS_SCRIPT)
            description = _describe_cluster(client, prefix)
        super().__init__(
            client,
            prefix=prefix,
            default_ttl=default_ttl,
            retries=retries,
            owns_client=owns_client,
            description=description,
            wait_replicas=wait_replicas,
            wait_timeout=wait_timeout,
        )
        # "incomplete_listings": listings that could not be proven complete (see scan)
        self.counters = Counters(names=(*self.counters.names, "incomplete_listings"))

    @classmethod
    def from_url(cls, url: BackendURL | str, **overrides: Any) -> Self:
        """Build from ``redis+cluster://...``; keyword arguments beat URL parameters.

        No I/O happens here: the cluster is reached on the first operation.

        Raises:
            ConfigurationError: a bad or unknown parameter (named in the message).
        """
        parsed = parse_multi_host_url(url) if isinstance(url, str) else url
        config = parse_cluster_config(parsed, overrides)
        settings = config.settings
        pending = _PendingCluster()
        backend = cls(
            cast("RedisCluster", pending),
            prefix=settings.prefix,
            default_ttl=settings.default_ttl,
            retries=settings.retries,
            owns_client=True,
            wait_replicas=settings.wait_replicas,
            wait_timeout=settings.wait_timeout,
        )
        backend._config = config
        backend.scan_rounds = config.scan_rounds
        backend._description = config.describe()
        pending.backend = backend
        return backend

    @property
    def client(self) -> RedisCluster:
        """The redis-py cluster client, connected (for commands this protocol does not have).

        Raises:
            BackendUnavailableError: no startup node answers.
        """
        try:
            client = self._connect()
            failure: BaseException | None = None
        except self._FAILURES as exc:
            failure = exc
        if failure is not None:
            raise self._translate(failure, "connect", None)
        return client

    def _connect(self) -> RedisCluster:
        """The cluster client, built on first use (thread-safe; raises redis-py's errors)."""
        cluster = self._cluster
        if cluster is not None:
            return cluster
        with self._connect_lock:
            if self._cluster is None:
                assert self._config is not None
                built = build_cluster(self._config)
                self._cas = built.register_script(CAS_SCRIPT)
                self._cluster = built
                self._client = built  # later calls skip the stand-in
            return self._cluster

    # -- hooks ---------------------------------------------------------------------------------
    def _secrets(self) -> tuple[str | None, ...]:
        if self._config is not None:
            return (self._config.settings.password,)
        if self._cluster is None:
            return ()
        kwargs = self._cluster.get_connection_kwargs()  # type: ignore[no-untyped-call]
        return (kwargs.get("password"), kwargs.get("ssl_password"))

    def _retryable(self, error: BaseException) -> bool:
        # MOVED or ASK that a one-key MULTI/EXEC does not follow: the slot moved (ask the
        # cluster for the map again) or is migrating (it will be done soon)
        if isinstance(error, MovedError) and self._cluster is not None:
            self._refresh_slots(self._cluster)
        return cluster_retryable(error)

    def _translate(self, exc: BaseException, what: str, key: str | None) -> BackendError:
        if not is_cluster_error(exc):
            return super()._translate(exc, what, key)
        self.counters.add("errors")
        return translate_cluster(
            exc, what=what, key=key, backend=self._description, secrets=self._secrets()
        )

    def _run_cas(self, stored: str, token: str, value: bytes, px: int | None) -> Any:
        self._connect()
        assert self._cas is not None
        return self._cas(keys=[stored], args=[token, value, px or 0], client=self._cluster)

    def _acked(self, commands: Sequence[Command]) -> tuple[list[Any], int]:
        """The writes, grouped by the primary that owns each key's slot, one pipeline per
        primary ending in ``WAIT`` (which counts that primary's replicas); the fewest count.

        Writes a redirection bounced (``MOVED``: the slot moved; ``ASK``: it is migrating;
        ``TRYAGAIN``; ``NOSCRIPT``) did not run and are sent again, at most a few rounds.
        """
        client = self._connect()
        replies: list[Any] = [None] * len(commands)
        fewest = self.wait_replicas
        pending = list(range(len(commands)))
        asking: dict[int, ClusterNode] = {}
        for _ in range(_REDIRECT_ROUNDS):
            groups: dict[tuple[str, bool], tuple[ClusterNode, list[int]]] = {}
            for index in pending:
                node = asking.get(index) or _owner(client, commands[index][0])
                group = (node.name, index in asking)
                groups.setdefault(group, (node, []))[1].append(index)
            bounced: list[int] = []
            refresh = False
            for (_, ask), (node, indexes) in groups.items():
                node_replies, acks = self._node_round(
                    client, node, [commands[i] for i in indexes], ask
                )
                outcome = sort_node_replies(
                    indexes, node_replies, acks, replies, asking, client.get_node
                )
                if outcome.reload_script:
                    client.get_redis_connection(node).script_load(CAS_SCRIPT)
                bounced.extend(outcome.bounced)
                refresh = refresh or outcome.refresh
                if outcome.acked is not None:
                    fewest = min(fewest, outcome.acked)
            if not bounced:
                break
            if refresh:
                client.nodes_manager.initialize()
            else:
                time.sleep(0.05)
            pending = bounced
        else:
            raise ClusterError("TTL exhausted: writes kept being redirected")
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies, fewest

    def _node_round(
        self, client: RedisCluster, node: ClusterNode, commands: Sequence[Command], ask: bool
    ) -> tuple[list[Any], Any]:
        """One pipeline to ``node``: the commands (each after ``ASKING`` if ``ask``), ``WAIT``;
        the commands' replies and ``WAIT``'s (an error from a node that is no primary now)."""
        pipe = client.get_redis_connection(node).pipeline(transaction=False)
        for _, args in commands:
            if ask:
                pipe.execute_command("ASKING")  # type: ignore[no-untyped-call]
            pipe.execute_command(*args)  # type: ignore[no-untyped-call]
        pipe.execute_command("WAIT", self.wait_replicas, self._wait_ms)  # type: ignore[no-untyped-call]
        try:
            replies = pipe.execute(raise_on_error=False)
        except (RedisConnectionError, RedisTimeoutError):
            self._refresh_slots(client)  # the next attempt asks the new owner
            raise
        return list(replies[1:-1:2] if ask else replies[:-1]), replies[-1]

    @staticmethod
    def _refresh_slots(client: RedisCluster) -> None:
        """Ask the cluster for the slot map again; if no node answers, the next call will."""
        with contextlib.suppress(RedisError, RedisClusterException):
            client.nodes_manager.initialize()

    # -- one key, two commands ----------------------------------------------------------------
    def _get_with_pttl(self, stored: str) -> list[Any]:
        """``MULTI GET PTTL EXEC``; while the key's slot migrates (``ASK``, which a transaction
        does not follow), ``GET`` and ``PTTL`` on their own, each following its redirection."""
        migrating = self._one_key_transaction(super()._get_with_pttl, stored)
        if migrating is not None:
            return migrating
        return self._redirected(stored, "get", "pttl")

    def _persist(self, stored: str) -> list[Any]:
        """``MULTI PERSIST EXISTS EXEC``; while the slot migrates, the two on their own."""
        migrating = self._one_key_transaction(super()._persist, stored)
        if migrating is not None:
            return migrating
        return self._redirected(stored, "persist", "exists")

    @staticmethod
    def _one_key_transaction(run: Any, stored: str) -> list[Any] | None:
        """``run(stored)``, or ``None`` if it met an ``ASK`` redirection (``MOVED`` is raised:
        the operation is retried after the slot map is refreshed)."""
        try:
            return cast("list[Any]", run(stored))
        except AskError as exc:
            if isinstance(exc, MovedError):
                raise
        return None

    def _redirected(self, stored: str, *commands: str) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
        for command in commands:
            getattr(pipe, command)(stored)
        return list(pipe.execute())

    # -- listing -------------------------------------------------------------------------------
    def scan(self, prefix: str = "") -> ClusterListing:
        """Keys starting with ``prefix``, each once, proven complete also while slots migrate
        and after nodes were added or removed (see :mod:`session_store_redis.listing`).

        The prefix is checked at once; the cluster is reached while iterating. The iterator
        returned says, once exhausted, whether the listing was proven complete
        (``listing.complete``; ``listing.unproven_slots``); one that was not also issues a
        :class:`~session_store_redis.listing.ListingIncompleteWarning` and counts
        ``incomplete_listings``. A node failing mid-way makes the scan refresh the slot map and
        walk again (keys already listed are not listed twice), up to ``retries`` times.
        """
        validate_scan_prefix(prefix, backend=self._description)
        head = self._namespace.scan_head(prefix)
        listing = ClusterListing(iter(()))
        listing._keys = self._scan(prefix_pattern(head), head.encode(), prefix, listing)
        return listing

    def _scan(
        self, pattern: str, head: bytes, prefix: str, listing: ClusterListing
    ) -> Iterator[str]:
        seen: set[str] = set()  # SCAN may return a key more than once; so may a second walk
        failures = 0
        unproven: list[frozenset[int]] = []
        while True:
            try:
                client = self._connect()
                pages = walk_cluster(
                    client, pattern, head, self.scan_rounds, SCAN_COUNT, unproven.append
                )
                for batch in pages:
                    yield from self._keys_of(batch, prefix, seen)
                break
            except self._FAILURES as exc:
                failure: BaseException = exc
            failures += 1
            if failures > self.retries or not self._retryable(failure):
                raise self._translate(failure, "scan", None)
            if self._cluster is not None:
                self._refresh_slots(self._cluster)
            time.sleep(self._backoff.compute(failures - 1))
        listing.unproven_slots = unproven[-1] if unproven else frozenset()
        listing.complete = not listing.unproven_slots
        if not listing.complete:
            self.counters.add("incomplete_listings")
            warn_incomplete(self._description, listing.unproven_slots)

    # -- bulk ----------------------------------------------------------------------------------
    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """One ``MGET`` per hash slot, one pipeline (one round trip) per node."""
        wanted = [validate_key(key) for key in keys]  # all checked before any I/O
        if not wanted:
            return {}
        head = self._head
        values: Sequence[bytes | None] = self._call(
            "get_many", None, self._get_values, [head + key for key in wanted]
        )
        found = {k: v for k, v in zip(wanted, values, strict=True) if v is not None}
        missed = sum(1 for value in values if value is None)
        self._count_read(len(wanted) - missed, missed)
        return found

    def _get_values(self, stored: list[str]) -> list[bytes | None]:
        """``MGET`` per slot; while a slot migrates (its keys split between two nodes, which
        multi-key commands refuse with ``TRYAGAIN``), one ``GET`` per key, each following its
        ``ASK`` redirection."""
        client = self._client
        try:
            return list(client.mget_nonatomic(stored))
        except (TryAgainError, ClusterError) as exc:
            if isinstance(exc, ClusterDownError) or not _migrating(exc):
                raise
        pipe = client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
        for one in stored:
            pipe.get(one)
        return list(pipe.execute())

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        """One ``SET`` per key, one pipeline (one round trip) per node; not atomic."""
        d = self._description
        checked = [(validate_key(k), ensure_bytes(v, key=k, backend=d)) for k, v in items.items()]
        px = self._px(ttl)
        if not checked:
            return
        head = self._head
        if self.wait_replicas:
            commands: list[Command] = []
            for key, value in checked:
                stored = head + key
                args = ("SET", stored, value) if px is None else ("SET", stored, value, "PX", px)
                commands.append((stored, args))
            self._write_acked("set_many", None, commands)
        else:
            self._call("set_many", None, self._set_all, checked, px)
        self.counters.add("writes", len(checked))

    def _set_all(self, items: list[tuple[str, bytes]], px: int | None) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
        head = self._head
        for key, value in items:
            pipe.set(head + key, value, px=px)
        return list(pipe.execute())

    def delete_many(self, keys: Iterable[str]) -> int:
        """One ``UNLINK`` per hash slot, one pipeline (one round trip) per node."""
        wanted = [validate_key(key) for key in keys]  # all checked before any I/O
        if not wanted:
            return 0
        stored = list(dict.fromkeys(self._head + k for k in wanted))  # once each, as UNLINK
        if self.wait_replicas:
            commands = [(one, ("UNLINK", one)) for one in stored]
            removed = sum(int(n) for n in self._write_acked("delete_many", None, commands))
        else:
            removed = int(self._call("delete_many", None, self._unlink_all, stored))
        self.counters.add("deletes", len(wanted))
        return removed

    def _unlink_all(self, stored: list[str]) -> int:
        """``UNLINK`` per slot; while a slot migrates, one ``UNLINK`` per key (see
        :meth:`_get_values`)."""
        client = self._client
        try:
            return int(client.unlink(*stored))
        except (TryAgainError, ClusterError) as exc:
            if isinstance(exc, ClusterDownError) or not _migrating(exc):
                raise
        pipe = client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
        for one in stored:
            pipe.unlink(one)
        return sum(int(n) for n in pipe.execute())

    # -- life cycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Close every node's connections if this backend built the client (or owns it)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        if self._owns_client and self._cluster is not None:
            self._cluster.close()


def is_cluster_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a cluster condition (:func:`translate_cluster`'s), not a server's."""
    return isinstance(exc, (*_TRANSIENT, RedisClusterException, ClusterError))


def cluster_retryable(error: BaseException) -> bool:
    """Whether a cluster-level failure may clear by running the operation again (shared by the
    sync and async backends; a ``MOVED`` also wants the slot map refreshed, by the caller)."""
    if isinstance(error, (*_TRANSIENT, AskError)):
        return True
    if isinstance(error, RedisClusterException):  # no startup node answered, say
        return _cluster_unavailable(error) and not _refused(error) and not _timed_out(error)
    return retryable(error)


def translate_cluster(
    exc: BaseException, *, what: str, key: str | None, backend: str, secrets: Sequence[str | None]
) -> BackendError:
    """The typed error for a cluster condition (:func:`is_cluster_error`), no secret in it."""
    secrets = tuple(secrets)
    detail = sanitize(exc, secrets)
    cause = _refused(exc)
    if cause is not None:  # wrapped by the client's start-up: refused credentials, say
        error = translate(cause, what=what, key=key, backend=backend, secrets=secrets)
    elif "Cluster mode is not enabled" in str(exc):
        error = BackendError(
            f"redis is not in cluster mode during {what} ({detail}); "
            "use a redis:// URL for a single server",
            key=key,
            backend=backend,
        )
    elif isinstance(exc, _TRANSIENT) or _cluster_unavailable(exc):
        error = BackendUnavailableError(
            f"redis cluster is unavailable during {what} ({detail})", key=key, backend=backend
        )
    else:
        error = BackendError(
            f"redis cluster failed during {what} ({detail})", key=key, backend=backend
        )
    log.debug("%s", error)
    return error


def _owner(client: RedisCluster, stored: str) -> ClusterNode:
    """The primary that owns the slot of ``stored``, by the client's slot map."""
    node: ClusterNode = client.get_node_from_key(stored)  # type: ignore[no-untyped-call]
    return node


def _describe_cluster(client: RedisCluster, prefix: str) -> str:
    """A redacted URL for a cluster client someone else built: its startup nodes, no secrets."""
    nodes = client.nodes_manager.startup_nodes.values()
    hosts = ",".join(node.name for node in nodes) or "?"
    return redact_url(f"{SCHEME}://{hosts}/?prefix={quote(prefix, safe=':/')}")


def _migrating(exc: BaseException) -> bool:
    """Whether a multi-key command failed because its slot is being migrated."""
    return isinstance(exc, TryAgainError) or "TTL exhausted" in str(exc) or "TRYAGAIN" in str(exc)


def _cluster_unavailable(exc: BaseException) -> bool:
    """Whether a cluster-level error means the cluster cannot serve now (rather than that we
    asked for something wrong)."""
    if isinstance(exc, _TRANSIENT):
        return True
    text = str(exc)
    return any(marker in text for marker in _TRANSIENT_MESSAGES) and (
        "Cluster mode is not enabled" not in text
    )


def _timed_out(exc: BaseException) -> bool:
    """Whether a start-up error wraps a timeout (retrying would multiply what it costs)."""
    item: BaseException | None = exc
    for _ in range(5):
        if item is None:
            return False
        if isinstance(item, RedisTimeoutError | TimeoutError):
            return True
        item = item.__cause__ or item.__context__
    return False


def _refused(exc: BaseException) -> BaseException | None:
    """The refusal (credentials, certificate) a start-up error wraps, if any."""
    item: BaseException | None = exc
    for _ in range(5):
        if item is None:
            return None
        if item is not exc and is_refusal(item):
            return item
        item = item.__cause__ or item.__context__
    return None
