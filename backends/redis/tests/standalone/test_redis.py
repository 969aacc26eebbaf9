"""The Redis backend beyond the conformance kit: URLs, failures, isolation, one-command bulk
reads, secrets, fork and threads. Every server here is a real redis-server the suite started."""

from __future__ import annotations

import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points

import pytest
import redis
from redis.connection import SSLConnection

from session_store import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    Scope,
    SessionBackend,
    TieredBackend,
    available_backends,
    open_backend,
    parse_url,
)
from session_store.keys import SEPARATOR
from session_store_redis import RedisBackend, parse_config
from session_store_redis.errors import scrub, translate
from session_store_redis.patterns import escape_glob
from session_store_redis.testing import RedisServer
from session_store_redis.testing.checks import Forked, SecretWatch, run_threads
from session_store_redis.testing.server import free_port

ServerFactory = Callable[..., RedisServer]


#: What the ``backend`` fixture opens (backends/redis/conftest.py).
BACKEND = RedisBackend


# -- opening --------------------------------------------------------------------------------------
def test_schemes_are_registered_as_entry_points() -> None:
    registered = {ep.name: ep.value for ep in entry_points(group="session_store.backends")}
    assert registered["redis"] == "session_store_redis.backend:RedisBackend.from_url"
    assert registered["rediss"] == "session_store_redis.backend:RedisBackend.from_url"
    assert available_backends()["redis"] == registered["redis"]
    # no pytest11 entry point: installing the plugin adds no fixtures to a host app's tests
    plugins = {ep.value for ep in entry_points(group="pytest11")}
    assert not any(value.startswith("session_store_redis") for value in plugins), plugins


def test_open_backend_by_url(redis_server: RedisServer, redis_namespace: str) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/0?prefix={redis_namespace}app:"
    with RedisBackend.from_url(url) as backend:
        assert backend.scope is Scope.NETWORK
        assert backend.prefix == f"{redis_namespace}app:"
        backend.set("k", b"v")
        assert backend.get("k") == b"v"
        assert backend.describe() == url
        raw = redis_server.client()
        try:  # stored under the core key rules: prefix, separator, key
            assert raw.get(f"{redis_namespace}app:{SEPARATOR}k") == b"v"
        finally:
            raw.close()


def test_defaults_are_safe() -> None:
    config = parse_config(parse_url("redis://cache.internal"), {})
    assert (config.host, config.port, config.db, config.prefix) == (
        "cache.internal",
        6379,
        0,
        "session:",
    )
    assert config.socket_connect_timeout == 5.0 and config.socket_timeout == 5.0
    assert config.retries == 2
    with RedisBackend.from_url(
        "redis://127.0.0.1:1/0"
    ) as backend:  # no I/O until the first command
        kwargs = backend.client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 5.0 and kwargs["socket_connect_timeout"] == 5.0
        assert backend.retries == 2
        assert kwargs["retry"].get_retries() == 0  # redis-py's nested retries are off


def test_keyword_overrides_beat_url_parameters() -> None:
    url = "redis://127.0.0.1:1/3?prefix=url:&socket_timeout=9&retries=4&default_ttl=60"
    with RedisBackend.from_url(
        url, prefix="kw:", socket_timeout=0.5, retries=0, default_ttl=None
    ) as backend:
        kwargs = backend.client.connection_pool.connection_kwargs
        assert backend.prefix == "kw:" and backend.default_ttl is None
        assert kwargs["socket_timeout"] == 0.5 and backend.retries == 0
        assert kwargs["db"] == 3
        assert "prefix=kw:" in backend.describe()


