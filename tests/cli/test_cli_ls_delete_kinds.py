"""``ls`` lists what ``get`` shows as a session, and ``delete`` agrees with ``get`` on what a key
holds, through the real console script over a real redis-server and a real diskcache directory.

Before: ``ls`` listed every key holding a value (plain JSON and opaque bytes another program
stored, which ``get`` calls "not a session"), and ``delete`` of a retired id (the marker a login's
id rotation leaves on the old id) removed the marker, printed ``deleted`` and exited 0, while
``get`` of the same key exited 3 ("no session").
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from session_store import SessionStore, open_backend
from session_store.samples import legacy_sessions
from session_store.schema import EnhancedSessionData
from session_store.stamps import is_tombstone
from session_store.websession.steps import RETIRED

Run = Callable[..., subprocess.CompletedProcess[str]]
SAMPLE = legacy_sessions()["U063826716"]

#: What each key of :func:`every_kind` holds, as ``ls --all`` names it.
KINDS = {
    "typed": "session",
    "legacy": "legacy data-room session",
    "raw-json": "plain JSON",
    "raw-bytes": "opaque bytes",
    "retired": "retired id",
}


@pytest.fixture
def every_kind(shared_url: str) -> str:
    """One backend (Redis or diskcache) holding a key of each kind."""
    with SessionStore(shared_url, EnhancedSessionData) as store:
        store.save("typed", EnhancedSessionData("typed", document_summary="3 decks"))
        store.backend.set("legacy", orjson.dumps(SAMPLE))
        store.backend.set("raw-json", b'{"documents": 3}')
        store.backend.set("raw-bytes", b"\xff\x00 a counter")
        store.backend.set("retired", RETIRED, 60)
    return shared_url


def test_ls_lists_the_sessions_get_loads_and_says_what_it_left_out(
    cli: Run, every_kind: str
) -> None:
    result = cli("ls", every_kind)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["legacy", "typed"]
    assert "3 keys holding no session not listed" in result.stderr
    assert "--all" in result.stderr
    assert json.loads(cli("ls", "--json", every_kind).stdout) == ["legacy", "typed"]
    long_form = json.loads(cli("ls", "-l", "--json", every_kind).stdout)
    assert [row["key"] for row in long_form] == ["legacy", "typed"]
    for key in ("legacy", "typed"):  # what ls lists, get shows as a session
        found = json.loads(cli("get", "--json", every_kind, key).stdout)["found"]
        assert found in ("session", "legacy data-room session")


def test_ls_all_lists_every_key_with_its_kind(cli: Run, every_kind: str) -> None:
    listed = json.loads(cli("ls", "--all", "--json", every_kind).stdout)
    assert {row["key"]: row["kind"] for row in listed} == KINDS
    assert [row["key"] for row in listed] == sorted(KINDS)
    text = cli("ls", "--all", every_kind)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines() == [f"{key}\t{KINDS[key]}" for key in sorted(KINDS)]
    long_form = json.loads(cli("ls", "--all", "-l", "--json", every_kind).stdout)
    assert {row["key"]: row["kind"] for row in long_form} == KINDS
    retired = next(row for row in long_form if row["key"] == "retired")
    assert 0 < retired["ttl"] <= 60


def test_ls_through_a_chain_lists_sessions_and_all_names_its_tombstones(
    cli: Run, every_kind: str, tmp_path: Path
) -> None:
    chain = f"memory:// | {every_kind} | diskcache://{tmp_path / 'lower'}"
    with open_backend(chain) as backend:
        assert backend.delete("never-there") is False  # a tombstone in every tier
    assert cli("ls", chain).stdout.split() == ["legacy", "typed"]
    through = json.loads(cli("ls", "--all", "--json", chain).stdout)
    assert {row["key"]: row["kind"] for row in through} == {**KINDS, "never-there": "deleted"}
    alone = json.loads(cli("ls", "--all", "--json", f"diskcache://{tmp_path / 'lower'}").stdout)
    assert alone == [{"key": "never-there", "kind": "deleted"}]


@pytest.mark.parametrize("key", sorted(KINDS))
def test_delete_and_get_agree_on_every_kind(cli: Run, every_kind: str, key: str) -> None:
    """``get`` exits 0 on what it shows (a session, plain JSON, bytes) and ``delete`` deletes
    those; both exit 3 on a key holding no value (absent, a retired id's marker)."""
    got = cli("get", every_kind, key)
    deleted = cli("delete", every_kind, key)
    assert deleted.returncode == got.returncode, (got.stderr, deleted.stdout, deleted.stderr)
    if KINDS[key] == "retired id":
        assert deleted.returncode == 3
        assert "retired id" in deleted.stderr and "deleted" not in deleted.stdout
        assert "retired id" in got.stderr  # both say what the key holds
        with open_backend(every_kind) as backend:  # left to expire: nothing was deleted
            assert backend.get(key) == RETIRED
            assert 0 < (backend.ttl(key) or 0) <= 60
    else:
        assert deleted.returncode == 0, deleted.stderr
        assert deleted.stdout.startswith(f"deleted {key}")
        assert cli("get", every_kind, key).returncode == 3
    again = cli("delete", every_kind, key)
    assert again.returncode == 3 and "no session under key" in again.stderr


def test_delete_leaves_a_chains_tombstone_in_one_tier_alone(cli: Run, tmp_path: Path) -> None:
    """Read alone, a tier of a chain holds the chain's tombstones: deleting one would let a
    lagging tier bring the logged-out session back."""
    lower = f"diskcache://{tmp_path / 'lower'}"
    with open_backend(f"memory:// | diskcache://{tmp_path / 'upper'} | {lower}") as chain:
        chain.set("logged-out", b"x")
        assert chain.delete("logged-out") is True
    assert cli("get", lower, "logged-out").returncode == 3
    result = cli("delete", lower, "logged-out")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "deleted session" in result.stderr
    with open_backend(lower) as tier:
        stored = tier.get("logged-out")
        assert stored is not None and is_tombstone(stored)


def test_help_documents_the_exit_codes(cli: Run) -> None:
    assert "3" in cli("delete", "--help").stdout.split("xit code")[1][:40]
    listing = cli("ls", "--help").stdout
    assert "--all" in listing and "get" in listing


def test_inspect_of_plain_json_says_not_a_session_and_gives_no_advice_that_loops(
    cli: Run, every_kind: str
) -> None:
    """``inspect`` read any headerless JSON as a version-0 data-room session and advised
    `session-store migrate --legacy dataroom`, which leaves plain JSON alone ("not sessions
    (left alone) 1"): the advice looped, and ``get`` / ``ls`` call the value no session."""
    text = cli("inspect", every_kind, "raw-json")
    assert text.returncode == 1, text.stdout + text.stderr
    assert "plain JSON" in text.stdout and "migrate" not in text.stdout
    assert "not a session" in text.stderr
    facts = json.loads(cli("inspect", "--json", every_kind, "raw-json").stdout)
    assert (facts["schema"], facts["up_to_date"]) == (None, None)
    assert facts["format"].startswith("plain JSON") and "not a session" in facts["error"]
    legacy = cli("inspect", every_kind, "legacy")  # a data-room session without a header
    assert legacy.returncode == 0 and "migrate --legacy dataroom" in legacy.stdout
