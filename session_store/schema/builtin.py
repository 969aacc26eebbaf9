"""The built-in schemas, registered through the ``session_store.schemas`` entry-point group.

* ``dataroom`` (:class:`EnhancedSessionData`), version 2.

  - Version 0 is headerless JSON: the legacy plain dict the first host app stored
    (``user_sessions[user_id] = {...}``), and the plan's ``json.dumps(session.to_dict(),
    default=str)`` in Redis. The migration adds what a legacy dict never had (the user id, from
    the key; the timestamps, from what the data records: :func:`legacy_times`, never the time
    of loading) and keeps every key it had.
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
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from session_store.schema.dataroom import PLAN_SESSION_KEYS, EnhancedSessionData
from session_store.schema.registry import SchemaInfo

__all__ = [
    "DATAROOM",
    "DICT",
    "V1_RESULT_RENAMES",
    "dataroom_v0_to_v1",
    "dataroom_v1_to_v2",
    "dataroom_v2_to_v1",
    "legacy_times",
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


def _instant(text: str) -> datetime | None:
    """The instant an ISO timestamp names, as a naive UTC datetime (naive text is UTC, as the
    legacy app wrote it; an offset is converted), or ``None`` if ``text`` is not one. Naive,
    so that comparing two costs no ``replace`` (about 7k instructions each in CPython 3.11)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed
    return parsed.astimezone(UTC).replace(tzinfo=None)


#: Where a legacy session records when something happened to it: top-level keys (``""``), and
#: the keys of the dict under ``market_research`` / ``market_research_data`` and of each entry
#: of ``processed_documents``. Nothing else counts: a date inside a document's ``metadata`` (a
#: PDF's creation date) or its text says nothing about the session.
LEGACY_EVENT_TIMES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "": ("analysis_timestamp",),
        "market_research": ("timestamp",),
        "market_research_data": ("timestamp",),
        "processed_documents": ("processed_at", "timestamp"),
    }
)


def _event_times(data: Mapping[str, Any]) -> list[tuple[datetime, str]]:
    """Every ISO timestamp found where :data:`LEGACY_EVENT_TIMES` says legacy data records an
    event: its instant (naive UTC) and its text as stored. (Parsed JSON: plain dicts.)

    Written for the common case, a session with many documents and few times: each document
    costs a type check and one ``in`` per name (a migration of the U071780854 fixture: about
    20k instructions, 5% of its decode)."""
    found: list[Any] = []
    for part, names in LEGACY_EVENT_TIMES.items():
        held = data.get(part) if part else data
        holders = held if part == "processed_documents" and type(held) is list else (held,)
        for holder in holders:
            if type(holder) is dict:
                for name in names:
                    if name in holder:
                        found.append(holder[name])
    times = []
    for text in found:
        if type(text) is str:
            instant = _instant(text)
            if instant is not None:
                times.append((instant, text))
    return times


def legacy_times(data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(created_at, last_accessed)`` of a legacy session, from what its data records.

    The session existed at every event its data records (:data:`LEGACY_EVENT_TIMES`), so the
    oldest is the closest known bound on its creation and the newest its last known use. Each
    is returned as it is stored (ISO text); ``(None, None)`` when the data records no event:
    the times are then unknown, and stay so, rather than the time somebody happened to read it.
    """
    times = _event_times(data)
    if not times:
        return None, None
    return min(times)[1], max(times)[1]


def dataroom_v0_to_v1(data: dict[str, Any], key: str) -> dict[str, Any]:
    """Legacy dict -> version 1: add ``user_id`` and timestamps, keep every key as it was.

    A ``created_at`` / ``last_accessed`` the dict holds (the plan's JSON does) is kept. One it
    lacks comes from :func:`legacy_times`: ``created_at`` is the oldest event time the data
    records, ``last_accessed`` the newest (and not before a stored ``created_at``); with none
    recorded, each is ``None``: unknown, never the time of loading (which would then be stored
    as if it were true). Naive timestamps are UTC, as that app wrote them.
    """
    upgraded = dict(data)
    upgraded.setdefault("user_id", key)
    if "created_at" in data and "last_accessed" in data:  # the plan's JSON: nothing to find
        return upgraded
    times = _event_times(data)
    stored: Any = data.get("created_at")  # kept as stored, whatever it holds
    created = _instant(stored) if type(stored) is str else None
    if created is not None:
        times.append((created, stored))  # so last_accessed is not before it
    upgraded.setdefault("created_at", min(times)[1] if times else None)
    upgraded.setdefault("last_accessed", max(times)[1] if times else None)
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


#: The keys that make a headerless JSON object a data-room session: the plan's nine, and those
#: of the first app's legacy dict (``session_store.samples``) with the event times the schema's
#: migration reads. An object holding none of them is plain JSON, not a session
#: (``session-store get`` says so, and ``migrate --legacy dataroom`` leaves it alone).
DATAROOM_KEYS: frozenset[str] = frozenset(
    {
        *PLAN_SESSION_KEYS,
        *(name for name in LEGACY_EVENT_TIMES if name),
        *LEGACY_EVENT_TIMES[""],
        "analysis_result",
        "drive_link",
        "market_profile",
    }
)

DATAROOM = SchemaInfo(
    name="dataroom",
    cls=EnhancedSessionData,
    version=2,
    migrations={0: dataroom_v0_to_v1, 1: dataroom_v1_to_v2},
    downgrades={2: dataroom_v2_to_v1},
    legacy_keys=DATAROOM_KEYS,
)

DICT = SchemaInfo(name="dict", cls=dict, version=1, migrations={0: _unchanged})
