"""Every Python example of the docs pages that no other test runs, run as written: each page's
blocks in order, in one namespace (a reader's session: a later block may use what an earlier
one made, as docs/metrics.md's exporters use its first block's ``store``), with ``REDIS_URL``
naming the suite's real redis-server.

Pages run elsewhere: README.md (``tests/test_readme.py``), dataroom.md and
migrating-from-plan.md (``tests/dataroom/test_docs_examples.py``), performance.md
(``tests/test_performance_doc.py``), testing-consistency.md (``tests/consistency/test_docs.py``),
starlette.md (``tests/web/test_starlette_docs.py``). Blocks that are not run are listed in
``NOT_RUN`` with the reason, and a test fails if that list and the pages disagree, so an example
cannot leave the run unnoticed. Never run: a block naming a host other than the loopback
address.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ["async", "codec-pipeline", "django", "flask", "guarantees", "metrics", "scale-out"]

#: (page, block index): why it is not run.
NOT_RUN = {
    ("async", 3): "needs a Redis Cluster on 127.0.0.1:7000-7001",
    ("guarantees", 0): "names the host cache",
    ("metrics", 1): "the shape of a snapshot, not code (names the host cache)",
    ("scale-out", 0): "names the host 10.0.0.1",
    ("scale-out", 1): "names the host 10.0.0.1",
    ("scale-out", 2): "names the host 10.0.0.1",
}

_BLOCK = re.compile(r"^([ \t]*)```python\n(.*?)^[ \t]*```", re.S | re.M)
_HOST = re.compile(r"://(?:[^@/\s\"'|]*@)?([A-Za-z0-9.\-]+)[:/]")


def blocks(page: str) -> list[str]:
    """The page's Python blocks, indented ones (inside a list item) included, dedented."""
    text = (DOCS / f"{page}.md").read_text(encoding="utf-8")
    return [textwrap.dedent(code) for _, code in _BLOCK.findall(text)]


def names_another_host(code: str) -> bool:
    return bool(set(_HOST.findall(code)) - {"127.0.0.1", "localhost"})


def test_every_block_left_out_is_listed_with_its_reason() -> None:
    for page in PAGES:
        for index, code in enumerate(blocks(page)):
            if names_another_host(code):
                assert (page, index) in NOT_RUN, f"{page}.md block {index} names another host"
    for page, index in NOT_RUN:
        assert index < len(blocks(page)), f"{page}.md has no block {index} any more"


def _configure_django() -> None:
    """docs/django.md's first block is ``settings.py``; its second runs where settings are
    loaded. Settings for it, as its third block makes them (``memory://``: the first block's
    URL names a port of the machine's own services)."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(SESSION_ENGINE="session_store.django", SESSION_STORE_URL="memory://")
        django.setup()


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
@pytest.mark.parametrize("page", [p for p in PAGES if p != "scale-out"])  # none runs there
def test_the_pages_examples_run_in_order(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("SESSION_STORE_URL", raising=False)
    monkeypatch.delenv("SESSION_STORE_KEYS", raising=False)
    if page == "django":
        _configure_django()
    if page == "metrics":  # its Prometheus block registers in the global REGISTRY
        import prometheus_client

        monkeypatch.setattr(prometheus_client, "REGISTRY", prometheus_client.CollectorRegistry())
        import session_store.metrics.prometheus as exporter

        monkeypatch.setattr(exporter, "REGISTRY", prometheus_client.REGISTRY)
    namespace: dict[str, Any] = {"__name__": "docs"}
    ran = 0
    for index, code in enumerate(blocks(page)):
        if (page, index) in NOT_RUN:
            continue
        assert not names_another_host(code)
        exec(compile(code, f"docs/{page}.md block {index}", "exec"), namespace)
        ran += 1
    assert ran >= 1
