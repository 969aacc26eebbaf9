"""What every Redis topology does alike, one suite over standalone, Sentinel and Cluster (sync and
asyncio): registration, URLs, atomic updates across processes, and compare-and-set on both kinds
of version token (the short token of a chain-framed value, the digest of any other value,
including values written before short tokens existed).

Real servers from the suite's fixtures: a ``redis-server``, a Sentinel set (a primary, a replica,
three sentinels) and a 3-primary cluster.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Any

import pytest

from session_store import (
    BackendUnavailableError,
    ConfigurationError,
    SessionBackend,
    SessionStore,
    open_backend,
)
from session_store.aio import open_async_backend
from session_store.stamps import HEADER_SIZE, clock, frame, unframe
from session_store.testing.processes import update_race
from session_store_redis import RedisBackend, RedisClusterBackend, RedisSentinelBackend
from session_store_redis.base import RedisBackendBase
from session_store_redis.scripts import FrameToken
from session_store_redis.testing import RedisClusterServers, RedisSentinelSet
from session_store_redis.testing.checks import open_as
from session_store_redis.testing.server import free_port

TOPOLOGIES = ("standalone", "sentinel", "cluster")

ENTRY_POINTS = {
    "standalone": ("redis", "session_store_redis.backend:RedisBackend.from_url"),
    "sentinel": ("redis+sentinel", "session_store_redis.sentinel:RedisSentinelBackend.from_url"),
    "cluster": ("redis+cluster", "session_store_redis.cluster:RedisClusterBackend.from_url"),
}


@pytest.fixture(params=TOPOLOGIES)
def topology_url(request: pytest.FixtureRequest) -> str:
    """The URL of a fresh namespace on a real server of each topology."""
    fixture = {"standalone": "redis_url", "sentinel": "redis_sentinel_url"}
    return str(request.getfixturevalue(fixture.get(request.param, "redis_cluster_url")))


@pytest.fixture
def backend(topology_url: str) -> Iterator[SessionBackend]:
    with open_backend(topology_url) as opened:
        assert isinstance(opened, RedisBackendBase)
        yield opened


def _framed(payload: bytes) -> bytes:
    """A value as a chain stores it: a frame with a new version, then the payload."""
    return frame(payload, clock.now(), None)


# -- opening ----------------------------------------------------------------------------------
@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_scheme_is_registered_as_an_entry_point(topology: str) -> None:
    scheme, target = ENTRY_POINTS[topology]
    registered = {ep.name: ep.value for ep in entry_points(group="session_store.backends")}
    assert registered[scheme] == target


@pytest.mark.parametrize("topology", ["sentinel", "cluster"])
def test_open_backend_takes_a_host_list(topology: str, request: pytest.FixtureRequest) -> None:
    if topology == "sentinel":
        sentinels: RedisSentinelSet = request.getfixturevalue("redis_sentinel")
        namespace = request.getfixturevalue("redis_sentinel_namespace")
        url = sentinels.url_for(sentinels=3, prefix=namespace)
        kind: type[SessionBackend] = RedisSentinelBackend
    else:
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        namespace = request.getfixturevalue("redis_cluster_namespace")
        url = cluster.url_for(startup_nodes=3, prefix=namespace)
        kind = RedisClusterBackend
    with open_as(kind, url) as backend:
        backend.set("k", b"v")
        assert backend.get("k") == b"v"


class _Calls:
    """The sockets this process connects, the names it looks up and the sleeps it asks for,
    from the interpreter's audit events (``socket.connect``, ``socket.getaddrinfo``,
    ``time.sleep``) while :meth:`recording`: what a client
    does, counted, however slowly a loaded machine runs it. Only the recording thread's events
    count: a stream thread left by another test of the same worker reconnects meanwhile. (An
    audit hook cannot be removed: it is installed once, and records nothing outside
    :meth:`recording`.)"""

    active: _Calls | None = None
    installed = False

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.connects: list[object] = []
        self.lookups: list[object] = []
        self.sleeps: list[float] = []

    @classmethod
    def _hook(cls, event: str, args: tuple[Any, ...]) -> None:
        calls = cls.active
        if calls is None or threading.get_ident() != calls.thread:
            return
        if event == "socket.connect":
            calls.connects.append(args[1])
        elif event == "socket.getaddrinfo":
            calls.lookups.append(args[:2])
        elif event == "time.sleep":
            calls.sleeps.append(float(args[0]))

    @classmethod
    @contextmanager
    def recording(cls) -> Iterator[_Calls]:
        if not cls.installed:
            sys.addaudithook(cls._hook)
            cls.installed = True
        calls = cls.active = _Calls()
        try:
            yield calls
        finally:
            cls.active = None


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://127.0.0.1:{port}/mymaster/0", "No master found"),
        ("redis+cluster://127.0.0.1:{port}/", "cannot be connected"),
    ],
)
def test_opening_does_no_io_and_nobody_answering_is_unavailable(url: str, says: str) -> None:
    """Opening connects nothing; with nobody listening, each call raises
    ``BackendUnavailableError`` after a few refused connections and no pause (the promise is
    the client's work, counted: a loaded machine ran this 6 s where it takes 0.1 s)."""
    port = free_port()  # nothing listens there
    with _Calls.recording() as opening:
        backend = open_backend(url.format(port=port) + "?socket_connect_timeout=1")
    assert (opening.connects, opening.lookups, opening.sleeps) == ([], [], [])  # no I/O
    with backend:
        for operation in (lambda: backend.get("k"), lambda: backend.set_if("k", b"v", None)):
            with _Calls.recording() as calls, pytest.raises(BackendUnavailableError) as caught:
                operation()
            error = caught.value
            assert error.__cause__ is None and error.__context__ is None
            assert says in str(error) and error.key == "k"
            # a few attempts, all at the dead address, none waiting (3 and 2 of them measured)
            assert 1 <= len(calls.connects) <= 4, calls.connects
            assert {address[1] for address in calls.connects} == {port}  # type: ignore[index]
            assert sum(calls.sleeps) <= 0.5, calls.sleeps


@pytest.mark.parametrize("topology", ["standalone", "cluster"])
def test_a_ready_client_is_used_and_left_open(
    topology: str, request: pytest.FixtureRequest
) -> None:
    kind: type[RedisBackendBase[Any]]
    if topology == "standalone":
        deployment = request.getfixturevalue("redis_server")
        namespace = request.getfixturevalue("redis_namespace")
        kind, scheme = RedisBackend, "redis"
    else:
        deployment = request.getfixturevalue("redis_cluster")
        namespace = request.getfixturevalue("redis_cluster_namespace")
        kind, scheme = RedisClusterBackend, "redis+cluster"
    client = deployment.client()
    try:
        backend = kind(client, prefix=namespace)
        backend.set("k", b"v")
        assert backend.get("k") == b"v"
        described = backend.describe()
        assert described.startswith(f"{scheme}://127.0.0.1:") and f"prefix={namespace}" in described
        backend.close()
        backend.close()
        assert client.ping() is True  # not ours to close
    finally:
        client.close()


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("redis+cluster://h:7000/0", "database 0 only"),
        ("redis+cluster://h:7000/?db=1", "database 0 only"),
        ("redis+cluster://h:7000/?nope=1", "nope"),
        ("redis+cluster://h:7000/?health_check_interval=5", "health_check_interval"),
        ("redis+cluster://h:7000/?socket_timeout=0", "socket_timeout"),
        ("redis+cluster://h:7000/?wait_replicas=-1", "wait_replicas"),
        ("redis+cluster://h:7000/?wait_timeout=0", "wait_timeout"),
        ("redis+cluster://h:7000,h:x/", "port"),
        ("redis+cluster://h:7000,h:99999/", "port"),
        ("redis+cluster://h:7000,,h:7001/", "host"),
        ("redis+cluster://h:7000,[::1/", "host"),
        ("redis+cluster://h:7000/?prefix=a%1Fb", "separator"),
        ("redis+sentinel://h:26379", "service_name"),
        ("redis+sentinel://h:26379/", "service_name"),
        ("redis+sentinel://h:26379/svc/0/1", "service_name"),
        ("redis+sentinel://h:26379/svc/zero", "number"),
        ("redis+sentinel://h:26379/svc?db=1", "path"),
        ("redis+sentinel://h:26379/svc?nope=1", "nope"),
        ("redis+sentinel://h:26379/svc?socket_timeout=-1", "socket_timeout"),
        ("redis+sentinel://h:26379/svc?wait_replicas=x", "wait_replicas"),
        ("redis+sentinel://h:26379,h:x/svc", "port"),
        ("redis+sentinel://h:26379/svc?ssl_cert_reqs=none", "ssl_cert_reqs"),
        ("redis+sentinel://h:26379/svc?role_check_interval=-1", "role_check_interval"),
        ("redis+sentinel://h:26379/svc?role_check_interval=soon", "role_check_interval"),
    ],
)
def test_bad_url_is_configuration_error_naming_it(url: str, named: str) -> None:
    kind = RedisClusterBackend if url.startswith("redis+cluster") else RedisSentinelBackend
    with pytest.raises(ConfigurationError) as caught:
        kind.from_url(url)
    assert named.lower() in str(caught.value).lower()


