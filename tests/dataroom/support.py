"""Shared helpers of the data-room tests: the chain they store into, and the wholeness check."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from session_store.codec import Codec
from session_store.schema.dataroom import EnhancedSessionData

#: The typed fields of the session (``extra`` holds the rest).
FIELDS = frozenset(a.name for a in attrs.fields(EnhancedSessionData)) - {"extra"}


def chain_url(directory: Path) -> str:
    """Memory above diskcache in ``directory``: what the app's embedded default builds."""
    return f"memory://?max_entries=100 | diskcache://{directory.as_posix()}"


def assert_whole(original: Mapping[str, Any], data: Mapping[str, Any]) -> None:
    """Every key of ``original`` is in ``data`` with an equal value."""
    missing = sorted(set(original) - set(data))
    assert not missing, f"keys lost: {missing}"
    changed = sorted(k for k in original if data[k] != original[k])
    assert not changed, f"values changed: {changed}"


def assert_session_whole(
    original: Mapping[str, Any], session: EnhancedSessionData, codec: Codec
) -> None:
    """Every original key is held, in a typed field or in ``extra``, with its value, and is
    written back by the codec."""
    held = {k: getattr(session, k) if k in FIELDS else session.extra[k] for k in original}
    assert_whole(original, held)
    assert_whole(original, codec.to_data(session))
