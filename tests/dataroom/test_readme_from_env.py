"""The README's sentence on ``SessionManager.from_env()`` names the disk tier it really builds.

A host app running as a service user with ``XDG_CACHE_HOME`` set looks for its sessions where
the README says they are: the README's template, expanded by a shell with that environment, is
the disk tier ``from_env`` opens.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from session_store.dataroom import SessionManager

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_names_the_disk_tier_from_env_builds(tmp_path: Path) -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    found = re.search(
        r"`SessionManager\.from_env\(\)` reads `SESSION_STORE_URL`, or builds `([^`]+)`", text
    )
    assert found, "the README no longer describes from_env's default chain"
    disk = found.group(1).split("|")[-1].strip()
    environ = {"HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    shell = subprocess.run(
        ["bash", "-c", f'printf %s "{disk}"'],
        env={**environ, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=True,
    )
    with SessionManager.from_env(environ) as manager:
        built = manager.store.backend.describe().split("|")[-1].strip()
    assert built.split("?")[0] == shell.stdout
