"""The decoded-object near cache (issue 17): warm loads skip the decode, and what one caller
does to a loaded object never reaches another load or the stored bytes."""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from session_store import MemoryBackend, SessionStore
from session_store.codec import Codec, Plain
from session_store.decoded import DecodedCache, estimated_size, is_immutable
from session_store.schema import EnhancedSessionData, SchemaInfo, register_schema
from session_store.testing.strategies import json_objects, sessions


def _store(backend: MemoryBackend | None = None, **options: Any) -> SessionStore[Any]:
    return SessionStore(
        backend or MemoryBackend(),
        EnhancedSessionData,
        codec=Codec(encryption=None),
        access_interval=None,
        **options,
    )


class CountingCodec(Codec):
    """A codec that counts the payloads whose stages it undoes and the bodies it parses."""

    unwraps = 0
    parses = 0

    def unwrap(self, *args: Any, **kwargs: Any) -> Any:
        CountingCodec.unwraps += 1
        return super().unwrap(*args, **kwargs)

    def from_plain(self, *args: Any, **kwargs: Any) -> Any:
        CountingCodec.parses += 1
        return super().from_plain(*args, **kwargs)


def test_a_warm_load_of_unchanged_bytes_does_not_decode() -> None:
    codec = CountingCodec(encryption=None)
    store: SessionStore[EnhancedSessionData] = SessionStore(
        MemoryBackend(), EnhancedSessionData, codec=codec, access_interval=None
    )
    store.save("u", EnhancedSessionData("u", extra={"n": 1, "text": "word " * 500}))
    assert codec.inspect(store.backend.get("u") or b"").stages == ("zstd",)
    CountingCodec.unwraps = CountingCodec.parses = 0
    seen = []
    for _ in range(5):
        loaded = store.load("u")
        assert loaded is not None and loaded.extra["n"] == 1
        seen.append(loaded)
    assert CountingCodec.unwraps == 0  # nothing decompressed
    # a new object each time: the first two parsed from the kept body, the others copies of
    # the master made on the second hit (session_store.codec.clone)
    assert CountingCodec.parses == 2
    assert len({id(s) for s in seen}) == len({id(s.extra) for s in seen}) == 5


def test_a_miss_undoes_the_stages_once_then_hits() -> None:
    codec = CountingCodec(encryption=None)
    backend = MemoryBackend()
    writer = _store(backend)
    writer.save("u", EnhancedSessionData("u", extra={"text": "word " * 500}))
    reader: SessionStore[EnhancedSessionData] = SessionStore(
        backend, EnhancedSessionData, codec=codec, access_interval=None
    )
    CountingCodec.unwraps = 0
    first, second = reader.load("u"), reader.load("u")
    assert first == second and first is not second
    assert CountingCodec.unwraps == 1
    assert (reader._decoded.misses, reader._decoded.hits) == (1, 1)


def test_other_bytes_are_decoded_again() -> None:
    backend = MemoryBackend()
    first, second = _store(backend), _store(backend)
    first.save("u", EnhancedSessionData("u", extra={"v": 1}))
    loaded = first.load("u")
    assert loaded is not None and loaded.extra == {"v": 1}
    stored = second.save("u", EnhancedSessionData("u", extra={"v": 2}))  # another writer
    assert first.load("u") == stored
    second.delete("u")
    assert first.load("u") is None


