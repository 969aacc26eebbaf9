"""Sample data-room sessions, in the shapes the first host app kept in its plain dict."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

__all__ = ["legacy_sessions"]


def legacy_sessions() -> dict[str, dict[str, Any]]:
    """The sample sessions, ``user_id -> session dict``, as the legacy app stored them."""
    text = files(__name__).joinpath("legacy_user_sessions.json").read_text(encoding="utf-8")
    data: dict[str, dict[str, Any]] = json.loads(text)
    return data
