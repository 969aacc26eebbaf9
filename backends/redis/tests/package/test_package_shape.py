"""The shape of the plugin's runtime package: small modules with one job each, and the test
harnesses outside what importing the backends loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import session_store_redis

PACKAGE = Path(session_store_redis.__file__).parent
MAX_LINES = 400


def test_no_runtime_module_is_over_400_lines() -> None:
    sizes = {
        str(path.relative_to(PACKAGE)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
        if "testing" not in path.relative_to(PACKAGE).parts
    }
    assert len(sizes) > 10  # the package was found
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}


def test_opening_every_backend_imports_no_test_harness() -> None:
    code = (
        "import sys\n"
        "import session_store_redis, session_store_redis.aio, session_store_redis.aio_cluster\n"
        "from session_store import open_backend\n"
        "open_backend('redis+cluster://127.0.0.1:1/').close()\n"
        "print(sorted(m for m in sys.modules if m.startswith('session_store_redis.testing')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
