"""The Sentinel backend beyond the conformance kit: URLs, the primary found through sentinels,
acknowledged writes, failures typed, secrets hidden, threads and fork.

Everything runs on real Sentinel set-ups the suite started: the session's shared one unless a test
must break one, which then gets its own."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from session_store import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    Scope,
    open_backend,
    parse_url,
)
from session_store_redis import RedisSentinelBackend
from session_store_redis.sentinel import parse_sentinel_config
from session_store_redis.sentinel_follow import FollowingConnection
from session_store_redis.testing import RedisSentinelSet
from session_store_redis.testing.checks import SecretWatch, exception_texts, run_threads
from session_store_redis.testing.server import free_port
from session_store_redis.urls import parse_multi_host_url

SentinelFactory = Callable[..., RedisSentinelSet]


#: What the ``backend`` fixture opens (backends/redis/conftest.py).
BACKEND = RedisSentinelBackend


# -- opening ----------------------------------------------------------------------------------
def test_writes_reach_the_primary_the_sentinels_name(
    redis_sentinel: RedisSentinelSet, redis_sentinel_namespace: str
) -> None:
    url = redis_sentinel.url_for(prefix=f"{redis_sentinel_namespace}app:")
    with RedisSentinelBackend.from_url(url) as backend:
        assert backend.scope is Scope.NETWORK
        assert backend.describe() == url
        backend.set("k", b"v")
        assert backend.get("k") == b"v"
        primary = redis_sentinel.primary()
        raw = primary.client()
        try:
            assert raw.get(backend.namespace.encode("k")) == b"v"
        finally:
            raw.close()
        kwargs = backend.client.connection_pool.connection_kwargs
        # a Sentinel-managed connection that follows the primary (sentinel_follow)
        assert issubclass(backend.client.connection_pool.connection_class, FollowingConnection)
        assert kwargs["socket_timeout"] == 5.0 and kwargs["retry"].get_retries() == 0


def test_a_host_list_names_sentinels(
    redis_sentinel: RedisSentinelSet, redis_sentinel_namespace: str
) -> None:
    dead = free_port()  # the first sentinel is down: the others answer
    hosts = ",".join(
        f"127.0.0.1:{port}" for port in [dead, *(s.port for s in redis_sentinel.sentinels)]
    )
    url = f"redis+sentinel://{hosts}/mymaster/0?prefix={redis_sentinel_namespace}"
    with RedisSentinelBackend.from_url(url + "&socket_connect_timeout=1") as backend:
        assert backend.describe().startswith(f"redis+sentinel://127.0.0.1:{dead},127.0.0.1:")
        backend.set("k", b"v")
        assert backend.get("k") == b"v"


def test_urls_parse() -> None:
    parsed = parse_multi_host_url("redis+sentinel://:p%40w@a:26380,b,[::1]:26381/svc/3?prefix=x")
    config = parse_sentinel_config(parsed, {"sentinel_password": "sentinel-secret"})
    assert config.sentinels == (("a", 26380), ("b", 26379), ("::1", 26381))
    assert (config.service, config.db, config.settings.password) == ("svc", 3, "p@w")
    assert config.describe() == "redis+sentinel://:***@a:26380,b:26379,[::1]:26381/svc/3?prefix=x"
    assert "p@w" not in repr(config) and "sentinel-secret" not in repr(config)
    default = parse_sentinel_config(parse_url("redis+sentinel://h/svc"), {})
    assert (default.sentinels, default.db, default.settings.prefix) == (
        (("h", 26379),),
        0,
        "session:",
    )
    assert default.role_check_interval == 1.0
    never = parse_sentinel_config(parse_url("redis+sentinel://h/svc?role_check_interval=0"), {})
    assert never.role_check_interval == 0.0


def test_a_sentinel_password_in_the_url_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_backend("redis+sentinel://h:26379/svc?sentinel_password=hunter2-secret")
    texts = exception_texts(caught.value)
    assert "keyword argument" in texts[0] and not any("hunter2" in text for text in texts)
    with open_backend(
        "redis+sentinel://h:26379/svc", sentinel_password="hunter2-secret"
    ) as backend:
        assert isinstance(backend, RedisSentinelBackend) and backend.sentinel is not None
        assert "hunter2" not in repr(backend) + backend.describe()
        assert all(
            s.connection_pool.connection_kwargs["password"] == "hunter2-secret"
            for s in backend.sentinel.sentinels
        )


def test_an_unknown_service_is_unavailable(redis_sentinel: RedisSentinelSet) -> None:
    url = redis_sentinel.url_for().replace("/mymaster/", "/nosuchservice/")
    with (
        RedisSentinelBackend.from_url(url + "?retries=0") as backend,
        pytest.raises(BackendUnavailableError),
    ):
        backend.get("k")


# -- acknowledged writes -----------------------------------------------------------------------
def test_wait_replicas_returns_once_the_replica_holds_the_writes_or_says_it_could_not(
    redis_sentinel: RedisSentinelSet, redis_sentinel_namespace: str
) -> None:
    url = redis_sentinel.url_for(prefix=redis_sentinel_namespace, wait_replicas="1")
    with RedisSentinelBackend.from_url(url) as backend:
        backend.set("k", b"v")
        backend.set_many({f"m{i}": b"v" for i in range(20)})
        read = backend.get_versioned("k")
        assert read is not None and backend.set_if("k", b"w", read.token) is True
        assert backend.touch("k", 60) is True and backend.touch("k") is True
        assert backend.delete_many(["m0", "m1", "absent"]) == 2 and backend.delete("k") is True
        replica = redis_sentinel.replicas()[0].client()
        try:  # WAIT returned only once the replica had every one of them
            stored = backend.namespace.encode("m2")
            assert replica.get(stored) == b"v" and replica.exists(stored.replace("m2", "m1")) == 0
        finally:
            replica.close()
    url = redis_sentinel.url_for(
        prefix=redis_sentinel_namespace, wait_replicas="2", wait_timeout="0.2"
    )
    with RedisSentinelBackend.from_url(url) as backend:
        with pytest.raises(BackendUnavailableError, match="1 of 2 replica") as caught:
            backend.set("k", b"x")
        assert caught.value.__context__ is None
        assert backend.get("k") == b"x" and backend.counters.get("unacknowledged") == 1


def test_compare_and_set_with_wait_survives_a_flushed_script_cache(
    redis_sentinel: RedisSentinelSet, redis_sentinel_namespace: str
) -> None:
    url = redis_sentinel.url_for(prefix=redis_sentinel_namespace, wait_replicas="1")
    with RedisSentinelBackend.from_url(url) as backend:
        backend.set("k", b"1")
        raw = redis_sentinel.primary().client()
        try:
            raw.script_flush()  # EVALSHA answers NOSCRIPT: the script is loaded and sent again
        finally:
            raw.close()
        read = backend.get_versioned("k")
        assert read is not None and backend.set_if("k", b"2", read.token) is True
        assert backend.get("k") == b"2"


# -- threads and processes ---------------------------------------------------------------------
def test_threads_wait_for_a_free_connection(
    redis_sentinel: RedisSentinelSet, redis_sentinel_namespace: str
) -> None:
    url = redis_sentinel.url_for(prefix=redis_sentinel_namespace, max_connections="3")
    with RedisSentinelBackend.from_url(url) as backend:

        def work(n: int) -> None:
            for i in range(20):
                backend.set(f"t{n}:{i}", b"v")
                assert backend.get(f"t{n}:{i}") == b"v"

        run_threads(work, 10)
        assert len(list(backend.scan("t"))) == 200


def test_fork_child_never_reuses_the_parents_socket(
    backend: RedisSentinelBackend, run_forked: Callable[..., dict[str, object]]
) -> None:
    backend.set("shared", b"from parent")
    parent_connection = backend.client.client_id()

    def child() -> dict[str, object]:
        ok = backend.get("shared") == b"from parent"
        for i in range(50):
            backend.set(f"child:{i}", b"c")
        return {"ok": ok, "connection": backend.client.client_id()}

    def parent() -> None:
        for i in range(50):
            backend.set(f"parent:{i}", b"p")

    report = run_forked(child, parent)
    assert report["ok"] is True and report["connection"] != parent_connection
    assert backend.client.client_id() == parent_connection
    assert len(backend.get_many([f"child:{i}" for i in range(50)])) == 50


# -- failures and secrets ----------------------------------------------------------------------
def test_sentinel_errors_are_translated_and_a_planted_password_never_shows(
    redis_sentinel_factory: SentinelFactory, planted_password: SecretWatch
) -> None:
    watch = planted_password
    sentinels = redis_sentinel_factory(password=watch.password)
    url = sentinels.url_for(prefix="app:", socket_connect_timeout="1", retries="1")
    assert watch.password not in url

    backend = RedisSentinelBackend.from_url(url)
    backend.set("k", b"v")
    assert backend.get("k") == b"v"
    watch.show(backend, backend.describe(), backend.client, backend.client.connection_pool)
    watch.show(backend.sentinel, sentinels, parse_sentinel_config(parse_multi_host_url(url), {}))

    wrong = RedisSentinelBackend.from_url(url.replace(url.split("@")[0], "redis+sentinel://:wrong"))
    refused = watch.raises(BackendError, lambda: wrong.get("k"))
    assert not isinstance(refused, BackendUnavailableError)
    watch.raises(ConfigurationError, lambda: open_backend(url + "&unknown=1"))

    for process in [*sentinels.servers, *sentinels.sentinels]:
        process.kill()
    watch.unavailable(
        [
            lambda: backend.get("k"),
            lambda: backend.set("k", b"v"),
            lambda: list(backend.scan()),
            lambda: backend.set_if("k", b"v", None),
        ]
    )
    backend.close()
    wrong.close()
    watch.assert_never_shown()
    assert "credentials" in str(refused)
