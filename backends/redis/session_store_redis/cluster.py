"""The Redis Cluster backend: ``redis+cluster://host:port,host:port/?prefix=...``.

The URL and its parameters: :mod:`session_store_redis.cluster_config`. The client follows the
cluster as it changes (slot map, redirections).

**No operation assumes one node.**

* Operations on one key (``get``, ``set``, ``delete``, ``touch``, ``ttl``, compare-and-set) go
  to the primary that owns the key's hash slot; redis-py follows ``MOVED`` (and refreshes its
  slot map) and ``ASK`` (sending ``ASKING``) redirections. ``get_with_ttl`` and ``touch`` without
  a TTL are ``MULTI``/``EXEC`` on one key, so one slot. The compare-and-set script touches one
  key (``KEYS[1]``), so it runs within that key's slot; redis-py loads it on the owning primary
  when that one does not know it (after a failover, say).
* Bulk operations: one command per hash slot, one pipeline per node
  (:mod:`session_store_redis.cluster_bulk`).
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

Errors: :mod:`session_store_redis.cluster_errors`. ``wait_replicas``:
:mod:`session_store_redis.cluster_routing`.

Opening does no I/O: the client is built (asking a startup node for the slot map) on the first
operation, so a chain whose cluster is down still opens and skips the tier.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Self, cast
from urllib.parse import quote

from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import AskError, MovedError, RedisClusterException, RedisError

from session_store.errors import ConfigurationError
from session_store.keys import validate_scan_prefix
from session_store.urls import BackendURL
from session_store_redis.cluster_bulk import ClusterBulk
from session_store_redis.cluster_config import (
    DEFAULT_SCAN_ROUNDS,
    SCHEME,
    ClusterConfig,
    build_cluster,
    describe_cluster,
    parse_cluster_config,
)
from session_store_redis.cluster_errors import (
    cluster_retryable,
    is_cluster_error,
    translate_cluster,
)
from session_store_redis.cluster_routing import (
    NodeOutcome,
    refresh_slots,
    sort_node_replies,
    write_and_wait,
)
from session_store_redis.commands import SCAN_COUNT, Command
from session_store_redis.config import DEFAULT_PREFIX, backend_options
from session_store_redis.listing import ClusterListing, conclude, walk_cluster
from session_store_redis.patterns import prefix_pattern
from session_store_redis.scripts import CAS_SCRIPT, cas_args
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


class _PendingCluster:
    """Stands in for the ``RedisCluster`` until the first command: building one asks a startup
    node for the slot map, and opening a backend does no I/O. Every attribute is a function that
    connects (once; the backend then holds the real client) and forwards the call, so a failure
    to connect surfaces inside the operation, where it is translated like any other."""

    def __init__(self, backend: RedisClusterBackend) -> None:
        self.backend = backend

    def __getattr__(self, name: str) -> Any:
        def forward(*args: Any, **kwargs: Any) -> Any:
            return getattr(self.backend._connect(), name)(*args, **kwargs)

        return forward


class RedisClusterBackend(ClusterBulk):
    """Sessions in a Redis Cluster. Usually opened from a URL::

        open_backend("redis+cluster://10.0.0.1:7000,10.0.0.2:7000/?prefix=app:")

    Args:
        client: a ready ``redis.RedisCluster`` (built with ``decode_responses=False``), for
            set-ups a URL cannot express; it stays yours to close unless ``owns_client``.
            ``None``: built from ``config`` on the first operation (what ``from_url`` does).
        config: the parsed URL (``from_url``): the startup nodes, ``scan_rounds``, and the
            redacted description.
        prefix, default_ttl, retries, owns_client, wait_replicas, wait_timeout: as for
            :class:`~session_store_redis.backend.RedisBackend`.

    Raises:
        ConfigurationError: not a ``RedisCluster``, one that decodes responses, a bad prefix or
            TTL.
    """

    # "incomplete_listings": listings that could not be proven complete (see scan)
    _EXTRA_COUNTERS = ("unacknowledged", "incomplete_listings")
    _FAILURES: ClassVar[tuple[type[BaseException], ...]] = (
        RedisError,
        RedisClusterException,
        OSError,
    )
    _TYPED_ERROR = staticmethod(translate_cluster)

    def __init__(
        self,
        client: RedisCluster | None,
        *,
        config: ClusterConfig | None = None,
        prefix: str = DEFAULT_PREFIX,
        default_ttl: float | None = None,
        retries: int = 0,
        owns_client: bool = False,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
    ) -> None:
        if client is None and config is None:
            raise ConfigurationError("give a redis.RedisCluster client or a parsed cluster URL")
        if client is not None and not isinstance(client, RedisCluster):
            raise ConfigurationError(
                f"client must be a redis.RedisCluster, got {type(client).__name__}"
            )
        self._cluster: RedisCluster | None = None
        self._config = config
        self._connect_lock = threading.Lock()
        self._cas: Script | None = None
        #: Rounds of reading again what moved during a listing (0: prove from the walk alone).
        self.scan_rounds = DEFAULT_SCAN_ROUNDS if config is None else config.scan_rounds
        if config is not None:
            description = config.describe()
        else:
            description = f"{SCHEME}://?prefix={quote(prefix, safe=':/')}"
        if isinstance(client, RedisCluster):
            if client.get_encoder().decode_responses:  # type: ignore[no-untyped-call]
                raise ConfigurationError(
                    "the cluster client must return bytes: build it with decode_responses=False"
                )
            self._cluster = client
            self._cas = client.register_script(CAS_SCRIPT)
            description = describe_cluster(client, prefix)
        super().__init__(
            cast("RedisCluster", _PendingCluster(self)) if client is None else client,
            prefix=prefix,
            default_ttl=default_ttl,
            retries=retries,
            owns_client=owns_client,
            description=description,
            wait_replicas=wait_replicas,
            wait_timeout=wait_timeout,
        )

    @classmethod
    def from_url(cls, url: BackendURL | str, **overrides: Any) -> Self:
        """Build from ``redis+cluster://...``; keyword arguments beat URL parameters.

        No I/O happens here: the cluster is reached on the first operation.

        Raises:
            ConfigurationError: a bad or unknown parameter (named in the message).
        """
        parsed = parse_multi_host_url(url) if isinstance(url, str) else url
        config = parse_cluster_config(parsed, overrides)
        return cls(None, config=config, owns_client=True, **backend_options(config.settings))

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

    def _run_cas(self, stored: str, token: object, value: bytes, px: int | None) -> Any:
        self._connect()
        assert self._cas is not None
        return self._cas(keys=[stored], args=cas_args(token, value, px), client=self._cluster)

    def _acked(self, commands: Sequence[Command]) -> tuple[list[Any], int]:
        """The writes, one pipeline per primary ending in ``WAIT``; the fewest acknowledgements
        (see :func:`~session_store_redis.cluster_routing.write_and_wait`)."""
        return write_and_wait(self._connect(), commands, self.wait_replicas, self._wait_ms)

    @staticmethod
    def _refresh_slots(client: RedisCluster) -> None:
        """Ask the cluster for the slot map again; if no node answers, the next call will."""
        refresh_slots(client)

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
        conclude(listing, unproven, self.counters, self._description)

    # -- life cycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Disconnect every node's pool if this backend built the client (or owns it). Every
        call does, as :meth:`RedisBackend.close`: a use after ``close`` reopens connections
        (the client keeps its slot map and nodes), and the next ``close`` releases them.

        Not ``RedisCluster.close()``: in redis-py 8 that closes each node's ``Redis`` client,
        which leaves the pool it was given open (no socket released), and it forgets the
        default node, so a use after it raised a bare ``AttributeError``."""
        with self._close_lock:
            self._closed = True
        if self._owns_client and self._cluster is not None:
            self._cluster.disconnect_connection_pools()  # type: ignore[no-untyped-call]
