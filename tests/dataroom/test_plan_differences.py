"""Every deliberate difference from the plan (docs/migrating-from-plan.md), side by side: what
the plan's code does (plan_reference.py) and what ours does, and the one-line change that makes
the plan-style code work on ours. Test names match the page's sections."""

from __future__ import annotations

import json
import re
import socket
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis

from session_store import SerializationError
from session_store.dataroom import EnhancedSessionManager, naive_utc
from session_store.samples import legacy_sessions

from . import plan_reference as plan

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")

LEGACY = legacy_sessions()["U071780854"]


def test_no_default_str(redis_env: redis.Redis) -> None:
    """The plan writes what JSON cannot hold as its str() and says nothing; ours refuses it
    with a typed error, and nothing is written. Change: store JSON data (``.isoformat()``,
    ``float(...)``)."""
    odd = {"processing_metadata": {"finished": datetime(2026, 1, 2, 3, 4), "cost": Decimal("1.5")}}
    theirs = plan.EnhancedSessionManager()
    theirs.store_enhanced_session("U1", odd)
    stored = json.loads(redis_env.get("session:U1") or b"{}")
    assert stored["processing_metadata"] == {"finished": "2026-01-02 03:04:00", "cost": "1.5"}

    with EnhancedSessionManager() as ours:
        with pytest.raises(SerializationError, match="not storable as JSON"):
            ours.store_enhanced_session("U2", odd)
        assert ours.get_enhanced_session("U2") is None
        fixed = {"processing_metadata": {"finished": "2026-01-02T03:04:00", "cost": 1.5}}
        ours.store_enhanced_session("U2", fixed)  # the change: JSON data


def test_errors_are_raised_not_swallowed(plain_env: Path) -> None:
    """The plan logs a failed store and keeps a blank session instead; ours raises and keeps
    the stored session as it was. Change: ``except SessionStoreError`` where the app wants
    the plan's fallback."""
    theirs = plan.EnhancedSessionManager()
    theirs.store_enhanced_session("U1", {"document_summary": {"n": 1}})
    theirs.store_enhanced_session("U1", {"extraction_results": None})  # fails inside: blank
    blank = theirs.get_enhanced_session("U1")
    assert blank is not None and blank.document_summary == {}

    with EnhancedSessionManager() as ours:
        ours.store_enhanced_session("U1", {"document_summary": {"n": 1}})
        with pytest.raises(SerializationError):
            ours.store_enhanced_session("U1", {"processed_documents": [object()]})
        kept = ours.get_enhanced_session("U1")
        assert kept is not None and kept.document_summary == {"n": 1}


def test_created_and_updated_are_counted_apart(plain_env: Path) -> None:
    """The plan counts every store as a created session and adds the whole cost again; ours
    counts a session once and only new cost. Change: ``total_sessions_created +
    total_sessions_updated`` is the plan's number of stores."""
    result = {"document_id": "d", "filename": "d.pdf", "extraction_method": "vision_enhanced"}
    data = {
        "extraction_results": {
            "d": {**result, "processing_cost": 0.5, "vision_extractions": [{"page": 1}]}
        }
    }
    theirs = plan.EnhancedSessionManager()
    with EnhancedSessionManager() as ours:
        for _ in range(3):
            theirs.store_enhanced_session("U1", data)
            ours.store_enhanced_session("U1", data)
        plan_stats = theirs.session_metrics.session_stats
        our_stats = ours.session_metrics.session_stats
    assert plan_stats["total_sessions_created"] == 3
    assert plan_stats["sessions_with_vision_data"] == 3
    assert plan_stats["total_processing_cost"] == pytest.approx(1.5)
    assert (our_stats["total_sessions_created"], our_stats["total_sessions_updated"]) == (1, 2)
    assert our_stats["sessions_with_vision_data"] == 1
    assert our_stats["total_processing_cost"] == pytest.approx(0.5)
    stores = our_stats["total_sessions_created"] + our_stats["total_sessions_updated"]
    assert stores == plan_stats["total_sessions_created"]  # the one-line change


def test_sessions_created_through_user_sessions_count_as_created(plain_env: Path) -> None:
    """The plan's ``user_sessions`` dict is not counted at all; ours counts every path that
    creates a session."""
    with EnhancedSessionManager() as ours:
        user_sessions = ours.user_sessions()
        user_sessions["U1"] = {"processed_documents": []}
        user_sessions["U1"]["processed_documents"].append({"name": "a.pdf"})
        ours.store_enhanced_session("U1", user_sessions["U1"])
        del user_sessions["U1"]
        stats = ours.session_metrics.session_stats
    assert (stats["total_sessions_created"], stats["total_sessions_updated"]) == (1, 2)
    assert stats["total_sessions_deleted"] == 1


