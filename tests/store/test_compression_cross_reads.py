"""Compression per tier (``tiercompression.default_compression``): a bare ``memory://`` store
and a Redis store write uncompressed, the others zstd level 1 above 1 KiB.

The guarantees under attack: what any configuration wrote, every other configuration reads
(cold and through its near cache), and the golden payloads load the same through each; an
encrypted store never accepts plaintext, and a plaintext store meets an encrypted payload with
a typed error, never a wrong session.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from session_store import MemoryBackend, SessionStore
from session_store.aio import AsyncSessionStore
from session_store.codec import AesGcmStage, Codec
from session_store.errors import ConfigurationError, CorruptPayloadError
from session_store.schema import get_schema

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
KEY = AesGcmStage.generate_key()

#: A store factory: (redis URL, a fresh directory) -> store.
Factory = Callable[[str, Path], SessionStore[Any]]

_KINDS: dict[str, Factory] = {
    "memory": lambda _url, _dir: SessionStore(MemoryBackend(), dict),
    "memory-no-cache": lambda _url, _dir: SessionStore(
        MemoryBackend(), dict, decoded_cache_bytes=0
    ),
    "redis": lambda url, _dir: SessionStore(url, dict),
    "diskcache": lambda _url, directory: SessionStore(f"diskcache://{directory}", dict),
}
#: (kind, encrypted): the encrypted ones read SESSION_STORE_KEYS, as a deployment would.
CONFIGS = [(kind, encrypted) for kind in _KINDS for encrypted in (False, True)]


def _session() -> dict[str, Any]:
    """Above the 1 KiB threshold, so that the compressing stores do compress it."""
    return {"user": "u1", "notes": ["word " * 40 for _ in range(20)], "n": 1, "x": -0.0}


@pytest.fixture
def open_store(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, bool], SessionStore[Any]]]:
    opened: list[SessionStore[Any]] = []

    def make(kind: str, encrypted: bool) -> SessionStore[Any]:
        with monkeypatch.context() as env:
            if encrypted:
                env.setenv("SESSION_STORE_KEYS", KEY)
            else:
                env.delenv("SESSION_STORE_KEYS", raising=False)
            store = _KINDS[kind](redis_url, tmp_path / f"d{len(opened)}")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.mark.slow
@pytest.mark.parametrize(("writer", "w_enc"), CONFIGS, ids=[f"{k}-{e}" for k, e in CONFIGS])
def test_held_every_configuration_reads_what_every_other_wrote(
    open_store: Callable[[str, bool], SessionStore[Any]], writer: str, w_enc: bool
) -> None:
    """Held: the payload one configuration wrote (its bytes copied as they are into the
    reader's backend) loads equal in every other, cold and warm; an encrypted reader refuses
    the plaintext ones (``CorruptPayloadError``) and a plaintext reader meets an encrypted one
    with ``ConfigurationError``. An encrypted payload bound to its backend's key prefix (byte
    format 3: Redis and diskcache writers) opens only under that prefix: elsewhere (the memory
    stores, another prefix) ``CorruptPayloadError``."""
    source = open_store(writer, w_enc)
    source.save("k", _session())
    raw = source.backend.get("k")
    assert raw is not None
    stages = source.codec.inspect(raw).stages
    compressed = writer not in ("memory", "redis")
    assert ("zstd" in stages) == compressed, stages
    assert ("aes-gcm" in stages) == w_enc, stages
    assert (w_enc and raw[3] == 3) == (w_enc and writer in ("redis", "diskcache")), raw[:5]
    for reader, r_enc in CONFIGS:
        target = open_store(reader, r_enc)
        target.backend.set("k", raw)
        for _ in range(2):  # cold, then through the near cache
            if r_enc and not w_enc:
                with pytest.raises(CorruptPayloadError):
                    target.load("k")
            elif w_enc and not r_enc:
                with pytest.raises(ConfigurationError):
                    target.load("k")
            elif w_enc and raw[3] == 3 and source.codec.storage[0] not in target.codec.storage:
                with pytest.raises(CorruptPayloadError, match="key prefix"):
                    target.load("k")
            else:
                assert target.load("k") == _session(), (reader, r_enc)


_PLAINTEXT_GOLDEN = sorted(
    p
    for p in GOLDEN.glob("*.bin")
    if "aesgcm" not in p.name and p.with_suffix(".expected.json").exists()
)


def _golden_key(path: Path) -> str:
    if path.name.startswith("legacy_v0_"):
        return path.stem.removeprefix("legacy_v0_")
    return "U000DICT" if path.name.startswith("dict_") else "U000GOLDEN"


@pytest.mark.parametrize("path", _PLAINTEXT_GOLDEN, ids=lambda p: p.stem)
def test_held_golden_payloads_load_the_same_in_every_tier_configuration(
    open_store: Callable[[str, bool], SessionStore[Any]], path: Path
) -> None:
    """Held: each plaintext golden payload loads, cold and warm, to the same data in a bare
    memory store and Redis (uncompressed writers), a memory store without the near cache and
    diskcache (zstd writers) of ``dict`` sessions as a plain ``Codec`` decodes it; an
    encrypted store of each kind refuses it."""
    key, raw = _golden_key(path), path.read_bytes()
    as_dict = get_schema("dict")  # a dict store reads a typed session as its JSON data
    expected = Codec(encryption=None, legacy_schema="dict").decode(key, raw, as_schema=as_dict).obj
    if path.name.startswith("legacy_"):
        assert expected == json.loads(path.with_suffix(".expected.json").read_text())
    for kind in _KINDS:
        store = open_store(kind, False)
        store.backend.set(key, raw)
        for _ in range(2):
            assert store.load(key) == expected
        encrypted = open_store(kind, True)
        encrypted.backend.set(key, raw)
        with pytest.raises(CorruptPayloadError):
            encrypted.load(key)


def test_an_async_memory_store_writes_uncompressed_as_documented() -> None:
    """Guarantee: compression per tier, "a bare ``memory://`` store with the near cache
    writes uncompressed" (docs/performance.md; ``AsyncSessionStore``'s codec is documented
    "as for SessionStore", and it has the same near cache, on by default).

    Input: ``AsyncSessionStore("memory://", dict)`` saving a 2.5 KB session. What happens:
    its codec is ``ZstdStage(threshold=1024, level=1)`` and the payload's stages are
    ``("zstd",)``, while ``SessionStore("memory://", dict)`` writes ``()``: the near cache
    then keeps the body beside the compressed payload (the memory the per-tier rule saves).
    """

    async def stages() -> tuple[str, ...]:
        store: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore("memory://", dict)
        await store.save("k", _session())
        raw = await store.backend.get("k")
        assert raw is not None
        return store.codec.inspect(raw).stages

    sync: SessionStore[dict[str, Any]] = SessionStore("memory://", dict)
    sync.save("k", _session())
    raw = sync.backend.get("k")
    assert raw is not None and sync.codec.inspect(raw).stages == ()
    assert asyncio.run(stages()) == ()
