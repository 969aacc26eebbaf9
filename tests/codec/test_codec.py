"""The codec: round trips, stages, encryption, migrations, and every typed failure."""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime
from enum import Enum
from typing import Any

import attrs
import pytest
from hypothesis import given

from session_store.codec import AesGcmStage, Codec, ZstdStage, check_storable
from session_store.codec.format import MAGIC, pack_header
from session_store.errors import (
    ConfigurationError,
    CorruptPayloadError,
    SerializationError,
    UnknownSchemaVersionError,
)
from session_store.schema import (
    EnhancedSessionData,
    SchemaInfo,
    get_schema,
    register_schema,
)
from session_store.testing.strategies import json_objects, sessions

KEY_A = AesGcmStage.generate_key()
KEY_B = AesGcmStage.generate_key()


def codec(**options: Any) -> Codec:
    options.setdefault("encryption", None)
    return Codec(**options)


@given(sessions())
def test_typed_round_trip(session: EnhancedSessionData) -> None:
    c = codec(encryption=AesGcmStage([KEY_A]), compression=ZstdStage(threshold=64))
    assert c.decode("k", c.encode("k", session)).obj == session


@given(json_objects())
def test_dict_round_trip(data: dict[str, Any]) -> None:
    c = codec()
    assert c.decode("k", c.encode("k", data)).obj == data


def test_header_names_the_stages_without_any_key() -> None:
    c = codec(encryption=AesGcmStage([KEY_A]), compression=ZstdStage(threshold=10))
    payload = c.encode("k", {"text": "x" * 100})
    assert payload.startswith(MAGIC)
    info = codec().inspect(payload)
    assert info.stages == ("zstd", "aes-gcm") and not info.legacy


def test_small_payloads_are_not_compressed() -> None:
    c = codec(compression=ZstdStage(threshold=1024))
    assert c.inspect(c.encode("k", {"a": 1})).stages == ()
    assert c.inspect(c.encode("k", {"a": "x" * 2000})).stages == ("zstd",)


# -- what can be stored -----------------------------------------------------------------------
class Color(Enum):
    RED = 1


@pytest.mark.parametrize(
    "value",
    [
        math.nan,
        math.inf,
        -math.inf,
        2**64,
        -(2**63) - 1,
        object(),
        {1, 2},
        b"bytes",
        datetime(2020, 1, 1),
        Color.RED,
        uuid.uuid4(),
        {1: "int key"},
        [1, [2, {"deep": math.nan}]],
    ],
    ids=lambda v: type(v).__name__ + ("-" + repr(v) if isinstance(v, float | int) else ""),
)
def test_unstorable_values_are_serialization_errors(value: Any) -> None:
    with pytest.raises(SerializationError):
        codec().encode("k", {"field": value})


def test_the_error_says_where() -> None:
    with pytest.raises(SerializationError, match=r"\['a'\]\[1\]\['b'\]"):
        check_storable({"a": [0, {"b": math.nan}]})


def test_tuples_come_back_as_lists() -> None:
    c = codec()
    assert c.decode("k", c.encode("k", {"t": (1, 2)})).obj == {"t": [1, 2]}


def test_naive_datetime_in_a_schema_field_is_refused() -> None:
    session = EnhancedSessionData("u", created_at=datetime(2020, 1, 1))
    with pytest.raises(SerializationError, match="naive"):
        codec().encode("u", session)


def test_objects_of_unregistered_classes_are_refused() -> None:
    @attrs.define
    class Stranger:
        x: int = 1

    with pytest.raises(SerializationError, match="register"):
        codec().encode("k", Stranger())
    with pytest.raises(SerializationError):
        codec().encode("k", [1, 2])


# -- legacy, unknown fields, misfits ----------------------------------------------------------
def test_legacy_dict_loads_as_version_0_and_keeps_every_key() -> None:
    legacy = {
        "processed_documents": [{"name": "a.pdf"}],
        "document_summary": None,
        "analysis_result": {"overall_score": 7.0},
        "drive_link": "https://x",
        "analysis_timestamp": "2025-06-15T12:27:01.591699",
        "brand_new_app_field": [1, 2],
    }
    decoded = codec().decode("U1", json.dumps(legacy).encode())
    assert decoded.stored_version == 0
    session = decoded.obj
    assert isinstance(session, EnhancedSessionData)
    assert session.user_id == "U1"
    assert session.document_summary is None
    assert session.created_at is not None
    assert session.created_at.isoformat() == "2025-06-15T12:27:01.591699+00:00"
    data = codec().to_data(session)
    assert {k: data[k] for k in legacy} == legacy


def test_a_known_key_with_an_unexpected_type_is_kept_exactly() -> None:
    legacy = {"processed_documents": {"not": "a list"}, "extraction_results": {"d": {"x": 1}}}
    c = codec()
    session = c.decode("U1", json.dumps(legacy).encode()).obj
    again = c.decode("U1", c.encode("U1", session)).obj
    data = c.to_data(again)
    assert data["processed_documents"] == {"not": "a list"}
    assert data["extraction_results"] == {"d": {"x": 1}}


def test_strict_primitives_never_coerce() -> None:
    legacy = {"user_id": 12345, "document_summary": 7}
    c = codec()
    session = c.decode("k", json.dumps(legacy).encode()).obj
    assert session.user_id == 12345  # kept as stored, not str(12345)
    assert c.to_data(session)["user_id"] == 12345


# -- versions and migrations ------------------------------------------------------------------
@attrs.define
class Note:
    text: str
    words: int = 0
    extra: dict[str, Any] = attrs.Factory(dict)


