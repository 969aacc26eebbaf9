"""The fixed costs of a small typed save + load taken out (issue 17), each equal to what it
replaced: the stamp's generated copy is ``attrs.evolve``'s result, and the ``X | None`` fields
call cattrs' optional hook's own inner hook only when that hook is cattrs' own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs
import pytest

from session_store import MemoryBackend, SessionStore
from session_store.codec import Codec
from session_store.codec.converter import make_session_converter
from session_store.codec.evolve import replacer
from session_store.schema import EnhancedSessionData, SchemaInfo, register_schema

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@attrs.define
class Plain:
    a: int
    b: list[int] = attrs.Factory(list)
    last_accessed: datetime | None = None


@attrs.define
class WithPostInit:
    a: int
    last_accessed: datetime | None = None
    seen: list[str] = attrs.Factory(list)

    def __attrs_post_init__(self) -> None:
        self.seen.append("init")


@attrs.define
class WithValidator:
    a: int = attrs.field(validator=attrs.validators.instance_of(int))
    last_accessed: datetime | None = None


@attrs.frozen
class Frozen:
    a: int
    last_accessed: datetime | None = None


@attrs.define(slots=False)
class NotSlotted:
    a: int
    last_accessed: datetime | None = None


def test_the_generated_copy_is_what_evolve_returns() -> None:
    obj = Plain(1, [2, 3], None)
    copy = replacer(Plain, "last_accessed")(obj, WHEN)
    assert copy == attrs.evolve(obj, last_accessed=WHEN)
    assert copy is not obj and type(copy) is Plain
    assert copy.b is obj.b  # a shallow copy, as evolve makes
    assert obj.last_accessed is None  # the original untouched
    assert replacer(Plain, "last_accessed").__name__ == "replace"  # generated, not evolve


@pytest.mark.parametrize("cls", [WithPostInit, WithValidator, Frozen, NotSlotted])
def test_classes_whose_init_does_more_are_evolved_by_attrs(cls: Any) -> None:
    fn = replacer(cls, "last_accessed")
    assert fn.__name__ == "evolve"
    copy = fn(cls(1), WHEN)
    assert copy == attrs.evolve(cls(1), last_accessed=WHEN)
    if cls is WithPostInit:
        assert copy.seen == ["init", "init"]  # __init__ ran, as evolve runs it


def test_a_save_stamps_a_copy_equal_to_evolve() -> None:
    store: SessionStore[EnhancedSessionData] = SessionStore(MemoryBackend(), EnhancedSessionData)
    session = EnhancedSessionData(user_id="u", created_at=WHEN, last_accessed=WHEN)
    stamped = store.save("k", session)
    assert stamped is not session and session.last_accessed == WHEN
    assert stamped == attrs.evolve(session, last_accessed=stamped.last_accessed)
    assert stamped.last_accessed is not None and stamped.last_accessed > WHEN
    assert store.load("k") == stamped


@attrs.define
class Timed:
    user_id: str
    created_at: datetime | None = None
    extra: dict[str, Any] = attrs.Factory(dict)


register_schema(SchemaInfo("hot-fixed-costs-timed", Timed, 1))


def test_a_hook_registered_for_the_optional_type_itself_is_never_bypassed() -> None:
    """A user hook for ``datetime | None`` (not cattrs' optional one) is what runs, both ways."""
    converter = make_session_converter()
    converter.register_unstructure_hook(datetime | None, lambda v: "custom")
    converter.register_structure_hook(datetime | None, lambda v, _: WHEN)
    codec = Codec(converter=converter, encryption=None, compression=None)
    payload = codec.encode("k", Timed("u", datetime(2020, 1, 1, tzinfo=UTC)))
    assert b'"created_at":"custom"' in payload
    assert codec.decode("k", payload).obj.created_at == WHEN


def test_optional_fields_through_cattrs_own_hooks_round_trip() -> None:
    codec = Codec(encryption=None, compression=None)
    for value in (None, WHEN):
        obj = Timed("u", value)
        payload = codec.encode("k", obj)
        assert codec.decode("k", payload).obj == obj
    # a misfit (text where a datetime is declared) is kept as stored, both ways
    misfit = Timed("u", "yesterday")  # type: ignore[arg-type]
    assert codec.decode("k", codec.encode("k", misfit)).obj == misfit
