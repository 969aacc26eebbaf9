"""What the encryption-binding tests (``test_encryption_prefix_binding``,
``test_encryption_one_tier_migrate``) share: a store encrypting with one key, and the real
``session-store`` console script run with that key and none of the caller's settings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from session_store import AesGcmStage, Codec, SessionStore

__all__ = ["Store", "encrypted_store", "run_cli"]

Store = SessionStore[dict[str, Any]]


def encrypted_store(url: str, key: str) -> Store:
    """A store of dict sessions over ``url``, encrypting with ``key`` (``"NEW,OLD"``: keys
    rotated, as ``SESSION_STORE_KEYS`` gives them)."""
    return SessionStore(url, dict, codec=Codec(encryption=AesGcmStage(key.split(","))))


def run_cli(*args: str, key: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``session-store ARGS`` with ``SESSION_STORE_KEYS=key`` and its cache under ``home``."""
    script = shutil.which("session-store", path=str(Path(sys.executable).parent))
    assert script
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSION_STORE", "REDIS"))}
    env |= {"SESSION_STORE_KEYS": key, "XDG_CACHE_HOME": str(home)}
    return subprocess.run(
        [script, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
