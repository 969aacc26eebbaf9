"""Key rotation (``session-store migrate``) by someone who can write to the
backend but holds no key: the very attacker README's "An encrypted store refuses plaintext"
defends against ("anyone able to write to the backend could have forged it").

The store is a real diskcache directory, encrypted under key A; the attacker plants a forged
session there as headerless JSON and as a session-store payload without the aes-gcm stage; the
operator then runs the real console script in a subprocess, as docs/cli.md tells them to rotate
to key B, and finally retires A.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from session_store import Codec, CorruptPayloadError, SessionStore, open_backend
from session_store.codec.encryption import AesGcmStage


def _cli(tmp_path: Path, keys: str, *args: str) -> subprocess.CompletedProcess[str]:
    script = shutil.which("session-store", path=str(Path(sys.executable).parent))
    assert script, "the session-store console script is not installed in this environment"
    env = {k: v for k, v in os.environ.items() if k not in {"SESSION_STORE_URL", "REDIS_URL"}}
    env.update(SESSION_STORE_KEYS=keys, XDG_CACHE_HOME=str(tmp_path / "cache"))
    return subprocess.run(
        [script, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def _store(url: str, *keys: str) -> SessionStore[dict[str, object]]:
    return SessionStore(url, dict, codec=Codec(encryption=AesGcmStage(list(keys))))


def _plant_forgeries(url: str) -> None:
    """What the attacker writes with the directory's permissions and no key."""
    raw = open_backend(url)
    try:
        raw.set("mallory", json.dumps({"user": "mallory", "role": "admin"}).encode())
        SessionStore(raw, dict, codec=Codec(encryption=None)).save(
            "eve", {"user": "eve", "role": "admin"}
        )
    finally:
        raw.close()


def test_a_rotation_does_not_launder_a_planted_plaintext_session(tmp_path: Path) -> None:
    key_a, key_b = AesGcmStage.generate_key(), AesGcmStage.generate_key()
    url = f"diskcache://{tmp_path / 'sessions'}"
    with _store(url, key_a) as before:
        before.save("alice", {"user": "alice", "role": "user"})
    _plant_forgeries(url)
    with _store(url, key_a) as before:
        for forged in ("mallory", "eve"):  # refused, as promised
            with pytest.raises(CorruptPayloadError):
                before.load(forged)
    for extra in ((), ("--legacy", "dict")):  # the rotation, as an operator would run it
        done = _cli(tmp_path, f"{key_b},{key_a}", "migrate", url, "--no-checkpoint", *extra)
        assert done.returncode in (0, 1), done.stderr
    with _store(url, key_b) as after:
        assert after.load("alice") == {"user": "alice", "role": "user"}  # rotated
        accepted = {}
        for forged in ("mallory", "eve"):
            with contextlib.suppress(CorruptPayloadError):
                accepted[forged] = after.load(forged)
        assert accepted == {}, f"forged sessions accepted after the rotation: {accepted}"


def test_a_rotation_keeps_real_sessions_and_retires_the_old_key(tmp_path: Path) -> None:
    """What held: the same rotation of genuine sessions only (no forgery): every session
    loads under B alone, and a second run rewrites nothing."""
    key_a, key_b = AesGcmStage.generate_key(), AesGcmStage.generate_key()
    url = f"diskcache://{tmp_path / 'sessions'}"
    with _store(url, key_a) as before:
        for n in range(5):
            before.save(f"u{n}", {"n": n})
    first = _cli(tmp_path, f"{key_b},{key_a}", "migrate", url, "--no-checkpoint", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["rewritten"] == 5
    again = _cli(tmp_path, f"{key_b},{key_a}", "migrate", url, "--no-checkpoint", "--json")
    assert json.loads(again.stdout)["rewritten"] == 0
    with _store(url, key_b) as after:
        assert {f"u{n}": after.load(f"u{n}") for n in range(5)} == {
            f"u{n}": {"n": n} for n in range(5)
        }


def test_switching_a_store_to_encryption_is_the_explicit_option(tmp_path: Path) -> None:
    """A store written in plaintext, then given a key: a plain ``migrate`` refuses its
    sessions (failures, left as they are), ``--encrypt-plaintext`` encrypts them."""
    key = AesGcmStage.generate_key()
    url = f"diskcache://{tmp_path / 'sessions'}"
    with SessionStore(url, dict, codec=Codec(encryption=None)) as plain:
        plain.save("alice", {"user": "alice"})
    refused = _cli(tmp_path, key, "migrate", url, "--no-checkpoint", "--json")
    assert refused.returncode == 1, refused.stderr
    assert json.loads(refused.stdout)["failed"] == 1
    with _store(url, key) as encrypted, pytest.raises(CorruptPayloadError):
        encrypted.load("alice")  # still plaintext: left as it was
    switched = _cli(tmp_path, key, "migrate", url, "--no-checkpoint", "--encrypt-plaintext")
    assert switched.returncode == 0, switched.stderr
    with _store(url, key) as encrypted:
        assert encrypted.load("alice") == {"user": "alice"}
