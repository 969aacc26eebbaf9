"""``rediss://`` against a real redis-server that speaks TLS only, with certificates made here."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from session_store import BackendError, BackendUnavailableError, open_backend
from session_store_redis.testing import RedisServer
from session_store_redis.testing.server import TLSFiles


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _make_ca(directory: Path, name: str) -> tuple[Path, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    path = directory / f"{name}.pem"
    path.write_bytes(
        _certificate(name, key, name, key, ca=True).public_bytes(serialization.Encoding.PEM)
    )
    return path, key


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[TLSFiles, Path]:
    """Server files signed by a test CA, and a second CA that did not sign them."""
    directory = tmp_path_factory.mktemp("tls")
    ca_path, ca_key = _make_ca(directory, "test-ca")
    other_ca, _ = _make_ca(directory, "other-ca")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate("redis-server", key, "test-ca", ca_key, ca=False)
    (directory / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(directory / "server.key", key)
    return TLSFiles(
        cert=directory / "server.pem", key=directory / "server.key", ca=ca_path
    ), other_ca


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
