"""Every Python example in docs/performance.md runs as written."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_doc_has_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: f"block{i}")
def test_performance_doc_example_runs(index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real module, as a user's code would be: its classes' annotations resolve through it.
    module = types.ModuleType(f"performance_doc_{index}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(BLOCKS[index], str(DOC), "exec"), module.__dict__)
