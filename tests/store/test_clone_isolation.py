"""Property tests of the near cache's master copies (``session_store/codec/clone.py``, used by
``session_store/decoded.py`` from a session's second warm hit on).

The guarantee under attack: a caller that mutates anything reachable from what ``load``
returned (any dict, list or attrs instance, at any depth) never changes what a later ``load``
returns, nor the stored bytes. Hypothesis draws the session's JSON-shaped content; every load
goes past the second hit, so the later ones are clones of the master, and every container
reachable from each is changed before the next load.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from session_store import MemoryBackend, SessionStore
from session_store.codec import Codec
from session_store.codec.clone import blueprint, clone
from session_store.schema import EnhancedSessionData, SchemaInfo, register_schema

JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=25,
)
JSON_OBJECT = st.dictionaries(st.text(max_size=6), JSON, max_size=5)


@attrs.define
class Page:
    """A nested mutable attrs class: cloned slot by slot."""

    number: int
    tags: list[str] = attrs.Factory(list)
    meta: dict[str, Any] = attrs.Factory(dict)


@attrs.define
class Book:
    user_id: str
    pages: list[Page] = attrs.Factory(list)
    notes: Any = None
    extra: dict[str, Any] = attrs.Factory(dict)


BOOK = SchemaInfo("adversarial-clone-book", Book, 1)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _mutate_everything(value: Any, seen: set[int] | None = None) -> None:
    """Change every container reachable from ``value`` in place: each dict and list gets a new
    item and each of its leaves replaced; each attrs instance gets each leaf field replaced."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    if isinstance(value, dict):
        seen.add(id(value))
        for key, item in list(value.items()):
            _mutate_everything(item, seen)
            if not isinstance(item, dict | list):
                value[key] = "changed"
        value["__added__"] = ["new"]
    elif isinstance(value, list):
        seen.add(id(value))
        for index, item in enumerate(list(value)):
            _mutate_everything(item, seen)
            if not isinstance(item, dict | list) and not attrs.has(type(item)):
                value[index] = "changed"
        value.append({"added": True})
    elif attrs.has(type(value)):
        seen.add(id(value))
        for field in attrs.fields(type(value)):
            item = getattr(value, field.name)
            _mutate_everything(item, seen)
            if isinstance(item, str):
                setattr(value, field.name, item + "!")


def _containers(value: Any, out: set[int]) -> set[int]:
    """The ids of every dict, list and attrs instance reachable from ``value``."""
    if isinstance(value, dict):
        out.add(id(value))
        for item in value.values():
            _containers(item, out)
    elif isinstance(value, list):
        out.add(id(value))
        for item in value:
            _containers(item, out)
    elif attrs.has(type(value)):
        out.add(id(value))
        for field in attrs.fields(type(value)):
            _containers(getattr(value, field.name), out)
    return out


def _hammer(store: SessionStore[Any], key: str, saved: Any, stored: bytes | None) -> None:
    held = []
    for _ in range(5):  # hits 1-2 rebuild from the body, 3-5 are clones of the master
        loaded = store.load(key)
        assert loaded == saved
        _mutate_everything(loaded)
        held.append(loaded)
    assert store.load(key) == saved
    assert store.backend.get(key) == stored
    ids = [_containers(h, set()) for h in held]
    for i, a in enumerate(ids):  # no two loads share any container
        for b in ids[i + 1 :]:
            assert not a & b


@SETTINGS
@given(extra=JSON_OBJECT, results=st.dictionaries(st.text(max_size=5), JSON_OBJECT, max_size=3))
def test_mutating_a_cloned_data_room_session_changes_nothing_else(
    extra: dict[str, Any], results: dict[str, dict[str, Any]]
) -> None:
    backend = MemoryBackend()
    store: SessionStore[EnhancedSessionData] = SessionStore(
        backend, EnhancedSessionData, codec=Codec(encryption=None), access_interval=None
    )
    session = EnhancedSessionData(
        "u", extraction_results=results, processing_metadata={"extra": extra}
    )
    saved = store.save("u", session)
    fresh = SessionStore(backend, EnhancedSessionData, codec=Codec(encryption=None)).load("u")
    assert fresh == saved
    _hammer(store, "u", saved, backend.get("u"))
    assert store._decoded._entries["u"].kind == 2  # the master copy was in use


@SETTINGS
@given(
    pages=st.lists(
        st.builds(
            Page,
            number=st.integers(min_value=0, max_value=10**6),
            tags=st.lists(st.text(max_size=5), max_size=3),
            meta=JSON_OBJECT,
        ),
        max_size=4,
    ),
    notes=JSON,
)
def test_mutating_a_cloned_nested_attrs_session_changes_nothing_else(
    pages: list[Page], notes: Any
) -> None:
    register_schema(BOOK)
    backend = MemoryBackend()
    store: SessionStore[Book] = SessionStore(backend, Book, codec=Codec(encryption=None))
    saved = store.save("b", Book("b", pages, notes))
    _hammer(store, "b", saved, backend.get("b"))


