"""The built-in schemas, registered through the ``session_store.schemas`` entry-point group.

* ``dataroom`` (:class:`EnhancedSessionData`), version 1. Version 0 is the legacy plain dict the
  first host app stored (``user_sessions[user_id] = {...}``); the migration adds what the dict
  never had (the user id, from the key; the timestamps) and keeps every key it had.
* ``dict``, version 1: any JSON object, stored exactly (``SessionMapping`` uses it). Version 0 is
  the same dict without an envelope.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from session_store.schema.dataroom import EnhancedSessionData, utc_now
from session_store.schema.registry import SchemaInfo

__all__ = ["DATAROOM", "DICT", "dataroom_v0_to_v1"]


def _timestamp(value: Any) -> str | None:
    """An ISO timestamp from a legacy field, or ``None`` if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return None
    return value


def dataroom_v0_to_v1(data: dict[str, Any], key: str) -> dict[str, Any]:
    """Legacy dict -> version 1: add ``user_id`` and timestamps, keep every key as it was.

    ``created_at`` comes from the legacy ``analysis_timestamp`` when it holds one (naive
    timestamps are UTC, as that app wrote them), else it is the time of loading.
    """
    upgraded = dict(data)
    upgraded.setdefault("user_id", key)
    created = _timestamp(data.get("created_at")) or _timestamp(data.get("analysis_timestamp"))
    stamp = created or utc_now().isoformat()
    upgraded.setdefault("created_at", stamp)
    upgraded.setdefault("last_accessed", stamp)
    return upgraded


def _unchanged(data: dict[str, Any], key: str) -> dict[str, Any]:
    return data


DATAROOM = SchemaInfo(
    name="dataroom",
    cls=EnhancedSessionData,
    version=1,
    migrations={0: dataroom_v0_to_v1},
)

DICT = SchemaInfo(name="dict", cls=dict, version=1, migrations={0: _unchanged})