def test_created_at_survives_updates(plain_env: Path) -> None:
    """Storing the app's dict again: the plan's session starts over with a new ``created_at``;
    ours keeps the first one (a store is an atomic read-modify-write)."""
    theirs = plan.EnhancedSessionManager()
    with EnhancedSessionManager() as ours:
        theirs.store_enhanced_session("U1", {"processed_documents": []})
        ours.store_enhanced_session("U1", {"processed_documents": []})
        plan_first = theirs.get_enhanced_session("U1").created_at  # type: ignore[union-attr]
        our_first = ours.get_enhanced_session("U1").created_at  # type: ignore[union-attr]
        theirs.store_enhanced_session("U1", {"processed_documents": [1]})
        ours.store_enhanced_session("U1", {"processed_documents": [1]})
        assert theirs.get_enhanced_session("U1").created_at > plan_first  # type: ignore[union-attr]
        assert ours.get_enhanced_session("U1").created_at == our_first  # type: ignore[union-attr]


def test_aware_time_inside(plain_env: Path) -> None:
    """The plan's timestamps are naive; ours are aware UTC, so ``utcnow() - created_at``
    raises. Change: ``datetime.now(UTC) - session.created_at`` (or ``naive_utc(...)``).
    ``to_dict`` writes both the plan's way."""
    theirs = plan.EnhancedSessionManager()
    theirs.store_enhanced_session("U1", {})
    plan_session = theirs.get_enhanced_session("U1")
    assert plan_session is not None
    assert (datetime.utcnow() - plan_session.created_at).total_seconds() < 60
    with EnhancedSessionManager() as ours:
        session = ours.store_enhanced_session("U1", {})
        created = session.created_at
        assert created is not None  # None only for a legacy session that records no time
        with pytest.raises(TypeError):
            datetime.utcnow() - created
        assert (datetime.now(UTC) - created).total_seconds() < 60  # the change
        assert (datetime.utcnow() - naive_utc(created)).total_seconds() < 60
        for data in (plan_session.to_dict(), session.to_dict()):  # both: naive ISO text
            assert datetime.fromisoformat(data["created_at"]).tzinfo is None


def test_snapshots_instead_of_live_objects(plain_env: Path) -> None:
    """The plan hands out its live in-memory object: changing it changes the session (in
    memory only; Redis gets it at the next store, or never). Ours hands out a snapshot.
    Change: ``store_enhanced_session(uid, session.to_dict())`` after changing it."""
    theirs = plan.EnhancedSessionManager()
    theirs.store_enhanced_session("U1", {"document_summary": {}})
    theirs.get_enhanced_session("U1").document_summary["n"] = 1  # type: ignore[union-attr]
    assert theirs.get_enhanced_session("U1").document_summary == {"n": 1}  # type: ignore[union-attr]
    with EnhancedSessionManager() as ours:
        ours.store_enhanced_session("U1", {"document_summary": {}})
        session = ours.get_enhanced_session("U1")
        assert session is not None
        session.document_summary["n"] = 1  # type: ignore[index]
        assert ours.get_enhanced_session("U1").document_summary == {}  # type: ignore[union-attr]
        ours.store_enhanced_session("U1", session.to_dict())  # the change
        assert ours.get_enhanced_session("U1").document_summary == {"n": 1}  # type: ignore[union-attr]


def test_last_accessed_is_the_time_of_the_last_store(plain_env: Path) -> None:
    """The plan sets ``last_accessed`` on every read (in memory); ours stamps it on every
    write, and reads never write. Change: none (store where a read must count)."""
    theirs = plan.EnhancedSessionManager()
    theirs.store_enhanced_session("U1", {})
    first = theirs.get_enhanced_session("U1").last_accessed  # type: ignore[union-attr]
    assert theirs.get_enhanced_session("U1").last_accessed >= first  # type: ignore[union-attr]
    with EnhancedSessionManager() as ours:
        stored = ours.store_enhanced_session("U1", {})
        for _ in range(3):
            assert ours.get_enhanced_session("U1").last_accessed == stored.last_accessed  # type: ignore[union-attr]


def test_user_sessions_is_the_managers_store(plain_env: Path) -> None:
    """The plan's ``user_sessions`` is a separate dict the manager never touches; ours is the
    manager's store, so after ``store_enhanced_session`` it reads the whole session (the
    plan's keys added, timestamps as aware ISO text). Change: read the keys you need
    (``user_sessions[uid]["processed_documents"]``), as the plan-style bot does."""
    legacy = {"processed_documents": [{"name": "a.pdf"}], "drive_link": "https://x"}
    theirs = plan.EnhancedSessionManager()
    plan_user_sessions: dict[str, Any] = {"U1": dict(legacy)}
    theirs.store_enhanced_session("U1", plan_user_sessions["U1"])
    assert plan_user_sessions["U1"] == legacy
    with EnhancedSessionManager() as ours:
        user_sessions = ours.user_sessions()
        user_sessions["U1"] = dict(legacy)
        assert user_sessions["U1"] == legacy  # nothing added before the manager stores
        ours.store_enhanced_session("U1", user_sessions["U1"])
        after = user_sessions["U1"]
        assert {k: after[k] for k in legacy} == legacy
        assert after["user_id"] == "U1" and after["created_at"].endswith("+00:00")