# -- isolation --------------------------------------------------------------------------------
def _mutable_parts(value: Any) -> Iterator[Any]:
    """Every dict, list and attrs instance reachable from ``value``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            yield item
            stack.extend(item)
        elif attrs.has(type(item)):
            yield item
            stack.extend(getattr(item, a.name) for a in attrs.fields(type(item)))


def _mutate(value: Any, data: st.DataObject) -> None:
    """Change ``value`` in place somewhere: a key, an item, a field, at any depth."""
    parts = list(_mutable_parts(value))
    for _ in range(data.draw(st.integers(1, 3))):
        part: Any = data.draw(st.sampled_from(parts))
        if isinstance(part, dict):
            part["mutated by a caller"] = data.draw(st.integers())
        elif isinstance(part, list):
            replace: bool = data.draw(st.booleans())
            if part and replace:
                part[0] = "mutated"
            else:
                part.append("mutated")
        else:
            name = data.draw(st.sampled_from([a.name for a in attrs.fields(type(part))]))
            setattr(part, name, "mutated")


@given(session=sessions(), data=st.data())
def test_mutating_a_loaded_session_never_leaks(
    session: EnhancedSessionData, data: st.DataObject
) -> None:
    store = _store()
    saved = store.save("u", session)
    expected = copy.deepcopy(saved)
    first = store.load("u")
    assert first == expected
    _mutate(first, data)
    assert store.load("u") == expected  # another load: untouched
    assert store.codec.decode("u", store.backend.get("u") or b"").obj == expected  # stored
    _mutate(saved, data)  # what save returned, and what the caller passed in
    _mutate(session, data)
    assert store.load("u") == expected


@given(legacy=json_objects(), data=st.data())
def test_mutating_a_loaded_dict_session_never_leaks(
    legacy: dict[str, Any], data: st.DataObject
) -> None:
    store: SessionStore[dict[str, Any]] = SessionStore(
        MemoryBackend(), dict, codec=Codec(encryption=None), access_interval=None
    )
    store.save("u", legacy)
    expected = copy.deepcopy(legacy)
    loaded = store.load("u")
    assert type(loaded) is dict and loaded == expected  # a real dict, as the legacy app had
    _mutate(loaded, data)
    _mutate(legacy, data)
    assert store.load("u") == expected


# -- frozen schemas are shared without a copy -------------------------------------------------
@attrs.frozen
class Badge:
    label: str
    earned: datetime


@attrs.frozen
class Profile:
    user_id: str
    badges: tuple[Badge, ...] = ()
    score: float = 0.0


PROFILE = SchemaInfo("test-frozen-profile", Profile, 1)


def test_an_immutable_session_is_shared_and_a_mutable_one_copied() -> None:
    register_schema(PROFILE)
    store: SessionStore[Profile] = SessionStore(
        MemoryBackend(), Profile, codec=Codec(encryption=None), access_interval=None
    )
    profile = Profile("u", (Badge("early", datetime(2026, 1, 1, tzinfo=UTC)),), 0.5)
    store.save("u", profile)
    assert store.load("u") is store.load("u") == profile
    typed = _store()
    typed.save("u", EnhancedSessionData("u"))
    assert typed.load("u") is not typed.load("u")


# -- bounds -----------------------------------------------------------------------------------
def test_the_cache_is_bounded_in_bytes() -> None:
    store = _store(decoded_cache_bytes=200_000)
    for i in range(50):
        store.save(f"u{i}", EnhancedSessionData(f"u{i}", extra={"text": "word " * 2000}))
    cache = store._decoded
    assert 0 < cache.size_bytes <= 200_000
    assert cache.entry_count < 50
    assert all(store.load(f"u{i}") is not None for i in range(50))  # misses decode


def test_the_size_estimate_reads_the_zstd_frame_without_decoding() -> None:
    codec = Codec(encryption=None)
    payload = codec.encode("u", {"text": "word " * 2000})
    assert codec.inspect(payload).stages == ("zstd",)
    plain = Codec(encryption=None, compression=None).encode("u", {"text": "word " * 2000})
    assert estimated_size(payload) == estimated_size(plain) == 2 * (len(plain) - 5)


def test_zero_bytes_turns_it_off() -> None:
    codec = CountingCodec(encryption=None)
    store: SessionStore[EnhancedSessionData] = SessionStore(
        MemoryBackend(),
        EnhancedSessionData,
        codec=codec,
        access_interval=None,
        decoded_cache_bytes=0,
    )
    store.save("u", EnhancedSessionData("u"))
    CountingCodec.unwraps = 0
    store.load("u")
    store.load("u")
    assert CountingCodec.unwraps == 2 and store._decoded.entry_count == 0


@pytest.mark.parametrize("value", [{"a": [1, {"b": 2}]}, [[], {}], (1, [2])])
def test_snapshot_copies_share_nothing_mutable(value: Any) -> None:
    copied = copy.deepcopy(value)
    assert copied == value
    assert {id(p) for p in _mutable_parts(copied)}.isdisjoint(id(p) for p in _mutable_parts(value))


def test_the_cache_alone_evicts_least_recently_used_first() -> None:
    cache = DecodedCache(max_bytes=10_000, max_entries=2)
    plain = Plain(False, b'{"k": 1}', ())
    for key in ("a", "b", "c"):
        cache.put(key, b'{"k": 1}', {"k": key}, plain)
    assert cache.entry_count == 2

    def decode(key: str, data: bytes) -> tuple[Any, Plain]:
        return "decoded", plain

    def rebuild(key: str, kept: Plain) -> Any:
        return ("rebuilt", kept.body)

    assert cache.load("a", b'{"k": 1}', decode, rebuild) == "decoded"
    assert cache.load("c", b'{"k": 1}', decode, rebuild) == ("rebuilt", b'{"k": 1}')


class TaggingCodec(Codec):
    """A subclass with its own ``decode`` (it tags what it decoded) and its own ``encode``."""

    encodes = 0

    def encode(self, key: str, obj: Any) -> bytes:
        TaggingCodec.encodes += 1
        return super().encode(key, obj)

    def decode(self, *args: Any, **kwargs: Any) -> Any:
        decoded = super().decode(*args, **kwargs)
        decoded.obj.extra["decoded by"] = "TaggingCodec"
        return decoded


def test_a_codec_subclass_keeps_its_own_encode_and_decode() -> None:
    # The near cache must not route around a subclass: PlanJsonCodec writes the plan's bare
    # JSON through its own encode, and a subclass's decode is what every load returns.
    backend = MemoryBackend()
    store: SessionStore[EnhancedSessionData] = SessionStore(
        backend, EnhancedSessionData, codec=TaggingCodec(encryption=None), access_interval=None
    )
    TaggingCodec.encodes = 0
    store.save("u", EnhancedSessionData("u"))
    assert TaggingCodec.encodes == 1
    for _ in range(3):  # the miss-free path after save, then hits
        loaded = store.load("u")
        assert loaded is not None and loaded.extra == {"decoded by": "TaggingCodec"}
        loaded.extra["mutated"] = True  # and hits stay isolated
    other: SessionStore[EnhancedSessionData] = SessionStore(
        backend, EnhancedSessionData, codec=TaggingCodec(encryption=None), access_interval=None
    )
    for _ in range(2):  # a miss, then a hit, through another store
        loaded = other.load("u")
        assert loaded is not None and loaded.extra == {"decoded by": "TaggingCodec"}


def test_the_plan_json_codec_still_writes_bare_json_through_save() -> None:
    import json

    from session_store.codec.legacy import PlanJsonCodec

    store: SessionStore[EnhancedSessionData] = SessionStore(
        MemoryBackend(), EnhancedSessionData, codec=PlanJsonCodec(encryption=None)
    )
    store.save("u", EnhancedSessionData("u", processed_documents=[1]))
    assert json.loads(store.backend.get("u") or b"")["processed_documents"] == [1]
    loaded = store.load("u")
    assert loaded is not None and loaded.processed_documents == [1]


# -- update through the near cache ------------------------------------------------------------
def test_update_of_what_the_store_wrote_undoes_no_stage() -> None:
    codec = CountingCodec(encryption=None)
    store: SessionStore[EnhancedSessionData] = SessionStore(
        MemoryBackend(), EnhancedSessionData, codec=codec, access_interval=None
    )
    store.save("u", EnhancedSessionData("u", extra={"n": 0, "text": "word " * 500}))
    CountingCodec.unwraps = 0

    def bump(current: EnhancedSessionData | None) -> EnhancedSessionData:
        assert current is not None
        current.extra["n"] += 1  # mutating what fn got is allowed: it is fn's own
        return current

    for _ in range(3):
        store.update("u", bump)
    assert CountingCodec.unwraps == 0  # each update read the bytes the previous one wrote
    loaded = store.load("u")
    assert loaded is not None and loaded.extra["n"] == 3


def test_update_hands_fn_an_object_nobody_else_holds() -> None:
    store = _store()
    saved = store.save("u", EnhancedSessionData("u", extra={"items": [1]}))
    loaded = store.load("u")
    assert loaded is not None
    seen: list[EnhancedSessionData] = []

    def grow(current: EnhancedSessionData | None) -> EnhancedSessionData:
        assert current is not None and current is not saved and current is not loaded
        seen.append(current)
        current.extra["items"].append(2)
        return current

    result = store.update("u", grow)
    assert saved.extra["items"] == [1] and loaded.extra["items"] == [1]
    assert result is not None and result.extra["items"] == [1, 2]
    again = store.load("u")
    assert again is not None and again is not result and again.extra["items"] == [1, 2]
    result.extra["items"].append(3)  # the caller's object: never what the next load returns
    after = store.load("u")
    assert after is not None and after.extra["items"] == [1, 2]


def test_update_after_another_writer_decodes_the_new_bytes() -> None:
    backend = MemoryBackend()
    first, second = _store(backend), _store(backend)
    first.save("u", EnhancedSessionData("u", extra={"v": 1}))
    second.save("u", EnhancedSessionData("u", extra={"v": 2}))

    def check(current: EnhancedSessionData | None) -> EnhancedSessionData:
        assert current is not None and current.extra["v"] == 2  # not the cached v1
        return attrs.evolve(current, extra={"v": 3})

    first.update("u", check)
    loaded = second.load("u")
    assert loaded is not None and loaded.extra == {"v": 3}


# -- what a write caches is what its bytes decode to; what is shared cannot change --------------
@attrs.frozen
class Slot:
    """Frozen; its ``Any`` field may be given a tuple, which JSON stores as an array."""

    user_id: str
    at: datetime
    tags: Any = ()


SLOT = SchemaInfo("test-frozen-slot", Slot, 1)


def test_a_written_frozen_session_is_cached_as_its_bytes_decode_to() -> None:
    register_schema(SLOT)
    backend = MemoryBackend()
    writer = SessionStore(backend, Slot, codec=Codec(encryption=None))
    reader = SessionStore(backend, Slot, codec=Codec(encryption=None))
    given = Slot("u", datetime(2026, 7, 1, tzinfo=UTC), ("a",))
    for write in ("save", "update"):
        if write == "save":
            writer.save("u", given)
        else:
            writer.update("u", lambda _: given)
        warm, cold = writer.load("u"), reader.load("u")
        assert warm is not None and warm == cold and warm.tags == ["a"]  # a list, as stored
        assert warm is not given


def test_a_rebuilt_immutable_session_is_still_shared() -> None:
    register_schema(PROFILE)
    store = SessionStore(MemoryBackend(), Profile, codec=Codec(encryption=None))
    given = Profile("u", (Badge("b", datetime(2026, 1, 1, tzinfo=UTC)),))
    store.save("u", given)
    first = store.load("u")
    assert first is store.load("u") and first is not given and first == given


def test_a_failing_rebuild_after_a_write_leaves_no_entry() -> None:
    cache = DecodedCache()
    payload, plain = Codec(encryption=None).encode_plain("k", {"n": 1})
    before, kept = Codec(encryption=None).encode_plain("k", {"n": 0})
    cache.put("k", before, {"n": 0}, kept)  # other bytes (the same ones would be kept)

    def broken(key: str, plain: Plain) -> Any:
        raise RuntimeError("no")

    cache.put_saved("k", payload, ("frozen",), plain, broken)
    assert cache.entry_count == 0


@attrs.frozen
class WithCache:
    user_id: str

    @functools.cached_property
    def derived(self) -> dict[str, int]:
        return {}


@attrs.frozen(slots=False)
class WithDict:
    user_id: str


@attrs.frozen
class WithHash:
    user_id: str
    at: datetime = datetime(2026, 1, 1, tzinfo=UTC)


@attrs.frozen(cache_hash=True)
class WithCachedHash:
    user_id: str


@attrs.frozen
class Extended(WithHash):
    note: str = ""


@pytest.mark.parametrize(
    ("obj", "shared"),
    [
        (WithCache("u"), False),  # a cached_property: a slot a caller fills and can change
        (WithDict("u"), False),  # an instance __dict__: room for any state
        (WithHash("u"), True),
        (WithCachedHash("u"), True),  # the cached hash is an int
        (Extended("u"), True),
    ],
    ids=["cached_property", "dict", "plain", "cached-hash", "subclass"],
)
def test_only_a_class_holding_nothing_but_its_fields_may_be_shared(obj: Any, shared: bool) -> None:
    assert is_immutable(obj) is shared
