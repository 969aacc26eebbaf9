"""The async Redis backend's own connection (session_store_redis.aioconn) against real
redis-servers: authentication, database selection, TLS, a server that dies and comes back, a
hung server, and many tasks pipelined on one connection."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from session_store import open_backend
from session_store.aio import open_async_backend
from session_store.errors import BackendError, BackendUnavailableError
from session_store_redis.testing import RedisServer
from session_store_redis.testing.server import TLSFiles
from session_store_redis.testing.tls import make_test_tls

pytestmark = pytest.mark.anyio


async def test_password_and_database(redis_server_factory: Callable[..., RedisServer]) -> None:
    server = redis_server_factory(password="s3cret p@ss")
    good = open_async_backend(server.url_for(db=3))
    other_db = open_async_backend(server.url_for(db=4))
    try:
        await good.set("k", b"v")
        assert await good.get("k") == b"v"
        assert await other_db.get("k") is None  # SELECT happened
    finally:
        await good.aclose()
        await other_db.aclose()
    wrong = open_async_backend(f"redis://:nope@127.0.0.1:{server.port}/0")
    with pytest.raises(BackendError) as caught:
        await wrong.get("k")
    assert not isinstance(caught.value, BackendUnavailableError)  # refused, not down
    assert "nope" not in str(caught.value) and "s3cret" not in str(caught.value)
    await wrong.aclose()


async def test_the_separator_of_the_url_is_honoured_as_by_the_sync_backend(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """``prefix=...&separator=:`` stores ``{prefix}:{key}`` (the data-room plan's layout) from
    the async backend too; it used to put the default separator there."""
    url = redis_server.url_for(prefix=f"{redis_namespace}plan", separator=":")
    sync = open_backend(url)
    backend = open_async_backend(url)
    try:
        await backend.set("U1", b"async")
        raw = redis_server.client()
        try:
            assert raw.get(f"{redis_namespace}plan:U1") == b"async"
        finally:
            raw.close()
        sync.set("U2", b"sync")
        assert await backend.get("U2") == b"sync"
        assert sorted([key async for key in backend.scan()]) == ["U1", "U2"]
    finally:
        await backend.aclose()
        sync.close()


async def test_server_down_then_back(redis_server_factory: Callable[..., RedisServer]) -> None:
    server = redis_server_factory(appendonly=True)
    backend = open_async_backend(server.url_for(), retries=0)
    try:
        await backend.set("k", b"v")
        server.kill()
        with pytest.raises(BackendUnavailableError):
            await backend.get("k")
        server.restart()
        assert await backend.get("k") == b"v"  # a new connection, same data (AOF)
    finally:
        await backend.aclose()


async def test_hung_server_times_out_and_recovers(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = redis_server_factory()
    backend = open_async_backend(server.url_for(socket_timeout="0.3"), retries=0)
    try:
        await backend.set("k", b"v")
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)
        try:
            with pytest.raises(BackendUnavailableError, match=r"[Tt]imeout"):
                await backend.get("k")
        finally:
            os.kill(server.pid, signal.SIGCONT)
        assert await backend.get("k") == b"v"
    finally:
        await backend.aclose()


async def test_many_tasks_pipelined_get_their_own_replies(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    backend = open_async_backend(redis_server.url_for(prefix=redis_namespace))
    try:
        await backend.set_many({f"k{i}": f"v{i}".encode() * (i % 7 + 1) for i in range(300)})

        async def check(i: int) -> Any:
            return await backend.get(f"k{i}") == f"v{i}".encode() * (i % 7 + 1)

        assert all(await asyncio.gather(*(check(i) for i in range(300))))
    finally:
        await backend.aclose()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[TLSFiles, Path]:
    return make_test_tls(tmp_path_factory.mktemp("tls"))


async def test_rediss_verified_refused_and_unverified(
    redis_server_factory: Callable[..., RedisServer], tls_files: tuple[TLSFiles, Path]
) -> None:
    server = redis_server_factory(tls=tls_files[0], password="tls-secret")
    backend = open_async_backend(server.url_for(prefix="tls:"))
    try:
        await backend.set("k", b"over tls", ttl=60)
        assert await backend.get_many(["k", "absent"]) == {"k": b"over tls"}
    finally:
        await backend.aclose()
    other_ca = open_async_backend(server.url_for(ssl_ca_certs=str(tls_files[1])))
    with pytest.raises(BackendError) as caught:
        await other_ca.get("k")
    assert not isinstance(caught.value, BackendUnavailableError)
    assert "certificate" in str(caught.value) and "tls-secret" not in str(caught.value)
    await other_ca.aclose()
    unverified = open_async_backend(
        f"rediss://:tls-secret@127.0.0.1:{server.port}/0?ssl_cert_reqs=none"
        "&ssl_check_hostname=false&prefix=tls:"
    )
    try:
        assert await unverified.get("k") == b"over tls"
    finally:
        await unverified.aclose()


# -- the connection's one timer (aioconn._Connection._watch) ------------------------------------
async def _client_id(backend: Any) -> int:
    return int(await backend.driver.call("CLIENT", "ID"))


async def test_replies_in_time_never_time_out_however_long_the_connection_lives(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """One timer per connection watches the oldest reply awaited, armed once and re-armed when
    it fires early: commands answered in time for several ``socket_timeout`` periods, with idle
    gaps longer than the timeout between them, all succeed on the same connection."""
    url = redis_server.url_for(prefix=redis_namespace, socket_timeout="0.3")
    backend = open_async_backend(url, retries=0)
    try:
        await backend.set("k", b"v")
        first = await _client_id(backend)
        loop = asyncio.get_running_loop()
        ends = loop.time() + 1.0
        while loop.time() < ends:
            assert await backend.get("k") == b"v"
        await asyncio.sleep(0.5)  # idle longer than the timeout: the timer finds nothing
        assert await backend.get("k") == b"v"
        assert await _client_id(backend) == first  # never closed as hung
    finally:
        await backend.aclose()


async def test_each_command_waits_its_whole_timeout_and_later_ones_are_retried(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """A command sent after the timer was armed (by an earlier, answered command) gets its own
    full ``socket_timeout`` before it fails as timed out; when the hung connection closes, a
    command sent later still (within its own timeout) fails as a *connection* error, which an
    idempotent read retries on a new connection, as with a ``wait_for`` per command."""
    server = redis_server_factory()
    backend: Any = open_async_backend(server.url_for(socket_timeout="0.4"), retries=0)
    try:
        await backend.set("k", b"v")
        loop = asyncio.get_running_loop()
        armed = loop.time()
        assert await backend.get("k") == b"v"  # arms the timer at armed + 0.4
        await asyncio.sleep(0.2)
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)
        try:
            sent = loop.time()
            first = asyncio.ensure_future(backend.get("k"))
            await asyncio.sleep(0.25)
            second = asyncio.ensure_future(backend.driver.call("GET", "k"))
            with pytest.raises(BackendUnavailableError, match=r"[Tt]imeout"):
                await first
            failed = loop.time()
            assert failed - sent >= 0.39, (failed - armed, failed - sent)
            assert failed - sent < 0.4 + 2  # not forever (slack for a loaded machine)
            with pytest.raises(RedisConnectionError) as caught:
                await second
            assert type(caught.value) is RedisConnectionError, caught.value  # not a timeout
        finally:
            os.kill(server.pid, signal.SIGCONT)
        assert await backend.get("k") == b"v"  # a new connection
    finally:
        await backend.aclose()


async def test_commands_pipelined_on_a_hung_connection_all_fail_and_none_is_left_waiting(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """Many tasks waiting on a stopped server: every one fails within its timeout (none waits
    forever for a reply the closed connection will never bring), and after the server comes
    back every command gets its own reply."""
    server = redis_server_factory()
    backend = open_async_backend(server.url_for(socket_timeout="0.2"), retries=0)
    try:
        await backend.set_many({f"k{i}": b"%d" % i for i in range(20)})
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)
        try:
            results = await asyncio.wait_for(
                asyncio.gather(
                    *(backend.get(f"k{i}") for i in range(20)),
                    backend.get_many(["k1", "k2"]),
                    return_exceptions=True,
                ),
                5,
            )
        finally:
            os.kill(server.pid, signal.SIGCONT)
        assert all(isinstance(r, BackendUnavailableError) for r in results), results
        got = await asyncio.gather(*(backend.get(f"k{i}") for i in range(20)))
        assert got == [b"%d" % i for i in range(20)]
    finally:
        await backend.aclose()