# -- atomic updates ---------------------------------------------------------------------------
@pytest.mark.slow
def test_four_processes_updating_one_counter_lose_nothing(topology_url: str) -> None:
    conflicts = update_race(topology_url, processes=4, rounds=50)
    with SessionStore(topology_url, dict) as store:
        assert store.load("counter") == {"n": 200}
    assert conflicts > 0  # the processes really raced, and the losers retried


# -- compare-and-set: the two kinds of token ---------------------------------------------------
def test_a_framed_value_has_a_short_token_that_a_newer_write_invalidates(
    backend: SessionBackend,
) -> None:
    first = _framed(b"x" * 5000)
    backend.set("k", first)
    read = backend.get_versioned("k")
    assert read is not None and read.value == first
    assert read.token == FrameToken(len(first), first[:HEADER_SIZE], first[-16:])
    second = _framed(b"y" * 5000)
    assert backend.set_if("k", second, read.token) is True
    assert backend.get("k") == second
    assert backend.set_if("k", _framed(b"z"), read.token) is False  # the version moved on
    assert backend.get("k") == second
    now = backend.get_versioned("k")
    assert now is not None and backend.set_if("k", first, now.token) is True


def test_a_framed_value_rewritten_under_the_same_header_is_a_conflict(
    backend: SessionBackend,
) -> None:
    """The tail guards the header: same version, same length, other last bytes: no match."""
    value = _framed(b"a" * 100)
    backend.set("k", value)
    read = backend.get_versioned("k")
    assert read is not None
    backend.set("k", value[:-1] + b"b")
    assert backend.set_if("k", _framed(b"new"), read.token) is False
    backend.set("k", value[:-1])  # one byte shorter
    assert backend.set_if("k", _framed(b"new"), read.token) is False
    backend.delete("k")
    assert backend.set_if("k", _framed(b"new"), read.token) is False  # absent: no match


