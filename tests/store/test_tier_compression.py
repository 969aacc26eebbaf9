"""Compression per tier (issue 17): a bare ``memory://`` store with the near cache writes
uncompressed and keeps the body as a view of the payload; every other store compresses; every
store reads what any other wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from session_store import Codec, MemoryBackend, SessionStore
from session_store.codec import ZstdStage
from session_store.codec.stages import WRITE_NEVER
from session_store.samples import legacy_sessions
from session_store.schema import EnhancedSessionData


def _session() -> EnhancedSessionData:
    return EnhancedSessionData(
        user_id="u1", extraction_results={f"doc{i}": {"text": "word " * 200} for i in range(20)}
    )


def _stages(store: SessionStore[Any], key: str) -> tuple[str, ...]:
    raw = store.backend.get(key)
    assert raw is not None
    return store.codec.inspect(raw).stages


def test_memory_store_writes_uncompressed_and_shares_the_body_with_the_payload() -> None:
    store = SessionStore(MemoryBackend(), EnhancedSessionData)
    assert store.codec.compression is not None
    assert store.codec.compression.threshold == WRITE_NEVER
    store.save("k", _session())
    assert _stages(store, "k") == ()
    payload = store.backend.get("k")
    assert payload is not None
    # the near cache's cost is the payload alone: its body is a view of those very bytes
    assert store._decoded.size_bytes == len(payload)
    loaded = store.load("k")
    assert loaded is not None and loaded.extraction_results == _session().extraction_results


def test_memory_store_without_the_near_cache_compresses() -> None:
    store = SessionStore(MemoryBackend(), EnhancedSessionData, decoded_cache_bytes=0)
    store.save("k", _session())
    assert _stages(store, "k") == ("zstd",)


def test_other_backends_compress(tmp_path: Path) -> None:
    with SessionStore(f"diskcache://{tmp_path}/d", EnhancedSessionData) as store:
        store.save("k", _session())
        assert _stages(store, "k") == ("zstd",)


def test_each_reads_what_the_other_wrote() -> None:
    backend = MemoryBackend()
    plain = SessionStore(backend, EnhancedSessionData)
    zstd = SessionStore(backend, EnhancedSessionData, codec=Codec(encryption=None))
    zstd.save("compressed", _session())
    plain.save("uncompressed", _session())
    assert _stages(plain, "compressed") == ("zstd",)
    for store in (plain, zstd):
        for key in ("compressed", "uncompressed"):
            loaded = store.load(key)
            assert loaded is not None
            assert loaded.extraction_results == _session().extraction_results


def test_legacy_json_loads_in_a_memory_store() -> None:
    backend = MemoryBackend()
    store = SessionStore(backend, EnhancedSessionData)
    sample = next(iter(legacy_sessions().values()))
    backend.set("legacy", orjson.dumps(sample))
    assert isinstance(store.load("legacy"), EnhancedSessionData)
    assert isinstance(store.load("legacy"), EnhancedSessionData)  # the near cache's hit


def test_read_only_stage_says_so() -> None:
    assert repr(ZstdStage.read_only()) == "ZstdStage.read_only()"
    assert not ZstdStage.read_only().applies(b"x" * 10_000_000)
