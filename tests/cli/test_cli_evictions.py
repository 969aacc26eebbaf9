"""Issue 15, item 4: ``session-store stats`` reports the evictions a disk tier made, although
they happened in other processes (a fresh command's own counters are all zero)."""

from __future__ import annotations

import json
from pathlib import Path

from session_store import TieredBackend, open_backend

from .conftest import Run


def test_stats_reports_the_disk_tiers_evictions_made_by_other_processes(
    cli: Run, tmp_path: Path
) -> None:
    url = f"memory://?max_entries=10 | diskcache://{tmp_path}?size_limit=200000"
    with open_backend(url) as chain:  # the app's process: it fills the disk past its limit
        assert isinstance(chain, TieredBackend)
        for i in range(200):
            chain.set(f"k{i}", b"x" * 5000)
        made = chain.tiers[1].counters.get("evictions")
    assert made > 0
    with open_backend(f"diskcache://{tmp_path}?size_limit=200000") as disk:
        assert disk.stored_evictions() == made  # type: ignore[attr-defined]
    result = cli("stats", url, "--json")
    assert result.returncode == 0, result.stderr
    tiers = json.loads(result.stdout)["tiers"]
    assert tiers[1]["counters"]["evictions"] == made
    table = cli("stats", url, env={"COLUMNS": "120"})
    assert table.returncode == 0, table.stderr
    assert str(made) in table.stdout