def test_a_value_written_before_short_tokens_is_still_updatable_by_its_digest(
    backend: SessionBackend,
) -> None:
    """An unframed value (a bare payload, or anything written by an earlier release) keeps the
    SHA-1 token; and the token an earlier release's process holds for a framed value (its SHA-1)
    still matches, so processes of both releases share keys during a rolling upgrade."""
    old = b'{"schema": "dict", "version": 1, "data": {"n": 1}}'
    backend.set("old", old)
    read = backend.get_versioned("old")
    assert read is not None and read.token == hashlib.sha1(old).hexdigest()
    assert backend.set_if("old", b'{"n": 2}', read.token) is True
    assert backend.set_if("old", b'{"n": 3}', read.token) is False
    assert backend.get("old") == b'{"n": 2}'

    framed = _framed(b"payload")
    backend.set("mixed", framed)
    digest = hashlib.sha1(framed).hexdigest()  # what the previous release's get_versioned gave
    assert backend.set_if("mixed", _framed(b"other"), "0" * 40) is False
    assert backend.set_if("mixed", _framed(b"next"), digest) is True


def test_tokens_that_no_redis_backend_made_never_match(backend: SessionBackend) -> None:
    value = _framed(b"v")
    backend.set("k", value)
    for forged in (
        "short",
        FrameToken(len(value), value[:HEADER_SIZE], b""),
        FrameToken(len(value), value[:10], value[-16:]),
        (len(value), value[:HEADER_SIZE], value[-16:]),  # a plain tuple is not a token
        b"0" * 40,
    ):
        assert backend.set_if("k", b"w", forged) is False
    assert backend.get("k") == value


def test_async_backends_use_the_same_tokens_as_the_sync_ones(
    backend: SessionBackend, topology_url: str
) -> None:
    framed, plain = _framed(b"f" * 300), b"plain, written before"
    backend.set("f", framed)
    backend.set("p", plain)

    async def scenario() -> None:
        async with open_async_backend(topology_url) as aio:
            for key in ("f", "p"):
                read = await aio.get_versioned(key)
                sync_read = backend.get_versioned(key)
                assert read is not None and sync_read is not None
                assert read.token == sync_read.token
                assert await aio.set_if(key, _framed(b"async"), read.token) is True
                assert await aio.set_if(key, _framed(b"again"), read.token) is False
                assert backend.set_if(key, b"sync", sync_read.token) is False

    asyncio.run(scenario())
    for key in ("f", "p"):  # both hold the async write
        stored = backend.get(key)
        assert stored is not None and unframe(stored) == b"async"