@SETTINGS
@given(data=JSON_OBJECT)
def test_mutating_a_cloned_dict_session_changes_nothing_else(data: dict[str, Any]) -> None:
    """A ``dict`` store (what ``SessionMapping`` reads through): every load a real ``dict``."""
    backend = MemoryBackend()
    store: SessionStore[dict[str, Any]] = SessionStore(backend, dict)
    saved = store.save("d", data)
    for _ in range(3):
        loaded = store.load("d")
        assert type(loaded) is dict
    _hammer(store, "d", saved, backend.get("d"))


@SETTINGS
@given(value=JSON)
def test_a_clone_equals_its_master_and_shares_no_container(value: Any) -> None:
    plan = blueprint(value)
    assert plan is not None
    copy = clone(value, plan)
    assert copy == value and type(copy) is type(value)
    assert not _containers(copy, set()) & _containers(value, set())


# -- what is not cloned: rebuilt through the structure path, as a cold load ----------------------
@attrs.define
class Counted:
    """``__attrs_post_init__`` counts the objects built: a clone would call nothing."""

    built: ClassVar[list[int]] = [0]

    user_id: str
    items: list[int] = attrs.Factory(list)
    extra: dict[str, Any] = attrs.Factory(dict)

    def __attrs_post_init__(self) -> None:
        Counted.built[0] += 1


@attrs.define
class Checked:
    """A validator: a clone would not run it, so the class is not cloned."""

    user_id: str = attrs.field(validator=attrs.validators.instance_of(str))
    items: list[int] = attrs.Factory(list)
    extra: dict[str, Any] = attrs.Factory(dict)


def test_classes_whose_init_does_more_than_assign_get_no_blueprint() -> None:
    assert blueprint(Counted("u", [1])) is None
    assert blueprint(Checked("u", [1])) is None
    assert blueprint({"a": {1, 2}}) is None  # a set: not known to the blueprint
    shared = [1]
    assert blueprint({"a": shared, "b": shared}) is None  # one list reached twice


def test_post_init_runs_on_every_warm_load_of_a_class_not_cloned() -> None:
    register_schema(SchemaInfo("adversarial-clone-counted", Counted, 1))
    store: SessionStore[Counted] = SessionStore(
        MemoryBackend(), Counted, codec=Codec(encryption=None)
    )
    saved = store.save("c", Counted("c", [1, 2]))
    Counted.built[0] = 0
    loads = [store.load("c") for _ in range(5)]
    assert Counted.built[0] == 5  # each one built by the structure path, post-init and all
    assert all(loaded == saved for loaded in loads)
    assert store._decoded._entries["c"].kind == 0  # kept as its body: never a master


# -- the byte bound ------------------------------------------------------------------------------
def test_a_master_counts_against_the_byte_bound_and_is_not_made_when_it_would_not_fit() -> None:
    """A master costs what a shared object does (estimated live size plus the payload), more
    than the body it replaces: the bound holds after it is made, and an entry whose master
    would not fit keeps its body (and is still a new object per load)."""
    session = {"items": [{"n": i, "text": "word " * 20} for i in range(50)]}
    probe: SessionStore[dict[str, Any]] = SessionStore(MemoryBackend(), dict)
    probe.save("k", session)
    for _ in range(3):
        probe.load("k")
    master_cost = probe._decoded.size_bytes
    assert probe._decoded._entries["k"].kind == 2

    # room for one master: a second key's master pushes the first entry out
    store: SessionStore[dict[str, Any]] = SessionStore(
        MemoryBackend(), dict, decoded_cache_bytes=master_cost + master_cost // 2
    )
    for key in ("a", "b"):
        store.save(key, session)
        for _ in range(3):
            store.load(key)
        assert store._decoded.size_bytes <= store._decoded.max_bytes
    assert list(store._decoded._entries) == ["b"]

    # no room for a master at all: the body stays, every load still its own object
    small: SessionStore[dict[str, Any]] = SessionStore(
        MemoryBackend(), dict, decoded_cache_bytes=master_cost - 1
    )
    small.save("k", session)
    loads = [small.load("k") for _ in range(5)]
    entry = small._decoded._entries["k"]
    assert entry.kind == 0 and small._decoded.size_bytes <= master_cost - 1
    assert all(loaded == session for loaded in loads)
    assert len({id(loaded) for loaded in loads}) == 5
