"""``EnhancedSessionData.to_dict`` / ``from_dict``: the plan's shape both ways, for any session
the strategies build, and readable by the plan's own ``from_dict``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given

from session_store.errors import SerializationError
from session_store.schema.dataroom import PLAN_SESSION_KEYS, EnhancedSessionData, naive_utc
from session_store.testing.strategies import sessions

from . import plan_reference as plan


@given(sessions())
def test_from_dict_of_to_dict_is_the_session(session: EnhancedSessionData) -> None:
    data = session.to_dict()
    assert list(data)[: len(PLAN_SESSION_KEYS)] == list(PLAN_SESSION_KEYS)
    assert EnhancedSessionData.from_dict(data) == session
    through_json = json.loads(json.dumps(data))  # what Redis holds
    assert EnhancedSessionData.from_dict(through_json) == session


@given(sessions())
def test_the_plans_from_dict_reads_our_to_dict(session: EnhancedSessionData) -> None:
    theirs = plan.EnhancedSessionData.from_dict(json.loads(json.dumps(session.to_dict())))
    assert session.created_at is not None  # None (unknown) only for an untimed legacy session
    assert theirs.created_at == naive_utc(session.created_at)
    assert theirs.created_at.tzinfo is None
    assert theirs.to_dict() == {k: session.to_dict()[k] for k in PLAN_SESSION_KEYS}


def test_timestamps_out_are_naive_utc_and_in_any_offset_is_utc() -> None:
    at = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    session = EnhancedSessionData("u", created_at=at, last_accessed=at)
    assert session.to_dict()["created_at"] == "2026-03-01T10:00:00"
    back = EnhancedSessionData.from_dict(
        {
            "user_id": "u",
            "created_at": "2026-03-01T12:00:00+02:00",
            "last_accessed": "2026-03-01T10:00:00",
        }
    )
    assert back.created_at == back.last_accessed == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    missing = EnhancedSessionData.from_dict({"user_id": "u"})
    assert missing.created_at is not None and missing.created_at.tzinfo is UTC
    assert missing.document_summary == {}


def test_defaults_are_the_plans() -> None:
    session = EnhancedSessionData("u")
    reference = plan.EnhancedSessionData("u")
    ours, theirs = session.to_dict(), reference.to_dict()
    for stamp in ("created_at", "last_accessed"):
        ours.pop(stamp), theirs.pop(stamp)
    assert ours == theirs


@pytest.mark.parametrize("bad", [{"created_at": "2026-01-01T00:00:00"}, ["user_id"], None])
def test_from_dict_needs_a_mapping_with_a_user_id(bad: object) -> None:
    with pytest.raises(SerializationError):
        EnhancedSessionData.from_dict(bad)  # type: ignore[arg-type]
