"""The Redis Cluster backend beyond the conformance kit: URLs, slot grouping, every primary
scanned, MOVED and ASK redirections followed, failures typed, secrets hidden, fork safety.

Everything runs on real clusters the suite started: the session's shared one (``redis_cluster``)
unless a test must break a cluster, which then gets one of its own."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import redis
from redis.crc import key_slot

from session_store import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    Scope,
    open_backend,
)
from session_store_redis import RedisClusterBackend
from session_store_redis.cluster import parse_cluster_config
from session_store_redis.errors import sanitize
from session_store_redis.testing import RedisClusterServers, RedisServer, RedisServerNotFoundError
from session_store_redis.testing.checks import SecretWatch
from session_store_redis.testing.cluster import CLI_ENV, find_redis_cli
from session_store_redis.testing.server import free_port
from session_store_redis.urls import parse_multi_host_url

ClusterFactory = Callable[..., RedisClusterServers]


#: What the ``backend`` fixture opens (backends/redis/conftest.py).
BACKEND = RedisClusterBackend


def _delta(cluster: RedisClusterServers, before: dict[str, int], *names: str) -> dict[str, int]:
    after = cluster.command_calls()
    return {name: after.get(name, 0) - before.get(name, 0) for name in names}


# -- fixtures ------------------------------------------------------------------------------------
pytest_plugins = ["pytester"]


def test_a_missing_redis_cli_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CLI_ENV, "/nonexistent/redis-cli")
    with pytest.raises(RedisServerNotFoundError, match="not an executable"):
        find_redis_cli()


# -- opening -------------------------------------------------------------------------------------
def test_open_by_url(redis_cluster: RedisClusterServers, redis_cluster_namespace: str) -> None:
    url = redis_cluster.url_for(prefix=f"{redis_cluster_namespace}app:")
    with RedisClusterBackend.from_url(url) as backend:
        assert backend.scope is Scope.NETWORK
        assert backend.prefix == f"{redis_cluster_namespace}app:"
        assert backend.describe() == url
        backend.set("k", b"v")
        assert backend.get("k") == b"v"
        assert backend.client.get(backend.namespace.encode("k")) == b"v"


def test_a_host_list_names_startup_nodes(
    redis_cluster: RedisClusterServers, redis_cluster_namespace: str
) -> None:
    dead = free_port()  # the first startup node is down: any other one will do
    hosts = ",".join(f"127.0.0.1:{port}" for port in [dead, *redis_cluster.ports[:2]])
    url = f"redis+cluster://{hosts}/?prefix={redis_cluster_namespace}&socket_connect_timeout=1"
    with RedisClusterBackend.from_url(url) as backend:
        assert backend.describe().startswith(f"redis+cluster://127.0.0.1:{dead},127.0.0.1:")
        backend.set("k", b"v")
        assert backend.get("k") == b"v"


def test_url_settings_reach_the_client(redis_cluster: RedisClusterServers) -> None:
    url = redis_cluster.url_for(
        prefix="p:", socket_timeout="2.5", max_connections="7", retries="4", default_ttl="60"
    )
    with RedisClusterBackend.from_url(url) as backend:
        assert backend.retries == 4 and backend.default_ttl == 60
        node = backend.client.get_primaries()[0]  # type: ignore[no-untyped-call]
        pool = node.redis_connection.connection_pool
        assert isinstance(pool, redis.BlockingConnectionPool)
        assert pool.max_connections == 7
        assert pool.connection_kwargs["socket_timeout"] == 2.5
        assert pool.connection_kwargs["retry"].get_retries() == 0
        assert backend.client.retry.get_retries() == 0  # the backend retries whole operations


def test_host_lists_parse() -> None:
    parsed = parse_multi_host_url("redis+cluster://u:p%40w@a:7000,[::1]:7001,b/?prefix=x")
    assert parsed.password == "p@w" and parsed.username == "u"
    assert parsed.hostname is None and parsed.port is None
    config = parse_cluster_config(parsed, {})
    assert config.nodes == (("a", 7000), ("::1", 7001), ("b", 6379))
    assert config.describe() == "redis+cluster://u:***@a:7000,[::1]:7001,b:6379/?prefix=x"
    assert "p@w" not in repr(config) and "p@w" not in repr(parsed)


def test_not_a_cluster_is_a_backend_error(redis_server: RedisServer) -> None:
    url = f"redis+cluster://127.0.0.1:{redis_server.port}/?prefix=x"
    with RedisClusterBackend.from_url(url) as backend, pytest.raises(BackendError) as caught:
        backend.get("k")
    assert not isinstance(caught.value, BackendUnavailableError)
    assert "not in cluster mode" in str(caught.value)


def test_a_client_that_is_not_a_cluster_client_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="RedisCluster"):
        RedisClusterBackend(redis.Redis())  # type: ignore[arg-type]


# -- no operation assumes one node -----------------------------------------------------------------
def test_keys_spread_over_every_primary_and_scan_finds_them_all(
    redis_cluster: RedisClusterServers, backend: RedisClusterBackend
) -> None:
    keys = [f"user-{i}" for i in range(300)]
    backend.set_many(dict.fromkeys(keys, b"v"))
    per_node = []
    for node in redis_cluster.primary_nodes():
        raw = node.client()
        try:
            head = backend.namespace.encode("").encode()
            per_node.append(sum(1 for _ in raw.scan_iter(match=head + b"*", count=1000)))
        finally:
            raw.close()
    assert len(per_node) == 3 and all(count > 50 for count in per_node) and sum(per_node) == 300
    assert sorted(backend.scan()) == sorted(keys)
    assert sorted(backend.scan("user-1")) == sorted(k for k in keys if k.startswith("user-1"))


def test_get_many_is_one_mget_per_slot_and_no_single_gets(
    redis_cluster: RedisClusterServers, backend: RedisClusterBackend
) -> None:
    keys = [f"k{i}" for i in range(100)]
    backend.set_many({key: os.urandom(64) for key in keys[:90]})
    slots = {key_slot(backend.namespace.encode(key).encode()) for key in keys}
    before = redis_cluster.command_calls()
    found = backend.get_many(keys)
    assert sorted(found) == sorted(keys[:90])
    assert _delta(redis_cluster, before, "mget", "get") == {"mget": len(slots), "get": 0}


def test_bulk_writes_use_one_command_per_key_or_slot(
    redis_cluster: RedisClusterServers, backend: RedisClusterBackend
) -> None:
    keys = [f"k{i}" for i in range(60)]
    slots = {key_slot(backend.namespace.encode(key).encode()) for key in keys}
    before = redis_cluster.command_calls()
    backend.set_many(dict.fromkeys(keys, b"v"), ttl=30)
    assert backend.delete_many([*keys, keys[0], "absent"]) == 60
    counted = _delta(redis_cluster, before, "set", "unlink", "del", "keys")
    assert counted["set"] == 60 and counted["del"] == 0 and counted["keys"] == 0
    assert len(slots) <= counted["unlink"] <= len(slots) + 1  # one per slot ("absent": its own)


def test_a_hash_tag_prefix_keeps_a_store_in_one_slot(
    redis_cluster: RedisClusterServers, redis_cluster_namespace: str
) -> None:
    prefix = f"{redis_cluster_namespace}{{app}}:"
    with RedisClusterBackend.from_url(redis_cluster.url_for(prefix=prefix)) as backend:
        keys = [f"k{i}" for i in range(100)]
        backend.set_many(dict.fromkeys(keys, b"v"))
        assert len({key_slot(backend.namespace.encode(k).encode()) for k in keys}) == 1
        before = redis_cluster.command_calls()
        assert len(backend.get_many(keys)) == 100
        assert _delta(redis_cluster, before, "mget") == {"mget": 1}


def test_update_runs_within_the_slot_of_its_key(backend: RedisClusterBackend) -> None:
    """Compare-and-set is one script on one key: it runs on the primary owning that key."""
    for key in ("a", "b", "{tag}c", "日本"):
        assert backend.set_if(key, b"1", None) is True
        read = backend.get_versioned(key)
        assert read is not None and backend.set_if(key, b"2", read.token) is True
        assert backend.set_if(key, b"3", read.token) is False
        assert backend.get(key) == b"2"


# -- MOVED and ASK --------------------------------------------------------------------------------
class SlotMove:
    """Move one hash slot from its primary to another, as ``redis-cli --cluster reshard`` does:
    IMPORTING / MIGRATING, MIGRATE of its keys, then SETSLOT NODE everywhere."""

    def __init__(self, cluster: RedisClusterServers, stored_key: str) -> None:
        self.cluster, self.slot = cluster, key_slot(stored_key.encode())
        client = cluster.client()
        try:
            owner = client.get_node_from_key(stored_key)  # type: ignore[no-untyped-call]
        finally:
            client.close()
        self.source = cluster.node_on(owner.port)
        self.target = next(n for n in cluster.primary_nodes() if n.port != self.source.port)
        self.source_id = self._run(self.source, "CLUSTER", "MYID").decode()
        self.target_id = self._run(self.target, "CLUSTER", "MYID").decode()

    @staticmethod
    def _run(node: RedisServer, *args: object) -> bytes:
        client = node.client()
        try:
            reply: bytes = client.execute_command(*args)  # type: ignore[no-untyped-call]
            return reply
        finally:
            client.close()

    def begin(self) -> None:
        self._run(self.target, "CLUSTER", "SETSLOT", self.slot, "IMPORTING", self.source_id)
        self._run(self.source, "CLUSTER", "SETSLOT", self.slot, "MIGRATING", self.target_id)

    def migrate(self, stored_keys: list[str]) -> None:
        port = self.target.port
        self._run(self.source, "MIGRATE", "127.0.0.1", port, "", 0, 5000, "KEYS", *stored_keys)

    def finish(self) -> None:
        found: list[bytes] = self._run(self.source, "CLUSTER", "GETKEYSINSLOT", self.slot, 1000)  # type: ignore[assignment]
        keys = [key.decode() for key in found]
        if keys:
            self.migrate(keys)
        for node in (self.target, self.source, *self.cluster.primary_nodes()):
            self._run(node, "CLUSTER", "SETSLOT", self.slot, "NODE", self.target_id)


def test_moved_and_ask_redirections_are_followed(
    redis_cluster: RedisClusterServers, redis_cluster_namespace: str
) -> None:
    # Every key of this store hashes by the tag in its prefix: one slot, ours alone.
    prefix = f"{redis_cluster_namespace}{{{redis_cluster_namespace}}}:"
    plain = RedisClusterBackend.from_url(redis_cluster.url_for(prefix=prefix))
    acked = RedisClusterBackend.from_url(redis_cluster.url_for(prefix=prefix, wait_replicas="1"))
    try:
        keys = [f"k{i}" for i in range(8)]
        plain.set_many({key: key.encode() for key in keys})
        assert acked.get_many(keys) == {key: key.encode() for key in keys}  # slot maps cached
        stored = [plain.namespace.encode(key) for key in keys]
        move = SlotMove(redis_cluster, stored[0])

        move.begin()
        move.migrate(stored[:4])  # half the keys on each side: the slot is migrating
        assert plain.get("k0") == b"k0" and plain.get("k7") == b"k7"  # ASK, and no redirection
        assert plain.get_many(keys) == {key: key.encode() for key in keys}
        plain.set("new", b"n")  # absent on the source: ASK to the target
        acked.set("acked-new", b"a")  # the WAIT path follows ASK too
        read = plain.get_versioned("k1")
        assert read is not None and plain.set_if("k1", b"k1+", read.token) is True
        assert sorted(plain.scan()) == sorted([*keys, "new", "acked-new"])

        move.finish()  # the slot now belongs to the target: MOVED from the source
        assert plain.get("k5") == b"k5"
        assert acked.get("k6") == b"k6"
        acked.set("after", b"x")
        read = acked.get_versioned("k2")
        assert read is not None and acked.set_if("k2", b"k2+", read.token) is True
        assert plain.get_many([*keys, "new", "after"]) == {
            **{key: key.encode() for key in keys},
            "k1": b"k1+",
            "k2": b"k2+",
            "new": b"n",
            "after": b"x",
        }
        assert plain.delete_many(keys) == 8
        assert sorted(acked.scan()) == ["acked-new", "after", "new"]
    finally:
        plain.close()
        acked.close()


# -- acknowledged writes ---------------------------------------------------------------------------
def test_wait_replicas_waits_on_every_primary_it_wrote_to_or_says_it_could_not(
    redis_cluster: RedisClusterServers, redis_cluster_namespace: str
) -> None:
    url = redis_cluster.url_for(prefix=redis_cluster_namespace, wait_replicas="1")
    with RedisClusterBackend.from_url(url) as backend:
        before = redis_cluster.command_calls()
        backend.set("k", b"v")
        backend.set_many({f"m{i}": b"v" for i in range(30)})
        assert _delta(redis_cluster, before, "wait")["wait"] >= 2
    # each primary has one replica: two can never acknowledge
    url = redis_cluster.url_for(
        prefix=redis_cluster_namespace, wait_replicas="2", wait_timeout="0.2"
    )
    with RedisClusterBackend.from_url(url) as backend:
        with pytest.raises(BackendUnavailableError, match="1 of 2 replica") as caught:
            backend.set("k", b"w")
        assert caught.value.__context__ is None and caught.value.key == "k"
        assert backend.get("k") == b"w"  # it did reach the primary, as the error says
        assert backend.counters.get("unacknowledged") == 1
        assert backend.set_if("k", b"x", "0" * 40) is False  # nothing written: nothing to wait for


# -- failures and secrets --------------------------------------------------------------------------
def test_cluster_errors_are_translated_and_a_planted_password_never_shows(
    redis_cluster_factory: ClusterFactory, planted_password: SecretWatch
) -> None:
    watch = planted_password
    cluster = redis_cluster_factory(replicas=0, password=watch.password)
    url = cluster.url_for(prefix="app:", socket_connect_timeout="1", retries="1")
    assert watch.password not in url

    backend = RedisClusterBackend.from_url(url)
    backend.set("k", b"v")
    assert backend.get("k") == b"v"
    watch.show(backend, backend.describe(), backend.counters, cluster)
    watch.show(parse_cluster_config(parse_multi_host_url(url), {}))

    wrong = RedisClusterBackend.from_url(
        f"redis+cluster://:wrong@127.0.0.1:{cluster.ports[0]}/?socket_connect_timeout=1"
    )
    refused = [
        watch.raises(BackendError, lambda: wrong.get("k")),
        watch.raises(BackendError, lambda: wrong.set_many({"k": b"v"})),
    ]
    assert not any(isinstance(error, BackendUnavailableError) for error in refused)
    watch.raises(ConfigurationError, lambda: open_backend(url + "&unknown=1"))

    for node in cluster.nodes:
        node.kill()
    watch.unavailable(
        [
            lambda: backend.get("k"),
            lambda: backend.set("k", b"v"),
            lambda: backend.get_many(["k", "j"]),
            lambda: list(backend.scan()),
            lambda: backend.set_if("k", b"v", None),
        ]
    )
    backend.close()
    wrong.close()
    watch.assert_never_shown()
    assert "credentials" in str(refused[0])


def test_pipeline_errors_quote_neither_keys_nor_values() -> None:
    exc = redis.ResponseError(
        "Command # 2 (SET app:\x1fuser-7 secret-payload PX 1000) of pipeline caused error: OOM"
    )
    assert sanitize(exc, []) == "ResponseError: OOM"


# -- processes ------------------------------------------------------------------------------------
def test_fork_child_opens_its_own_connections(
    backend: RedisClusterBackend, run_forked: Callable[..., dict[str, object]]
) -> None:
    backend.set("shared", b"from parent")
    primaries = backend.client.get_primaries()  # type: ignore[no-untyped-call]
    parent_ids = {node.name: node.redis_connection.client_id() for node in primaries}

    def child() -> dict[str, object]:
        ok = backend.get("shared") == b"from parent"
        for i in range(100):
            backend.set(f"child:{i}", b"c")
        ids = {node.name: node.redis_connection.client_id() for node in primaries}
        return {"ok": ok, "ids": ids}

    def parent() -> None:
        for i in range(100):
            backend.set(f"parent:{i}", b"p")

    report = run_forked(child, parent)
    assert report["ok"] is True
    ids = report["ids"]
    assert isinstance(ids, dict) and all(ids[name] != parent_ids[name] for name in parent_ids)
    assert len(backend.get_many([f"child:{i}" for i in range(100)])) == 100
    assert len(list(backend.scan("parent:"))) == 100
