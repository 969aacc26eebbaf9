"""Issue 7, item 5: hostile input. Corrupt payloads, hostile keys, shared namespaces, bad values.

* Corrupt bytes written straight into Redis (raw redis-py, at the backend's stored key) and into
  the disk cache (raw diskcache, which also writes real pickles): ``load`` raises
  :class:`CorruptPayloadError`, the pickle's ``__reduce__`` never runs (its file is not created),
  the bad bytes stay for inspection, and the other sessions are untouched.
* Hostile keys round-trip exactly or are :class:`InvalidKeyError`, identically on memory, Redis,
  diskcache and the chain; listing by a prefix made of glob characters matches literally.
* Stores with overlapping prefixes on one Redis database (and one cache directory) never list or
  delete each other's keys, nor keys other programs stored there.
* A value that cannot be serialized is refused before any tier of a chain is written.
"""

from __future__ import annotations

import enum
import os
import pathlib
import pickle
import random
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import diskcache
import pytest

from session_store import (
    Codec,
    CorruptPayloadError,
    InvalidKeyError,
    MemoryBackend,
    SerializationError,
    SessionBackend,
    SessionStore,
    TieredBackend,
    open_backend,
)
from session_store.codec import MAGIC
from session_store.dataroom import EnhancedSessionData
from session_store.keys import Namespace
from session_store_diskcache import DiskcacheBackend
from session_store_redis import RedisBackend
from session_store_redis.testing import RedisServer

HEADER = MAGIC + b"\x01\x00"  # format 1, no stages


class Armed:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def corrupt_payloads(proof: Path) -> dict[str, bytes]:
    rng = random.Random(7)
    noise = bytes([0xFF]) + rng.randbytes(199)  # cannot start like JSON or our header
    return {
        "random bytes": noise,
        "random bytes, 100 kB": bytes([0xFE]) + rng.randbytes(100_000),  # a value file on disk
        "empty": b"",
        "whitespace": b" \n\t ",
        "truncated legacy JSON": b'{"processed_documents": [{"name": "a.pdf", "text": "Rev',
        "truncated envelope": HEADER + b'{"schema":"dict","version":1,"data":{"a":',
        "JSON array": b"[1, 2, 3]",
        "JSON string": b'"a session"',
        "JSON number": b"42",
        "JSON null": b"null",
        "envelope without data": HEADER + b'{"schema":"dict","version":1}',
        "envelope, version not an int": HEADER + b'{"schema":"dict","version":"1","data":{}}',
        "envelope, data a list": HEADER + b'{"schema":"dict","version":1,"data":[1,2]}',
        "envelope, data a string": HEADER + b'{"schema":"dataroom","version":1,"data":"x"}',
        "envelope is a list": HEADER + b"[]",
        "header only": HEADER,
        "truncated header": MAGIC + b"\x01",
        "zstd stage over garbage": MAGIC + b"\x01\x01\x01" + b"not zstd at all",
        "too many stages": MAGIC + b"\x01\x09" + bytes(9) + b"{}",
        "pickle": pickle.dumps(Armed(proof)),
        "pickle protocol 0": pickle.dumps(Armed(proof), protocol=0),
        "pickle in a legacy-looking wrapper": b"{" + pickle.dumps(Armed(proof)),
    }


