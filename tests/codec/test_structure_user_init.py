"""The structure path and a user-written ``__init__`` (issue 17 follow-up).

An attrs class declared with ``init=False`` and an ``__init__`` of its own has every condition
the codec's generated structure function (``converter._make_structure``) checks for a class
whose ``__init__`` "only assigns" (slotted, no validator, converter or post-init hook), yet its
``__init__`` is the user's: a decode must run it, as a cold ``cls(**fields)`` would, and as
``codec/evolve.py`` and ``codec/clone.py`` already require (an attrs-generated ``__init__``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from session_store import MemoryBackend, SessionStore
from session_store.codec import Codec
from session_store.schema import SchemaInfo, register_schema


@attrs.define(init=False)
class Profile:
    """A session whose ``__init__`` normalises the user id and counts its calls."""

    calls: ClassVar[list[str]] = []

    user_id: str
    visits: int = 0
    extra: dict[str, Any] = attrs.Factory(dict)

    def __init__(self, user_id: str, visits: int = 0, extra: dict[str, Any] | None = None) -> None:
        Profile.calls.append(user_id)
        self.user_id = user_id.strip().lower()
        self.visits = visits
        self.extra = {} if extra is None else extra


PROFILE = SchemaInfo("test-user-init-profile", Profile, 1)


def _stored_as(user_id: str) -> bytes:
    """Bytes as another program (or an older version of this class) wrote them: the user id
    not normalised."""
    register_schema(PROFILE)
    codec = Codec(encryption=None, compression=None)
    raw = object.__new__(Profile)  # bypass __init__ to write an id as stored elsewhere
    raw.user_id, raw.visits, raw.extra = user_id, 3, {}
    return codec.encode("k", raw)


def test_a_decode_runs_the_classes_own_init() -> None:
    data = _stored_as("  Alice ")
    Profile.calls.clear()
    decoded = Codec(encryption=None, compression=None).decode("k", data).obj
    assert isinstance(decoded, Profile)
    assert Profile.calls == ["  Alice "], "the user-written __init__ was bypassed"
    assert decoded.user_id == "alice"
    assert decoded.visits == 3


def test_a_warm_load_gives_what_a_cold_load_gives() -> None:
    """Through the store's near cache: every load (the master-copy path included) returns what
    the class's own ``__init__`` made of the stored data."""
    backend = MemoryBackend()
    backend.set("k", _stored_as("  Bob "))
    store = SessionStore(backend, Profile, codec=Codec(encryption=None, compression=None))
    loads = [store.load("k") for _ in range(4)]
    assert all(p is not None and p.user_id == "bob" for p in loads)
    assert len({id(p) for p in loads}) == 4