def test_rediss_builds_tls_connections_without_io() -> None:
    url = "rediss://cache.internal:6380/2?ssl_cert_reqs=none&ssl_check_hostname=false"
    with RedisBackend.from_url(url) as backend:
        pool = backend.client.connection_pool
        assert issubclass(pool.connection_class, SSLConnection)
        assert pool.connection_kwargs["ssl_cert_reqs"] == "none"
        assert pool.connection_kwargs["ssl_check_hostname"] is False
        assert backend.describe().startswith("rediss://cache.internal:6380/2")


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("redis://h/0?nope=1", "nope"),
        ("redis://h/0?nope=1&other=2", "other"),
        ("redis://h/0?socket_timeout=abc", "socket_timeout"),
        ("redis://h/0?socket_timeout=0", "socket_timeout"),
        ("redis://h/0?socket_connect_timeout=-1", "socket_connect_timeout"),
        ("redis://h/0?socket_connect_timeout=inf", "socket_connect_timeout"),
        ("redis://h/0?retries=-1", "retries"),
        ("redis://h/0?retries=many", "retries"),
        ("redis://h/0?max_connections=0", "max_connections"),
        ("redis://h/0?pool_timeout=0", "pool_timeout"),
        ("redis://h/0?health_check_interval=-1", "health_check_interval"),
        ("redis://h/0?default_ttl=-5", "default_ttl"),
        ("redis://h/0?default_ttl=soon", "default_ttl"),
        ("redis://h/zero", "database number"),
        ("redis://h/0/1", "database number"),
        ("redis://h?db=1", "db"),
        ("redis://h/0?ssl_cert_reqs=none", "rediss://"),
        ("redis://h/0?ssl_ca_certs=/ca.pem", "rediss://"),
        ("rediss://h/0?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
        ("rediss://h/0?ssl_check_hostname=perhaps", "ssl_check_hostname"),
        ("redis://h/0?prefix=a%1Fb", "separator"),
        ("redis://h:99999/0", "port"),
    ],
)
def test_bad_url_is_configuration_error_naming_it(url: str, named: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_backend(url)
    assert named.lower() in str(caught.value).lower()


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"socket_timeout": "5"}, "socket_timeout"),
        ({"retries": 1.5}, "retries"),
        ({"retries": True}, "retries"),
        ({"prefix": 7}, "prefix"),
        ({"default_ttl": 0}, "default_ttl"),
        ({"max_connections": -3}, "max_connections"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_keyword_is_configuration_error(override: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_backend("redis://127.0.0.1:1/0", **override)
    assert named in str(caught.value)


def test_a_client_that_decodes_or_is_not_a_client_is_refused(redis_server: RedisServer) -> None:
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    try:
        with pytest.raises(ConfigurationError, match="decode_responses"):
            RedisBackend(client)
    finally:
        client.close()
    with pytest.raises(ConfigurationError):
        RedisBackend("redis://127.0.0.1")  # type: ignore[arg-type]


def test_close_disconnects_the_pool_it_built(backend: RedisBackend) -> None:
    backend.set("k", b"v")  # (GET and SET go on the lean client's connections)
    assert backend.delete("k")  # (UNLINK on redis-py's)
    pool = backend.client.connection_pool
    connections = list(pool._connections)  # type: ignore[attr-defined]
    assert connections and any(conn.is_connected for conn in connections)
    assert backend._lean is not None and backend._lean._idle
    backend.close()
    assert not any(conn.is_connected for conn in connections)
    assert not backend._lean._idle
    backend.close()


# -- native TTL, one round trip, SCAN -------------------------------------------------------------
def test_native_expiry(
    redis_server: RedisServer, redis_namespace: str, backend: RedisBackend
) -> None:
    raw = redis_server.client()
    stored = backend.namespace.encode
    try:
        backend.set("k", b"v", ttl=1.5)
        assert 1000 < raw.pttl(stored("k")) <= 1500
        assert backend.touch("k", 30)
        assert 29_000 < raw.pttl(stored("k")) <= 30_000
        assert backend.touch("k")  # no default TTL: the key stops expiring
        assert raw.pttl(stored("k")) == -1 and backend.ttl("k") == math.inf
        assert backend.get_with_ttl("k") == (b"v", math.inf)
        assert backend.get_with_ttl("absent") is None
    finally:
        raw.close()
    with RedisBackend.from_url(
        redis_server.url_for(prefix=redis_namespace, default_ttl="100")
    ) as ttl_backend:
        ttl_backend.set("d", b"v")
        left = ttl_backend.ttl("d")
        assert left is not None and 99 < left <= 100
        ttl_backend.set_many({"e": b"v"})
        found = ttl_backend.get_with_ttl("e")
        assert found is not None and 99 < found[1] <= 100


def _delta(server: RedisServer, before: dict[str, int], *names: str) -> dict[str, int]:
    after = server.command_calls()
    return {name: after.get(name, 0) - before.get(name, 0) for name in names}


def test_get_many_of_100_is_one_mget(redis_server: RedisServer, backend: RedisBackend) -> None:
    keys = [f"k{i}" for i in range(100)]
    backend.set_many({key: os.urandom(7 * 1024) for key in keys[:90]})
    before = redis_server.command_calls()
    found = backend.get_many(keys)
    assert _delta(redis_server, before, "mget", "get") == {"mget": 1, "get": 0}
    assert sorted(found) == sorted(keys[:90])


def test_bulk_writes_and_reads_use_the_native_commands(
    redis_server: RedisServer, backend: RedisBackend
) -> None:
    keys = [f"k{i}" for i in range(50)]
    before = redis_server.command_calls()
    backend.set_many(dict.fromkeys(keys, b"v"))
    assert backend.delete_many([*keys, "absent"]) == 50
    backend.set("x", b"v", ttl=10)
    assert backend.get_with_ttl("x") is not None
    assert sorted(backend.scan()) == ["x"]
    counted = _delta(redis_server, before, "set", "unlink", "del", "get", "pttl", "scan", "keys")
    assert counted == {
        "set": 51,  # 50 in one pipeline, then one
        "unlink": 1,
        "del": 0,
        "get": 1,  # get_with_ttl: MULTI GET PTTL EXEC
        "pttl": 1,
        "scan": counted["scan"],
        "keys": 0,  # never KEYS
    }
    assert counted["scan"] >= 1


def test_counters(backend: RedisBackend) -> None:
    backend.set("a", b"1")
    backend.set_many({"b": b"2", "c": b"3"})
    assert backend.set_if("d", b"4", None) and not backend.set_if("d", b"5", None)
    backend.get("a")
    backend.get("absent")
    backend.get_many(["a", "a", "absent"])
    backend.get_with_ttl("b")
    backend.delete("a")
    backend.delete_many(["b", "absent"])
    counted = backend.counters.as_dict()
    assert {name: counted[name] for name in ("hits", "misses", "writes", "deletes", "errors")} == {
        "hits": 4,
        "misses": 2,
        "writes": 4,
        "deletes": 2,  # keys removed: "absent" was not
        "errors": 0,
    }


def test_scan_skips_foreign_bytes_under_our_prefix(
    redis_server: RedisServer, backend: RedisBackend
) -> None:
    raw = redis_server.client()
    try:
        raw.set(backend.namespace.encode("x").encode() + b"\xff\xfe", b"not ours")
        backend.set("mine", b"v")
        assert sorted(backend.scan()) == ["mine"]
    finally:
        raw.close()


def test_glob_escaping() -> None:
    assert escape_glob("a*b?c[d]e\\f") == "a\\*b\\?c\\[d\\]e\\\\f"
    assert escape_glob("plain\nline 日本") == "plain\nline 日本"


# -- namespaces ------------------------------------------------------------------------------------
HOSTILE = [
    "*",
    "?",
    "[ab]",
    "a",
    "b",
    "line\nbreak",
    "session:other",
    "\\",
    "admin:x",
    "x",
    "\x1fx",
]


def test_overlapping_prefixes_see_list_and_delete_nothing_of_each_other(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    prefixes = ["session:", "session:admin:", "session:*", "session:?", "session:["]
    stores = [RedisBackend.from_url(redis_server.url, prefix=redis_namespace + p) for p in prefixes]
    try:
        for index, store in enumerate(stores):
            store.set_many({key: f"{index}:{key}".encode() for key in HOSTILE})
        for index, store in enumerate(stores):
            mine = {key: f"{index}:{key}".encode() for key in HOSTILE}
            assert store.get_many(HOSTILE) == mine
            assert all(store.get(key) == value for key, value in mine.items())
            assert sorted(store.scan()) == sorted(HOSTILE)
            for prefix in ["*", "?", "[", "session:", "admin:", "\n", "\\", SEPARATOR]:
                assert sorted(store.scan(prefix)) == sorted(
                    k for k in HOSTILE if k.startswith(prefix)
                )
        assert stores[0].delete_many(HOSTILE) == len(HOSTILE)
        assert list(stores[0].scan()) == []
        for index, store in enumerate(stores[1:], start=1):
            assert sorted(store.scan()) == sorted(HOSTILE)
            assert store.get("session:other") == f"{index}:session:other".encode()
        assert stores[1].delete("admin:x") is True
        assert stores[0].get("admin:x") is None and stores[2].get("admin:x") == b"2:admin:x"
    finally:
        for store in stores:
            store.close()


# -- failures --------------------------------------------------------------------------------------
def test_connection_refused_is_unavailable_quickly() -> None:
    port = free_port()  # nothing listens there
    with RedisBackend.from_url(f"redis://127.0.0.1:{port}/0?socket_connect_timeout=1") as backend:
        operations: list[Callable[[], object]] = [
            lambda: backend.get("k"),
            lambda: backend.set("k", b"v"),
            lambda: backend.delete("k"),
            lambda: backend.touch("k", 5),
            lambda: backend.ttl("k"),
            lambda: backend.get_with_ttl("k"),
            lambda: list(backend.scan()),
            lambda: backend.get_versioned("k"),
            lambda: backend.set_if("k", b"v", None),
            lambda: backend.set_if("k", b"v", "0" * 40),
            lambda: backend.get_many(["k"]),
            lambda: backend.set_many({"k": b"v"}),
            lambda: backend.delete_many(["k"]),
        ]
        for operation in operations:
            started = time.monotonic()
            with pytest.raises(BackendUnavailableError) as caught:
                operation()
            assert time.monotonic() - started < 3.0
            error = caught.value
            assert error.backend == backend.describe()
            assert error.__cause__ is None and error.__context__ is None
            assert "ConnectionError" in str(error)
        assert backend.counters.get("errors") == len(operations)
        with pytest.raises(BackendUnavailableError) as caught:
            backend.get("the key")
        assert caught.value.key == "the key"


class Listener:
    """A real TCP port on 127.0.0.1 that counts the connections it accepts, and then either
    closes each at once (``"close"``: the client reads EOF) or holds it and never answers
    (``"silent"``: the client times out)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.05)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            if self.mode == "close":
                conn.close()
            else:
                self._held.append(conn)

    def close(self) -> int:
        """Stop; the number of connections accepted."""
        self._stop.set()
        self._thread.join()
        self._sock.close()
        for conn in self._held:
            conn.close()
        return self.accepted


@pytest.fixture
def listener(request: pytest.FixtureRequest) -> Iterator[Listener]:
    opened = Listener(request.param)
    try:
        yield opened
    finally:
        opened.close()


@pytest.mark.parametrize("listener", ["silent"], indirect=True)
@pytest.mark.parametrize("retries", [0, 2])
def test_socket_timeout_is_honoured_and_not_retried(listener: Listener, retries: int) -> None:
    url = f"redis://127.0.0.1:{listener.port}/0?socket_timeout=0.3&retries={retries}"
    with RedisBackend.from_url(url) as backend:
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError, match="Timeout"):
            backend.get("k")
        elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 1.5
    assert listener.close() == 1  # a hung server costs one timeout, not one per retry


@pytest.mark.parametrize("listener", ["close"], indirect=True)
@pytest.mark.parametrize("retries", [0, 2])
def test_a_dropped_connection_is_retried_a_bounded_number_of_times(
    listener: Listener, retries: int
) -> None:
    url = f"redis://127.0.0.1:{listener.port}/0?retries={retries}"
    with RedisBackend.from_url(url) as backend:
        operations: list[Callable[[], object]] = [
            lambda: backend.get("k"),
            lambda: backend.set("k", b"v"),
        ]
        for operation in operations:
            with pytest.raises(BackendUnavailableError, match="ConnectionError") as caught:
                operation()
            assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert listener.close() == 2 * (retries + 1)


@pytest.mark.parametrize("listener", ["close"], indirect=True)
def test_compare_and_set_is_never_retried(listener: Listener) -> None:
    with RedisBackend.from_url(f"redis://127.0.0.1:{listener.port}/0?retries=3") as backend:
        with pytest.raises(BackendUnavailableError):
            backend.set_if("k", b"v", None)
        with pytest.raises(BackendUnavailableError):
            backend.set_if("k", b"v", "0" * 40)
    assert listener.close() == 2


def test_refused_credentials_are_not_retried(redis_server_factory: ServerFactory) -> None:
    server = redis_server_factory(password=secrets.token_hex(8))
    raw = server.client()
    try:
        before = int(raw.info("stats")["total_connections_received"])
        url = f"redis://:wrong@127.0.0.1:{server.port}/0?retries=3"
        with (
            RedisBackend.from_url(url) as backend,
            pytest.raises(BackendError, match="credentials") as caught,
        ):
            backend.get("k")
        assert not isinstance(caught.value, BackendUnavailableError)
        assert int(raw.info("stats")["total_connections_received"]) - before == 1
    finally:
        raw.close()


def test_server_killed_mid_test_is_unavailable_then_recovers(
    redis_server_factory: ServerFactory,
) -> None:
    server = redis_server_factory()
    with RedisBackend.from_url(
        server.url_for(prefix="app:", socket_connect_timeout="1")
    ) as backend:
        backend.set("k", b"before")
        assert backend.get("k") == b"before"
        server.kill()
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError):
            backend.get("k")
        with pytest.raises(BackendUnavailableError):
            backend.set("k", b"during")
        assert time.monotonic() - started < 5.0
        server.restart()
        backend.set("k", b"after")  # the pool reconnects by itself
        assert backend.get("k") == b"after"


def test_data_survives_a_restart_with_appendonly(redis_server_factory: ServerFactory) -> None:
    server = redis_server_factory(appendonly=True)
    with RedisBackend.from_url(server.url) as backend:
        backend.set("k", b"kept")
        server.restart()  # SIGTERM flushes the append-only file
        assert backend.get("k") == b"kept"


def test_server_errors_are_backend_errors(redis_server: RedisServer, backend: RedisBackend) -> None:
    raw = redis_server.client()
    try:
        raw.hset(backend.namespace.encode("h"), "field", "value")  # not a string value
    finally:
        raw.close()
    with pytest.raises(BackendError) as caught:
        backend.get("h")
    assert not isinstance(caught.value, BackendUnavailableError)
    assert "WRONGTYPE" in str(caught.value) and caught.value.key == "h"
    assert backend.counters.get("errors") == 1


def test_compare_and_set_survives_a_flushed_script_cache(
    redis_server_factory: ServerFactory,
) -> None:
    server = redis_server_factory()
    with RedisBackend.from_url(server.url) as backend:
        backend.set("k", b"1")
        read = backend.get_versioned("k")
        assert read is not None and backend.set_if("k", b"2", read.token)
        raw = server.client()
        try:
            raw.script_flush()  # the server forgets the script: EVALSHA answers NOSCRIPT
        finally:
            raw.close()
        read = backend.get_versioned("k")
        assert read is not None and backend.set_if("k", b"3", read.token)
        assert backend.get("k") == b"3"
        assert backend.set_if("k", b"4", 12345) is False  # not one of our tokens


def test_translation_maps_and_scrubs() -> None:
    password = "s3cr@t/pw"
    refused = translate(
        redis.AuthenticationError(f"bad {password}"),
        what="get",
        key="k",
        backend="b",
        secrets=[password],
    )
    assert type(refused) is BackendError and password not in str(refused)
    down = translate(redis.ConnectionError("x"), what="get", key=None, backend="b", secrets=[])
    assert type(down) is BackendUnavailableError
    busy = translate(
        redis.BusyLoadingError("loading"), what="get", key=None, backend="b", secrets=[]
    )
    assert type(busy) is BackendUnavailableError
    oom = translate(redis.ResponseError("OOM"), what="set", key=None, backend="b", secrets=[])
    assert type(oom) is BackendError
    assert scrub("a s3cr%40t%2Fpw b s3cr@t/pw", [password]) == "a *** b ***"


# -- secrets ---------------------------------------------------------------------------------------
def test_a_planted_password_is_never_shown(
    redis_server_factory: ServerFactory,
    planted_password: SecretWatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch = planted_password
    server = redis_server_factory(password=watch.password)
    url = server.url_for(prefix="app:", socket_connect_timeout="1", retries="1")
    assert watch.password not in url  # percent-encoded, like the searches below

    backend = RedisBackend.from_url(url)
    chain = open_backend(f"memory:// | {url}")
    assert isinstance(chain, TieredBackend)
    backend.set("k", b"v")
    assert backend.get("k") == b"v"
    chain.set("c", b"v")
    watch.show(backend, backend.describe(), backend.client, backend.client.connection_pool)
    watch.show(backend.counters, backend.namespace, chain, chain.describe(), chain.tier_states())
    watch.show(parse_url(url), parse_config(parse_url(url), {}), server)

    wrong = RedisBackend.from_url(url.replace(server.url.split("@")[0], "redis://:wrong-password"))
    refused = watch.raises(BackendError, lambda: wrong.get("k"))
    no_password = RedisBackend.from_url(f"redis://127.0.0.1:{server.port}/0")
    watch.raises(BackendError, lambda: no_password.get("k"))
    watch.raises(ConfigurationError, lambda: open_backend(url + "&unknown=1"))
    watch.raises(ConfigurationError, lambda: open_backend(url + "&socket_timeout=x"))
    watch.raises(ConfigurationError, lambda: open_backend(url.replace("/0?", "/zero?")))

    server.kill()
    watch.raises(BackendUnavailableError, lambda: backend.get("k"))
    watch.raises(BackendUnavailableError, lambda: backend.set_if("k", b"v", None))
    watch.raises(BackendUnavailableError, lambda: list(backend.scan()))
    assert chain.get("c") == b"v"  # served by the memory tier
    # a key only the dead tier could answer for: a typed error (never a guess), and a log line
    watch.raises(BackendUnavailableError, lambda: chain.get("absent"))
    for opened in (backend, chain, wrong, no_password):
        opened.close()
    assert any("is down" in record.getMessage() for record in caplog.records)
    watch.assert_never_shown()
    assert type(refused) is BackendError and "credentials" in str(refused)


# -- processes and threads -------------------------------------------------------------------------
def test_fork_child_never_reuses_the_parents_socket(
    backend: RedisBackend, run_forked: Callable[..., dict[str, object]]
) -> None:
    backend.set("shared", b"from parent")
    parent_connection = backend.client.client_id()

    def child() -> dict[str, object]:
        ok = backend.get("shared") == b"from parent"
        for i in range(200):
            backend.set(f"child:{i}", b"c%d" % i)
            ok = ok and backend.get(f"child:{i}") == b"c%d" % i
        return {"connection": backend.client.client_id(), "ok": ok}

    def parent() -> None:  # at the same time on the same backend object
        for i in range(200):
            backend.set(f"parent:{i}", b"p%d" % i)
            assert backend.get(f"parent:{i}") == b"p%d" % i

    report = run_forked(child, parent)
    assert report["ok"] is True
    assert report["connection"] != parent_connection
    assert backend.client.client_id() == parent_connection  # our socket is intact and ours
    assert backend.get_many([f"child:{i}" for i in range(200)]) == {
        f"child:{i}": b"c%d" % i for i in range(200)
    }


def _increment(backend: SessionBackend, key: str) -> int:
    """Add one with compare-and-set; the number of attempts it took."""
    attempts = 0
    while True:
        attempts += 1
        read = backend.get_versioned(key)
        current = int(read.value) if read is not None else 0
        if backend.set_if(key, str(current + 1).encode(), read.token if read else None):
            return attempts


def test_processes_racing_compare_and_set_lose_no_update(backend: RedisBackend) -> None:
    children = [
        Forked(lambda: {"tries": sum(_increment(backend, "n") for _ in range(25))})
        for _ in range(4)
    ]
    for _ in range(25):
        _increment(backend, "n")
    reports = [child.report() for child in children]
    assert backend.get("n") == b"125"
    assert all(isinstance(report["tries"], int) for report in reports)


@pytest.mark.parametrize("max_connections", [50, 3])
def test_threads_share_one_backend(redis_url: str, max_connections: int) -> None:
    with RedisBackend.from_url(redis_url, max_connections=max_connections) as backend:

        def work(n: int) -> None:
            for i in range(30):
                key = f"t{n}:{i}"
                backend.set(key, key.encode(), ttl=60)
                assert backend.get(key) == key.encode()
                assert backend.get_many([key, "absent"]) == {key: key.encode()}
                _increment(backend, "counter")

        run_threads(work, 12)
        assert backend.get("counter") == str(12 * 30).encode()
        assert len(list(backend.scan("t"))) == 12 * 30


def test_get_versioned_sent_directly_keeps_errors_retries_and_the_connection_in_step(
    redis_server_factory: ServerFactory,
) -> None:
    """``get_versioned`` sends its ``GET`` on a pooled connection without redis-py's command
    path (``commands.direct_get``): an error reply is a ``BackendError`` and leaves that
    connection usable; a connection the server closed (a restart) is retried like ``get``'s;
    the token is the one ``set_if`` accepts."""
    server = redis_server_factory()
    with RedisBackend.from_url(server.url_for(prefix="app:")) as backend:
        backend.set("k", b"v1")
        raw = server.client()
        try:
            raw.hset(backend.namespace.encode("h"), "field", "value")  # not a string value
        finally:
            raw.close()
        with pytest.raises(BackendError) as caught:
            backend.get_versioned("h")
        assert "WRONGTYPE" in str(caught.value)
        found = backend.get_versioned("k")  # the same (only) pooled connection, in step
        assert found is not None and found.value == b"v1"
        assert backend.set_if("k", b"v2", found.token)
        server.restart()  # every pooled connection is now closed by the server
        again = backend.get_versioned("k")
        assert again is None or again.value == b"v2"  # (no persistence: may be gone)
        assert backend.get_versioned("absent") is None
