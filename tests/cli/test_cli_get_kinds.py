"""``session-store get`` says what it found under a key, through the real console script: a
session-store payload, a legacy data-room session (headerless JSON holding the data-room app's
keys), plain JSON some other code stored, or opaque bytes. Before, any headerless JSON object
was shown as a data-room session (``{"documents": 3}`` came out with a made-up ``user_id`` and
eight empty fields), and a JSON list, text or raw bytes failed with a CorruptPayloadError."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from session_store import SessionStore, open_backend
from session_store.samples import legacy_sessions
from session_store.schema import EnhancedSessionData

Run = Callable[..., subprocess.CompletedProcess[str]]
SAMPLES = legacy_sessions()
RAW_JSON = b'{"documents": 3, "owner": "billing"}'  # the README's kind of raw value: not a session
RAW_LIST = b"[1, 2, 3]"
RAW_BYTES = b"\xff\x00 a counter, a blob"
BIG = b'{"counter_id": 123456789012345678901234567890}'  # exact in Python's json, not in orjson


@pytest.fixture
def mixed(tmp_path: Path) -> str:
    url = f"diskcache://{tmp_path / 'mixed'}"
    with SessionStore(url, EnhancedSessionData) as store:
        store.save("typed", store.codec.decode("typed", orjson.dumps(SAMPLES["U071780854"])).obj)
        store.backend.set("legacy", orjson.dumps(SAMPLES["U063826716"]))
        store.backend.set("raw-json", RAW_JSON)
        store.backend.set("raw-list", RAW_LIST)
        store.backend.set("raw-bytes", RAW_BYTES)
        store.backend.set("raw-text", b"hello world")
        store.backend.set("raw-brace", b"{not json at all")
        store.backend.set("big", BIG)
    return url


def _scripted(cli: Run, url: str, key: str) -> dict[str, object]:
    result = cli("get", "--json", url, key)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1
    found: dict[str, object] = json.loads(result.stdout)
    return found


def test_sessions_are_named_as_such(cli: Run, mixed: str) -> None:
    typed = _scripted(cli, mixed, "typed")
    assert (typed["found"], typed["schema"]) == ("session", "dataroom")
    legacy = _scripted(cli, mixed, "legacy")
    assert (legacy["found"], legacy["schema"]) == ("legacy data-room session", "dataroom")
    data = legacy["data"]
    assert isinstance(data, dict) and data["drive_link"] == SAMPLES["U063826716"]["drive_link"]


@pytest.mark.parametrize(
    ("key", "raw"), [("raw-json", RAW_JSON), ("raw-list", RAW_LIST), ("big", BIG)]
)
def test_plain_json_is_shown_as_stored_and_named_plain_json(
    cli: Run, mixed: str, key: str, raw: bytes
) -> None:
    scripted = _scripted(cli, mixed, key)
    assert scripted["found"] == "plain JSON"
    assert scripted["schema"] is None
    assert scripted["data"] == json.loads(raw)  # exactly: not a data-room session made up
    shown = cli("get", mixed, key)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == json.loads(raw)
    assert "plain JSON" in shown.stderr and "not a session" in shown.stderr
    assert "Traceback" not in shown.stderr


@pytest.mark.parametrize(
    ("key", "raw"),
    [("raw-bytes", RAW_BYTES), ("raw-text", b"hello world"), ("raw-brace", b"{not json at all")],
)
def test_opaque_bytes_are_described_not_failed(cli: Run, mixed: str, key: str, raw: bytes) -> None:
    scripted = _scripted(cli, mixed, key)
    assert (scripted["found"], scripted["size"], scripted["data"]) == (
        "opaque bytes",
        len(raw),
        None,
    )
    assert base64.b64decode(str(scripted["base64"])) == raw
    shown = cli("get", mixed, key)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"opaque bytes, {len(raw)} B")
    assert repr(raw) in shown.stdout
    assert "Traceback" not in shown.stderr


def test_a_damaged_session_store_payload_is_still_an_error(cli: Run, tmp_path: Path) -> None:
    url = f"diskcache://{tmp_path / 'bad'}"
    with open_backend(url) as backend:
        backend.set("corrupt", b"\xa7SS\x01\x00{not json")  # our header: a session, damaged
    result = cli("get", url, "corrupt")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
