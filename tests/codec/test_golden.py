"""Golden payloads of every byte format and schema version load forever."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from session_store.codec import AesGcmStage, Codec
from session_store.errors import CorruptPayloadError
from session_store.schema import EnhancedSessionData, SchemaInfo, get_schema
from session_store.schema.builtin import V1_RESULT_RENAMES, dataroom_v1_to_v2, dataroom_v2_to_v1

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
GOLDEN_KEY = "Z29sZGVuLXRlc3Qta2V5LW5vdC1hLXNlY3JldC0zMiE="
GOLDEN_HEAD = "golden\x1f"  # the key prefix format-3 payloads are bound to (make_golden.py)
PAYLOADS = sorted(p for p in GOLDEN.glob("*.bin") if p.with_suffix(".expected.json").exists())


def _codec(legacy_schema: str = "dataroom") -> Codec:
    codec = Codec(
        encryption=AesGcmStage([GOLDEN_KEY]),
        namespace="golden:",
        legacy_schema=legacy_schema,
        allow_plaintext=True,  # one reader of every golden payload, encrypted or not
    )
    return codec.bound_to((GOLDEN_HEAD,))  # as a store over a backend with that prefix


def _key(path: Path) -> str:
    if path.name.startswith("legacy_v0_"):
        return path.stem.removeprefix("legacy_v0_")
    return "U000DICT" if path.name.startswith("dict_") else "U000GOLDEN"


def test_every_format_and_version_has_a_golden_payload() -> None:
    names = {p.stem for p in PAYLOADS}
    assert {"dataroom_v1_plain", "dataroom_v1_zstd", "dataroom_v1_zstd_aesgcm"} <= names
    # both encryption bindings: format 1 (NUL-joined) and format 2 (length-prefixed, issue 13)
    assert {"dataroom_v1_aesgcm", "dataroom_v1_aesgcm_ad2", "dataroom_v1_zstd_aesgcm_ad2"} <= names
    # format 3: the backend's key prefix bound as well
    assert {"dataroom_v2_aesgcm_ad3", "dataroom_v2_zstd_aesgcm_ad3"} <= names
    for version in (1, 2):
        assert {f"dataroom_v{version}_{n}" for n in ("plain", "zstd", "zstd_aesgcm")} <= names
    assert "dict_v1_plain" in names
    assert sum(n.startswith("legacy_v0_") for n in names) >= 4


@pytest.mark.parametrize("path", PAYLOADS, ids=lambda p: p.stem)
def test_golden_payload_loads_to_its_expected_data(path: Path) -> None:
    expected = json.loads(path.with_suffix(".expected.json").read_text())
    key = _key(path)
    if path.name.startswith(("legacy_", "dict_")):
        assert _codec("dict").decode(key, path.read_bytes(), as_schema=None).obj == expected
        typed = _codec().decode(key, path.read_bytes(), as_schema=_dataroom()).obj
        assert isinstance(typed, EnhancedSessionData)
        data = _codec().to_data(typed)
        assert {k: data[k] for k in expected} == expected  # nothing lost through the schema
    else:
        decoded = _codec().decode(key, path.read_bytes())
        version = int(path.name.split("_")[1].removeprefix("v"))
        assert decoded.schema == "dataroom" and decoded.stored_version == version
        migrated = path.with_suffix(".migrated.json")
        if version < _dataroom().version:  # what it loads as today, pinned beside what it was
            expected = json.loads(migrated.read_text())
        else:
            assert not migrated.exists()
        assert _codec().to_data(decoded.obj) == expected


def test_v1_golden_expectations_migrate_by_the_v1_to_v2_migration() -> None:
    """The migrated expectation of each version-1 payload is its version-1 data after
    dataroom_v1_to_v2: five extraction-result fields renamed to the plan's names, the
    default strategy '' -> 'default', empty cross-document insights [] -> {}; nothing else."""
    olds = sorted(GOLDEN.glob("dataroom_v1_*.expected.json"))
    assert len(olds) == 6  # four of format 1, two of format 2's length-prefixed binding
    for old_path in olds:
        old = json.loads(old_path.read_text())
        new = json.loads(
            old_path.with_name(old_path.name.replace("expected", "migrated")).read_text()
        )
        assert dataroom_v1_to_v2(old, "U000GOLDEN") == new
        assert old["cross_document_insights"] == [] and new["cross_document_insights"] == {}
        (old_result,) = old["extraction_results"].values()
        (new_result,) = new["extraction_results"].values()
        renamed = {old_result[a] == new_result[b] for a, b in V1_RESULT_RENAMES.items()}
        assert renamed == {True}
        assert (old_result["processing_strategy"], new_result["processing_strategy"]) == (
            "",
            "default",
        )
        untouched = set(old_result) - set(V1_RESULT_RENAMES) - {"processing_strategy"}
        assert {k: new_result[k] for k in untouched} == {k: old_result[k] for k in untouched}
        assert dataroom_v2_to_v1(new, "U000GOLDEN") == old  # and back, for a rolling deploy


def test_legacy_nan_loads_as_none_and_saves_again(caplog: pytest.LogCaptureFixture) -> None:
    """The golden payload holds ``NaN`` as ``json.dumps`` wrote it: it loads (as a dict and as
    a data-room session) with ``None`` in its place, reported, and the result can be stored."""
    raw = (GOLDEN / "legacy_v0_nan.bin").read_bytes()
    assert b"NaN" in raw
    with caplog.at_level("WARNING", logger="session_store.codec.legacyjson"):
        obj = _codec("dict").decode("k", raw).obj
    assert obj == {"score": None, "note": "as json.dumps wrote it"}
    assert "['score'] was nan" in caplog.text
    typed = _codec().decode("k", raw, as_schema=_dataroom()).obj
    assert typed.extra == obj
    for codec, value in ((_codec("dict"), obj), (_codec(), typed)):
        assert codec.decode("k", codec.encode("k", value)).obj == value


def _dataroom() -> SchemaInfo:
    info = get_schema("dataroom")
    assert info is not None
    return info


@pytest.mark.parametrize(
    ("name", "format_version"),
    [
        ("dataroom_v1_aesgcm", 1),
        ("dataroom_v1_zstd_aesgcm", 1),
        ("dataroom_v1_aesgcm_ad2", 2),
        ("dataroom_v1_zstd_aesgcm_ad2", 2),
        ("dataroom_v2_aesgcm_ad2", 2),
        ("dataroom_v2_aesgcm_ad3", 3),
        ("dataroom_v2_zstd_aesgcm_ad3", 3),
    ],
)
def test_old_and_new_encryption_bindings_both_load(name: str, format_version: int) -> None:
    data = (GOLDEN / f"{name}.bin").read_bytes()
    assert data[3] == format_version
    # version-1 data as it loads today (migrated to the current data-room schema); current data
    migrated = GOLDEN / f"{name}.migrated.json"
    expected = json.loads(
        (migrated if migrated.exists() else GOLDEN / f"{name}.expected.json").read_text()
    )
    assert _codec().to_data(_codec().decode("U000GOLDEN", data).obj) == expected
    # the binding holds in both: another session key, or another namespace, does not open it
    with pytest.raises(CorruptPayloadError):
        _codec().decode("U000OTHER", data)
    other = Codec(encryption=AesGcmStage([GOLDEN_KEY]), namespace="golden:x")
    with pytest.raises(CorruptPayloadError):
        other.bound_to((GOLDEN_HEAD,)).decode("U000GOLDEN", data)
    # format 3 only: another key prefix does not open it, nor a codec bound to no prefix;
    # formats 1 and 2 open under any (what they bound)
    elsewhere = _codec().bound_to(("golden:\x1f",))
    unbound = Codec(encryption=AesGcmStage([GOLDEN_KEY]), namespace="golden:")
    for reader in (elsewhere, unbound):
        if format_version == 3:
            with pytest.raises(CorruptPayloadError):
                reader.decode("U000GOLDEN", data)
        else:
            assert reader.to_data(reader.decode("U000GOLDEN", data).obj) == expected
