"""``session-store copy`` of encrypted sessions written in byte format 3 (bound to the source's
key prefix) to a store under another prefix: the copies cannot open there (by design: a
ciphertext moved to another tenant's prefix must not open), so ``copy`` says so instead of
reporting a silent success (it printed "copied 1" and exited 0, and nobody could read the copy).
Real diskcache directories, the real console script."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from session_store import AesGcmStage, Codec, SessionStore

Run = Callable[..., Any]


def _save(url: str, key: str, sid: str) -> None:
    with SessionStore(url, dict, codec=Codec(encryption=AesGcmStage([key]))) as store:
        assert store.codec.encrypted_format == 3
        store.save(sid, {"role": "admin"})


def test_copy_warns_of_sessions_bound_to_the_source_prefix(cli: Run, tmp_path: Path) -> None:
    key = AesGcmStage.generate_key()
    src = f"diskcache://{tmp_path / 'src'}?prefix=alpha:"
    dst = f"diskcache://{tmp_path / 'dst'}?prefix=beta:"
    _save(src, key, "alice")
    result = cli("copy", src, dst, env={"SESSION_STORE_KEYS": key})
    assert result.returncode == 0, result.stderr
    assert "copied 1" in result.stdout
    assert "1 encrypted session" in result.stderr and "key prefix" in result.stderr, result.stderr
    as_json = cli("copy", src, dst, "--json", env={"SESSION_STORE_KEYS": key})
    assert json.loads(as_json.stdout)["bound_to_source_prefix"] == 1


def test_copy_under_the_same_prefix_does_not_warn(cli: Run, tmp_path: Path) -> None:
    key = AesGcmStage.generate_key()
    src = f"diskcache://{tmp_path / 'src'}?prefix=alpha:"
    dst = f"diskcache://{tmp_path / 'dst'}?prefix=alpha:"
    _save(src, key, "alice")
    result = cli("copy", src, dst, "--json", env={"SESSION_STORE_KEYS": key})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["bound_to_source_prefix"] == 0
    assert "key prefix" not in result.stderr
    with SessionStore(dst, dict, codec=Codec(encryption=AesGcmStage([key]))) as there:
        assert there.load("alice") == {"role": "admin"}  # opens: same prefix
