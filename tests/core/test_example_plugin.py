"""The example plugin distribution is found through its entry point, passes the kit, and stays
the 80-line backend CONTRIBUTING.md promises."""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import tokenize
from collections.abc import Callable
from pathlib import Path

import pytest

import session_store_example
from session_store import SessionBackend, available_backends, open_backend
from session_store.plugin import BackendBase, BackendConformance, make_state_machine
from session_store_example import SqliteBackend

#: The issue-16 promise: a real backend passes the whole kit in this many lines of code.
MAX_EXAMPLE_LINES = 80
_NOT_CODE = {
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENDMARKER,
    tokenize.COMMENT,
}


def lines_of_code(source: str) -> int:
    """Lines holding code: blank lines, comment-only lines and docstrings not counted."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                docstrings.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    code: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in _NOT_CODE:
            code.update(range(token.start[0], token.end[0] + 1))
    return len(code - docstrings)


def test_line_counter_counts_code_only() -> None:
    source = '"""Module\ndoc."""\n\n# a comment\nx = (\n    1  # trailing\n)\n\n\ndef f():\n'
    source += '    """Doc."""\n    return """not a\ndocstring"""\n'
    assert lines_of_code(source) == 3 + 1 + 2


def test_example_plugin_is_at_most_80_lines_of_code() -> None:
    package = Path(session_store_example.__file__).parent
    counts = {p.name: lines_of_code(p.read_text()) for p in sorted(package.glob("*.py"))}
    assert sum(counts.values()) <= MAX_EXAMPLE_LINES, counts


def test_example_plugin_is_built_on_the_base_class() -> None:
    assert issubclass(SqliteBackend, BackendBase)
    assert SqliteBackend.cas == "native"  # SQL compare-and-set, atomic across processes


def test_found_by_entry_point(tmp_path: Path) -> None:
    assert available_backends()["sqlite"] == "session_store_example.backend:SqliteBackend.from_url"
    backend = open_backend(f"sqlite://{tmp_path}/s.db?prefix=app:")
    assert isinstance(backend, SqliteBackend)
    backend.set("k", b"v")
    assert open_backend(f"sqlite://{tmp_path}/s.db?prefix=app:").get("k") == b"v"


class TestExamplePluginConformance(BackendConformance):
    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> Callable[..., SessionBackend]:
        return lambda prefix="t:": open_backend(f"sqlite://{tmp_path}/kit.db", prefix=prefix)


TestExamplePluginModel = make_state_machine(lambda: SqliteBackend(":memory:")).TestCase


_INCREMENT = """
import sys
from session_store import open_backend

backend = open_backend(sys.argv[1])
done = 0
while done < int(sys.argv[2]):
    read = backend.get_versioned("n")
    assert read is not None
    if backend.set_if("n", str(int(read.value) + 1).encode(), read.token):
        done += 1
backend.close()
"""


@pytest.mark.slow
def test_processes_sharing_the_file_lose_no_update(tmp_path: Path) -> None:
    """Four real processes increment one counter by compare-and-set on one SQLite file: each
    ``set_if`` is one SQL statement, so every acknowledged increment is in the total."""
    url = f"sqlite://{tmp_path}/shared.db"
    open_backend(url).set("n", b"0")
    workers = [subprocess.Popen([sys.executable, "-c", _INCREMENT, url, "150"]) for _ in range(4)]
    assert [worker.wait(timeout=300) for worker in workers] == [0] * 4
    assert open_backend(url).get("n") == b"600"
