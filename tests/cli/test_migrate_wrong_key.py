"""``session-store migrate`` with ``SESSION_STORE_KEYS`` holding a key, but not the one the
sessions were encrypted under (a rotation whose old key was left out of the list, or the
wrong secret injected): the last line must say what fixes it, the missing key.

newuser10 found it as an operator following docs/cli.md ("migrate: schema upgrades and key
rotation"): with only the new key set, every session failed with ``CorruptPayloadError:
payload was encrypted with key id ..., which is not configured``, and the command ended with
"cannot be rewritten as they are (a value the codec never stores, such as NaN, or a payload it
cannot read): running again will not help"; running again with ``NEW,OLD`` rewrites them all.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from session_store import AesGcmStage, Codec, SessionStore

Run = Callable[..., subprocess.CompletedProcess[str]]


def _encrypted_store(tmp_path: Path, key: str, n: int = 3) -> str:
    url = f"diskcache://{tmp_path / 'enc'}"
    with SessionStore(url, dict, codec=Codec(encryption=AesGcmStage([key]))) as store:
        for i in range(n):
            store.save(f"s{i}", {"cart": [i]})
    return url


def test_migrate_under_another_key_says_to_add_the_old_key(cli: Run, tmp_path: Path) -> None:
    old, new = AesGcmStage.generate_key(), AesGcmStage.generate_key()
    url = _encrypted_store(tmp_path, old)
    result = cli("migrate", "--no-checkpoint", url, env={"SESSION_STORE_KEYS": new})
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "SESSION_STORE_KEYS" in last, last
    assert "will not help" not in last, last
    # what the line says to do works: the new key first, the old one after it
    fixed = cli("migrate", "--no-checkpoint", url, env={"SESSION_STORE_KEYS": f"{new},{old}"})
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "rewritten 3," in fixed.stdout, fixed.stdout


def test_a_missing_key_is_not_counted_among_the_failures_a_rerun_cannot_fix(
    cli: Run, tmp_path: Path
) -> None:
    """One session under a key not configured and one damaged payload: the damaged one alone
    is what no rerun fixes; the other needs its key."""
    from session_store import open_backend

    old, new = AesGcmStage.generate_key(), AesGcmStage.generate_key()
    url = _encrypted_store(tmp_path, old, n=1)
    with SessionStore(url, dict, codec=Codec(encryption=AesGcmStage([new]))) as store:
        store.save("damaged", {"cart": []})
    with open_backend(url) as backend:
        stored = backend.get("damaged")
        assert stored is not None
        backend.set("damaged", stored[:-1] + bytes([stored[-1] ^ 1]))  # its tag no longer holds
    result = cli("migrate", "--no-checkpoint", url, env={"SESSION_STORE_KEYS": new})
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "1 of them as they are" in last and "SESSION_STORE_KEYS" in last, last
