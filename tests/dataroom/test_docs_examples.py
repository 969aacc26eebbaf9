"""The Python examples of docs/dataroom.md and docs/migrating-from-plan.md run as written and
print what their comments say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"

#: What each page's examples print, in order.
EXPECTED = {
    "dataroom.md": [
        "24",
        "0.66",
        "{'total_cost': 0.02, 'pages_processed': 12}",
        "1",
        "{'processed_documents': [{'name': 'deck.pdf'}]} True ['123']",
        "None {'score': None}",
        "int at ['data']['document_id'] does not fit in 64 bits | key='U8'",
    ],
    "migrating-from-plan.md": ["0.65", "{'has_vision_data': False, 'vision_insights': []}"],
}


@pytest.mark.parametrize("page", sorted(EXPECTED))
def test_doc_examples_run_and_print_what_they_say(
    page: str, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, page, "exec"), {"__name__": "docs"})
    assert capsys.readouterr().out.splitlines() == EXPECTED[page]