def test_to_dict_keeps_every_key(redis_env: redis.Redis) -> None:
    """The plan's ``to_dict`` holds its nine keys only: a legacy session's ``analysis_result``,
    ``drive_link``... are gone after a trip through Redis. Ours keeps them. Change: none
    (``{k: d[k] for k in PLAN_SESSION_KEYS}`` for the plan's nine)."""
    theirs = plan.EnhancedSessionManager()
    theirs.store_enhanced_session("U1", dict(LEGACY))
    reread = json.loads(redis_env.get("session:U1") or b"{}")
    assert "analysis_result" not in reread and "drive_link" not in reread
    with EnhancedSessionManager() as ours:
        ours.store_enhanced_session("U2", dict(LEGACY))
    with EnhancedSessionManager() as fresh:
        session = fresh.get_enhanced_session("U2")
        assert session is not None
        data = session.to_dict()
        assert data["analysis_result"] == LEGACY["analysis_result"]
        assert data["drive_link"] == LEGACY["drive_link"]


def test_a_legacy_sessions_created_at_can_be_unknown(plain_env: Path) -> None:
    """A legacy session that records no time (and holds a NaN): the plan's store stamps "now"
    on it at once; ours reads it with ``created_at`` ``None`` and the NaN as ``None``
    (reported), keeps it unknown through plain writes, and gives it the time of the first
    ``store_enhanced_session``, the plan's "or now". Change: ``if session.created_at is not
    None`` where the app computes with it."""
    legacy = {k: v for k, v in LEGACY.items() if k != "analysis_timestamp"}
    legacy["market_research"] = {**LEGACY["market_research"], "score": float("nan")}
    del legacy["market_research"]["timestamp"]
    before = datetime.now(UTC)
    theirs = plan.EnhancedSessionManager()
    theirs.store_enhanced_session("U1", legacy)
    plan_session = theirs.get_enhanced_session("U1")
    assert plan_session is not None
    assert plan_session.created_at >= naive_utc(before)  # "now", as if it were true
    with EnhancedSessionManager() as ours:
        ours.store.backend.set("U1", json.dumps(legacy).encode())  # as the first app stored it
        session = ours.get_enhanced_session("U1")
        assert session is not None and session.created_at is None
        assert session.extra["market_research"]["score"] is None
        assert ours.get_comprehensive_analysis_data("U1")["session_created"] is None
        ours.store.save("U1", session)  # a plain write: still unknown
        again = ours.get_enhanced_session("U1")
        assert again is not None and again.created_at is None
        stored = ours.store_enhanced_session("U1", again.to_dict())  # the plan's "or now"
        assert stored.created_at is not None and stored.created_at >= before


def test_market_research_falls_back_to_the_legacy_key(plain_env: Path) -> None:
    """The plan's analysis shows ``market_research_data`` only; ours shows the legacy
    ``market_research`` when ``market_research_data`` is empty. Change: none."""
    theirs = plan.EnhancedSessionManager()
    theirs.store_enhanced_session("U1", dict(LEGACY))
    assert theirs.get_comprehensive_analysis_data("U1")["market_research"] == {}
    with EnhancedSessionManager() as ours:
        ours.store_enhanced_session("U1", dict(LEGACY))
        shown = ours.get_comprehensive_analysis_data("U1")["market_research"]
    assert shown == LEGACY["market_research"]


def test_a_none_vision_summary_adds_nothing(plain_env: Path) -> None:
    """A result with vision extractions and ``vision_processing_summary=None`` (the
    dataclass default) makes the plan's ``get_vision_specific_data`` raise; ours adds 0."""
    result: dict[str, Any] = {
        "document_id": "d",
        "filename": "d.pdf",
        "extraction_method": "vision_enhanced",
        "text_content": "",
        "text_extraction_metadata": {},
        "vision_extractions": [{"page_number": 1}],
        "vision_processing_summary": None,
    }
    theirs = plan.EnhancedSessionManager()
    theirs.store_enhanced_session("U1", {"extraction_results": {"d": result}})
    with pytest.raises(AttributeError):
        theirs.get_vision_specific_data("U1")
    with EnhancedSessionManager() as ours:
        ours.store_enhanced_session("U1", {"extraction_results": {"d": result}})
        vision = ours.get_vision_specific_data("U1")
    assert vision["cost_summary"] == {"total_cost": 0.0, "pages_processed": 0}
    assert vision["has_vision_data"] is True


