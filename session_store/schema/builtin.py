"""The built-in schemas, registered through the ``session_store.schemas`` entry-point group.

* ``dataroom`` (:class:`EnhancedSessionData`), version 2.

  - Version 0 is headerless JSON: the legacy plain dict the first host app stored
    (``user_sessions[user_id] = {...}``), and the plan's ``json.dumps(session.to_dict(),
    default=str)`` in Redis. The migration adds what a legacy dict never had (the user id, from
    the key; the timestamps) and keeps every key it had.
  - Version 1 (session-store 0.1) named five extraction-result fields its own way;
    version 2 uses the plan's names (:data:`V1_RESULT_RENAMES`), its default strategy
    ``'default'`` where version 1 wrote ``''``, and ``{}`` for empty cross-document insights
    where version 1 wrote ``[]``. A downgrade writes version 1 again for a rolling deploy
    from 0.1 (``Codec(write_versions={"dataroom": 1})``). Legacy (v0) data runs through the
    same step: a result that holds one of the old names and not the plan's (a key only 0.1
    wrote) is renamed like 0.1's; a result holding both keeps both, untouched.
* ``dict``, version 1: any JSON object, stored exactly (``SessionMapping`` uses it). Version 0 is
  the same dict without an envelope.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from session_store.schema.dataroom import EnhancedSessionData, utc_now
from session_store.schema.registry import SchemaInfo

__all__ = [
    "DATAROOM",
    "DICT",
    "V1_RESULT_RENAMES",
    "dataroom_v0_to_v1",
    "dataroom_v1_to_v2",
    "dataroom_v2_to_v1",
]

#: Extraction-result fields version 1 stored under its own names -> the plan's names (v2).
V1_RESULT_RENAMES: Mapping[str, str] = MappingProxyType(
    {
        "text_metadata": "text_extraction_metadata",
        "insights": "comprehensive_insights",
        "processing_time_s": "processing_time",
        "processing_cost_usd": "processing_cost",
        "quality_score": "extraction_quality_score",
    }
)


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


def _renamed(result: dict[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """``result`` with keys renamed by ``names``, unless the new name is already taken (then
    both are kept as they are: nothing is overwritten). Order is kept."""
    return {
        (names[k] if k in names and names[k] not in result else k): v for k, v in result.items()
    }


def _map_results(data: dict[str, Any], fn: Any) -> dict[str, Any]:
    results = data.get("extraction_results")
    if not isinstance(results, dict):
        return dict(data)
    return {
        **data,
        "extraction_results": {k: fn(v) if isinstance(v, dict) else v for k, v in results.items()},
    }


def dataroom_v1_to_v2(data: dict[str, Any], key: str) -> dict[str, Any]:
    """Version 1 -> 2: the plan's field names in every extraction result, ``''`` strategy
    -> ``'default'``, ``[]`` cross-document insights -> ``{}``. Everything else as it was."""
    return _between_v1_v2(data, V1_RESULT_RENAMES, ("", "default"), ([], {}))


def dataroom_v2_to_v1(data: dict[str, Any], key: str) -> dict[str, Any]:
    """Version 2 -> 1, for a rolling deploy from session-store 0.1: the old field names and
    defaults back (the exact inverse of :func:`dataroom_v1_to_v2` on what 0.1 wrote)."""
    back = {v: k for k, v in V1_RESULT_RENAMES.items()}
    return _between_v1_v2(data, back, ("default", ""), ({}, []))


def _between_v1_v2(
    data: dict[str, Any],
    renames: Mapping[str, str],
    strategy: tuple[str, str],
    insights: tuple[Any, Any],
) -> dict[str, Any]:
    """Either way between versions 1 and 2: ``renames`` in every extraction result, and each
    of ``strategy`` (the processing strategy) and ``insights`` (the cross-document insights)
    as ``(from, to)``: a value equal to ``from`` becomes ``to``."""

    def convert(result: dict[str, Any]) -> dict[str, Any]:
        converted = _renamed(result, renames)
        if converted.get("processing_strategy") == strategy[0]:
            converted["processing_strategy"] = strategy[1]
        return converted

    converted = _map_results(data, convert)
    if converted.get("cross_document_insights") == insights[0]:
        converted["cross_document_insights"] = insights[1]
    return converted


def _unchanged(data: dict[str, Any], key: str) -> dict[str, Any]:
    return data


DATAROOM = SchemaInfo(
    name="dataroom",
    cls=EnhancedSessionData,
    version=2,
    migrations={0: dataroom_v0_to_v1, 1: dataroom_v1_to_v2},
    downgrades={2: dataroom_v2_to_v1},
)

DICT = SchemaInfo(name="dict", cls=dict, version=1, migrations={0: _unchanged})
