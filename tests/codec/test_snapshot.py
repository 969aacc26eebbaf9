"""The parsed-body snapshot (issue 17): a rebuild reads msgpack bytes (the strict check's, made on
save; or, for a body read, made from what orjson parsed on its second parse) and still hands
every caller a new object graph equal to a cold decode of the same bytes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings

from session_store import MemoryBackend, SessionStore
from session_store.codec import Codec, Plain, Snapshot
from session_store.schema import EnhancedSessionData, get_schema
from session_store.testing.strategies import json_objects


def _containers(value: Any) -> list[Any]:
    """Every dict and list reachable from ``value`` (its own object graph)."""
    found: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            found.append(item)
            stack.extend(item.values())
        elif type(item) is list:
            found.append(item)
            stack.extend(item)
    return found


@settings(max_examples=60, deadline=None)
@given(json_objects())
def test_rebuilds_from_the_snapshot_equal_a_cold_decode_and_share_nothing(data: Any) -> None:
    codec = Codec(encryption=None, legacy_schema="dict")
    payload, plain = codec.encode_plain("k", dict(data))
    info = get_schema("dict")
    cold = codec.decode("k", payload, as_schema=info).obj
    # a save keeps its strict check's msgpack bytes as the snapshot, view of the payload or not
    assert isinstance(plain.snapshot, Snapshot) and plain.snapshot.packed is not None
    read = codec.unwrap("k", payload)
    if not read.stages:  # a view of the payload read: never a snapshot (it would cost memory)
        assert read.snapshot is None
    else:
        assert isinstance(read.snapshot, Snapshot) and read.snapshot.packed is None
    loads = []
    for kept in (plain, read):
        loads += [codec.from_plain("k", kept, as_schema=info).obj for _ in range(4)]
        if kept.snapshot is not None:
            assert kept.snapshot.packed is not None  # a read's: made on its second parse
            empty = kept._replace(body=b"")  # what the near cache keeps once it is made
            loads.append(codec.from_plain("k", empty, as_schema=info).obj)
    for loaded in loads:
        assert loaded == cold
    ids = [{id(c) for c in _containers(loaded)} for loaded in loads]
    for i, first in enumerate(ids):
        for second in ids[i + 1 :]:
            assert not first & second  # no container shared between two loads


def test_a_body_read_and_parsed_once_pays_no_snapshot() -> None:
    codec = Codec(encryption=None)
    payload, saved = codec.encode_plain("k", {"text": "word " * 500})
    assert saved.snapshot is not None and saved.snapshot.packed is not None  # the check's bytes
    plain = codec.unwrap("k", payload)
    assert plain.stages == ("zstd",) and plain.snapshot is not None
    codec.from_plain("k", plain)
    assert plain.snapshot.packed is None  # a load then a save: no packb of the parse


def test_a_caller_changing_a_warm_load_changes_no_later_load_or_the_stored_bytes() -> None:
    backend = MemoryBackend()
    store: SessionStore[EnhancedSessionData] = SessionStore(
        backend, EnhancedSessionData, codec=Codec(encryption=None), access_interval=None
    )
    saved = store.save(
        "u",
        EnhancedSessionData("u", extraction_results={"d": {"pages": [{"n": 1}], "t": "w " * 900}}),
    )
    stored = backend.get("u")
    for _ in range(5):  # past the snapshot: the later loads read it
        loaded = store.load("u")
        assert loaded == saved
        assert loaded is not None
        loaded.extraction_results["d"]["pages"][0]["n"] = 2
        loaded.extraction_results["x"] = {}
    kept = store._decoded._entries["u"].kept
    # the body gave way to a master copy (session_store.codec.clone): this class is cloned
    assert not isinstance(kept, Plain)
    assert store.load("u") == saved
    assert backend.get("u") == stored


def test_a_snapshot_takes_no_part_in_the_equality_of_a_body() -> None:
    codec = Codec(encryption=None)
    payload, plain = codec.encode_plain("k", {"text": "word " * 500})
    unwrapped = codec.unwrap("k", payload)
    assert unwrapped.snapshot is not plain.snapshot
    assert unwrapped == plain == Plain(plain.legacy, plain.body, plain.stages)
    # plain's snapshot holds the check's bytes, unwrapped's nothing
    assert plain.snapshot is not None and plain.snapshot.packed is not None
    assert unwrapped.snapshot is not None and unwrapped.snapshot.packed is None
    assert unwrapped == plain and hash(unwrapped) == hash(plain)