def test_nothing_is_lost_past_max_memory_sessions(
    plain_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without Redis, the plan drops the least recently used sessions past
    ``MAX_MEMORY_SESSIONS`` (after sorting them all); ours evicts from the memory tier in O(1)
    to the disk tier below it. ``memory_sessions`` is not exposed. Change: none
    (``manager.store.metrics()`` for the tiers' counts)."""
    monkeypatch.setenv("MAX_MEMORY_SESSIONS", "2")
    theirs = plan.EnhancedSessionManager()
    with EnhancedSessionManager() as ours:
        for uid in ("U1", "U2", "U3"):
            theirs.store_enhanced_session(uid, {"processed_documents": [uid]})
            ours.store_enhanced_session(uid, {"processed_documents": [uid]})
        assert theirs.get_enhanced_session("U1") is None  # lost
        assert len(theirs.memory_sessions) == 2
        kept = ours.get_enhanced_session("U1")
        assert kept is not None and kept.processed_documents == ["U1"]
        assert not hasattr(ours, "memory_sessions")


def test_redis_enabled_means_configured(plain_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan pings Redis at start-up and silently runs memory-only if it is down
    (``redis_enabled`` False, nothing persisted); ours says Redis is configured and surfaces
    the outage as the chain's typed errors (docs/guarantees.md). Change: none."""
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0?socket_connect_timeout=0.2")
    assert plan.EnhancedSessionManager().redis_enabled is False
    with EnhancedSessionManager() as ours:
        assert ours.redis_enabled is True


def test_fractional_session_ttl_hours(plain_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``SESSION_TTL_HOURS=1.5`` stops the plan at start-up (``int('1.5')``); ours takes it."""
    monkeypatch.setenv("SESSION_TTL_HOURS", "1.5")
    with pytest.raises(ValueError, match="invalid literal"):
        plan.EnhancedSessionManager()
    with EnhancedSessionManager() as ours:
        assert ours.session_ttl_hours == 1.5 and ours.store.ttl == 5400


def test_integer_user_ids_share_a_session_with_their_text(plain_env: Path) -> None:
    """In the plan's dicts ``123`` and ``"123"`` are two sessions, and ``session.user_id`` is
    whatever was passed. Ours are one session (keys are text): ``session.user_id`` is
    ``"123"``, iteration yields ``"123"``; the analysis echoes the id asked for, as the plan's
    does. Change: none if the app uses one type; ``int(uid)`` when iterating."""
    plan_user_sessions: dict[Any, Any] = {123: {"a": 1}}
    assert "123" not in plan_user_sessions
    theirs = plan.EnhancedSessionManager()
    theirs.store_enhanced_session(123, {})  # type: ignore[arg-type]
    assert theirs.get_enhanced_session("123") is None
    assert theirs.get_enhanced_session(123).user_id == 123  # type: ignore[arg-type,union-attr]
    with EnhancedSessionManager() as ours:
        user_sessions = ours.user_sessions()
        user_sessions[123] = {"a": 1}
        assert "123" in user_sessions and list(user_sessions) == ["123"]
        ours.store_enhanced_session(123, {})
        assert ours.get_enhanced_session("123").user_id == "123"  # type: ignore[union-attr]
        assert ours.get_comprehensive_analysis_data(123)["user_id"] == 123
        assert (
            theirs.get_comprehensive_analysis_data(123)["user_id"]  # type: ignore[arg-type]
            == ours.get_comprehensive_analysis_data(123)["user_id"]
        )


def test_store_enhanced_session_returns_the_stored_session(plain_env: Path) -> None:
    """The plan's ``store_enhanced_session`` returns ``None``; ours returns what was stored.
    Change: none."""
    assert plan.EnhancedSessionManager().store_enhanced_session("U1", {}) is None  # type: ignore[func-returns-value]
    with EnhancedSessionManager() as ours:
        assert ours.store_enhanced_session("U1", {}).user_id == "U1"


def test_every_documented_difference_has_its_side_by_side_test() -> None:
    """docs/migrating-from-plan.md and this module stay in step: one test per section."""
    page = Path(__file__).resolve().parents[2] / "docs" / "migrating-from-plan.md"
    text = page.read_text()
    differences = text[text.index("## Deliberate differences") : text.index("## Redis during")]
    titles = re.findall(r"^### (.+)$", differences, re.M)
    assert len(titles) >= 15
    for title in titles:
        slug = re.sub(r"[^a-z0-9]+", "_", title.lower().replace("`", "").replace("'", ""))
        assert callable(globals().get(f"test_{slug.strip('_')}")), title
