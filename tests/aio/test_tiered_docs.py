"""The async chain's example in docs/async.md runs as written, with and without a Redis tier."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "async.md"
SECTION = DOC.read_text(encoding="utf-8").split("## Async chains", 1)[1].split("\n## ", 1)[0]
BLOCKS = re.findall(r"```python\n(.*?)```", SECTION, re.S)


@pytest.mark.parametrize("with_redis", [True, False], ids=["redis", "no-redis"])
def test_the_async_chain_example_runs(
    with_redis: bool,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert len(BLOCKS) == 1
    if with_redis:
        monkeypatch.setenv("SESSION_STORE_EXAMPLE_REDIS_URL", redis_url)
    else:
        monkeypatch.delenv("SESSION_STORE_EXAMPLE_REDIS_URL", raising=False)
    exec(compile(BLOCKS[0], str(DOC), "exec"), {"__name__": "docs"})
    printed = capsys.readouterr().out
    assert ("arbiter" in printed) and (("durable" in printed) is with_redis)
