"""Serializer stages: each turns bytes into bytes and back, and is named in the header.

A pipeline applies its stages in order on save and in reverse on load (requests-cache's
``serializers/pipeline.py`` is the model). A stage may decline a payload (compression of a small
one): only the stages actually applied are recorded, so a reader always knows what to undo.
"""

from __future__ import annotations

import threading
from typing import NamedTuple, Protocol

import zstandard

from session_store.errors import ConfigurationError, CorruptPayloadError

__all__ = ["STAGE_AESGCM", "STAGE_ZSTD", "Stage", "StageContext", "ZstdStage"]

#: Stage ids in the header. Never reuse a number.
STAGE_ZSTD = 1
STAGE_AESGCM = 2


class StageContext(NamedTuple):
    """What a stage may bind its output to: the store's namespace, the key, and the header."""

    namespace: str
    key: str
    header: bytes


class Stage(Protocol):
    """One reversible bytes-to-bytes step."""

    stage_id: int
    name: str

    def applies(self, data: bytes) -> bool:
        """Whether this stage transforms ``data`` (it may skip, as compression of small data)."""
        ...

    def encode(self, data: bytes, ctx: StageContext) -> bytes:
        """Transform on save."""
        ...

    def decode(self, data: bytes, ctx: StageContext) -> bytes:
        """Undo :meth:`encode` on load; a payload it cannot undo is CorruptPayloadError."""
        ...


class ZstdStage:
    """Zstandard compression of payloads larger than ``threshold`` bytes.

    Args:
        threshold: payloads of this size or smaller are stored uncompressed (default 1 KiB:
            below it zstd saves under half the bytes; see docs/performance.md).
        level: zstd level, 1 (fast) to 22 (small); default 1, which costs about 0.7 of level
            3's time for about 3 % more bytes. The level is not stored: a payload written at
            any level reads back with any other.
        max_output: the largest decompressed size accepted, against decompression bombs.
    """

    stage_id = STAGE_ZSTD
    name = "zstd"

    def __init__(
        self, threshold: int = 1024, level: int = 1, max_output: int = 512 * 1024 * 1024
    ) -> None:
        if threshold < 0 or not 1 <= level <= 22:
            raise ConfigurationError("zstd threshold must be >= 0 and level within 1..22")
        self.threshold = threshold
        self.level = level
        self.max_output = max_output
        self._local = threading.local()

    def applies(self, data: bytes) -> bool:
        return len(data) > self.threshold

    def encode(self, data: bytes, ctx: StageContext) -> bytes:
        # A compressor is not thread-safe, and making one per call costs more than compressing
        # a small session: one per thread, reused.
        cached: tuple[int, zstandard.ZstdCompressor] | None = getattr(self._local, "zc", None)
        if cached is None or cached[0] != self.level:
            cached = (
                self.level,
                zstandard.ZstdCompressor(level=self.level, write_content_size=True),
            )
            self._local.zc = cached
        return cached[1].compress(data)

    def decode(self, data: bytes, ctx: StageContext) -> bytes:
        try:
            return zstandard.ZstdDecompressor().decompress(data, max_output_size=self.max_output)
        except zstandard.ZstdError as exc:
            raise CorruptPayloadError(f"zstd stage cannot decompress: {exc}", key=ctx.key) from None

    def __repr__(self) -> str:
        return f"ZstdStage(threshold={self.threshold}, level={self.level})"
