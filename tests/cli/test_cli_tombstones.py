"""A chain's ``delete`` of a key leaves tombstones (deleted sessions) in its tiers, also when the
key was never there: nothing that counts or lists sessions may count them."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from session_store import SessionStore, open_backend

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def chain_with_tombstones(tmp_path: Path) -> tuple[str, str]:
    """``memory | diskcache`` holding one session and the tombstones of three deletes of keys
    that were never stored; returns (chain, the disk tier alone)."""
    disk = f"diskcache://{tmp_path / 'disk'}"
    chain = f"memory:// | {disk}"
    with open_backend(chain) as backend:
        backend.set("alive", b'{"documents": 3}')
        for ghost in ("ghost-1", "ghost-2", "ghost-3"):
            assert backend.delete(ghost) is False
    with open_backend(disk) as tier:  # the premise: the disk tier holds the tombstones
        assert sorted(tier.scan()) == ["alive", "ghost-1", "ghost-2", "ghost-3"]
    return chain, disk


def test_stats_does_not_count_tombstones(cli: Run, chain_with_tombstones: tuple[str, str]) -> None:
    chain, disk = chain_with_tombstones
    result = cli("stats", "--json", chain)
    assert result.returncode == 0, result.stderr
    snap = json.loads(result.stdout)
    assert [tier["keys"] for tier in snap["tiers"]] == [0, 1]
    assert snap["sample"] == 1  # only the live session is read
    alone = json.loads(cli("stats", "--json", disk).stdout)
    assert [tier["keys"] for tier in alone["tiers"]] == [1]


def test_stats_probe_counts_only_its_own_reads(
    cli: Run, chain_with_tombstones: tuple[str, str]
) -> None:
    """Telling sessions from tombstones reads values; those reads are not the probe's."""
    chain, _ = chain_with_tombstones
    snap = json.loads(cli("stats", "--json", chain).stdout)
    disk_tier = snap["tiers"][1]
    assert disk_tier["counters"]["hits"] == 2  # one get + one get_many of the one session
    assert disk_tier["latency"]["get_many"]["count"] == 1


def test_ls_and_copy_skip_tombstones(
    cli: Run, chain_with_tombstones: tuple[str, str], tmp_path: Path
) -> None:
    chain, disk = chain_with_tombstones
    with SessionStore(chain, dict) as store:
        store.save("session", {"documents": 3})
    for url in (chain, disk):  # "alive" holds plain JSON: not a session either
        assert cli("ls", url).stdout.split() == ["session"]
        kinds = {
            row["key"]: row["kind"] for row in json.loads(cli("ls", "-a", "--json", url).stdout)
        }
        assert kinds == {
            "alive": "plain JSON",
            "session": "session",
            **dict.fromkeys(("ghost-1", "ghost-2", "ghost-3"), "deleted"),
        }
    target = f"diskcache://{tmp_path / 'copy'}"
    copied = json.loads(cli("copy", "--json", disk, target).stdout)
    assert (copied["copied"], copied["vanished"]) == (2, 0)


def test_migrate_of_one_tier_counts_tombstones_as_deleted_not_vanished(
    cli: Run, chain_with_tombstones: tuple[str, str]
) -> None:
    _, disk = chain_with_tombstones
    report = json.loads(cli("migrate", "--json", disk).stdout)
    assert (report["vanished"], report["deleted"], report["not_sessions"]) == (0, 3, 1)
    with open_backend(disk) as tier:  # the tombstones are left alone: still deleted
        assert sorted(tier.scan()) == ["alive", "ghost-1", "ghost-2", "ghost-3"]