@pytest.fixture
def proof(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a payload ran code"


def _good_sessions() -> dict[str, EnhancedSessionData]:
    return {
        f"good-{i}": EnhancedSessionData(
            f"good-{i}", processed_documents=[{"name": f"doc{i}.pdf", "pages": i}]
        )
        for i in range(3)
    }


def _check_corrupt_loads(
    backend: SessionBackend, payloads: dict[str, bytes], raw_get: Callable[[str], bytes | None]
) -> None:
    goods = _good_sessions()
    saved: dict[str, Any] = {}
    for schema in (EnhancedSessionData, dict):
        store: SessionStore[Any] = SessionStore(backend, schema, codec=Codec(encryption=None))
        if schema is EnhancedSessionData:
            saved = {key: store.save(key, value) for key, value in goods.items()}
        for name, payload in payloads.items():
            key = f"bad {name}"
            with pytest.raises(CorruptPayloadError) as caught:
                store.load(key)
            assert caught.value.key == key, name
            assert raw_get(key) == payload, name  # left as it was, for inspection
            if schema is EnhancedSessionData:
                for key, value in saved.items():
                    assert store.load(key) == value  # the others are untouched
                    assert store.load_many([key]) == {key: value}


def test_corrupt_payloads_in_redis_raise_and_run_nothing(
    redis_server: RedisServer, redis_namespace: str, proof: Path
) -> None:
    prefix = redis_namespace + "app:"
    backend = open_backend(redis_server.url_for(prefix=prefix))
    assert isinstance(backend, RedisBackend)
    payloads = corrupt_payloads(proof)
    raw = redis_server.client()
    namespace = Namespace(prefix)
    try:
        for name, payload in payloads.items():
            raw.set(namespace.encode(f"bad {name}"), payload)

        def raw_get(key: str) -> bytes | None:
            value = raw.get(namespace.encode(key))
            assert value is None or isinstance(value, bytes)
            return value

        _check_corrupt_loads(backend, payloads, raw_get)
        assert raw.get(namespace.encode("good-1")) is not None
    finally:
        raw.close()
        backend.close()
    # control: the pickle is live, and would have created the file
    pickle.loads(payloads["pickle"])  # the point of the test
    assert proof.exists()
    proof.unlink()


def test_corrupt_payloads_in_the_disk_cache_raise_and_run_nothing(
    tmp_path: Path, proof: Path
) -> None:
    directory = tmp_path / "disk"
    backend = DiskcacheBackend(directory, prefix="app:")
    payloads = corrupt_payloads(proof)
    namespace = Namespace("app:")
    with diskcache.Cache(str(directory)) as other:  # another program, default (pickling) Disk
        for name, payload in payloads.items():
            other.set(namespace.encode(f"bad {name}"), payload)
        # real pickled rows too: the default Disk pickles objects, in the row or in a file
        other.set(namespace.encode("bad pickled row"), Armed(proof))
        other.set(namespace.encode("bad pickled file"), [Armed(proof), "x" * 100_000])
        other.set(namespace.encode("bad text row"), "text, not bytes")
        other.set(namespace.encode("bad number row"), 42)

    def raw_get(key: str) -> bytes | None:
        with diskcache.Cache(str(directory)) as other:
            value = other.get(namespace.encode(key))
        assert value is None or isinstance(value, bytes)
        return value

    try:
        _check_corrupt_loads(backend, payloads, raw_get)
        store = SessionStore(backend, dict, codec=Codec(encryption=None))
        for key in ("bad pickled row", "bad pickled file", "bad text row", "bad number row"):
            with pytest.raises(CorruptPayloadError) as caught:
                store.load(key)
            assert caught.value.key == key
        assert not proof.exists()
    finally:
        backend.close()


# -- hostile keys -------------------------------------------------------------------------------
HOSTILE_KEYS = [
    "*",
    "?",
    "[ab]",
    "a",
    "b",
    "newline\nin key",
    "\n",
    "../../x",
    "..",
    "/etc/passwd",
    "C:\\Windows",
    "日本語のキー",
    "é",
    "e\u0301",
    "emoji 🔑",
    "\x00nul",
    "sep\x1finside",
    "session:other",
    "%",
    "_",
    "\\*",
    " ",
    "k" * 1024,
    "ü" * 512,
    "",
    "k" * 10_000,
    "ü" * 513,
    "\udc80",
]
INVALID = {"", "k" * 10_000, "ü" * 513, "\udc80"}
BACKENDS = ["memory", "redis", "diskcache", "chain"]


@pytest.fixture
def open_kind(
    redis_server: RedisServer, redis_namespace: str, tmp_path: Path
) -> Iterator[Callable[[str, str], SessionBackend]]:
    opened: list[SessionBackend] = []

    def factory(kind: str, prefix: str) -> SessionBackend:
        redis_url = redis_server.url_for(prefix=redis_namespace + prefix)
        disk_url = f"diskcache://{tmp_path / 'disk'}?prefix={quote(prefix, safe='')}"
        url = {
            "memory": "memory://",
            "redis": redis_url,
            "diskcache": disk_url,
            "chain": f"memory:// | {redis_url} | {disk_url}",
        }[kind]
        backend = open_backend(url)
        opened.append(backend)
        return backend

    yield factory
    for backend in opened:
        backend.close()


def _key_outcomes(backend: SessionBackend) -> dict[str, str]:
    store: SessionStore[Any] = SessionStore(
        backend, dict, codec=Codec(encryption=None), access_interval=None
    )
    outcomes: dict[str, str] = {}
    valid: list[str] = []
    for key in HOSTILE_KEYS:
        try:
            store.save(key, {"key": key})
        except InvalidKeyError:
            outcomes[key] = "InvalidKeyError"
            for call in (store.load, store.delete, store.exists, backend.get, backend.ttl):
                with pytest.raises(InvalidKeyError):
                    call(key)
            continue
        valid.append(key)
        assert store.load(key) == {"key": key}, repr(key)
        assert store.load_many([key]) == {key: {"key": key}}
        assert store.exists(key)
        outcomes[key] = "round trip"
    # nothing of the refused keys was written; glob characters in a prefix match literally
    assert sorted(store.keys()) == sorted(valid)
    for prefix in valid:
        assert sorted(store.keys(prefix)) == sorted(k for k in valid if k.startswith(prefix))
    for key in valid:
        assert store.delete(key) is True
        assert store.load(key) is None
    assert list(store.keys()) == []
    return outcomes


def test_hostile_keys_round_trip_or_are_refused_the_same_everywhere(
    open_kind: Callable[[str, str], SessionBackend],
) -> None:
    results = {kind: _key_outcomes(open_kind(kind, "app:")) for kind in BACKENDS}
    expected = {key: "InvalidKeyError" if key in INVALID else "round trip" for key in HOSTILE_KEYS}
    for kind in BACKENDS:
        assert results[kind] == expected, kind


# -- namespaces sharing one Redis database or one directory -------------------------------------
NEIGHBOUR_PREFIXES = ["session:", "session:other", "session:other:", "session*", "session?", "s[e]"]


@pytest.mark.parametrize("kind", ["redis", "diskcache"])
def test_namespaces_never_see_or_touch_each_other(
    kind: str,
    open_kind: Callable[[str, str], SessionBackend],
    redis_server: RedisServer,
    redis_namespace: str,
    tmp_path: Path,
) -> None:
    keys = ["k1", "*", "other", "other:k1", "session:other", "\x1fk", "k1*", "[k]1"]
    stores = {
        prefix: SessionStore(open_kind(kind, prefix), dict, codec=Codec(encryption=None))
        for prefix in NEIGHBOUR_PREFIXES
    }
    for prefix, store in stores.items():
        for key in keys:
            store.save(key, {"owner": prefix, "key": key})
    # keys other programs put there, looking almost like ours
    foreign = [b"session:k1", b"session:\x1e*", b"session:\x1f\xff\xfe", b"sessionX\x1fk1", b"s"]
    if kind == "redis":
        raw = redis_server.client()
        stored_foreign = [redis_namespace.encode() + name for name in foreign]
        for name in stored_foreign:
            raw.set(name, b"foreign")

        def foreign_left() -> int:
            return int(raw.exists(*stored_foreign))

    else:
        cache = diskcache.Cache(str(tmp_path / "disk"))
        # text keys; and a bytes key (a BLOB in SQLite) that starts with our stored form
        stored_keys: list[str | bytes] = [n.decode() for n in foreign if n.isascii()]
        stored_keys.append(b"session:\x1f\xff\xfe")
        for stored in stored_keys:
            cache.set(stored, b"foreign")

        def foreign_left() -> int:
            return sum(1 for stored in stored_keys if cache.get(stored) == b"foreign")

    try:
        for prefix, store in stores.items():
            assert sorted(store.keys()) == sorted(keys), prefix
            for glob in ("*", "k1", "other", "[k]", "\x1f", "session:"):
                expected = sorted(k for k in keys if k.startswith(glob))
                assert sorted(store.keys(glob)) == expected, (prefix, glob)
            assert all(store.load(key) == {"owner": prefix, "key": key} for key in keys)
        # delete by prefix in one store: the neighbours and the foreign keys stay
        victim = stores["session:"]
        assert victim.backend.delete_many(list(victim.keys("other"))) == 2
        assert victim.backend.delete_many(list(victim.keys())) == len(keys) - 2
        assert list(victim.keys()) == []
        for prefix, store in stores.items():
            if prefix != "session:":
                assert sorted(store.keys()) == sorted(keys), prefix
        assert foreign_left() == len(foreign)
    finally:
        if kind == "redis":
            raw.close()
        else:
            cache.close()


# -- values that cannot be serialized ----------------------------------------------------------
class Color(enum.Enum):
    RED = "red"


BAD_VALUES: dict[str, Any] = {
    "object": {"a": object()},
    "set": {"a": {1, 2}},
    "bytes": {"a": b"raw"},
    "NaN": {"a": float("nan")},
    "infinity": {"a": [1.0, float("inf")]},
    "int beyond 64 bits": {"a": 2**70},
    "int key": {1: "x"},
    "naive datetime": {"a": datetime(2024, 1, 1)},
    "enum": {"a": Color.RED},
    "uuid": {"a": uuid.uuid4()},
    "deep object": {"a": [{"b": [{"c": object()}]}]},
    "not a dict": ["a", "list"],
}


def _returning(value: Any) -> Callable[[Any], Any]:
    return lambda current: value


def test_a_value_that_cannot_be_serialized_is_refused_before_any_tier_is_written(
    open_kind: Callable[[str, str], SessionBackend],
) -> None:
    chain = open_kind("chain", "ser:")
    assert isinstance(chain, TieredBackend)
    store: SessionStore[Any] = SessionStore(
        chain, dict, codec=Codec(encryption=None), access_interval=None
    )
    store.save("k", {"good": 1})
    before = [tier.get("k") for tier in chain.tiers]
    writes = [tier.counters.get("writes") for tier in chain.tiers]
    assert all(value is not None for value in before)
    for name, bad in BAD_VALUES.items():
        with pytest.raises(SerializationError):
            store.save("k", bad)
        with pytest.raises(SerializationError):
            store.update("k", _returning(bad))
        with pytest.raises(SerializationError):
            store.save_many({"other": {"fine": True}, "k": bad})
        assert [tier.get("k") for tier in chain.tiers] == before, name
        assert [tier.counters.get("writes") for tier in chain.tiers] == writes, name
    assert store.load("k") == {"good": 1}
    assert store.load("other") is None  # the batch was refused whole


def test_a_typed_session_with_an_unstorable_field_is_refused_before_writing() -> None:
    backend = MemoryBackend()
    store = SessionStore(backend, EnhancedSessionData, codec=Codec(encryption=None))
    kept = store.save("u", EnhancedSessionData("u", market_research_data={"ok": 1}))
    for name, bad in BAD_VALUES.items():
        if name == "not a dict":
            continue  # a list is fine inside a session
        with pytest.raises(SerializationError):
            store.save("u", EnhancedSessionData("u", market_research_data={"x": bad}))
    assert backend.counters.get("writes") == 1
    assert store.load("u") == kept


def test_keys_are_refused_before_any_io(redis_server_factory: Callable[..., RedisServer]) -> None:
    """An invalid key never reaches the server: not even a connection is made."""
    server = redis_server_factory()
    backend = open_backend(server.url_for(prefix="app:"))
    raw = server.client()
    try:
        before = int(raw.info("stats")["total_connections_received"])
        for key in INVALID:
            with pytest.raises(InvalidKeyError):
                backend.set(key, b"v")
            with pytest.raises(InvalidKeyError):
                backend.get(key)
        assert int(raw.info("stats")["total_connections_received"]) == before
    finally:
        raw.close()
        backend.close()
    assert os.environ.get("NEVER_SET_BY_TESTS") is None
