"""Issue 13, item 4: an encrypted store refuses plaintext unless asked to read it.

With keys configured, a stored ``{"is_admin": true}`` (bare legacy JSON, or a header without the
encryption stage) used to load as a session: whoever could write to the backend could forge one.
"""

from __future__ import annotations

import base64

import pytest

from session_store import AesGcmStage, Codec, MemoryBackend, SessionStore
from session_store.codec import KEYS_ENV, MAGIC
from session_store.errors import CorruptPayloadError

KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()
FORGED = {
    "legacy JSON": b'{"is_admin": true}',
    "legacy JSON, leading space": b' \n{"is_admin": true}',
    "header, no stage": MAGIC
    + b"\x01\x00"
    + b'{"schema":"dict","version":1,"data":{"is_admin":true}}',
}


@pytest.mark.parametrize("name", sorted(FORGED))
def test_an_encrypted_store_refuses_plaintext(name: str) -> None:
    backend = MemoryBackend()
    backend.set("u1", FORGED[name])
    store = SessionStore(backend, dict, codec=Codec(encryption=AesGcmStage([KEY])))
    with pytest.raises(CorruptPayloadError, match="plaintext"):
        store.load("u1")
    assert backend.get("u1") == FORGED[name]  # refused, not touched


@pytest.mark.parametrize("name", sorted(FORGED))
def test_keys_from_the_environment_refuse_plaintext_too(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEYS_ENV, KEY)
    backend = MemoryBackend()
    backend.set("u1", FORGED[name])
    with pytest.raises(CorruptPayloadError, match="allow_plaintext"):
        SessionStore(backend, dict).load("u1")


@pytest.mark.parametrize("name", sorted(FORGED))
def test_plaintext_is_read_when_asked(name: str) -> None:
    backend = MemoryBackend()
    backend.set("u1", FORGED[name])
    codec = Codec(encryption=AesGcmStage([KEY]), allow_plaintext=True, legacy_schema="dict")
    store = SessionStore(backend, dict, codec=codec)
    assert store.load("u1") == {"is_admin": True}
    store.save("u1", {"is_admin": False})  # what it writes is encrypted
    stored = backend.get("u1")
    assert stored is not None and b"is_admin" not in stored


def test_a_store_without_keys_reads_plaintext_as_before() -> None:
    backend = MemoryBackend()
    backend.set("u1", FORGED["legacy JSON"])
    codec = Codec(encryption=None, legacy_schema="dict")
    assert SessionStore(backend, dict, codec=codec).load("u1") == {"is_admin": True}


def test_a_spliced_envelope_is_not_a_session_nobody_stored() -> None:
    """The case the fuzz test met now and then: an encrypted payload's tail replaced by a plain
    payload's JSON envelope read as legacy JSON, a dict session nobody stored."""
    plain = Codec(compression=None, encryption=None).encode("k", {"n": 7})
    spliced = plain[5:]  # the envelope alone: a bare JSON object
    assert spliced.startswith(b"{")
    with pytest.raises(CorruptPayloadError):
        Codec(compression=None, encryption=AesGcmStage([KEY])).decode("k", spliced)
