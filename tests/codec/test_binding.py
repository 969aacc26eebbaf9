"""Issue 13, item 2: the AES-GCM associated data is unambiguous (every field length-prefixed).

Format 1 joined header, namespace and key with NUL bytes, so ("acme", "evil\\0bob") and
("acme\\0evil", "bob") had the same associated data. Format 2 prefixes each field with its length;
payloads written under format 1 keep loading (golden payloads of both: tests/codec/test_golden.py).
"""

from __future__ import annotations

import base64

import pytest

from session_store.codec import AesGcmStage, Codec, ZstdStage
from session_store.codec.format import MAGIC, parse_header
from session_store.errors import CorruptPayloadError

KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()


def _codec(namespace: str, *, compress: bool = False) -> Codec:
    return Codec(
        compression=ZstdStage(threshold=0) if compress else None,
        encryption=AesGcmStage([KEY]),
        namespace=namespace,
    )


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    ("written", "read"),
    [
        (("acme", "evil\0bob"), ("acme\0evil", "bob")),
        (("acme\0evil", "bob"), ("acme", "evil\0bob")),
        (("", "a\0b"), ("a", "b")),
        (("a\0", "b"), ("a", "\0b")),
    ],
)
def test_a_ciphertext_opens_only_under_its_own_namespace_and_key(
    written: tuple[str, str], read: tuple[str, str], compress: bool
) -> None:
    data = _codec(written[0], compress=compress).encode(written[1], {"is_admin": True})
    assert _codec(written[0], compress=compress).decode(written[1], data).obj == {"is_admin": True}
    with pytest.raises(CorruptPayloadError, match="authentication"):
        _codec(read[0], compress=compress).decode(read[1], data)


def test_encrypted_payloads_are_written_in_format_2_plain_ones_stay_format_1() -> None:
    encrypted = _codec("ns").encode("k", {"a": 1})
    assert encrypted[:3] == MAGIC and parse_header(encrypted).format_version == 2
    plain = Codec(compression=None, encryption=None).encode("k", {"a": 1})
    assert parse_header(plain).format_version == 1  # readable by the previous release


def test_the_format_version_is_bound_too() -> None:
    """Downgrading the header byte to format 1 (the ambiguous binding) fails authentication."""
    data = bytearray(_codec("acme").encode("evil\0bob", {"a": 1}))
    data[3] = 1
    with pytest.raises(CorruptPayloadError):
        _codec("acme").decode("evil\0bob", bytes(data))


def test_migrate_rewrites_format_1_ciphertexts_in_format_2() -> None:
    """A payload under the current key but the ambiguous binding is not "current": the rewrite
    walk (``session-store migrate``) brings it to format 2."""
    from pathlib import Path

    from session_store import MemoryBackend, SessionStore
    from session_store.rewrite import rewrite_all

    golden = Path(__file__).resolve().parents[1] / "golden"
    old = (golden / "dataroom_v1_aesgcm.bin").read_bytes()
    codec = Codec(
        encryption=AesGcmStage(["Z29sZGVuLXRlc3Qta2V5LW5vdC1hLXNlY3JldC0zMiE="]),
        namespace="golden:",
    )
    backend = MemoryBackend()
    backend.set("U000GOLDEN", old)
    store: SessionStore[object] = SessionStore(backend, codec=codec, access_interval=None)
    report = rewrite_all(store)
    assert (report.rewritten, report.current, report.failed) == (1, 0, 0)
    new = backend.get("U000GOLDEN")
    assert new is not None and parse_header(new).format_version == 2
    assert codec.decode("U000GOLDEN", new).obj == codec.decode("U000GOLDEN", old).obj
    assert rewrite_all(store).current == 1
