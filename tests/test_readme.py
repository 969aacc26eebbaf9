"""Every Python example in the README runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_the_readme_has_examples() -> None:
    assert len(BLOCKS) >= 3


# The README shows the current import paths: a name that moved (with a warning) fails here.
@pytest.mark.filterwarnings("error:.*moved to session_store.dataroom:DeprecationWarning")
@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(
    code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REDIS_URL", redis_url)  # a real redis-server the suite started
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})


def _cli_block() -> str:
    """The first ``bash`` block of the README's "Command line" section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Command line") :]
    section = section[: section.index("\n## ", 1)]
    found = re.search(r"```bash\n(.*?)```", section, re.S)
    assert found, "the Command line section has no bash example"
    return found.group(1)


def test_readme_command_line_example_runs_as_written(tmp_path: Path) -> None:
    """A new user runs the Command line example after the quick start, in a fresh shell: every
    line works (its directory under /tmp moved into this test's own), and it shows sessions."""
    import os
    import subprocess
    import sys

    block = _cli_block()
    assert "/tmp/demo-sessions" in block
    script = block.replace("/tmp/demo-sessions", str(tmp_path / "demo-sessions"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSION_STORE", "REDIS_URL"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo:U095822412" in result.stdout.splitlines()  # ls lists the demo's sessions
    assert '"schema":"dataroom"' in result.stdout  # inspect --json
