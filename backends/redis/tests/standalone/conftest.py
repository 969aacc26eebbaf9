"""Fixtures of the invalidation stream's tests: one server per way a client meets it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from session_store_redis import RedisBackend, invalidation
from session_store_redis.testing import RedisServer
from session_store_redis.testing.server import TLSFiles
from session_store_redis.testing.streams import StreamRecorder
from session_store_redis.testing.tls import make_test_tls


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[TLSFiles, Path]:
    return make_test_tls(tmp_path_factory.mktemp("tls"))


def _variant(
    way: str,
    tcp: Callable[[], RedisServer],
    factory: Callable[..., RedisServer],
    tls_files: tuple[TLSFiles, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> RedisServer:
    if way == "tls":
        return factory(tls=tls_files[0], password="tls-secret")
    if way == "tcp, no hiredis":  # what a client without hiredis installed runs
        monkeypatch.setattr(invalidation, "hiredis", None)
    return tcp()


@pytest.fixture(params=["tcp", "tls", "tcp, no hiredis"])
def stream_server(
    request: pytest.FixtureRequest,
    redis_server: RedisServer,
    redis_server_factory: Callable[..., RedisServer],
    tls_files: tuple[TLSFiles, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> RedisServer:
    """The shared server over TCP, a TLS server of its own, or TCP read without hiredis."""
    return _variant(
        request.param, lambda: redis_server, redis_server_factory, tls_files, monkeypatch
    )


@pytest.fixture(params=["tcp", "tls", "tcp, no hiredis"])
def own_server(
    request: pytest.FixtureRequest,
    redis_server_factory: Callable[..., RedisServer],
    tls_files: tuple[TLSFiles, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> RedisServer:
    """A server of the test's own (to kill, pause, restart), over TCP, TLS, or without hiredis."""
    return _variant(
        request.param, redis_server_factory, redis_server_factory, tls_files, monkeypatch
    )


@pytest.fixture
def opened(
    stream_server: RedisServer, redis_namespace: str
) -> Iterator[tuple[RedisBackend, StreamRecorder]]:
    """A backend on :func:`stream_server` and its stream, connected, telling a recorder."""
    backend = RedisBackend.from_url(stream_server.url_for(prefix=redis_namespace))
    recorder = StreamRecorder()
    stream = backend.invalidations("", recorder)
    try:
        assert recorder.connected.wait(10)
        yield backend, recorder
    finally:
        stream.close()
        backend.close()