def _v1_to_v2(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {**data, "words": len(str(data.get("text", "")).split())}


def _v2_to_v1(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "words"}


NOTE_V1 = SchemaInfo("test-note", Note, 1)
NOTE_V2 = SchemaInfo("test-note", Note, 2, migrations={1: _v1_to_v2}, downgrades={2: _v2_to_v1})


def test_migrations_run_oldest_first() -> None:
    register_schema(NOTE_V1)
    old = codec().encode("k", Note("three little words"))
    register_schema(NOTE_V2)
    decoded = codec().decode("k", old)
    assert decoded.stored_version == 1
    assert decoded.obj == Note("three little words", words=3)


def test_a_future_version_is_an_error_never_a_guess() -> None:
    register_schema(NOTE_V2)
    future = (
        pack_header(())
        + json.dumps({"schema": "test-note", "version": 3, "data": {"text": "x"}}).encode()
    )
    with pytest.raises(UnknownSchemaVersionError, match="newer"):
        codec().decode("k", future)


def test_write_version_keeps_writing_the_old_version_during_a_rolling_deploy() -> None:
    register_schema(NOTE_V2)
    c = codec(write_versions={"test-note": 1})
    payload = c.encode("k", Note("a b", words=2))
    body = json.loads(payload[len(pack_header(())) :])
    assert body["version"] == 1 and "words" not in body["data"]
    with pytest.raises(ConfigurationError):
        codec(write_versions={"dataroom": 0})


def test_unknown_schema_and_unknown_format_are_typed() -> None:
    unknown = pack_header(()) + b'{"schema": "nope", "version": 1, "data": {}}'
    with pytest.raises(UnknownSchemaVersionError, match="nope"):
        codec().decode("k", unknown)
    with pytest.raises(UnknownSchemaVersionError, match="format version 9"):
        codec().decode("k", MAGIC + bytes([9, 0]) + b"{}")
    with pytest.raises(UnknownSchemaVersionError, match="stage id 7"):
        codec().decode("k", pack_header((7,)) + b"{}")


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00\x01\x02garbage",
        b"\x80\x04\x95pickle-ish",
        b'{"truncated": ',
        b"[1, 2, 3]",
        MAGIC,
        MAGIC + b"\x01",
        pack_header(()) + b"not json",
        pack_header(()) + b'{"no": "envelope"}',
        pack_header(()) + b'{"schema": "dataroom", "version": "1", "data": {}}',
        pack_header(()) + b'{"schema": "dataroom", "version": 1, "data": []}',
        pack_header((1,)) + b"not zstd",
    ],
    ids=repr,
)
def test_corrupt_bytes_are_corrupt_payload_errors(payload: bytes) -> None:
    with pytest.raises(CorruptPayloadError):
        codec().decode("k", payload)


# -- encryption -------------------------------------------------------------------------------
def test_wrong_key_tampering_and_moved_ciphertext_fail() -> None:
    c = codec(encryption=AesGcmStage([KEY_A]), namespace="app:")
    payload = c.encode("alice", {"secret": "s3cr3t"})
    assert b"s3cr3t" not in payload
    with pytest.raises(CorruptPayloadError, match="not configured"):
        codec(encryption=AesGcmStage([KEY_B]), namespace="app:").decode("alice", payload)
    with pytest.raises(CorruptPayloadError, match="authentication"):
        c.decode("bob", payload)  # copied under another key
    with pytest.raises(CorruptPayloadError, match="authentication"):
        codec(encryption=AesGcmStage([KEY_A]), namespace="other:").decode("alice", payload)
    tampered = bytearray(payload)
    tampered[-1] ^= 1
    with pytest.raises(CorruptPayloadError):
        c.decode("alice", bytes(tampered))
    with pytest.raises(ConfigurationError, match="SESSION_STORE_KEYS"):
        codec().decode("alice", payload)  # encrypted, but no key configured


def test_key_rotation_first_encrypts_all_decrypt() -> None:
    old = codec(encryption=AesGcmStage([KEY_A]))
    payload = old.encode("k", {"v": 1})
    rotated = codec(encryption=AesGcmStage([KEY_B, KEY_A]))
    assert rotated.decode("k", payload).obj == {"v": 1}
    fresh = rotated.encode("k", {"v": 2})
    assert codec(encryption=AesGcmStage([KEY_B])).decode("k", fresh).obj == {"v": 2}


def test_keys_never_appear_in_reprs() -> None:
    stage = AesGcmStage([KEY_A, KEY_B])
    c = codec(encryption=stage)
    for text in (repr(stage), str(stage), repr(c)):
        assert KEY_A not in text and KEY_B not in text


@pytest.mark.parametrize("bad", [["short"], ["!!!not base64!!!"], [], "a-string-not-a-list"])
def test_bad_keys_are_configuration_errors(bad: Any) -> None:
    with pytest.raises(ConfigurationError):
        AesGcmStage(bad)


def test_keys_from_the_environment() -> None:
    stage = AesGcmStage.from_env({"SESSION_STORE_KEYS": f"{KEY_B},{KEY_A}"})
    assert stage is not None and len(stage.key_ids) == 2
    assert AesGcmStage.from_env({}) is None


def test_dataroom_schema_is_registered_through_its_entry_point() -> None:
    info = get_schema("dataroom")
    assert info is not None and info.cls is EnhancedSessionData and info.version == 2


def test_a_bad_key_in_the_environment_names_the_variable_and_position() -> None:
    with pytest.raises(ConfigurationError, match=r"SESSION_STORE_KEYS, key #2"):
        AesGcmStage.from_env({"SESSION_STORE_KEYS": f"{KEY_A},not-a-key"})
