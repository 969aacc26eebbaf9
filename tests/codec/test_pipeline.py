"""The stage pipeline writes exactly the bytes the fixed two-slot codec wrote, and loads lazily.

Golden payloads were written by earlier releases. Decoding one and encoding the object again with
the same stages must give the same bytes: for zstd and plain payloads directly (both are
deterministic), for encrypted ones with the stage's nonce source (``os.urandom`` in
:mod:`session_store.codec.encryption`) made to return the golden payload's nonce.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from session_store.codec import AesGcmStage, Codec, ZstdStage
from session_store.codec.format import parse_header
from session_store.codec.pipeline import KNOWN_STAGES, STAGE_NAMES, Pipeline
from session_store.errors import ConfigurationError

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
GOLDEN_KEY = "Z29sZGVuLXRlc3Qta2V5LW5vdC1hLXNlY3JldC0zMiE="
# Payloads the current writer produces: format 2 when encrypted, format 1 otherwise (the golden
# zstd payloads were written at level 3, the default before it became 1).
REWRITTEN = [
    "dataroom_v1_plain",
    "dataroom_v1_zstd",
    "dataroom_v1_aesgcm_ad2",
    "dataroom_v1_zstd_aesgcm_ad2",
    "dataroom_v2_plain",
    "dataroom_v2_zstd",
]


def _payload(name: str) -> bytes:
    return (GOLDEN / f"{name}.bin").read_bytes()


@pytest.mark.parametrize("name", REWRITTEN)
def test_reencoding_a_golden_payload_gives_the_same_bytes(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _payload(name)
    header = parse_header(data)
    reader = Codec(encryption=AesGcmStage([GOLDEN_KEY]), namespace="golden:", allow_plaintext=True)
    decoded = reader.decode("U000GOLDEN", data)
    version = decoded.stored_version
    writer = Codec(
        compression=ZstdStage(threshold=0, level=3) if "zstd" in name else None,
        encryption=AesGcmStage([GOLDEN_KEY]) if "aesgcm" in name else None,
        namespace="golden:",
        write_versions={"dataroom": version},
    )
    if "aesgcm" in name:
        nonce = data[header.payload_offset + 4 : header.payload_offset + 16]
        monkeypatch.setattr(os, "urandom", lambda n: nonce[:n])  # the stage's nonce source
    assert writer.encode("U000GOLDEN", decoded.obj) == data


def test_the_stage_names_come_from_the_stage_classes() -> None:
    assert [(c.stage_id, c.name) for c in KNOWN_STAGES] == [(1, "zstd"), (2, "aes-gcm")]
    assert dict(STAGE_NAMES) == {1: "zstd", 2: "aes-gcm"}
    codec = Codec(compression=ZstdStage(), encryption=AesGcmStage([GOLDEN_KEY]))
    assert [s.name for s in codec.pipeline.stages] == ["zstd", "aes-gcm"]
    assert Codec(compression=None, encryption=None).pipeline.stages == ()


def test_a_pipeline_orders_its_stages_and_refuses_one_twice() -> None:
    zstd, aes = ZstdStage(), AesGcmStage([GOLDEN_KEY])
    assert Pipeline([aes, zstd]).stages == (zstd, aes)
    with pytest.raises(ConfigurationError, match="twice"):
        Pipeline([zstd, ZstdStage()])


def test_importing_the_codec_loads_neither_cryptography_nor_zstandard() -> None:
    code = (
        "import sys, session_store.codec;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'cryptography', 'zstandard'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_each_stage_imports_its_library_when_used() -> None:
    code = (
        "import sys; from session_store.codec import Codec, AesGcmStage;"
        "c = Codec(encryption=None); c.encode('k', {'a': 'x' * 5000});"
        "print('zstandard' in sys.modules, 'cryptography' in sys.modules);"
        f"AesGcmStage([{GOLDEN_KEY!r}]); print('cryptography' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["True", "False", "True"]
