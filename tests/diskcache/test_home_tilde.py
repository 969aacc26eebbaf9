"""``~`` in a diskcache URL is refused with a way out, never taken for a host or made into a
directory named ``~``. Found by a new user copying the README's description of the data-room
chain, ``diskcache://~/.cache/session-store/sessions``: ``open_backend`` said "diskcache URLs take
no host" (``~`` was the host), and ``diskcache:///~/sessions`` silently created ``/~/sessions``
at the root of the filesystem."""

from __future__ import annotations

from pathlib import Path

import pytest

from session_store import ConfigurationError, open_backend


@pytest.mark.parametrize("url", ["diskcache://~/sessions", "diskcache:///~/sessions"])
def test_a_tilde_is_refused_with_the_way_out(url: str) -> None:
    before = Path("/~").exists()
    with pytest.raises(ConfigurationError) as refused:
        open_backend(url)
    assert "~" in refused.value.message and "$HOME" in refused.value.message
    assert Path("/~").exists() == before  # nothing created


def test_a_directory_merely_holding_a_tilde_is_fine(tmp_path: Path) -> None:
    with open_backend(f"diskcache://{tmp_path / 'a~b'}") as backend:
        backend.set("k", b"v")
        assert backend.get("k") == b"v"
