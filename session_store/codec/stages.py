"""Serializer stages: each turns bytes into bytes and back, and is named in the header.

A pipeline applies its stages in order on save and in reverse on load (requests-cache's
``serializers/pipeline.py`` is the model). A stage may decline a payload (compression of a small
one): only the stages actually applied are recorded, so a reader always knows what to undo.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol

from session_store.codec.limits import BYTE_COST, DEFAULT_DECODE_LIMIT, within_budget
from session_store.errors import ConfigurationError, CorruptPayloadError

if TYPE_CHECKING:
    import zstandard

__all__ = ["STAGE_AESGCM", "STAGE_ZSTD", "WRITE_NEVER", "Stage", "StageContext", "ZstdStage"]

#: A :class:`ZstdStage` threshold no payload exceeds: the stage reads, and never writes.
WRITE_NEVER: Final = sys.maxsize

#: The fastest zstd level (``ZSTD_minCLevel``): negative levels are zstd's "fast" ones.
FASTEST_LEVEL: Final = -(1 << 17)

#: Stage ids in the header. Never reuse a number.
STAGE_ZSTD = 1
STAGE_AESGCM = 2


class StageContext(NamedTuple):
    """What a stage may bind its output to: the store's namespace, the key, the header, and
    the heads of the stored keys of the store's backend (``storage``: what every stored key of
    the backend begins with, its prefix and separator; see :func:`session_store.keys.
    storage_heads`). A payload written bound to a head (byte format 3) names the first; a
    reader tries each. Empty: a codec used on its own, bound to no backend."""

    namespace: str
    key: str
    header: bytes
    storage: tuple[str, ...] = ()


class Stage(Protocol):
    """One reversible bytes-to-bytes step: a small class with a ``name``, a ``stage_id`` (the
    byte the header lists it by) and ``encode``/``decode``. The known stages and the order the
    encoder applies them in are :data:`session_store.codec.pipeline.KNOWN_STAGES`."""

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
        level: zstd level, 1 (fast) to 22 (small), or a negative "fast" level down to
            :data:`FASTEST_LEVEL`; default 1, which costs about 0.7 of level 3's time for about
            3 % more bytes. The fast levels trade bytes for time at about the same rate as
            level 1 (measured: about 2.2 µs of CPU per KiB of Redis memory saved at any level;
            docs/performance.md), so they are a choice, not a default. The level is not stored:
            a payload written at any level reads back with any other, by this release and the
            ones before it (a standard zstd frame either way).
        decode_limit: the memory budget of decoding one compressed payload, decompressed bytes
            and parsed objects together (default 64 MiB; see :mod:`session_store.codec.limits`).
            A body whose parse would cost more is stored uncompressed.
        max_output: a further cap on the decompressed size in bytes, if given.
    """

    stage_id = STAGE_ZSTD
    name = "zstd"

    def __init__(
        self,
        threshold: int = 1024,
        level: int = 1,
        max_output: int | None = None,
        *,
        decode_limit: int = DEFAULT_DECODE_LIMIT,
    ) -> None:
        if threshold < 0 or not (1 <= level <= 22 or FASTEST_LEVEL <= level <= -1):
            raise ConfigurationError(
                f"zstd threshold must be >= 0 and level within 1..22 or {FASTEST_LEVEL}..-1"
            )
        if decode_limit < 1 or (max_output is not None and max_output < 1):
            raise ConfigurationError("zstd decode_limit and max_output must be >= 1 byte")
        self.threshold = threshold
        self.level = level
        self.decode_limit = decode_limit
        cap = decode_limit // BYTE_COST
        self.max_output = cap if max_output is None else min(max_output, cap)
        self._local = threading.local()

    @classmethod
    def read_only(cls, *, decode_limit: int = DEFAULT_DECODE_LIMIT) -> ZstdStage:
        """A stage that never compresses what it writes but still reads zstd payloads: the
        ``memory://`` default (see :class:`~session_store.store.SessionStore`), so that what
        another store wrote compressed stays readable."""
        return cls(threshold=WRITE_NEVER, decode_limit=decode_limit)

    def applies(self, data: bytes) -> bool:
        # Never write what decode would refuse: a body too costly to parse within the budget
        # is stored uncompressed (it then costs only what it is stored as).
        return len(data) > self.threshold and self.fits(data)

    def fits(self, body: bytes) -> bool:
        """Whether a decompressed ``body`` may be parsed within :attr:`decode_limit`."""
        return len(body) <= self.max_output and within_budget(body, self.decode_limit)

    def encode(self, data: bytes, ctx: StageContext) -> bytes:
        import zstandard  # on first use: a store without compression never loads it

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

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        """This thread's decompressor: making one costs ~40 µs, ten times decompressing a
        small session (a decompressor is not thread-safe, so one per thread)."""
        import zstandard

        dctx: zstandard.ZstdDecompressor | None = getattr(self._local, "zd", None)
        if dctx is None:
            dctx = self._local.zd = zstandard.ZstdDecompressor()
        return dctx

    def decode(self, data: bytes, ctx: StageContext) -> bytes:
        import zstandard

        # python-zstandard allocates the declared content size up front, whatever
        # max_output_size says: check the declaration before anything is allocated.
        try:
            declared = zstandard.frame_content_size(data)
        except zstandard.ZstdError:
            raise CorruptPayloadError("zstd stage: not a zstd frame", key=ctx.key) from None
        if declared < 0:
            raise CorruptPayloadError(
                "zstd frame does not declare its size (the encoder always writes it)", key=ctx.key
            )
        if declared > self.max_output:
            raise CorruptPayloadError(
                f"zstd frame declares {declared:,} bytes, more than this store decodes "
                f"({self.max_output:,}; ZstdStage(decode_limit=...))",
                key=ctx.key,
            )
        try:
            body = self._decompressor().decompress(data, max_output_size=declared)
        except zstandard.ZstdError as exc:
            raise CorruptPayloadError(f"zstd stage cannot decompress: {exc}", key=ctx.key) from None
        if len(body) != declared or not within_budget(body, self.decode_limit):
            raise CorruptPayloadError(
                "zstd payload is not what the encoder writes: its size differs from the declared "
                "one, or parsing it would cost more than the decode limit",
                key=ctx.key,
            )
        return body

    def __repr__(self) -> str:
        if self.threshold == WRITE_NEVER:
            return "ZstdStage.read_only()"
        return f"ZstdStage(threshold={self.threshold}, level={self.level})"
