"""``session-store delete`` (newuser9: exit 3 for a key holding no session, which it leaves
alone) and ``SessionStore.delete`` (retired10: ``False`` for such a key, left alone) agree on
every kind of value, through the real console script over a real redis-server and a real
diskcache directory, alone and through a chain: exit 0 where the store answers ``True``, exit
3 where it answers ``False``, and the two keys hold the same afterwards."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from session_store import SessionStore, open_backend
from session_store.stamps import session_bytes, tombstone
from session_store.websession.steps import RETIRED

Run = Callable[..., subprocess.CompletedProcess[str]]

VALUES = {
    "retired": RETIRED,
    "deleted": tombstone(bytes(range(12))),
    "raw-json": b'{"documents": 3}',
    "raw-bytes": b"\xff\x00 a counter",
}


def _held(value: bytes | None) -> tuple[bool, bytes | None]:
    """What a tier's copy holds, as ``get`` reads it: whether there is one, and its session."""
    return value is not None, None if value is None else session_bytes(value)


@pytest.mark.parametrize("through", ["alone", "chain"])
def test_cli_delete_and_store_delete_agree(
    cli: Run, shared_url: str, tmp_path: Path, through: str
) -> None:
    url = shared_url if through == "alone" else f"memory:// | {shared_url}"
    with SessionStore(url, dict) as store:
        for side in ("cli", "store"):
            store.save(f"{side}-session", {"user": "alice"})
            for kind, value in VALUES.items():
                store.backend.set(f"{side}-{kind}", value, 60)
        for kind in ("session", *VALUES):
            result = cli("delete", url, f"cli-{kind}")
            answered = store.delete(f"store-{kind}")
            assert result.returncode == (0 if answered else 3), (kind, result.stderr)
    with open_backend(shared_url) as backend:
        for kind in ("session", *VALUES):  # through a chain, tombstones of two versions
            assert _held(backend.get(f"cli-{kind}")) == _held(backend.get(f"store-{kind}")), kind
        assert backend.get("cli-retired") is not None  # left alone by both
