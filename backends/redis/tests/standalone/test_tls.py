"""``rediss://`` against a real redis-server that speaks TLS only, with certificates made here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from session_store import BackendError, BackendUnavailableError, open_backend
from session_store_redis.testing import RedisServer
from session_store_redis.testing.server import TLSFiles
from session_store_redis.testing.tls import make_test_tls


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[TLSFiles, Path]:
    """Server files signed by a test CA, and a second CA that did not sign them."""
    return make_test_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_server(
    redis_server_factory: Callable[..., RedisServer], tls_files: tuple[TLSFiles, Path]
) -> RedisServer:
    return redis_server_factory(tls=tls_files[0], password="tls-secret")


def test_rediss_round_trip_with_verified_certificate(tls_server: RedisServer) -> None:
    assert tls_server.url.startswith("rediss://")
    with open_backend(tls_server.url_for(prefix="tls:")) as backend:
        backend.set("k", b"over tls", ttl=60)
        assert backend.get("k") == b"over tls"
        assert backend.get_many(["k", "absent"]) == {"k": b"over tls"}
        assert list(backend.scan()) == ["k"]
        assert "tls-secret" not in repr(backend)


def test_a_certificate_from_another_ca_is_refused_not_unavailable(
    tls_server: RedisServer, tls_files: tuple[TLSFiles, Path]
) -> None:
    url = tls_server.url_for(ssl_ca_certs=str(tls_files[1]))
    with open_backend(url) as backend, pytest.raises(BackendError) as caught:
        backend.get("k")
    assert not isinstance(caught.value, BackendUnavailableError)
    assert "certificate" in str(caught.value) and "tls-secret" not in str(caught.value)


def test_verification_can_be_switched_off_explicitly(tls_server: RedisServer) -> None:
    url = (
        f"rediss://:tls-secret@127.0.0.1:{tls_server.port}/0"
        "?ssl_cert_reqs=none&ssl_check_hostname=false"
    )
    with open_backend(url) as backend:
        backend.set("k", b"v")
        assert backend.get("k") == b"v"


def test_plain_redis_to_a_tls_port_is_unavailable(tls_server: RedisServer) -> None:
    url = f"redis://:tls-secret@127.0.0.1:{tls_server.port}/0?socket_timeout=1&retries=0"
    with open_backend(url) as backend, pytest.raises(BackendUnavailableError):
        backend.get("k")
