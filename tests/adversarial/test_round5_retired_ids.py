"""Round 5 attack on the marker a login's id rotation leaves on the old id, written through a
chain.

A web integration's MOVE (``regenerate`` on login, Django's ``cycle_key``) replaces the old id,
by compare-and-set, with ``websession.steps.RETIRED`` (a tombstone frame, "every reader takes it
for a deleted session") and then deletes it; a crash or a failed delete in between leaves the
marker for up to ``RETIRED_TTL``. Through a chain (``memory:// | redis:// | diskcache://``, what
``from_env`` builds) the marker is a *value* like any other byte string: the chain frames it.
A chain's own reader unframes once and sees the marker; a **single-tier reader** (a store or the
CLI opened on the chain's Redis alone, which the guarantees list as a supported reader) unframed
once and saw a 25-byte value: ``exists`` True, ``load`` ``CorruptPayloadError``, ``touch``
True, listed by ``keys()`` and ``session-store ls``.

Real redis-server and diskcache directory; the marker written exactly as the MOVE writes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from session_store import SessionStore
from session_store.websession import web_codec
from session_store.websession.steps import RETIRED, RETIRED_TTL

Data = dict[str, object]


def _retire_through_the_chain(chain_url: str) -> None:
    """A session ``live`` and a session ``old`` that a login moved away from, crashed (or its
    delete failed) right after the compare-and-set that retired ``old``."""
    store: SessionStore[Data] = SessionStore(chain_url, dict, codec=web_codec(), ttl=600)
    try:
        store.save("live", {"user": "bob"})
        store.save("old", {"user": "ann"})
        found = store.backend.get_versioned("old")
        assert found is not None
        assert store.backend.set_if("old", RETIRED, found.token, store._ttl(RETIRED_TTL))
        assert store.load("old") is None and store.exists("old") is False  # held
    finally:
        store.close()


def test_a_single_tier_reader_takes_a_retired_id_for_no_session(
    redis_url: str, tmp_path: Path
) -> None:
    """Failed before: ``exists`` True, ``load`` raised ``CorruptPayloadError`` ("not a
    session-store payload"), ``touch`` True, and the id was listed."""
    _retire_through_the_chain(f"memory:// | {redis_url} | diskcache://{tmp_path / 'disk'}")
    alone: SessionStore[Data] = SessionStore(redis_url, dict, codec=web_codec(), ttl=600)
    try:
        assert alone.load("live") == {"user": "bob"}
        assert alone.exists("old") is False
        assert alone.load("old") is None
        assert alone.touch("old") is False
        assert sorted(alone.keys()) == ["live"]
    finally:
        alone.close()
    script = shutil.which("session-store", path=str(Path(sys.executable).parent))
    assert script is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_STORE")}
    listed = subprocess.run(
        [script, "ls", redis_url], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["live"]


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="SessionStore.keys() trusts a chain's live_only listing, which filters the chain's "
    "tombstones but not a value that is a tombstone frame (the retired-id marker)",
)
def test_a_stores_listing_over_a_chain_leaves_a_retired_id_out(
    redis_url: str, tmp_path: Path
) -> None:
    """``SessionStore.keys()`` says an id a login rotated away is not listed; over a chain
    it is (for up to ``RETIRED_TTL`` after a crash between the retire and the delete)."""
    chain_url = f"memory:// | {redis_url} | diskcache://{tmp_path / 'disk'}"
    _retire_through_the_chain(chain_url)
    store: SessionStore[Data] = SessionStore(chain_url, dict, codec=web_codec(), ttl=600)
    try:
        assert sorted(store.keys()) == ["live"]
    finally:
        store.close()
