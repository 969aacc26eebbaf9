"""copy, migrate and bench through the real console script, on real backends."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from session_store import SessionStore, open_backend
from session_store.codec import AesGcmStage, Codec
from session_store.samples import legacy_sessions
from session_store.schema.builtin import DATAROOM

Run = Callable[..., subprocess.CompletedProcess[str]]
ErrorLine = Callable[[subprocess.CompletedProcess[str]], str]
SAMPLES = legacy_sessions()


@pytest.fixture
def legacy_disk(tmp_path: Path) -> str:
    """A diskcache store holding the sample sessions as the old app wrote them (v0 JSON)."""
    url = f"diskcache://{tmp_path / 'legacy'}"
    with open_backend(url) as backend:
        for user_id, data in SAMPLES.items():
            backend.set(user_id, orjson.dumps(data), 7200)
        backend.set("forever", orjson.dumps({"user_id": "forever"}))
    return url


def test_copy_moves_raw_bytes_and_keeps_the_ttl(
    cli: Run, legacy_disk: str, redis_url: str, error_line: ErrorLine
) -> None:
    result = cli("copy", "--json", legacy_disk, redis_url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["copied"] == len(SAMPLES) + 1
    with open_backend(legacy_disk) as src, open_backend(redis_url) as dst:
        for key in [*SAMPLES, "forever"]:
            assert dst.get(key) == src.get(key)
        assert 7000 < (dst.ttl("U071780854") or 0) <= 7200
        assert dst.ttl("forever") == float("inf")
        dst.delete("U063826716")
    again = cli("copy", "--skip-existing", "--json", legacy_disk, redis_url)
    assert json.loads(again.stdout) | {"copied": 1, "skipped": len(SAMPLES)} == json.loads(
        again.stdout
    )
    same = cli("copy", redis_url, redis_url)
    assert same.returncode == 1 and "same" in error_line(same)


def test_copy_refuses_a_destination_in_its_own_memory(
    cli: Run, legacy_disk: str, error_line: ErrorLine
) -> None:
    """Found by a new user: `copy SRC memory://` printed "copied 4" and exited 0, and the
    sessions vanished with the command."""
    result = cli("copy", legacy_disk, "memory://")
    assert result.returncode == 1 and "vanish" in error_line(result)


def test_migrate_brings_legacy_sessions_to_the_current_version(cli: Run, legacy_disk: str) -> None:
    first = cli("migrate", "--json", "--legacy", "dataroom", legacy_disk)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert (report["rewritten"], report["failed"], report["complete"]) == (
        len(SAMPLES) + 1,
        0,
        True,
    )
    facts = json.loads(cli("inspect", "--json", legacy_disk, "U071780854").stdout)
    assert facts["stored_version"] == DATAROOM.version and facts["up_to_date"] is True
    assert 7000 < facts["ttl"] <= 7200  # the TTL left is kept
    again = json.loads(cli("migrate", "--json", "--legacy", "dataroom", legacy_disk).stdout)
    assert (again["rewritten"], again["current"]) == (0, len(SAMPLES) + 1)


def test_migrate_rotates_the_encryption_key(cli: Run, tmp_path: Path) -> None:
    old, new = AesGcmStage.generate_key(), AesGcmStage.generate_key()
    url = f"diskcache://{tmp_path / 'enc'}"
    with SessionStore(url, dict, codec=Codec(encryption=AesGcmStage([old]))) as store:
        for n in range(5):
            store.save(f"s{n}", {"n": n})
    rotated = cli("migrate", url, env={"SESSION_STORE_KEYS": f"{new},{old}"})
    assert rotated.returncode == 0, rotated.stderr
    assert "rewritten 5" in rotated.stdout
    assert old not in rotated.stdout + rotated.stderr and new not in rotated.stdout
    only_new = cli("get", url, "s3", env={"SESSION_STORE_KEYS": new})  # the old key can go
    assert json.loads(only_new.stdout) == {"n": 3}


def test_migrate_resumes_from_its_checkpoint(cli: Run, legacy_disk: str, tmp_path: Path) -> None:
    checkpoint = tmp_path / "walk.checkpoint"
    done = ["U063826716", "U071780854"]  # what an interrupted run had finished
    with open_backend(legacy_disk) as backend:  # a checkpoint names the store it walks
        store = backend.describe()
    target = {"store": store, "namespace": "", "prefix": "", "key_id": None}
    header = {"session-store-rewrite": 1, "target": target}
    digests = [hashlib.blake2b(key.encode(), digest_size=16).hexdigest() for key in done]
    checkpoint.write_text(json.dumps(header) + "\n" + json.dumps({"done": digests}) + "\n")
    result = cli(
        "migrate",
        legacy_disk,
        "--legacy",
        "dataroom",
        "--checkpoint",
        str(checkpoint),
        "--progress",
    )
    assert result.returncode == 0, result.stderr
    assert "resuming from" in result.stdout
    assert "rewritten 3" in result.stdout and "skipped from checkpoint 2" in result.stdout
    assert "migrate" in result.stderr  # the progress bar, forced on
    assert not checkpoint.exists()  # a finished walk removes it
    facts = json.loads(cli("inspect", "--json", legacy_disk, "U063826716").stdout)
    assert facts["stored_version"] == 0  # skipped: the checkpoint said it was done


def test_migrate_reports_sessions_it_cannot_rewrite(
    cli: Run, legacy_disk: str, error_line: ErrorLine
) -> None:
    with open_backend(legacy_disk) as backend:
        backend.set("broken", b"\xa7SS\x01\x00{not json")
    result = cli("migrate", legacy_disk, "--no-checkpoint")
    assert result.returncode == 1
    assert "failed broken: CorruptPayloadError" in result.stdout
    assert "cannot be rewritten as they are" in error_line(result)  # a corrupt payload: lasting


def test_bench_runs_and_cleans_up(cli: Run, tmp_path: Path) -> None:
    url = f"diskcache://{tmp_path / 'bench'}"
    result = cli("bench", "--json", url, "--rounds", "5")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert {"save", "load", "update (compare-and-set)", "codec encode + decode"} <= set(
        figures["operations"]
    )
    assert figures["ratios"]["codec_vs_orjson"] > 0
    with open_backend(url) as backend:
        assert list(backend.scan()) == []  # its keys are gone


def test_migrate_rewrites_a_legacy_session_holding_nan_with_null_and_says_where(
    cli: Run, tmp_path: Path
) -> None:
    """A legacy session holding NaN (as Python's json wrote it) is rewritten: the legacy
    reader reads NaN as null and warns with the key and the path (issue 12, item 6)."""
    url = f"diskcache://{tmp_path / 'nan'}"
    with open_backend(url) as backend:
        backend.set("U1", b'{"user_id": "U1", "score": NaN}', 3600)
    result = cli("migrate", "--legacy", "dataroom", url)
    assert result.returncode == 0, result.stderr
    assert "'U1'" in result.stderr and "['score'] was nan" in result.stderr
    with open_backend(url) as backend:
        stored = SessionStore(backend, codec=Codec(encryption=None)).load("U1")
    assert stored is not None and stored.extra == {"score": None}


def test_migrate_says_a_session_it_cannot_store_cannot_be_rewritten_as_it_is(
    cli: Run, tmp_path: Path
) -> None:
    """Found by a new user: a legacy session holding a value the codec never stores (an int
    beyond 64 bits, which Python's json writes and reads back exactly; it was a lone surrogate,
    which is now read as U+FFFD) loads, but migrate fails it on every run, so it must not say
    "run again to retry"."""
    url = f"diskcache://{tmp_path / 'big-int'}"
    with open_backend(url) as backend:
        backend.set("U1", b'{"user_id": "U1", "id": 123456789012345678901234567890}', 3600)
        backend.set("U2", b'{"user_id": "U2", "name": "\\ud800"}', 3600)
    result = cli("migrate", "--legacy", "dataroom", url)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]  # after the reader's warnings
    assert last.startswith("session-store: error: ")
    assert "cannot be rewritten as they are" in last
    assert "retry" not in last
    assert "['id'] was 123456789012345678901234567890" in result.stderr
    with open_backend(url) as backend:  # the lone surrogate no longer blocks: rewritten
        stored = SessionStore(backend, codec=Codec(encryption=None)).load("U2")
        assert stored is not None and stored.extra == {"name": "\ufffd"}


@pytest.mark.parametrize("how", ["copy", "copy --skip-existing"])
def test_copy_keeps_the_ttl_a_session_was_saved_with(
    cli: Run, tmp_path: Path, redis_url: str, how: str
) -> None:
    """Found by review: a session saved over one backend with a TTL of its own
    (``save(key, s, ttl=3000)``) records that TTL in a frame (:mod:`session_store.ownttl`);
    ``copy`` wrote the bare payload with the time left, so in the destination a ``touch``
    restarted it with the store's TTL (a day) instead of its own 3000 s."""
    source = f"diskcache://{tmp_path / 'src'}"
    with SessionStore(source, dict) as store:
        store.save("own", {"purpose": "password reset"}, ttl=3000)
        store.save("plain", {"user": 1})  # the store's TTL: stored unframed, copied as it is
        plain = store.backend.get("plain")
    result = cli(*how.split(), "--json", source, redis_url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["copied"] == 2
    with SessionStore(redis_url, dict) as store:
        assert store.load("own") == {"purpose": "password reset"}
        assert 0 < (store.backend.ttl("own") or 0) <= 3000  # the time it had left
        store.backend.touch("own", 5)  # as if most of its life had passed
        assert store.touch("own")
        assert 2900 < (store.backend.ttl("own") or 0) <= 3000, "its own TTL was lost"
        assert store.backend.get("plain") == plain
